"""What the position-based modes are measured against, on the same integers.

- ``H0``: order-0 entropy of the layer's integers (bits per weight), the bound for any coder that
  codes each weight on its own with one static model.
- ``zstd -19`` and ``lzma -9`` (xz preset 9): general-purpose compressors, given one byte per weight
  for 4- and 8-bit integers (int8) and little-endian int16 for 16-bit ones.
- ``ethos-u``: Arm's Ethos-U weight codec (``mlw_codec`` from the ``ethos-u-vela`` package), the codec
  an NPU decompresses in hardware; it takes values in -256..255, so it has no figure for 16 bits.
"""

from __future__ import annotations

import lzma

import numpy as np
import zstandard


def entropy_bits(q: np.ndarray) -> float:
    """Order-0 entropy H0 in bits per weight."""
    q = np.asarray(q).ravel()
    if q.size == 0:
        return 0.0
    _, counts = np.unique(q, return_counts=True)
    p = counts / q.size
    return float(-(p * np.log2(p)).sum())


def integer_bytes(q: np.ndarray, bits: int) -> bytes:
    q = np.asarray(q).ravel()
    return q.astype(np.int8 if bits <= 8 else "<i2").tobytes()


def zstd_bytes(q: np.ndarray, bits: int, level: int = 19) -> int:
    return len(zstandard.ZstdCompressor(level=level).compress(integer_bytes(q, bits)))


def lzma_bytes(q: np.ndarray, bits: int) -> int:
    return len(lzma.compress(integer_bytes(q, bits), preset=9))


def ethos_u_bytes(q: np.ndarray, bits: int) -> int | None:
    """Size of Arm's Ethos-U weight stream for ``q``, or None where the codec cannot code it."""
    if bits > 8:
        return None
    from ethosu import mlw_codec

    return len(mlw_codec.encode(np.asarray(q).ravel().astype(np.int64).tolist()))
