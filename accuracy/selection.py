"""Per-layer selection of a lossy setting under an accuracy budget (DNNZip's selective layers).

Given a model, a coder (``accuracy.peers.Method``) and a budget (the headline metric on true labels
at most ``max_drop`` points below the float model's), choose for every weight tensor of two or more
dimensions one setting of the coder's knob, or float32, so that the model's bits are fewest:

1. **Sensitivity**, per group of neighbouring layers (:func:`layer_groups`): the group's layers are
   replaced by our error-bounded quantization at a probe bound (a finer one when the output is
   already far off), the model runs on the calibration tier (``fast``), and the distortion of its
   outputs (:func:`output_distortion`: squared error over squared norm, averaged over the float
   outputs) is divided by the squared weight error of the group.
   One run per group, shared by every coder: a coder's predicted distortion is that coefficient
   times the squared error it leaves in each layer, added over the layers.
2. **Allocation**: every layer's bytes and squared error at every knob setting (:func:`layer_table`),
   then for each trade-off ``lam`` every layer on its own minimizes ``bits + lam * predicted
   distortion`` (a Lagrangian sweep); the settings so found, from the finest to the coarsest, are
   the *path* (:func:`lagrangian_path`).
3. **Verification**: the whole model runs on the ``full`` tier with a setting of the path; a binary
   search along the path (the finest end is the float model) keeps the coarsest setting whose
   headline metric meets the budget. Every run is recorded; a run that misses the budget is a
   back-off.

The sensitivity runs use the fast tier, a subset of the full tier (not disjoint from it); the
verification runs on the full tier, the inputs the figures are reported on.
"""

from __future__ import annotations

import math
import re
import time
from dataclasses import dataclass, field

import numpy as np

from sw_codec.quantization import ErrorBound, dequantize, quantize_error_bounded

from . import harness
from .peers import FLOAT, Method, knob_label

__all__ = ["layer_groups", "output_distortion", "sensitivities", "layer_table", "lagrangian_path", "select",
           "headline", "PROBES", "Selection"]

#: The probe bounds of the sensitivity runs, relative to each layer's largest |w|: the first whose
#: distortion is at most ``LINEAR`` is kept (a saturated output says little about small errors).
PROBES = (2.0 ** -6, 2.0 ** -9, 2.0 ** -12)
LINEAR = 0.05


def headline(name: str) -> str:
    """The model's headline metric on true labels (higher is better)."""
    return harness.protocol(name).task_metrics[0]


def _natural(name: str):
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", name)]


def layer_groups(weights: dict[str, np.ndarray], max_groups: int = 12) -> list[list[str]]:
    """The weight tensors of two or more dimensions in groups of neighbours (names in natural order:
    ``conv2d_9`` before ``conv2d_10``). A tensor with more than ``1 / max_groups`` of the weights
    is a group of its own; the others form runs of consecutive tensors, about ``max_groups`` groups
    in all."""
    names = sorted((k for k, v in weights.items() if np.ndim(v) >= 2), key=_natural)
    total = sum(weights[k].size for k in names)
    big = {k for k in names if weights[k].size * max_groups > total}
    small = [k for k in names if k not in big]
    per_group = max(1, math.ceil(len(small) / max(1, max_groups - len(big))))
    groups, run = [], []
    for k in names:
        if k in big:
            groups += [run] if run else []
            groups.append([k])
            run = []
            continue
        run.append(k)
        if len(run) == per_group:
            groups.append(run)
            run = []
    return groups + ([run] if run else [])


def _float_leaves(obj):
    if isinstance(obj, np.ndarray) and obj.dtype.kind == "f":
        yield obj
    elif isinstance(obj, dict):
        for key in sorted(obj, key=str):
            yield from _float_leaves(obj[key])
    elif isinstance(obj, (list, tuple)):
        for item in obj:
            yield from _float_leaves(item)


