"""What an accuracy protocol is: a model, its runtime and data packages, its inputs and its metrics."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

__all__ = ["Protocol", "TIERS"]

#: ``fast``: small subsets, seconds per run (``make test``, and cheap enough to call in a loop);
#: ``full``: every input the protocol has (``make accuracy``).
TIERS = ("fast", "full")


@dataclass(frozen=True)
class Protocol:
    """One model's accuracy protocol.

    ``inputs(tier)`` loads the real inputs and their true labels (done once per tier);
    ``run(weights, inputs)`` runs the model with ``weights`` (every weight tensor of the bundled
    model, by the name :func:`sw_codec.models.load_model` gives it) and returns its outputs;
    ``score(outputs, inputs, reference)`` gives the metrics: the task metrics on the true labels and
    the agreement of ``outputs`` with ``reference``, the float model's outputs on the same inputs.
    """

    name: str
    model: str                          # the bundled model (sw_codec.models.BUNDLED) whose weights it runs
    description: str                    # how it runs and on what, one line
    runtime: tuple                      # (import name, PyPI name) of the packages that run it
    data: tuple                         # keys of accuracy.data.DATA_PACKAGES it reads
    task_metrics: tuple                 # metric names on true labels, the first one the headline
    agreement_metrics: tuple            # metric names of agreement with the float model, first the headline
    inputs: Callable[[str], Any]
    run: Callable[[dict, Any], Any]
    score: Callable[[Any, Any, Any], dict]
