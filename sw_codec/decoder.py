"""The spec decoder of a layer payload: the format's meaning, in the hardware's order.

``docs/FORMAT.md`` gives the bit layout; this module is its executable form, and the hardware is
checked against it. A position-mode payload is a preamble (:func:`read_preamble`), a block
offset table, then the blocks; :func:`decode_block` reads one block field by field, as the
hardware does, through the three stages the hardware has:

    bits --CanonicalHuffmanDecoder--> distances --DistanceAccumulator--> positions
         --RepeatExpander--> weights

(``repeat`` and ``distance`` modes read their fields raw instead of Huffman coded.)
:func:`trace_layer` decodes a payload and records the tokens that cross each stage boundary
(:class:`StageTrace`): the golden streams the hardware testbenches compare bit for bit.

Block format 2 (``block_format=2``, huffman mode only) splits a block in two sections, each
read by its own hardware unit: :func:`read_block_header` (the header unit: every group's value,
count and Rice context, from the header section alone) and the member section
(``sw_codec.member_streams``: four interleaved streams of Huffman codes and extra bits, decoded by
:func:`decode_block_2` into distances), then the same DistanceAccumulator and RepeatExpander.

Every malformed input raises :class:`~sw_codec.errors.FormatError` where it is detected, with
the byte offset (in format 2 also the block's number); nothing is read past a block's end.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .bits import BitReader, bit_length
from .distance import DistanceAccumulator
from .errors import FormatError
from .format import (BLOCK_LENGTH_WIDTH_BITS, BLOCK_OFFSET_BYTES, COUNT_K_BITS, DISTANCE_WIDTH_BITS, MEMBER_WORD_BITS, POSITION_MODES,
                     RICE_BIAS_BITS, SLOTS, TABLES_LOG2_BITS, V2_MAX_CODE_LENGTH, TokenKind, check_block_format,
                     check_params)
from .huffman import CanonicalHuffmanDecoder, HuffmanTable, rice_context
from .member_streams import decode_member_streams
from .repeat import RepeatExpander

__all__ = ["PositionParams", "read_preamble", "read_block_offsets", "read_block_lengths", "decode_layer", "decode_positions", "decode_block", "decode_raw",
           "GroupHeader", "read_block_header", "decode_block_2", "StageTrace", "trace_layer"]


@dataclass
class PositionParams:
    """Layer-wide parameters of a position mode, stored in the payload preamble."""

    count_k: int
    rice_bias: int = 0
    tables: list[HuffmanTable] | None = None


def read_preamble(reader: BitReader, mode: str, block_format: int = 1) -> PositionParams:
    """Read a position-mode payload's preamble (count order offset; in ``huffman`` mode the Rice
    bias and the tables, each checked; in block format 2 a table's ``max_len`` field must be at
    most ``V2_MAX_CODE_LENGTH``) and align the reader to the next byte."""
    params = PositionParams(count_k=reader.read(COUNT_K_BITS))
    if mode == "huffman":
        params.rice_bias = reader.read(RICE_BIAS_BITS)
        num_tables = 1 << reader.read(TABLES_LOG2_BITS)
        params.tables = []
        for t in range(num_tables):
            at = reader.offset
            table = HuffmanTable.read(reader)
            if block_format == 2 and table.max_length > V2_MAX_CODE_LENGTH:
                raise FormatError(f"Huffman table {t} has codes of up to {table.max_length} bits; block format 2 "
                                  f"allows at most {V2_MAX_CODE_LENGTH}", offset=at)
            params.tables.append(table)
    reader.align()
    return params


def decode_layer(payload: bytes, count: int, bits: int, mode: str, slots: str, block_bits: int,
                 block_format: int = 1) -> np.ndarray:
    """Decode a layer payload of any mode into ``count`` integers (int8 or int16).
    ``block_format`` (1 or 2) is the layout of huffman-mode blocks; other modes ignore it."""
    check_block_format(block_format)
    if mode == "raw":
        return decode_raw(payload, count, bits)
    return decode_positions(payload, count, bits, mode, slots, block_bits, block_format=block_format)


def decode_positions(payload: bytes, count: int, bits: int, mode: str, slots: str, block_bits: int,
                     trace: StageTrace | None = None, block_format: int = 1) -> np.ndarray:
    """Decode a position-mode payload into ``count`` integers (int8 or int16)."""
    check_params(bits, block_bits)
    check_block_format(block_format)
    if mode not in POSITION_MODES or slots not in SLOTS:
        raise FormatError(f"unknown mode {mode!r} / slots {slots!r}", offset=0)
    format_2 = block_format == 2 and mode == "huffman"
    reader = BitReader(payload)
    params = read_preamble(reader, mode, 2 if format_2 else 1)
    huffman = CanonicalHuffmanDecoder(params.tables) if mode == "huffman" else None
    n = 1 << block_bits
    nblocks = -(-count // n)
    starts, ends = read_block_lengths(reader, nblocks) if format_2 else read_block_offsets(reader, nblocks)
    out = np.empty(count, dtype=np.int8 if bits <= 8 else np.int16)
    for b in range(nblocks):
        size = min(n, count - b * n)
        block_reader = BitReader(payload, int(starts[b]), int(ends[b]))
        if not format_2:
            out[b * n : b * n + size] = decode_block(block_reader, size, bits, mode, slots, params, huffman, trace)
            continue
        try:
            out[b * n : b * n + size] = decode_block_2(block_reader, size, bits, slots, params, huffman, trace)
        except FormatError as e:
            raise FormatError(f"block {b}: {e.reason}", offset=e.offset) from None
    return out


def read_block_offsets(reader: BitReader, nblocks: int) -> tuple[np.ndarray, np.ndarray]:
    """Format 1's block offset table (a ``u32`` little-endian byte offset per block from the start
    of the block data, the first 0, never decreasing) at the reader's byte: the payload byte
    ranges ``[start, end)`` of the blocks, the last ending at the payload's end."""
    payload = reader.data
    table_at = reader.pos // 8
    blocks_at = table_at + BLOCK_OFFSET_BYTES * nblocks
    if blocks_at + nblocks > len(payload):
        raise FormatError(f"payload of {len(payload)} bytes too short for {nblocks} blocks", offset=table_at)
    offsets = np.frombuffer(payload, "<u4", nblocks, table_at).astype(np.int64)
    ends = np.append(offsets[1:], len(payload) - blocks_at)
    if nblocks and (offsets[0] != 0 or np.any(ends < offsets) or ends[-1] > len(payload) - blocks_at):
        raise FormatError("block offset table is not increasing or points past the payload", offset=table_at)
    return blocks_at + offsets, blocks_at + ends


