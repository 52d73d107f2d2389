"""The ``.pcz`` container: header, layer directory, scales, payloads (docs/FORMAT.md, "Container").

Two versions share the first six bytes (magic, version) and the field rules of a layer:

- version 1: a fixed-width layer table (every record has its name, shape, fields, scales,
  payload offset, length and CRC-32);
- version 2: a compact directory, DEFLATE-compressed: front-coded names, then each layer's
  packed fields, shapes and payload lengths as LEB128 varints, then its payload CRC-32s; the
  scales in a section of their own; payloads back to back in layer order, so offsets are implied
  and float32 and raw payload lengths too.

:func:`write_container` writes either (version 2 unless told otherwise); :func:`read_table` reads
both and raises :class:`FormatError` for anything else, before allocating anything in proportion
to a size the file claims. :func:`payload_of` checks a payload's CRC-32.
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass, field

import numpy as np

from .errors import FormatError
from .format import (HEADER, HEADER_V2, MAGIC, MAX_BLOCK_BITS, MAX_INFLATE_RATIO, MAX_LAYERS, MAX_NAME_BYTES,
                     MAX_NDIM, MAX_VARINT_BYTES, MAX_WEIGHT_BITS, MAX_WEIGHTS, MIN_BLOCK_BITS,
                     MIN_DIRECTORY_BYTES_PER_LAYER, MIN_WEIGHT_BITS, POSITION_MODES, VERSION, VERSIONS,
                     WEIGHT_BITS, Granularity, LayerMode, Slots, block_format_of)

__all__ = ["LayerRecord", "write_container", "read_table", "file_version", "payload_of", "layout", "directory_parts",
           "varint", "scale_count", "implied_length"]

#: Version 2's packed mode byte: the mode code in bits 0-2, the granularity in bits 3-4, slots in bit 5.
_MODE_MASK, _GRAN_SHIFT, _GRAN_MASK, _SLOTS_SHIFT, _KIND_BITS = 0x07, 3, 0x03, 5, 6
#: A CRC-32 field (little-endian).
_CRC = struct.Struct("<I")


def _label_of(codes: type, code: int) -> str | None:
    """The label of ``code`` in the enum ``codes``, or None if it has no such code."""
    try:
        return codes(code).label
    except ValueError:
        return None


def scale_count(shape: tuple[int, ...], granularity: str) -> int:
    """How many scales a layer of ``shape`` has: 0 for none, 1 for tensor, ``shape[0]`` for
    channel on two or more dimensions (1 on fewer)."""
    return {"none": 0, "tensor": 1, "channel": shape[0] if len(shape) >= 2 else 1}[granularity]


def implied_length(mode: str, count: int, bits: int) -> int | None:
    """The payload length a version-2 directory leaves out: ``4 * count`` bytes for float32,
    ``ceil(count * bits / 8)`` for raw; None for the position modes, which store theirs."""
    if mode == "float32":
        return 4 * count
    if mode == "raw":
        return (count * bits + 7) // 8
    return None


def varint(value: int) -> bytes:
    """``value >= 0`` as an unsigned LEB128 varint: 7 bits a byte, least significant first, the
    high bit set on every byte but the last."""
    out = bytearray()
    while True:
        low, value = value & 0x7F, value >> 7
        if not value:
            out.append(low)
            return bytes(out)
        out.append(low | 0x80)


@dataclass
class LayerRecord:
    """One layer of the directory. ``offset``, ``length``, ``crc32`` and ``version`` are filled
    when the record is written or read; ``block_format`` follows from ``version``."""

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
    version: int = VERSION

    @property
    def count(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64)) if self.shape else 1

    @property
    def block_format(self) -> int:
        """The block format of this layer's payload (:func:`sw_codec.format.block_format_of`)."""
        return block_format_of(self.version)

    def pack(self) -> bytes:
        """This record as a version-1 layer table entry."""
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


# ---- Writing ---------------------------------------------------------------------------------

