"""Symmetric integer quantization of float tensors: the integers the lossless codec stores."""

from __future__ import annotations

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