def output_distortion(out, reference) -> float:
    """The mean, over the float arrays of a model's outputs, of each array's squared error against
    the reference's over the reference's squared norm (0 for equal outputs). Each output counts
    alike, whatever its scale (a detector's box coordinates and its class scores)."""
    errors = []
    for a, b in zip(_float_leaves(out), _float_leaves(reference)):
        b64 = b.astype(np.float64)
        den = float((b64 * b64).sum())
        if den > 0:
            errors.append(float(((a.astype(np.float64) - b64) ** 2).sum()) / den)
    return float(np.mean(errors)) if errors else 0.0


def _sse(a: np.ndarray, b: np.ndarray) -> float:
    d = a.astype(np.float64) - b.astype(np.float64)
    return float((d * d).sum())


def sensitivities(name: str, groups: list[list[str]], tier: str = "fast", probes=PROBES, log=None) -> list[dict]:
    """Per group: the output distortion with its layers at a probe bound (the first of ``probes``
    whose distortion is at most ``LINEAR``, else the last), their squared weight error, and the
    coefficient (distortion per unit of squared error)."""
    base = harness.float_weights(name)
    reference = harness.outputs(name, None, tier)
    out = []
    for i, group in enumerate(groups):
        start = time.perf_counter()
        for probe in probes:
            weights = {}
            for k in group:
                q, scales, _ = quantize_error_bounded(base[k], ErrorBound(probe, relative=True), k)
                weights[k] = dequantize(q, scales)
            sse = sum(_sse(weights[k], base[k]) for k in group)
            distortion = output_distortion(harness.outputs(name, weights, tier), reference)
            if distortion <= LINEAR:
                break
        out.append({"layers": group, "probe": probe, "distortion": distortion, "sse": sse,
                    "coefficient": distortion / sse if sse > 0 else 0.0,
                    "seconds": round(time.perf_counter() - start, 3)})
        if log:
            log(f"  sensitivity {i + 1}/{len(groups)}: {group[0]}{' ..' if len(group) > 1 else ''} "
                f"({len(group)} layers) distortion {distortion:.3g} at {probe:.3g}")
    return out


def layer_table(name: str, method: Method, layers: list[str], log=None) -> dict[str, list[dict]]:
    """Per layer, per setting (``float`` first, then the method's grid): bytes, squared error, width."""
    base = harness.float_weights(name)
    table = {}
    for i, k in enumerate(sorted(layers, key=lambda k: -base[k].size)):
        rows = []
        for knob in (FLOAT,) + tuple(method.grid):
            try:
                coded = method.code(base[k], knob)
            except ValueError:                  # a setting this layer cannot take (past 16 bits)
                continue
            rows.append({"knob": knob, "bytes": coded.nbytes, "sse": _sse(coded.decoded, base[k]),
                         "bits": coded.bits})
        table[k] = rows
        if log and (i + 1) % 10 == 0:
            log(f"  {method.name}: {i + 1}/{len(layers)} layers sized")
    return {k: table[k] for k in layers}


def lagrangian_path(table: dict[str, list[dict]], coefficient: dict[str, float], points: int = 600
                    ) -> list[dict[str, int]]:
    """Settings (layer -> index into its table rows) that minimize ``bits + lam * distortion`` for
    a sweep of ``lam``, from the finest (all float) to the coarsest, without repeats."""
    bits = {k: np.array([8.0 * r["bytes"] for r in rows]) for k, rows in table.items()}
    dist = {k: np.array([coefficient[k] * r["sse"] for r in rows]) for k, rows in table.items()}
    slopes = []
    for k in table:
        b, d = bits[k], dist[k]
        for i in range(len(b)):
            for j in range(len(b)):
                if b[i] > b[j] and d[j] > d[i]:
                    slopes.append((b[i] - b[j]) / (d[j] - d[i]))
    if not slopes:
        lams = [0.0]
    else:
        lo, hi = min(slopes), max(slopes)
        lams = [math.inf] + list(np.geomspace(hi * 2, lo / 2, points)) + [0.0]
    path, seen = [], set()
    for lam in lams:
        config = {}
        for k in table:
            cost = bits[k] if lam == 0 else (dist[k] if lam == math.inf else bits[k] + lam * dist[k])
            config[k] = int(np.flatnonzero(cost == cost.min())[-1] if lam == math.inf else np.argmin(cost))
        key = tuple(config[k] for k in table)
        if key not in seen:
            seen.add(key)
            path.append(config)
    return path


