"""Bit packing, MSB first: the first bit of a stream is bit 7 of its first byte.

All multi-bit fields are written most significant bit first, so a field of ``n`` bits holding
``v`` reads back as the next ``n`` stream bits interpreted as an unsigned big-endian number.
"""

from __future__ import annotations

import numpy as np

from .errors import FormatError
from .format import MAX_EXP_GOLOMB_PREFIX


_BIT_LENGTH_TABLE = np.array([0] + [int(i).bit_length() for i in range(1, 1 << 17)], dtype=np.int64)


def bit_length(x: np.ndarray) -> np.ndarray:
    """Element-wise ``int.bit_length`` for non-negative integers below 2**53."""
    x = np.asarray(x, dtype=np.int64)
    if x.size and x.max() < len(_BIT_LENGTH_TABLE):
        return _BIT_LENGTH_TABLE.take(x, mode="clip")      # clipping maps x < 0 to entry 0 (0 bits)
    _, exponent = np.frexp(x.astype(np.float64))
    return np.where(x > 0, exponent, 0).astype(np.int64)


def exp_golomb_fields(x: np.ndarray, k) -> tuple[np.ndarray, np.ndarray]:
    """Exp-Golomb order ``k`` codes of ``x >= 0`` as (value, nbits) fields.

    The code of x is ``bit_length(y) - 1 - k`` zero bits then ``y`` in binary, y = x + 2**k; written
    as one field of ``2 * bit_length(y) - 1 - k`` bits whose leading bits are those zeros.
    """
    y = np.asarray(x, dtype=np.int64) + np.left_shift(1, np.asarray(k, dtype=np.int64))
    return y.astype(np.uint64), 2 * bit_length(y) - 1 - np.asarray(k, dtype=np.int64)


def exp_golomb_length(x: np.ndarray, k) -> np.ndarray:
    """Bits of the Exp-Golomb code of ``x`` of order ``k`` (``k`` a scalar or per-element array)."""
    k = np.asarray(k, dtype=np.int64)
    return 2 * bit_length(np.asarray(x, dtype=np.int64) + np.left_shift(1, k)) - 1 - k


def _as_uint64(x) -> np.ndarray:
    """``x`` (non-negative integers) as uint64, without a copy for uint64 and int64 arrays (a view)."""
    x = np.asarray(x)
    return x.view(np.uint64) if x.dtype == np.int64 else x.astype(np.uint64, copy=False)


def place_fields(words: np.ndarray, start: np.ndarray, values: np.ndarray, nbits) -> None:
    """Write fields into ``words``, a stream of big-endian 64-bit words (uint64, MSB first): field
    ``i``, the low ``nbits[i]`` bits (0..64; a scalar or per field) of ``values[i]``, at stream bit
    ``start[i]`` (non-negative integers).

    The fields must not overlap each other or any bit already set, and ``words`` must hold the
    word after the last field's first bit. A field lies in the word of its first bit, or
    straddles it and the next; each word gets the fields that start in it (each shifted to its
    place; they share no bit, so one ``np.add.at`` sums them), then the tail of the one field
    that may spill in from the word before. (Few member-sized intermediates, reused in place:
    fresh arrays cost page faults.)
    """
    values = _as_uint64(values)
    start = _as_uint64(start)
    word = start >> np.uint64(6)
    offset = start & np.uint64(63)
    # The field's bits at the top of a 64-bit word (the bits above its width shift out; numpy
    # shifts of 64 or more give 0, so a field of width 0 contributes nothing) ...
    aligned = np.subtract(np.uint64(64), _as_uint64(nbits), dtype=np.uint64)
    aligned = np.broadcast_to(aligned, values.shape).copy() if aligned.shape != values.shape else aligned
    spills = np.flatnonzero(offset > aligned)     # offset + width > 64: the field crosses its word's end
    np.left_shift(values, aligned, out=aligned)
    # At most one field crosses each word boundary, so the spilled tails land in distinct words.
    tails = aligned[spills] << (np.uint64(64) - offset[spills])
    # ... then moved to its offset in its first word; the bits that spill past the word drop out.
    head = np.right_shift(aligned, offset, out=aligned)
    np.add.at(words, word, head)
    words[word[spills] + np.uint64(1)] |= tails


