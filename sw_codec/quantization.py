"""Integer quantization of float tensors: the integers the lossless codec stores.

:func:`quantize` is symmetric with ``bits`` given (one scale per tensor or output channel);
:func:`quantize_error_bounded` takes the largest error the user tolerates on each weight instead,
and gives the width the layer then needs (DNNZip's error-bounded coding, with the integers coded
losslessly).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from .format import MAX_WEIGHT_BITS, MIN_WEIGHT_BITS, WEIGHT_BITS

GRANULARITIES = ("tensor", "channel")


def qmax(bits: int) -> int:
    return (1 << (bits - 1)) - 1


def quantize(x: np.ndarray, bits: int, granularity: str = "tensor") -> tuple[np.ndarray, np.ndarray]:
    """``(q, scales)`` with ``x ~= q * scale``, ``|q| <= 2**(bits-1) - 1``.

    ``bits`` is a width of the format, 2..16. ``tensor``: one scale, ``max|x| / qmax``. ``channel``:
    one scale per output channel (axis 0) for tensors of two or more dimensions; 1-D tensors always
    use one scale. A zero tensor (or channel) gets scale 1. Scales are float32; ``q`` is int8
    (bits <= 8) or int16.
    """
    if bits not in WEIGHT_BITS:
        raise ValueError(f"bits must be in {MIN_WEIGHT_BITS}..{MAX_WEIGHT_BITS}, not {bits!r}")
    if granularity not in GRANULARITIES:
        raise ValueError(f"granularity must be one of {GRANULARITIES}, not {granularity!r}")
    x = np.asarray(x, dtype=np.float32)
    if not np.all(np.isfinite(x)):
        raise ValueError("cannot quantize a tensor with NaN or infinite values")
    if granularity == "channel" and x.ndim >= 2:
        amax = np.abs(x.reshape(x.shape[0], -1)).max(axis=1, initial=0.0)
    else:
        amax = np.array([np.abs(x).max(initial=0.0)])
    scales = np.where(amax > 0, amax / qmax(bits), 1.0).astype(np.float32)
    per_elem = scales.reshape((-1,) + (1,) * (x.ndim - 1)) if len(scales) > 1 else scales[0]
    q = np.clip(np.rint(x / per_elem), -qmax(bits), qmax(bits))
    return q.astype(np.int8 if bits <= 8 else np.int16), scales


def dequantize(q: np.ndarray, scales: np.ndarray) -> np.ndarray:
    """Float32 weights ``q * scale`` (one scale, or one per row of axis 0)."""
    q = np.asarray(q)
    scales = np.asarray(scales, dtype=np.float32)
    if scales.size > 1:
        return (q.astype(np.float32) * scales.reshape((-1,) + (1,) * (q.ndim - 1))).astype(np.float32)
    return (q.astype(np.float32) * scales.reshape(()) ).astype(np.float32)


@dataclass(frozen=True)
class ErrorBound:
    """The largest error tolerated on each weight: ``value`` itself (absolute), ``value`` times the
    layer's largest magnitude (``relative``), or ``value`` times the largest magnitude of the
    weight's output channel (``per_channel``, a relative bound row by row of axis 0)."""

    value: float
    relative: bool = False
    per_channel: bool = False

    def __post_init__(self):
        if not (np.isfinite(self.value) and self.value > 0):
            raise ValueError(f"an error bound must be a positive number, not {self.value!r}")
        if self.per_channel and not self.relative:
            raise ValueError("a per-channel error bound is relative to each channel's largest |w|")

    def rows(self, x: np.ndarray) -> np.ndarray:
        """The bound of each row: one row (the tensor), or each index of axis 0 when per channel."""
        x = np.asarray(x, np.float32)
        rows = x.reshape(x.shape[0], -1) if self.per_channel and x.ndim >= 2 else x.reshape(1, -1)
        if not self.relative:
            return np.full(len(rows), float(self.value))
        return float(self.value) * np.abs(rows).max(axis=1, initial=0.0).astype(np.float64)

    def absolute(self, x: np.ndarray) -> float:
        """The bound in the units of the weights ``x`` (per channel: the largest channel's)."""
        return float(self.rows(x).max(initial=0.0))

    def granularity(self, x: np.ndarray) -> str:
        """The scale granularity of the quantized layer: ``channel`` for a per-channel bound on a
        tensor of two or more dimensions, else ``tensor``."""
        return "channel" if self.per_channel and np.ndim(x) >= 2 else "tensor"

    @property
    def label(self) -> str:
        kind = "ch" if self.per_channel else ("rel" if self.relative else "abs")
        return f"{kind}:{self.value:.4g}"


_BOUND = re.compile(r"(?:(abs|rel|ch):)?\s*([0-9.eE+-]+)\s*(%)?")