@dataclass
class Selection:
    """The outcome of :func:`select` for one model and one method."""

    model: str
    method: str
    metric: str
    float_metric: float
    threshold: float
    settings: dict[str, object]             # layer -> knob (or "float")
    widths: dict[str, int | None]           # layer -> integer width where the method has one
    bits_per_weight: float
    chosen_metric: float
    chosen_metrics: dict
    runs: list[dict] = field(default_factory=list)
    path_length: int = 0
    seconds: dict = field(default_factory=dict)

    def as_dict(self) -> dict:
        return {"method": self.method, "bits_per_weight": round(self.bits_per_weight, 4),
                "metric": self.chosen_metric, "metrics": self.chosen_metrics, "threshold": self.threshold,
                "path_length": self.path_length, "verification_runs": self.runs,
                "failed_verification_runs": sum(not r["meets_budget"] for r in self.runs),
                "layers": {k: {"setting": knob_label(v), "bits": self.widths[k]} for k, v in self.settings.items()},
                "seconds": self.seconds}


def decoded_weights(name: str, method: Method, settings: dict[str, object]) -> dict[str, np.ndarray]:
    base = harness.float_weights(name)
    return {k: method.code(base[k], knob).decoded for k, knob in settings.items()}


def select(name: str, method: Method, max_drop: float = 1.0, *, sens: list[dict], tier: str = "full",
           log=None) -> Selection:
    """The coarsest setting of the path (see the module) whose ``tier`` headline metric is at most
    ``max_drop`` points (hundredths) below the float model's. ``sens`` from :func:`sensitivities`."""
    start = time.perf_counter()
    metric = headline(name)
    float_metric = harness.evaluate(name, None, tier)[metric]
    threshold = float_metric - max_drop / 100
    coefficient = {k: s["coefficient"] for s in sens for k in s["layers"]}
    table = layer_table(name, method, list(coefficient), log)
    sized = time.perf_counter()
    path = lagrangian_path(table, coefficient)
    count = sum(harness.float_weights(name)[k].size for k in table)

    def settings_of(config):
        return {k: table[k][i]["knob"] for k, i in config.items()}

    def bits_of(config):
        return 8 * sum(table[k][i]["bytes"] for k, i in config.items()) / count

    runs, results = [], {}

    def meets(i):
        if i not in results:
            t = time.perf_counter()
            metrics = harness.evaluate(name, decoded_weights(name, method, settings_of(path[i])), tier)
            metrics.pop("seconds", None)
            ok = metrics[metric] >= threshold - 1e-12
            results[i] = (ok, metrics)
            runs.append({"path_index": i, "bits_per_weight": round(bits_of(path[i]), 4), "metric": metrics[metric],
                         "meets_budget": ok, "seconds": round(time.perf_counter() - t, 2)})
            if log:
                log(f"  {method.name}: verify {i}/{len(path) - 1} at {bits_of(path[i]):.3f} bits/weight: "
                    f"{metric} {metrics[metric]:.4f} ({'meets' if ok else 'misses'} {threshold:.4f})")
        return results[i][0]

    lo, hi = 0, len(path) - 1
    if meets(hi):
        lo = hi
    else:
        while hi - lo > 1:
            mid = (lo + hi) // 2
            if meets(mid):
                lo = mid
            else:
                hi = mid
    if lo not in results:                       # the finest end: every layer float, the float model
        results[lo] = (True, {**harness.evaluate(name, None, tier)})
        results[lo][1].pop("seconds", None)
    chosen = path[lo]
    settings = settings_of(chosen)
    return Selection(name, method.name, metric, float_metric, threshold, settings,
                     {k: table[k][i]["bits"] for k, i in chosen.items()}, bits_of(chosen),
                     results[lo][1][metric], results[lo][1], runs, len(path),
                     {"sizing": round(sized - start, 2), "total": round(time.perf_counter() - start, 2)})