def pack_fields(values: np.ndarray, nbits: np.ndarray) -> bytes:
    """Concatenate fields (``values[i]`` in ``nbits[i]`` bits, MSB first) into bytes.

    The total must be a whole number of bytes (callers add padding fields). Fields are up to 64
    bits; only the low ``nbits[i]`` bits of ``values[i]`` are written. Vectorized per field, see
    :func:`place_fields`; each field starts where the ones before it end.
    """
    width = np.asarray(nbits).astype(np.uint64)
    total = int(width.sum())
    if total % 8:
        raise ValueError("fields do not fill whole bytes")
    if total == 0:
        return b""
    start = np.cumsum(width)
    start -= width
    # One spare word: a field of width 0 may start at the very end of the stream.
    words = np.zeros(total // 64 + 1, dtype=np.uint64)
    place_fields(words, start, values, width)
    return words.astype(">u8").tobytes()[: total // 8]


class BitWriter:
    """Appends fields to a stream one at a time; for small structures such as tables.

    The stream so far is one Python integer (the fields side by side, MSB first), so each write
    is a shift and an OR.
    """

    def __init__(self) -> None:
        self._stream = 0
        self.bits = 0

    def write(self, value: int, nbits: int) -> None:
        if nbits < 0 or value < 0 or value >> nbits:
            raise ValueError(f"value {value} does not fit {nbits} bits")
        self._stream = (self._stream << nbits) | value
        self.bits += nbits

    def write_exp_golomb(self, x: int, k: int) -> None:
        y = x + (1 << k)
        self.write(y, 2 * y.bit_length() - 1 - k)

    def align(self) -> None:
        self.write(0, -self.bits % 8)

    def getvalue(self) -> bytes:
        self.align()
        return self._stream.to_bytes(self.bits // 8, "big")


class BitReader:
    """Reads MSB-first fields from ``data[start:end]``; never reads past ``end``.

    Offsets in errors are byte offsets within ``data`` plus ``base`` (so callers can report file
    offsets). Reading past the end raises :class:`FormatError` ("truncated").
    """

    def __init__(self, data: bytes, start: int = 0, end: int | None = None, base: int = 0):
        self.data = bytes(data)
        self.pos = 8 * start
        self.end = 8 * (len(self.data) if end is None else end)
        self.base = base

    @property
    def offset(self) -> int:
        """Byte offset of the next unread bit, as reported in errors."""
        return self.base + self.pos // 8

    def error(self, message: str) -> FormatError:
        return FormatError(message, offset=self.offset)

    def remaining(self) -> int:
        return self.end - self.pos

    def peek(self, n: int) -> int:
        """The next ``n`` bits (n <= 57) without consuming them; bits past the end read as 0."""
        byte = self.pos >> 3
        word = int.from_bytes(self.data[byte : min(byte + 8, self.end >> 3)].ljust(8, b"\0"), "big")
        return (word >> (64 - (self.pos & 7) - n)) & ((1 << n) - 1)

    def skip(self, n: int) -> None:
        if self.pos + n > self.end:
            raise self.error(f"truncated: {n} bits needed, {self.end - self.pos} left")
        self.pos += n

    def read(self, n: int) -> int:
        if n == 0:
            return 0
        if self.pos + n > self.end:
            raise self.error(f"truncated: {n} bits needed, {self.end - self.pos} left")
        value = 0
        while n > 57:
            value = (value << 32) | self.peek(32)
            self.pos += 32
            n -= 32
        value = (value << n) | self.peek(n)
        self.pos += n
        return value

    def read_signed(self, n: int) -> int:
        value = self.read(n)
        return value - (1 << n) if value >> (n - 1) else value

    def read_exp_golomb(self, k: int) -> int:
        zeros = 0
        while True:
            if self.pos >= self.end:
                raise self.error("truncated inside an Exp-Golomb code")
            if self.peek(1):
                break
            self.pos += 1
            zeros += 1
            if zeros > MAX_EXP_GOLOMB_PREFIX:
                raise self.error(f"Exp-Golomb prefix longer than {MAX_EXP_GOLOMB_PREFIX} bits")
        return self.read(zeros + k + 1) - (1 << k)

    def read_array(self, count: int, width: int) -> np.ndarray:
        """``count`` consecutive unsigned fields of ``width`` bits (vectorized)."""
        if width == 0 or count == 0:
            return np.zeros(count, dtype=np.int64)
        need = count * width
        if self.pos + need > self.end:
            raise self.error(f"truncated: {need} bits needed, {self.end - self.pos} left")
        first, last = self.pos >> 3, (self.pos + need + 7) >> 3
        bits = np.unpackbits(np.frombuffer(self.data, np.uint8, last - first, first))
        bits = bits[self.pos & 7 : (self.pos & 7) + need].reshape(count, width).astype(np.int64)
        self.pos += need
        return bits @ (1 << np.arange(width - 1, -1, -1, dtype=np.int64))

    def align(self) -> None:
        self.pos = min(self.end, (self.pos + 7) & ~7)