def write_container(records: list[LayerRecord], payloads: list[bytes], *, version: int = VERSION,
                    validate: bool = True) -> bytes:
    """A ``.pcz`` file of ``version`` (1 or 2) holding ``payloads``; fills each record's offset,
    length, CRC-32 and version.

    With ``validate`` (the default) the writer refuses, with a ``ValueError`` naming the layer, a
    file that its reader would refuse (it reads the directory back), and in version 2 a float32
    or raw payload whose length is not the one the directory implies. ``validate=False`` writes
    such files anyway (for testing the reader on them).
    """
    block_format_of(version)
    if len(records) != len(payloads):
        raise ValueError(f"{len(records)} records for {len(payloads)} payloads")
    for record, payload in zip(records, payloads):
        record.length = len(payload)
        record.crc32 = zlib.crc32(payload)
        record.version = version
        if validate and version == 2:
            need = implied_length(record.mode, record.count, record.bits)
            if need is not None and need != len(payload):
                raise ValueError(f"layer {record.name!r}: {record.mode} payload of {len(payload)} bytes, "
                                 f"{need} expected for {record.count} weights")
    data = (_write_v1 if version == 1 else _write_v2)(records, payloads)
    if validate:
        try:
            read_table(data)
        except FormatError as e:
            raise ValueError(f"refusing to write an unreadable file: {e}") from None
    return data


def _write_v1(records: list[LayerRecord], payloads: list[bytes]) -> bytes:
    table_size = sum(len(r.pack()) for r in records)
    offset = HEADER.size + table_size + 4
    for record in records:
        record.offset = offset
        offset += record.length
    table = b"".join(r.pack() for r in records)
    header = HEADER.pack(MAGIC, 1, 0, len(records), len(table))
    return header + table + _CRC.pack(zlib.crc32(table)) + b"".join(payloads)


def _deflate(data: bytes) -> bytes:
    """Raw DEFLATE (RFC 1951, no zlib header or trailer) at the highest compression level."""
    compressor = zlib.compressobj(9, zlib.DEFLATED, -15, 9)
    return compressor.compress(data) + compressor.flush()


def directory_parts(records: list[LayerRecord]) -> dict[str, bytes]:
    """The five parts of a version-2 directory before DEFLATE, in their order: ``names``,
    ``modes``, ``shapes``, ``lengths``, ``crcs`` (records' ``length`` and ``crc32`` filled)."""
    names, modes, shapes, lengths, crcs = bytearray(), bytearray(), bytearray(), bytearray(), bytearray()
    previous = b""
    for r in records:
        name = r.name.encode("utf-8")
        shared = 0
        for a, b in zip(name, previous):
            if a != b:
                break
            shared += 1
        names += varint(shared) + varint(len(name) - shared) + name[shared:]
        previous = name
        modes.append(LayerMode.of(r.mode) | Granularity.of(r.granularity) << _GRAN_SHIFT
                     | Slots.of(r.slots) << _SLOTS_SHIFT)
        if r.mode != "float32":
            modes.append(r.bits)
        if r.mode in POSITION_MODES:
            modes.append(r.block_bits)
            lengths += varint(r.length)
        shapes += varint(len(r.shape)) + b"".join(varint(int(d)) for d in r.shape)
        crcs += _CRC.pack(r.crc32)
    return {"names": bytes(names), "modes": bytes(modes), "shapes": bytes(shapes), "lengths": bytes(lengths),
            "crcs": bytes(crcs)}


def _write_v2(records: list[LayerRecord], payloads: list[bytes]) -> bytes:
    directory = b"".join(directory_parts(records).values())
    stored = _deflate(directory)
    scales = b"".join(np.asarray(r.scales, dtype="<f4").tobytes() for r in records)
    offset = HEADER_V2.size + len(stored) + 4 + len(scales) + 4
    for record in records:
        record.offset = offset
        offset += record.length
    header = HEADER_V2.pack(MAGIC, 2, 0, len(records), len(stored), len(directory))
    return b"".join([header, stored, _CRC.pack(zlib.crc32(header + stored)), scales,
                     _CRC.pack(zlib.crc32(scales)), *payloads])


# ---- Reading ---------------------------------------------------------------------------------