def read_block_lengths(reader: BitReader, nblocks: int) -> tuple[np.ndarray, np.ndarray]:
    """Format 2's block length table at the reader's byte: a width ``w`` (``BLOCK_LENGTH_WIDTH_BITS``
    bits), each block's length in 16-bit words in ``w`` bits, zero bits to a byte; the blocks
    follow back to back and end exactly at the payload's end. Returns the blocks' byte ranges."""
    at = reader.offset
    width = reader.read(BLOCK_LENGTH_WIDTH_BITS)
    if nblocks * width > reader.remaining():
        raise FormatError(f"block length table of {nblocks} blocks of {width} bits runs past the payload", offset=at)
    lengths = reader.read_array(nblocks, width)
    if reader.read(-reader.pos % 8):
        raise reader.error("block length table padding bits are not zero")
    blocks_at = reader.pos // 8
    ends = blocks_at + 2 * np.cumsum(lengths)
    total = int(ends[-1]) - blocks_at if nblocks else 0
    if blocks_at + total != len(reader.data):
        raise FormatError(f"block lengths add up to {total} bytes, the payload has {len(reader.data) - blocks_at} "
                          "after the block length table", offset=at)
    return ends - 2 * lengths, ends


def _read_block_start(reader: BitReader, n: int, bits: int) -> tuple[int, int]:
    """A block's first fields, in both block formats: ``(m, implicit)``, the number of distinct
    values (EG(0) of ``m - 1``, at most ``min(n, 2**bits)``) and the implicit value."""
    num_values = reader.read_exp_golomb(0) + 1
    if num_values > min(n, 1 << bits):
        raise reader.error(f"block claims {num_values} distinct values in {n} slots of {bits} bits")
    return num_values, reader.read_signed(bits)


