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
    """The largest error tolerated on each weight: ``value`` itself (absolute) or ``value`` times the
    layer's largest magnitude (``relative``)."""

    value: float
    relative: bool = False

    def __post_init__(self):
        if not (np.isfinite(self.value) and self.value > 0):
            raise ValueError(f"an error bound must be a positive number, not {self.value!r}")

    def absolute(self, x: np.ndarray) -> float:
        """The bound in the units of the weights ``x``."""
        if not self.relative:
            return float(self.value)
        return float(self.value) * float(np.abs(np.asarray(x, np.float32)).max(initial=0.0))

    @property
    def label(self) -> str:
        return f"{'rel' if self.relative else 'abs'}:{self.value:.4g}"


_BOUND = re.compile(r"(?:(abs|rel):)?\s*([0-9.eE+-]+)\s*(%)?")


def parse_error_bound(text: str) -> ErrorBound:
    """``1e-3`` or ``abs:1e-3`` (absolute), ``rel:0.01`` or ``1%`` (relative to the layer's max |w|)."""
    m = _BOUND.fullmatch(str(text).strip().lower())
    try:
        value = float(m.group(2)) if m else None
    except ValueError:
        value = None
    if value is None:
        raise ValueError(f"error bound {text!r}: write a number (absolute), abs:E, rel:E or P% "
                         "(relative to the layer's largest |w|)")
    relative = m.group(1) == "rel" or m.group(3) == "%"
    return ErrorBound(value / 100 if m.group(3) else value, relative)


def _bits_for_range(lo: int, hi: int) -> int:
    """The narrowest two's complement width holding ``lo..hi`` (at least 2, the format's narrowest)."""
    return max(MIN_WEIGHT_BITS, int(hi).bit_length() + 1, int(-lo - 1).bit_length() + 1)


def quantize_error_bounded(x: np.ndarray, bound: ErrorBound | float, name: str = "tensor"
                           ) -> tuple[np.ndarray, np.ndarray, int]:
    """``(q, scales, bits)``: a uniform quantizer of step about ``2E`` such that every weight decodes
    (``dequantize(q, scales)``, float32) to within ``E`` of ``x``, E the bound in absolute terms.

    One scale for the tensor (the step), ``q = rint(x / step)``; ``bits`` is the narrowest width the
    integers need. The step is a float32 number at most ``2E``, shrunk by a few parts in 2**23 when
    float32 rounding of ``q * step`` would otherwise take a weight past ``E`` (every weight is
    checked). A tensor of zeros (or a relative bound on one) gives ``q = 0``, scale 1 and 2 bits.
    ``ValueError`` naming ``name`` if the range needs more than 16 bits.
    """
    bound = bound if isinstance(bound, ErrorBound) else ErrorBound(float(bound))
    x = np.asarray(x, dtype=np.float32)
    if not np.all(np.isfinite(x)):
        raise ValueError(f"{name}: cannot quantize a tensor with NaN or infinite values")
    e = bound.absolute(x)
    amax = float(np.abs(x).max(initial=0.0))
    if e <= 0 or amax == 0:
        return np.zeros(x.shape, np.int8), np.ones(1, np.float32), MIN_WEIGHT_BITS
    x64 = x.astype(np.float64)
    step = float(np.float32(2 * e))
    if step > 2 * e:                               # float32 rounding went up: take the float32 below
        step = float(np.nextafter(np.float32(step), np.float32(0)))
    shrink = 0.0
    for _ in range(40):
        scale = np.float32(step * (1 - shrink))
        if not scale > 0 or amax / float(scale) > (1 << MAX_WEIGHT_BITS):
            break
        q = np.rint(x64 / np.float64(scale))
        decoded = dequantize(q, np.array([scale], np.float32)).astype(np.float64)
        if np.all(np.abs(x64 - decoded) <= e):
            bits = _bits_for_range(int(q.min()), int(q.max()))
            if bits > MAX_WEIGHT_BITS:
                break
            return q.astype(np.int8 if bits <= 8 else np.int16), np.array([scale], np.float32), bits
        shrink = max(2 * shrink, 2.0 ** -23)
    raise ValueError(f"{name}: an error bound of {e:.3g} needs more than {MAX_WEIGHT_BITS} bits for weights "
                     f"up to {amax:.3g} in magnitude (step {2 * e:.3g})")