class _Cursor:
    """Reads fields from ``data[pos:end]``. Errors name the current layer and the byte offset in
    the file; in a version-2 directory (``directory_at`` set, ``data`` the inflated directory)
    they give the byte in the directory and the file offset of the stored directory."""

    def __init__(self, data: bytes, start: int, end: int, directory_at: int | None = None):
        self.data, self.pos, self.end, self.directory_at = data, start, end, directory_at
        self.layer: str | None = None

    def error(self, message: str, at: int | None = None) -> FormatError:
        at = self.pos if at is None else at
        if self.directory_at is None:
            return FormatError(message, layer=self.layer, offset=at)
        return FormatError(f"{message} at directory byte {at}", layer=self.layer, offset=self.directory_at)

    def take(self, fmt: str):
        size = struct.calcsize(fmt)
        if self.pos + size > self.end:
            raise self.error("layer table truncated" if self.directory_at is None else "directory truncated")
        values = struct.unpack_from(fmt, self.data, self.pos)
        self.pos += size
        return values

    def take_bytes(self, size: int) -> bytes:
        if self.pos + size > self.end:
            raise self.error("directory truncated")
        out = bytes(self.data[self.pos : self.pos + size])
        self.pos += size
        return out

    def varint(self) -> int:
        start, value = self.pos, 0
        for i in range(MAX_VARINT_BYTES):
            if self.pos >= self.end:
                raise self.error("directory truncated inside a varint", start)
            byte = self.data[self.pos]
            self.pos += 1
            value |= (byte & 0x7F) << (7 * i)
            if not byte & 0x80:
                if byte == 0 and i:
                    raise self.error("bad varint (a redundant zero byte)", start)
                return value
        raise self.error(f"bad varint (longer than {MAX_VARINT_BYTES} bytes)", start)


def _check_shape(r: _Cursor, shape: tuple[int, ...]) -> int:
    count = 1
    for d in shape:
        if d > MAX_WEIGHTS:
            raise r.error(f"dimension {d} in shape {shape} (at most {MAX_WEIGHTS})")
        count *= d
    if count > MAX_WEIGHTS:
        raise r.error(f"shape {shape} claims {count} weights (at most {MAX_WEIGHTS})")
    return count


def _check_fields(r: _Cursor, mode_code: int, bits: int, gran_code: int, slots_code: int,
                  block_bits: int) -> tuple[str, str, str]:
    """The field rules of a layer, the same in both versions; the labels of the codes."""
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
    return mode, granularity, slots


def _check_name(r: _Cursor, raw: bytes, seen: set[str], index: int) -> str:
    """The name of layer ``index``: UTF-8 and unlike every earlier one."""
    try:
        name = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise r.error(f"name of layer #{index} is not UTF-8") from None
    if name in seen:
        r.layer = name
        raise r.error(f"layer #{index} repeats the name of an earlier layer")
    seen.add(name)
    return name


def file_version(data: bytes) -> int:
    """The container version of ``data`` after checking its magic; ``FormatError`` for a version
    this reader does not read, naming it and the versions it reads."""
    if len(data) < 6:
        raise FormatError(f"file of {len(data)} bytes is too short for a .pcz header", offset=0)
    if data[:4] != MAGIC:
        raise FormatError(f"not a .pcz file (magic {bytes(data[:4])!r})", offset=0)
    (version,) = struct.unpack_from("<H", data, 4)
    if version not in VERSIONS:
        raise FormatError(f"unsupported .pcz version {version} (this reader reads versions "
                          f"{', '.join(map(str, VERSIONS))})", offset=4)
    return version


def read_table(data: bytes) -> list[LayerRecord]:
    """Parse and validate the header and directory of a version-1 or version-2 file (payload
    CRCs are checked on decode, by :func:`payload_of`)."""
    return (_read_v1 if file_version(data) == 1 else _read_v2)(data)