def _read_group_fields(reader: BitReader, bits: int, implicit: int, count_k: int, prev_value: int | None,
                       prev_count: int, free: int) -> tuple[int, int]:
    """A group's header fields, in both block formats: ``(value, count)``.

    The value: the first group's (``prev_value`` None) in ``bits``, a later one as EG(0) of the
    step from ``prev_value`` minus one; the count: zigzag EG of order ``(bitlen(p) >> 1) + count_k``
    of its difference from the previous group's count ``p`` (0 for the first). ``free`` is the
    block's slots no earlier group claimed: the implicit value keeps at least one.
    """
    if prev_value is None:
        value = reader.read_signed(bits)
    else:
        value = prev_value + reader.read_exp_golomb(0) + 1
        if value > (1 << (bits - 1)) - 1:
            raise reader.error(f"group value {value} outside the {bits}-bit range")
    if value == implicit:
        raise reader.error(f"group repeats the implicit value {value}")
    z = reader.read_exp_golomb((prev_count.bit_length() >> 1) + count_k)
    count = prev_count + (z >> 1 if z % 2 == 0 else -(z >> 1) - 1)
    if count < 1:
        raise reader.error(f"group count {count} is not positive")
    if count > free - 1:
        raise reader.error(f"group count {count} exceeds the {free - 1} slots left in the block")
    return value, count


def decode_block(reader: BitReader, n: int, bits: int, mode: str, slots: str, params: PositionParams,
                 huffman: CanonicalHuffmanDecoder | None = None, trace: StageTrace | None = None) -> np.ndarray:
    """Decode one block of ``n`` weights starting at the reader's position (the hardware's order).

    Block header: the number of distinct values ``m`` (EG(0) of ``m - 1``) and the implicit
    value (``bits``, two's complement). Then ``m - 1`` groups in increasing value order, each a
    header (the value: the first group's in ``bits``, later ones as EG(0) of the step minus one;
    the count, zigzag EG of its difference from the previous group's count) and its members.
    """
    num_values, implicit = _read_block_start(reader, n, bits)
    if trace:
        trace.block(implicit, n)
    accumulator = DistanceAccumulator(n, slots)
    expander = RepeatExpander(n)
    value = None
    count = 0
    for _ in range(num_values - 1):
        value, count = _read_group_fields(reader, bits, implicit, params.count_k, value, count, accumulator.free)
        domain = accumulator.domain
        if mode == "repeat":
            fields = reader.read_array(count, int(bit_length(np.int64(domain - 1))))
            positions = accumulator.place(reader, fields)
        elif mode == "distance":
            width = reader.read(DISTANCE_WIDTH_BITS)
            if width > bits_for(n):
                raise reader.error(f"distance width {width} exceeds the block's {bits_for(n)} bits")
            fields = reader.read_array(count, width)
            positions = accumulator.positions(reader, fields)
        else:
            k, table = rice_context(domain, count, params.rice_bias, len(params.tables))
            fields = huffman.decode_distances(reader, count, domain, int(k), int(table))
            positions = accumulator.positions(reader, fields)
        if trace:
            trace.group(value, fields, positions, mode == "repeat")
        expander.write(value, positions)
    if trace:
        trace.end()
    return expander.finish(implicit)


@dataclass(frozen=True)
class GroupHeader:
    """One group as block format 2's header unit gives it: the value and count, the size of its
    slot domain, and its Rice context (table, shift ``k``, and the escape's ``bitlen(domain - 1)``
    extra bits)."""

    value: int
    count: int
    domain: int
    table: int
    shift: int
    escape_bits: int


