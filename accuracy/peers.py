"""Lossy weight coders side by side: ours (error-bounded, then the position codec) and its peers.

A :class:`Method` codes one float tensor at one setting of its knob and returns the decoded
tensor and the compressed bytes (``Coded``). Every method is run through the same per-layer
selection (``accuracy.selection``); only the knob differs:

- ``poscodec``: our error-bounded quantizer (``sw_codec.quantization.quantize_error_bounded``;
  the knob is an ``ErrorBound``: by default relative to the layer's largest |w| or to each output
  channel's), the integers through the position codec at the width they need (``auto`` mode).
  Bytes: the payload and the float32 scales.
- ``intch``: uniform symmetric ``intB`` with one scale per output channel, through the position
  codec (B per layer). Bytes: the payload and the per-channel scales.
- ``sz3``: SZ3 (``pysz``) with an absolute bound (the relative bound times the layer's max |w|).
- ``zfp-accuracy``: ZFP (``zfpy``) in fixed-accuracy mode, tolerance as SZ3's bound.
- ``zfp-rate``: ZFP in fixed-rate mode, the knob in bits per value.

SZ3 and ZFP code each tensor as a 2-D float32 array (``shape[0]`` rows); their bytes are the
whole compressed stream each returns, its own header included. Every method also has the
setting ``float``: the layer kept as float32, 32 bits a weight, no error.

The float lossless floors (``zipnn``, ``fpzip``) give bits per weight only (:func:`float_floor`).
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from typing import Callable

import numpy as np

from sw_codec.codec import encode_integers
from sw_codec.quantization import ErrorBound, dequantize, quantize, quantize_error_bounded

from .data import MissingPackage

__all__ = ["Coded", "Method", "METHODS", "FLOORS", "FLOAT", "method", "check_method", "float_floor",
           "RELATIVE_GRID", "knob_label"]

#: The knob value that keeps a layer float32.
FLOAT = "float"
#: Error bounds relative to a layer's largest |w|: 2**-1.5 .. 2**-12 in half octaves.
RELATIVE_GRID = tuple(float(2.0 ** -(k / 2)) for k in range(3, 25))


@dataclass
class Coded:
    """One tensor at one setting: its decoded values and its compressed size in bytes."""

    decoded: np.ndarray
    nbytes: int
    bits: int | None = None            # the integer width, for the methods that have one


@dataclass(frozen=True)
class Method:
    """A lossy coder: ``code(x, knob)`` for each ``knob`` of ``grid`` (finest first)."""

    name: str
    knob: str
    grid: tuple
    code_fn: Callable[[np.ndarray, object], Coded]
    package: tuple | None = None        # (import name, PyPI name) it needs

    def code(self, x: np.ndarray, knob) -> Coded:
        x = np.asarray(x, np.float32)
        if knob == FLOAT:
            return Coded(x, 4 * x.size)
        return self.code_fn(x, knob)


def _poscodec(x: np.ndarray, bound: ErrorBound) -> Coded:
    q, scales, bits = quantize_error_bounded(x, bound)
    payload = encode_integers(q, bits).payload
    return Coded(dequantize(q, scales), len(payload) + 4 * scales.size, bits)


def _intch(x: np.ndarray, bits: int) -> Coded:
    q, scales = quantize(x, bits, "channel")
    payload = encode_integers(q, bits).payload
    return Coded(dequantize(q, scales), len(payload) + 4 * scales.size, bits)


def _rows(x: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(x.reshape(x.shape[0], -1))


def _amax(x: np.ndarray) -> float:
    return float(np.abs(x).max(initial=0.0))


def _sz3(x: np.ndarray, rel: float) -> Coded:
    from pysz import sz, szConfig, szErrorBoundMode

    if _amax(x) == 0:
        return Coded(np.zeros_like(x), 0)
    rows = _rows(x)
    config = szConfig(rows.shape)
    config.errorBoundMode = szErrorBoundMode.ABS
    config.absErrorBound = rel * _amax(x)
    compressed, _ = sz.compress(rows, config)
    decoded, _ = sz.decompress(compressed, np.float32, rows.shape)
    return Coded(np.asarray(decoded, np.float32).reshape(x.shape), int(compressed.nbytes))


def _zfp(x: np.ndarray, **mode) -> Coded:
    import zfpy

    compressed = zfpy.compress_numpy(_rows(x), **mode)
    return Coded(np.asarray(zfpy.decompress_numpy(compressed), np.float32).reshape(x.shape), len(compressed))


def _zfp_accuracy(x: np.ndarray, rel: float) -> Coded:
    if _amax(x) == 0:
        return Coded(np.zeros_like(x), 0)
    return _zfp(x, tolerance=rel * _amax(x))


def _zfp_rate(x: np.ndarray, rate: float) -> Coded:
    return _zfp(x, rate=rate)


METHODS: dict[str, Method] = {m.name: m for m in (
    Method("poscodec", "error bound", tuple(ErrorBound(r, relative=True, per_channel=ch)
                                            for ch in (False, True) for r in RELATIVE_GRID), _poscodec),
    Method("intch", "bits per channel", tuple(range(10, 1, -1)), _intch),
    Method("sz3", "error bound / max|w|", RELATIVE_GRID, _sz3, ("pysz", "pysz")),
    Method("zfp-accuracy", "tolerance / max|w|", RELATIVE_GRID, _zfp_accuracy, ("zfpy", "zfpy")),
    Method("zfp-rate", "bits per value", (12.0, 10.0, 8.0, 7.0, 6.0, 5.0, 4.0, 3.5, 3.0, 2.5, 2.0, 1.5, 1.0),
           _zfp_rate, ("zfpy", "zfpy")),
)}

#: Float lossless coders: (import name, PyPI name).
FLOORS = {"zipnn": ("zipnn", "zipnn"), "fpzip": ("fpzip", "fpzip")}


def knob_label(knob) -> str:
    """A knob setting as text: ``float``, an error bound's label (``rel:0.0156``), or the number."""
    if isinstance(knob, ErrorBound):
        return knob.label
    return knob if isinstance(knob, str) else f"{knob:.4g}"