def _read_v1(data: bytes) -> list[LayerRecord]:
    if len(data) < HEADER.size + 4:
        raise FormatError(f"file of {len(data)} bytes is too short for a .pcz header", offset=0)
    _, _, flags, layers, table_size = HEADER.unpack_from(data, 0)
    if flags:
        raise FormatError(f"unknown header flags {flags:#x}", offset=6)
    if layers > MAX_LAYERS:
        raise FormatError(f"header claims {layers} layers", offset=8)
    end = HEADER.size + table_size
    if end + 4 > len(data):
        raise FormatError(f"layer table of {table_size} bytes runs past the end of the file", offset=12)
    (crc,) = _CRC.unpack_from(data, end)
    if crc != zlib.crc32(data[HEADER.size:end]):
        raise FormatError("layer table CRC-32 mismatch", offset=end)
    r = _Cursor(data, HEADER.size, end)
    records, seen = [], set()
    for i in range(layers):
        r.layer = None
        (name_len,) = r.take("<H")
        name = _check_name(r, bytes(r.take(f"<{name_len}s")[0]), seen, i)
        r.layer = name
        (ndim,) = r.take("<B")
        if ndim > MAX_NDIM:
            raise r.error(f"{ndim} dimensions (at most {MAX_NDIM})")
        shape = tuple(int(d) for d in r.take(f"<{ndim}Q"))
        _check_shape(r, shape)
        mode_code, bits, gran_code, slots_code, block_bits = r.take("<BBBBB")
        mode, granularity, slots = _check_fields(r, mode_code, bits, gran_code, slots_code, block_bits)
        (num_scales,) = r.take("<I")
        expected = scale_count(shape, granularity)
        if num_scales != expected:
            raise r.error(f"{num_scales} scales, {expected} expected for {granularity} granularity of {shape}")
        scales = np.frombuffer(bytes(r.take(f"<{4 * num_scales}s")[0]), "<f4").astype(np.float32)
        offset, length, crc32 = r.take("<QQI")
        if offset < end + 4 or offset + length > len(data):
            raise r.error(f"payload at {offset} of {length} bytes lies outside the file")
        records.append(LayerRecord(name, shape, mode, bits, granularity, slots, block_bits, scales,
                                   offset, length, crc32, version=1))
    if r.pos != end:
        raise FormatError(f"{end - r.pos} unexplained bytes at the end of the layer table", offset=r.pos)
    return records


def _inflate(data: bytes, at: int, stored: int, size: int) -> bytes:
    """The ``stored`` bytes at ``at`` inflated: exactly ``size`` bytes and the end of the DEFLATE
    stream, or ``FormatError``. Never produces more than ``size + 1`` bytes."""
    inflater = zlib.decompressobj(-15)
    try:
        out = inflater.decompress(data[at : at + stored], size + 1)
    except zlib.error as e:
        raise FormatError(f"directory is not a valid DEFLATE stream ({e})", offset=at) from None
    if len(out) > size:
        raise FormatError(f"directory inflates to more than the {size} bytes the header claims", offset=at)
    if not inflater.eof:
        raise FormatError("directory's DEFLATE stream is truncated", offset=at)
    if inflater.unused_data:
        raise FormatError(f"{len(inflater.unused_data)} bytes after the directory's DEFLATE stream",
                          offset=at + stored - len(inflater.unused_data))
    if len(out) != size:
        raise FormatError(f"directory inflates to {len(out)} bytes, the header claims {size}", offset=at)
    return out


def _read_v2(data: bytes) -> list[LayerRecord]:
    """Header, stored directory and CRC, then :func:`_parse_directory`, then the scale section
    and the payloads' places (docs/FORMAT.md, "Version 2": the reader's checks in their order)."""
    head = HEADER_V2.size
    if len(data) < head + 8:
        raise FormatError(f"file of {len(data)} bytes is too short for a version-2 .pcz header", offset=0)
    _, _, flags, layers, stored, size = HEADER_V2.unpack_from(data, 0)
    end = head + stored
    if end + 4 > len(data):
        raise FormatError(f"directory of {stored} bytes runs past the end of the file", offset=12)
    (crc,) = _CRC.unpack_from(data, end)
    if crc != zlib.crc32(data[:end]):
        raise FormatError("header and directory CRC-32 mismatch", offset=end)
    if flags:
        raise FormatError(f"unknown header flags {flags:#x}", offset=6)
    if layers > MAX_LAYERS:
        raise FormatError(f"header claims {layers} layers (at most {MAX_LAYERS})", offset=8)
    if size > MAX_INFLATE_RATIO * stored:
        raise FormatError(f"header claims a directory of {size} bytes from {stored} stored bytes "
                          f"(DEFLATE expands at most {MAX_INFLATE_RATIO}:1)", offset=16)
    if layers * MIN_DIRECTORY_BYTES_PER_LAYER > size:
        raise FormatError(f"header claims {layers} layers, more than a directory of {size} bytes holds "
                          f"({MIN_DIRECTORY_BYTES_PER_LAYER} bytes a layer at least)", offset=8)
    records = _parse_directory(_Cursor(_inflate(data, head, stored, size), 0, size, directory_at=head), layers)

    scales_at = end + 4
    num_scales = [scale_count(r.shape, r.granularity) for r in records]
    scales_end = scales_at + 4 * sum(num_scales)
    if scales_end + 4 > len(data):
        raise FormatError(f"scale section of {sum(num_scales)} scales runs past the end of the file",
                          offset=scales_at)
    (crc,) = _CRC.unpack_from(data, scales_end)
    if crc != zlib.crc32(data[scales_at:scales_end]):
        raise FormatError("scale section CRC-32 mismatch", offset=scales_end)
    scales = np.frombuffer(data, "<f4", sum(num_scales), scales_at).astype(np.float32)

    offset, first_scale = scales_end + 4, 0
    for record, n in zip(records, num_scales):
        if offset + record.length > len(data):
            raise FormatError(f"payload of {record.length} bytes runs past the end of the file ({len(data)} bytes)",
                              layer=record.name, offset=offset)
        record.offset, record.scales = offset, scales[first_scale : first_scale + n]
        offset += record.length
        first_scale += n
    if offset != len(data):
        raise FormatError(f"{len(data) - offset} bytes after the last payload", offset=offset)
    return records