def read_block_header(reader: BitReader, n: int, bits: int, slots: str, params: PositionParams) -> tuple[int, list[GroupHeader]]:
    """Block format 2's header section (the header unit): ``(implicit, groups)``.

    The fields are format 1's block and group headers without the members: ``EG(0) m - 1``, the
    implicit value, then per group its value and count field. Each group's domain follows from
    the counts alone (``n`` with ``all``, ``n`` minus the earlier counts with ``free``), so does
    its Rice context. Then zero bits up to the next 16-bit boundary from the block's start (the
    reader's start). Errors: format 1's header errors, a group whose table has no codes, a section
    that does not fit in the block, non-zero padding.
    """
    start = reader.pos
    try:
        num_values, implicit = _read_block_start(reader, n, bits)
        free = n
        value = None
        count = 0
        groups = []
        for _ in range(num_values - 1):
            value, count = _read_group_fields(reader, bits, implicit, params.count_k, value, count, free)
            domain = n if slots == "all" else free
            k, table = (int(x) for x in rice_context(domain, count, params.rice_bias, len(params.tables)))
            if not params.tables[table].symbols:
                raise reader.error(f"group of {count} positions uses Huffman table {table}, which is empty")
            groups.append(GroupHeader(value, count, domain, table, k, bits_for(domain)))
            free -= count
        pad = -(reader.pos - start) % MEMBER_WORD_BITS
        if reader.read(pad):
            raise reader.error("header section padding bits are not zero")
    except FormatError as e:
        if e.reason.startswith("truncated"):
            raise FormatError(f"header section overruns the block ({e.reason})", offset=e.offset) from None
        raise
    return implicit, groups