def parse_error_bound(text: str) -> ErrorBound:
    """``1e-3`` or ``abs:1e-3`` (absolute), ``rel:0.01`` or ``1%`` (relative to the layer's max |w|),
    ``ch:0.01`` (relative to each output channel's max |w|)."""
    m = _BOUND.fullmatch(str(text).strip().lower())
    try:
        value = float(m.group(2)) if m else None
    except ValueError:
        value = None
    if value is None:
        raise ValueError(f"error bound {text!r}: write a number (absolute), abs:E, rel:E or P% "
                         "(relative to the layer's largest |w|), or ch:E (to each output channel's)")
    relative = m.group(1) in ("rel", "ch") or m.group(3) == "%"
    return ErrorBound(value / 100 if m.group(3) else value, relative, m.group(1) == "ch")


def _bits_for_range(lo: int, hi: int) -> int:
    """The narrowest two's complement width holding ``lo..hi`` (at least 2, the format's narrowest)."""
    return max(MIN_WEIGHT_BITS, int(hi).bit_length() + 1, int(-lo - 1).bit_length() + 1)


#: The smallest positive float32 (a subnormal): the finest step a float32 scale can have.
_SMALLEST_STEP = np.float32(2.0 ** -149)


def quantize_error_bounded(x: np.ndarray, bound: ErrorBound | float, name: str = "tensor"
                           ) -> tuple[np.ndarray, np.ndarray, int]:
    """``(q, scales, bits)``: a uniform quantizer of step about ``2E`` such that every weight decodes
    (``dequantize(q, scales)``, float32) to within ``E`` of ``x``, E the bound in absolute terms
    (per channel: each row's own ``E``; ``bound.granularity(x)`` names the scales' granularity).

    One scale (the step) for the tensor, or one per output channel; ``q = rint(x / step)``;
    ``bits`` is the narrowest width the integers need. Each step is a float32 number at most
    ``2E``, shrunk by a few parts in 2**23 when float32 rounding of ``q * step`` would otherwise
    take a weight past ``E`` (every weight is checked). A row of zeros (or a relative bound on
    one) gets ``q = 0`` and scale 1. ``ValueError`` naming ``name`` if the range needs more than
    16 bits.
    """
    bound = bound if isinstance(bound, ErrorBound) else ErrorBound(float(bound))
    x = np.asarray(x, dtype=np.float32)
    if not np.all(np.isfinite(x)):
        raise ValueError(f"{name}: cannot quantize a tensor with NaN or infinite values")
    e = bound.rows(x)
    rows = x.reshape(len(e), -1).astype(np.float64)
    amax = np.abs(rows).max(axis=1, initial=0.0)
    zero = (e <= 0) | (amax == 0)
    step = (2 * e).astype(np.float32)
    step = np.where(step.astype(np.float64) > 2 * e, np.nextafter(step, np.float32(0)), step)
    # A bound below float32's resolution gets the finest step there is, on which every subnormal
    # weight is exact (larger weights then need more than 16 bits: the error below).
    step = np.maximum(step, _SMALLEST_STEP)
    scale = np.where(zero, np.float32(1), step).astype(np.float32)
    shrink = np.zeros(len(e))
    for _ in range(64):
        if np.any(amax > (1 << MAX_WEIGHT_BITS) * scale.astype(np.float64)):
            break
        q = np.rint(rows / scale.astype(np.float64)[:, None])
        q[zero] = 0
        decoded = dequantize(q, scale).astype(np.float64).reshape(rows.shape)
        bad = ~np.all(np.abs(rows - decoded) <= e[:, None], axis=1)
        if not bad.any():
            bits = _bits_for_range(int(q.min(initial=0)), int(q.max(initial=0)))
            if bits > MAX_WEIGHT_BITS:
                break
            return q.reshape(x.shape).astype(np.int8 if bits <= 8 else np.int16), scale, bits
        if np.any(scale[bad] <= _SMALLEST_STEP):
            break
        # Shrink the rows that missed by a few parts in 2**23, at least one float32 step (subnormal
        # steps have coarser relative spacing).
        shrink[bad] = np.maximum(2 * shrink[bad], 2.0 ** -23)
        smaller = (step[bad] * (1 - shrink[bad])).astype(np.float32)
        scale[bad] = np.maximum(np.minimum(smaller, np.nextafter(scale[bad], np.float32(0))), _SMALLEST_STEP)
    worst = int(np.argmax(np.where(zero, 0, amax / np.where(e > 0, e, 1))))
    raise ValueError(f"{name}: an error bound of {e[worst]:.3g} needs more than {MAX_WEIGHT_BITS} bits for weights "
                     f"up to {amax[worst]:.3g} in magnitude (step {2 * e[worst]:.3g})")
