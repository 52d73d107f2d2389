"""The evaluation API: a model's metrics with its weights replaced, next to the float model's.

``evaluate(model, weights, tier)`` runs a protocol (``PROTOCOLS``) with some or all of the
model's weight tensors replaced (a dict name -> float array; the names are those
:func:`sw_codec.models.load_model` gives) and returns its metrics: the task metrics on true
labels and the agreement with the float model. The float weights, the inputs of each tier and
the float model's outputs are loaded or computed once per process and kept, so a loop that
evaluates many replacements pays only for the runs.

``evaluate_setting`` and ``evaluate_file`` put the weights through the codec first (a setting
such as ``int8ch``, or a ``.pcz`` file) and add the bits per weight.
"""

from __future__ import annotations

import time
from contextlib import contextmanager
from functools import cache
from pathlib import Path

import numpy as np

from sw_codec.models import BUNDLED_PREFIX, bundled_model, load_model

from . import coded, minilm, ppocr, silero, yolov8n
from .data import DATA_PACKAGES, MissingPackage, missing_runtime
from .protocol import TIERS, Protocol

__all__ = ["PROTOCOLS", "protocol", "check_packages", "float_weights", "inputs", "reference", "outputs", "evaluate",
           "evaluate_setting", "evaluate_file", "FLOAT_BITS"]

PROTOCOLS: dict[str, Protocol] = {p.name: p for p in (minilm.PROTOCOL, yolov8n.PROTOCOL, ppocr.DET, ppocr.REC,
                                                      silero.PROTOCOL)}
#: The bits per weight of the float model (float32).
FLOAT_BITS = 32.0


def protocol(name: str) -> Protocol:
    """The protocol of a model, by name (``minilm`` or ``@minilm``)."""
    key = name.removeprefix(BUNDLED_PREFIX)
    if key not in PROTOCOLS:
        raise ValueError(f"no accuracy protocol for model {name!r} (known: {', '.join(PROTOCOLS)})")
    return PROTOCOLS[key]


def check_packages(name: str) -> None:
    """:class:`MissingPackage`, one message naming every missing runtime and data package of a model."""
    p = protocol(name)
    problems = []
    runtime = missing_runtime(p.runtime)
    if runtime:
        problems.append(f"{', '.join(runtime)} to run it (pip install 'poscodec[eval]')")
    for key in p.data:
        if missing_runtime([(DATA_PACKAGES[key].module, key)]):
            problems.append(f"the data package {key} ({DATA_PACKAGES[key].install})")
    if problems:
        raise MissingPackage(f"model {p.name} needs " + " and ".join(problems))


@cache
def float_weights(name: str) -> dict[str, np.ndarray]:
    """The bundled model's float weights (read-only arrays, shared by every evaluation)."""
    weights = load_model(bundled_model(protocol(name).model))
    for a in weights.values():
        a.flags.writeable = False
    return weights


@cache
def inputs(name: str, tier: str):
    """The protocol's inputs and true labels for ``tier``."""
    if tier not in TIERS:
        raise ValueError(f"tier must be one of {TIERS}, not {tier!r}")
    check_packages(name)
    return protocol(name).inputs(tier)


@contextmanager
def _one_blas_thread():
    """numpy's BLAS on one thread while a model runs: its spinning threads slow everything else on a
    shared machine (and the protocols' products are small)."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        yield
        return
    with threadpool_limits(1, user_api="blas"):
        yield


def _run(name: str, weights: dict, tier: str):
    with _one_blas_thread():
        return protocol(name).run(weights, inputs(name, tier))


@cache
def reference(name: str, tier: str):
    """The float model's outputs on the inputs of ``tier``."""
    return _run(name, float_weights(name), tier)


def _merged(name: str, weights: dict | None) -> dict:
    base = float_weights(name)
    if not weights:
        return base
    unknown = sorted(set(weights) - set(base))
    if unknown:
        raise ValueError(f"{len(unknown)} weights that model {protocol(name).name} does not have, "
                         f"e.g. {unknown[0]!r}")
    merged = dict(base)
    for key, value in weights.items():
        value = np.asarray(value, np.float32)
        if value.shape != base[key].shape:
            raise ValueError(f"weight {key!r}: shape {value.shape}, the model has {base[key].shape}")
        merged[key] = value
    return merged