def decode_block_2(reader: BitReader, n: int, bits: int, slots: str, params: PositionParams,
                   huffman: CanonicalHuffmanDecoder, trace: StageTrace | None = None) -> np.ndarray:
    """Decode one block of format 2 (huffman mode); the reader spans exactly the block.

    The header section gives the groups (:func:`read_block_header`); the rest of the block is the
    member section, one member field per member in block order (group by group), decoded by
    :func:`~sw_codec.member_streams.decode_member_streams`: a field of a group with table ``t``
    needs ``max_len`` of table ``t``, its symbol ``s`` is followed by the group's shift ``k`` bits
    ``r`` (distance ``(s << k) | r``), or if ``s`` is the escape by the distance in
    ``escape_bits``. The distances go through the DistanceAccumulator and RepeatExpander as in
    format 1.
    """
    implicit, groups = read_block_header(reader, n, bits, slots, params)
    section_at = reader.offset
    section = reader.data[reader.pos // 8 : reader.end // 8]
    context, table_of_field = [], []
    for group in groups:
        table = params.tables[group.table]
        escape, k, e = table.num_symbols - 1, group.shift, group.escape_bits
        extra_bits_of = (lambda escape, k, e: lambda s: e if s == escape else k)(escape, k, e)
        context += [(table.max_length, extra_bits_of)] * group.count
        table_of_field += [group.table] * group.count
    lookups = [huffman.lookup(t) for t in range(len(params.tables))]

    def lookup(t: int, window: int) -> tuple[int, int]:
        table = table_of_field[t]
        symbols, lengths = lookups[table]
        w = window >> (MEMBER_WORD_BITS - params.tables[table].max_length)
        return symbols[w], lengths[w]

    pulls = [] if trace is not None else None
    try:
        fields = decode_member_streams(section, lookup, context, pulls)
    except FormatError as e:
        raise FormatError(e.reason, offset=section_at) from None
    if trace is not None:
        trace.block(implicit, n)
        trace.block_header(implicit, n, groups)
        trace.pulls.append(pulls)
    accumulator = DistanceAccumulator(n, slots)
    expander = RepeatExpander(n)
    at = 0
    for group in groups:
        table = params.tables[group.table]
        escape = table.num_symbols - 1
        distances = np.array([extra if s == escape else (s << group.shift) | extra
                              for s, extra in fields[at : at + group.count]], dtype=np.int64)
        at += group.count
        positions = accumulator.positions(BitReader(b"", base=section_at), distances)
        if trace is not None:
            trace.group(group.value, distances, positions, False)
        expander.write(group.value, positions)
    if trace is not None:
        trace.end()
    return expander.finish(implicit)


def bits_for(n: int) -> int:
    """Bits of the largest position in a block of ``n`` slots, ``bitlen(n - 1)``."""
    return int(n - 1).bit_length()


def decode_raw(payload: bytes, count: int, bits: int) -> np.ndarray:
    """``raw`` mode: ``count`` integers of ``bits`` bits of two's complement, MSB first, back to back
    (two nibbles a byte at 4 bits, high nibble first; big-endian at 16); the payload must be
    exactly ``ceil(count * bits / 8)`` bytes."""
    need = (count * bits + 7) // 8
    if len(payload) != need:
        raise FormatError(f"raw payload is {len(payload)} bytes, {need} expected for {count} weights", offset=0)
    if bits == 8:
        return np.frombuffer(payload, np.int8).copy()
    if bits == 16:
        return np.frombuffer(payload, ">i2").astype(np.int16)
    data = np.frombuffer(payload, np.uint8)
    weights = 1 << np.arange(bits - 1, -1, -1, dtype=np.int64)
    out = np.empty(count, np.int8 if bits <= 8 else np.int16)
    for start in range(0, count, _RAW_CHUNK):          # a multiple of 8 weights: whole bytes
        n = min(_RAW_CHUNK, count - start)
        fields = np.unpackbits(data[start * bits // 8 : (start + n) * bits // 8 + 1])[: n * bits]
        unsigned = fields.reshape(n, bits).astype(np.int64) @ weights
        out[start : start + n] = np.where(unsigned >> (bits - 1), unsigned - (1 << bits), unsigned)
    return out


#: Weights unpacked at a time by the generic raw decoder (a multiple of 8).
_RAW_CHUNK = 1 << 20


_BLOCK, _MEMBER, _END = (kind.name for kind in TokenKind)


@dataclass
class StageTrace:
    """The tokens crossing each stage boundary, as the hardware streams carry them.

    ``members``: BlockParser -> DistanceAccumulator, tuples ``("BLOCK", implicit, n)``,
    ``("MEMBER", value, index, first, absolute)``, ``("END",)``.
    ``writes``: DistanceAccumulator -> RepeatExpander, ``("BLOCK", implicit, n)``,
    ``("MEMBER", value, position)``, ``("END",)``.
    The kinds are the names of ``sw_codec.format.TokenKind``.
    """

    members: list
    writes: list
    #: Block format 2 only: the header unit's output, per block ``("BLOCK", implicit, n)``, a
    #: ``("GROUP", value, count, domain, table, shift, escape_bits)`` per group, ``("END",)``;
    #: and per block the member section's word pulls (``sw_codec.member_streams.Pull``, in order).
    headers: list = field(default_factory=list)
    pulls: list = field(default_factory=list)

    def block(self, implicit: int, n: int) -> None:
        self.members.append((_BLOCK, implicit, n))
        self.writes.append((_BLOCK, implicit, n))

    def block_header(self, implicit: int, n: int, groups: list[GroupHeader]) -> None:
        self.headers.append((_BLOCK, implicit, n))
        self.headers += [("GROUP", g.value, g.count, g.domain, g.table, g.shift, g.escape_bits) for g in groups]
        self.headers.append((_END,))

    def group(self, value: int, indices, positions, absolute: bool) -> None:
        for j, (i, p) in enumerate(zip(indices, positions)):
            self.members.append((_MEMBER, value, int(i), int(j == 0), int(absolute)))
            self.writes.append((_MEMBER, value, int(p)))

    def end(self) -> None:
        self.members.append((_END,))
        self.writes.append((_END,))


def trace_layer(payload: bytes, count: int, bits: int, mode: str, slots: str, block_bits: int,
                block_format: int = 1):
    """Decode and return ``(weights, StageTrace)``: the golden token streams for the hardware.

    In block format 2 (huffman mode) ``members`` carries the member-stream decoder's distances
    (with their group's value; ``absolute`` 0) and the trace has ``headers`` and ``pulls`` too.

    ``raw`` is traced as the hardware decodes it: blocks of ``2**block_bits`` weights, each block
    a ``BLOCK`` (implicit 0), one absolute ``MEMBER`` per weight (its own group) and ``END``.
    """
    trace = StageTrace([], [])
    if mode == "raw":
        weights = decode_raw(payload, count, bits)
        n = 1 << block_bits
        for start in range(0, count, n):
            block = weights[start : start + n]
            trace.block(0, len(block))
            for p, w in enumerate(block):
                trace.group(int(w), [p], [p], True)
            trace.end()
        return weights, trace
    return decode_positions(payload, count, bits, mode, slots, block_bits, trace, block_format), trace