def _parse_directory(r: _Cursor, layers: int) -> list[LayerRecord]:
    """The ``layers`` records of an inflated version-2 directory, its five parts in order (names,
    modes, shapes, lengths, CRCs); offsets and scales are placed by the caller."""
    names, seen, previous = [], set(), b""
    for i in range(layers):
        shared = r.varint()
        if shared > len(previous):
            raise r.error(f"name of layer #{i} shares {shared} bytes with a previous name of {len(previous)}")
        suffix = r.varint()
        if shared + suffix > MAX_NAME_BYTES:
            raise r.error(f"name of layer #{i} is {shared + suffix} bytes (at most {MAX_NAME_BYTES})")
        raw = previous[:shared] + r.take_bytes(suffix)
        names.append(_check_name(r, raw, seen, i))
        previous = raw

    records = []
    for name in names:
        r.layer = name
        (packed,) = r.take("<B")
        if packed >> _KIND_BITS:
            raise r.error(f"mode byte {packed:#04x} has unknown bits set")
        mode_code, slots_code = packed & _MODE_MASK, packed >> _SLOTS_SHIFT
        bits = r.take("<B")[0] if mode_code != LayerMode.FLOAT32 else 32
        block_bits = r.take("<B")[0] if _label_of(LayerMode, mode_code) in POSITION_MODES else 0
        mode, granularity, slots = _check_fields(r, mode_code, bits, packed >> _GRAN_SHIFT & _GRAN_MASK,
                                                 slots_code, block_bits)
        if mode not in POSITION_MODES and slots_code:
            raise r.error(f"{mode} layer with slots {slots!r} (only position modes count slots)")
        records.append(LayerRecord(name, (), mode, bits, granularity, slots, block_bits, version=2))

    counts = []
    for record in records:
        r.layer = record.name
        ndim = r.varint()
        if ndim > MAX_NDIM:
            raise r.error(f"{ndim} dimensions (at most {MAX_NDIM})")
        record.shape = tuple(r.varint() for _ in range(ndim))
        counts.append(_check_shape(r, record.shape))

    for record, count in zip(records, counts):
        r.layer = record.name
        length = implied_length(record.mode, count, record.bits)
        record.length = r.varint() if length is None else length

    for record in records:
        r.layer = record.name
        (record.crc32,) = r.take("<I")
    r.layer = None
    if r.pos != r.end:
        raise r.error(f"{r.end - r.pos} unexplained bytes at the end of the directory")
    return records


def payload_of(data: bytes, record: LayerRecord) -> bytes:
    """The payload of ``record``; ``FormatError`` naming the layer if its CRC-32 does not match."""
    payload = data[record.offset : record.offset + record.length]
    if zlib.crc32(payload) != record.crc32:
        raise FormatError("payload CRC-32 mismatch", layer=record.name, offset=record.offset)
    return payload


def layout(data: bytes) -> dict[str, int]:
    """Where the bytes of a valid file go: ``directory`` (header, layer table or directory and
    their CRCs, the scale section's CRC; everything but scales and payloads), ``scales`` (4 bytes
    each) and ``payloads``; the three add up to the file size."""
    records = read_table(data)
    scales = 4 * sum(len(r.scales) for r in records)
    payloads = sum(r.length for r in records)
    return {"version": file_version(data), "layers": len(records), "directory": len(data) - scales - payloads,
            "scales": scales, "payloads": payloads}