def outputs(name: str, weights: dict | None = None, tier: str = "fast"):
    """The model's raw outputs with ``weights`` in place of its float weights (as :func:`evaluate`
    takes them), unscored: for distortion measures of one's own against :func:`reference`."""
    p = protocol(name)
    return reference(p.name, tier) if weights is None else _run(p.name, _merged(p.name, weights), tier)


def evaluate(name: str, weights: dict | None = None, tier: str = "fast") -> dict:
    """The metrics of model ``name`` with ``weights`` (name -> float array) in place of its float
    weights (those not given stay float); None evaluates the float model.

    Returns the task metrics and the agreement metrics of the protocol (``protocol(name)``) and
    ``seconds``, the time of the run.
    """
    p = protocol(name)
    ref = reference(p.name, tier)
    start = time.perf_counter()
    outputs = ref if weights is None else _run(p.name, _merged(p.name, weights), tier)
    result = p.score(outputs, inputs(p.name, tier), ref)
    result["seconds"] = round(time.perf_counter() - start, 3)
    return result


def evaluate_file(name: str, data: bytes | str | Path, tier: str = "fast", *, jobs: int | None = None,
                  cache_dir=None, progress: bool = False, label: str | None = None) -> dict:
    """The metrics of the weights a ``.pcz`` file (its bytes or path) decodes to, with its size.

    Every tensor of the model must be in the file, under the model's names.
    """
    if not isinstance(data, bytes):
        label = label or str(data)
        data = Path(data).read_bytes()
    from_cache = cache_dir is not None and coded.cache_path(data, cache_dir).exists()
    start = time.perf_counter()
    weights = coded.decode(data, jobs=jobs, cache_dir=cache_dir, progress=progress)
    decode_s = time.perf_counter() - start
    missing = sorted(set(float_weights(protocol(name).name)) - set(weights))
    if missing:
        raise ValueError(f"the file lacks {len(missing)} weights of model {protocol(name).name}, "
                         f"e.g. {missing[0]!r}")
    metrics = evaluate(name, weights, tier)
    return {"setting": label or "pcz", **coded.size_of(data), "metrics": metrics, "decoded_from_cache": from_cache,
            "seconds": {"decode": round(decode_s, 3), "run": metrics.pop("seconds")}}


def evaluate_setting(name: str, setting: coded.Setting | str, tier: str = "fast", *, jobs: int | None = None,
                     cache_dir=None, progress: bool = False) -> dict:
    """Compress the model at ``setting`` (e.g. ``"int8ch"``), decode it, and evaluate the decoded weights."""
    if isinstance(setting, str):
        setting = coded.parse_setting(setting)
    check_packages(name)
    start = time.perf_counter()
    data = coded.encode(float_weights(protocol(name).name), setting)
    encode_s = time.perf_counter() - start
    result = evaluate_file(name, data, tier, jobs=jobs, cache_dir=cache_dir, progress=progress, label=setting.label)
    result["seconds"] = {"encode": round(encode_s, 3), **result["seconds"]}
    return result


def evaluate_float(name: str, tier: str = "fast") -> dict:
    """The float model's row: its metrics (agreement 1 by definition) at 32 bits per weight."""
    start = time.perf_counter()
    metrics = evaluate(name, None, tier)
    metrics.pop("seconds")
    weights = float_weights(protocol(name).name)
    return {"setting": "float", "bits_per_weight": FLOAT_BITS,
            "quantized_weights": sum(a.size for a in weights.values() if a.ndim >= 2),
            "float_weights": sum(a.size for a in weights.values() if a.ndim < 2),
            "file_bytes": 4 * sum(a.size for a in weights.values()), "metrics": metrics,
            "seconds": {"run": round(time.perf_counter() - start, 3)}}