def _installed(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def method(name: str) -> Method:
    if name not in METHODS:
        raise ValueError(f"unknown method {name!r} (known: {', '.join(METHODS)})")
    return METHODS[name]


def check_method(name: str) -> None:
    """:class:`MissingPackage` naming the package a method or floor needs, if it is not installed."""
    package = FLOORS[name] if name in FLOORS else method(name).package
    if package and not _installed(package[0]):
        extra = "zipnn" if name == "zipnn" else "peers"
        raise MissingPackage(f"{name} needs {package[1]} (pip install 'poscodec[{extra}]')")


def float_floor(name: str, tensors: dict[str, np.ndarray]) -> float:
    """Bits per weight of a float lossless coder over ``tensors`` (each coded on its own, whole
    compressed streams counted); checked to decode exactly."""
    check_method(name)
    total_bytes = total = 0
    for key, x in tensors.items():
        x = np.ascontiguousarray(x, np.float32)
        if name == "zipnn":
            import warnings

            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                from zipnn import ZipNN

            z = ZipNN(input_format="numpy", bytearray_dtype="float32")
            compressed = z.compress(x.ravel())
            back = np.asarray(z.decompress(compressed)).reshape(x.shape)
        else:
            import fpzip

            compressed = fpzip.compress(_rows(x).copy(), precision=0, order="C")
            back = np.asarray(fpzip.decompress(compressed, order="C")).reshape(x.shape)
        if not np.array_equal(back, x):
            raise AssertionError(f"{name} did not give back {key} exactly")
        total_bytes += len(compressed)
        total += x.size
    return 8 * total_bytes / max(total, 1)
