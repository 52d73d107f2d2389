"""The ``.pcz`` container: header, layer table, payloads (docs/FORMAT.md, "Container")."""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass, field

import numpy as np

from .errors import FormatError
from .format import (HEADER, MAGIC, MAX_BLOCK_BITS, MAX_LAYERS, MAX_NDIM, MAX_WEIGHT_BITS, MAX_WEIGHTS,
                     MIN_BLOCK_BITS, MIN_WEIGHT_BITS, POSITION_MODES, VERSION, WEIGHT_BITS, Granularity, LayerMode,
                     Slots)


def _label_of(codes: type, code: int) -> str | None:
    """The label of ``code`` in the enum ``codes``, or None if it has no such code."""
    try:
        return codes(code).label
    except ValueError:
        return None


@dataclass
class LayerRecord:
    """One entry of the layer table. ``payload`` is filled when the record is written."""

    name: str
    shape: tuple[int, ...]
    mode: str
    bits: int
    granularity: str = "none"
    slots: str = "all"
    block_bits: int = 0
    scales: np.ndarray = field(default_factory=lambda: np.zeros(0, np.float32))
    offset: int = 0
    length: int = 0
    crc32: int = 0

    @property
    def count(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64)) if self.shape else 1

    def pack(self) -> bytes:
        name = self.name.encode("utf-8")
        scales = np.asarray(self.scales, dtype="<f4")
        return b"".join([
            struct.pack("<H", len(name)), name,
            struct.pack("<B", len(self.shape)), struct.pack(f"<{len(self.shape)}Q", *self.shape),
            struct.pack("<BBBBB", LayerMode.of(self.mode), self.bits, Granularity.of(self.granularity),
                        Slots.of(self.slots), self.block_bits),
            struct.pack("<I", len(scales)), scales.tobytes(),
            struct.pack("<QQI", self.offset, self.length, self.crc32),
        ])


class _TableReader:
    def __init__(self, data: bytes, start: int, end: int):
        self.data, self.pos, self.end = data, start, end
        self.layer: str | None = None

    def take(self, fmt: str):
        size = struct.calcsize(fmt)
        if self.pos + size > self.end:
            raise FormatError("layer table truncated", layer=self.layer, offset=self.pos)
        values = struct.unpack_from(fmt, self.data, self.pos)
        self.pos += size
        return values

    def error(self, message: str) -> FormatError:
        return FormatError(message, layer=self.layer, offset=self.pos)


def write_container(records: list[LayerRecord], payloads: list[bytes]) -> bytes:
    """Lay out header, table and payloads; fills each record's offset, length and CRC."""
    for record, payload in zip(records, payloads):
        record.length = len(payload)
        record.crc32 = zlib.crc32(payload)
    table_size = sum(len(r.pack()) for r in records)
    offset = HEADER.size + table_size + 4
    for record in records:
        record.offset = offset
        offset += record.length
    table = b"".join(r.pack() for r in records)
    header = HEADER.pack(MAGIC, VERSION, 0, len(records), len(table))
    return header + table + struct.pack("<I", zlib.crc32(table)) + b"".join(payloads)


def read_table(data: bytes) -> list[LayerRecord]:
    """Parse and validate the header and layer table (payload CRCs are checked on decode)."""
    if len(data) < HEADER.size + 4:
        raise FormatError(f"file of {len(data)} bytes is too short for a .pcz header", offset=0)
    magic, version, flags, layers, table_size = HEADER.unpack_from(data, 0)
    if magic != MAGIC:
        raise FormatError(f"not a .pcz file (magic {magic!r})", offset=0)
    if version != VERSION:
        raise FormatError(f"unsupported .pcz version {version} (this reader knows {VERSION})", offset=4)
    if flags:
        raise FormatError(f"unknown header flags {flags:#x}", offset=6)
    if layers > MAX_LAYERS:
        raise FormatError(f"header claims {layers} layers", offset=8)
    end = HEADER.size + table_size
    if end + 4 > len(data):
        raise FormatError(f"layer table of {table_size} bytes runs past the end of the file", offset=12)
    (crc,) = struct.unpack_from("<I", data, end)
    if crc != zlib.crc32(data[HEADER.size:end]):
        raise FormatError("layer table CRC-32 mismatch", offset=end)
    r = _TableReader(data, HEADER.size, end)
    records = []
    for _ in range(layers):
        r.layer = None
        (name_len,) = r.take("<H")
        raw_name = bytes(r.take(f"<{name_len}s")[0])
        try:
            name = raw_name.decode("utf-8")
        except UnicodeDecodeError:
            raise r.error("layer name is not UTF-8") from None
        r.layer = name
        (ndim,) = r.take("<B")
        if ndim > MAX_NDIM:
            raise r.error(f"{ndim} dimensions (at most {MAX_NDIM})")
        shape = tuple(int(d) for d in r.take(f"<{ndim}Q"))
        count = 1
        for d in shape:
            count *= d
        if count > MAX_WEIGHTS:
            raise r.error(f"shape {shape} claims {count} weights (at most {MAX_WEIGHTS})")
        mode_code, bits, gran_code, slots_code, block_bits = r.take("<BBBBB")
        mode, granularity, slots = (_label_of(LayerMode, mode_code), _label_of(Granularity, gran_code),
                                    _label_of(Slots, slots_code))
        if mode is None or granularity is None or slots is None:
            raise r.error(f"unknown mode/granularity/slots code {mode_code}/{gran_code}/{slots_code}")
        if mode == "float32":
            if bits != 32 or granularity != "none":
                raise r.error("float32 layer must have 32 bits and no granularity")
        else:
            if bits not in WEIGHT_BITS:
                raise r.error(f"unsupported bit width {bits} (integer layers have "
                              f"{MIN_WEIGHT_BITS}..{MAX_WEIGHT_BITS} bits)")
            if granularity == "none":
                raise r.error("integer layer without a scale granularity")
        if mode in POSITION_MODES and not MIN_BLOCK_BITS <= block_bits <= MAX_BLOCK_BITS:
            raise r.error(f"block bits {block_bits} outside {MIN_BLOCK_BITS}..{MAX_BLOCK_BITS}")
        (num_scales,) = r.take("<I")
        expected = {"none": 0, "tensor": 1, "channel": shape[0] if len(shape) >= 2 else 1}[granularity]
        if num_scales != expected:
            raise r.error(f"{num_scales} scales, {expected} expected for {granularity} granularity of {shape}")
        scales = np.frombuffer(bytes(r.take(f"<{4 * num_scales}s")[0]), "<f4").astype(np.float32)
        offset, length, crc32 = r.take("<QQI")
        if offset < end + 4 or offset + length > len(data):
            raise r.error(f"payload at {offset} of {length} bytes lies outside the file")
        records.append(LayerRecord(name, shape, mode, bits, granularity, slots, block_bits, scales,
                                   offset, length, crc32))
    if r.pos != end:
        raise FormatError(f"{end - r.pos} unexplained bytes at the end of the layer table", offset=r.pos)
    return records


def payload_of(data: bytes, record: LayerRecord) -> bytes:
    payload = data[record.offset : record.offset + record.length]
    if zlib.crc32(payload) != record.crc32:
        raise FormatError("payload CRC-32 mismatch", layer=record.name, offset=record.offset)
    return payload
