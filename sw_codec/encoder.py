"""The vectorized encoder of layer payloads: sizing and packing of every mode.

Works from a layer's :class:`~sw_codec.analysis.Groups` and the parameters of
``sw_codec.search``. :func:`payload_size` gives a mode's exact size without packing it and
:func:`huffman_size_bound` a lower bound without building codes (``sw_codec.codec`` uses both to
pick a mode); :func:`encode_layer` packs. The bytes are those ``sw_codec.decoder`` defines:
:func:`block_fields` lists every field in stream order, the reference that the faster packer
:func:`_pack_blocks` is tested against.

``block_format=2`` (huffman mode only; docs/FORMAT.md, "Block format 2") packs each block as a
header section (:func:`header_sections`) and a member section (:func:`member_fields_2`, dealt
into interleaved streams by ``sw_codec.member_streams.interleave``), with codes of at most
``V2_MAX_CODE_LENGTH`` bits. Its exact size needs the interleaving (trailing zero words are
dropped), so :func:`payload_size` packs it.
"""

from __future__ import annotations

import numpy as np

from .analysis import Groups, analyze
from .bits import BitWriter, bit_length, exp_golomb_fields, exp_golomb_length, pack_fields, place_fields
from .decoder import PositionParams
from .format import (BLOCK_LENGTH_WIDTH_BITS, BLOCK_OFFSET_BYTES, COUNT_BITS, COUNT_K_BITS, DISTANCE_WIDTH_BITS, LENGTH_BITS,
                     MAX_CODE_LENGTH, MEMBER_WORD_BITS, MODES, POSITION_MODES, RICE_BIAS_BITS, SLOTS, SYMBOL_BITS,
                     TABLES_LOG2_BITS, V2_MAX_CODE_LENGTH, check_block_format)
from .huffman import rice_context
from .member_streams import MemberFields, interleave
from .search import best_count_k, choose_params, count_codes, huffman_search, search_huffman

__all__ = ["payload_size", "huffman_size_bound", "huffman_size_bounds", "huffman_2_size_bound", "encode_layer",
           "encode_positions", "encode_raw", "block_fields", "code_length_limit", "header_sections",
           "member_fields_2", "block_length_table", "block_length_table_bytes"]


def code_length_limit(mode: str, block_format: int) -> int:
    """The longest Huffman code the encoder may use: ``V2_MAX_CODE_LENGTH`` for huffman blocks of
    format 2, the format's ``MAX_CODE_LENGTH`` otherwise."""
    return V2_MAX_CODE_LENGTH if block_format == 2 and mode == "huffman" else MAX_CODE_LENGTH


def _distance_widths(groups: Groups, slots: str) -> np.ndarray:
    """Per group: the distance mode's width field, bit_length of the group's largest distance."""
    return bit_length(groups.max_distance(slots))


def _huffman_codes(groups: Groups, slots: str, params: PositionParams):
    """Per group: Rice shift, escape symbol and the first entry of its table in one flat code list
    over all tables; the flat (codes, lengths); per member: its symbol; and the members that
    escape. Cached per slot counting and parameters (sizing and packing share it)."""
    cache = groups.__dict__.setdefault("_huffman_codes_cache", {})
    key = (slots, params.rice_bias, tuple(params.tables))
    if key not in cache:
        tables = params.tables
        sizes = [t.num_symbols for t in tables]
        group_k, group_table = rice_context(groups.domain(slots), groups.count, params.rice_bias, len(tables))
        group_escape = np.asarray(sizes)[group_table] - 1
        group_offset = np.cumsum([0] + sizes[:-1])[group_table]
        codes, lengths = (np.concatenate(part) for part in zip(*(t.codes() for t in tables)))
        symbol = groups.per_member(group_k)
        np.right_shift(groups.distances(slots), symbol, out=symbol)
        # A group's quotients are at most its largest distance's, so most layers need no escape test.
        escaped = np.zeros(0, dtype=np.int64)
        if ((groups.max_distance(slots) >> group_k) >= group_escape).any():
            escape = groups.per_member(group_escape)
            escaped = np.flatnonzero(symbol >= escape)
            symbol[escaped] = escape[escaped]
        cache.clear()                             # one parameter set per slot counting is enough
        cache[key] = (group_k, group_escape, group_offset, codes, lengths, symbol, escaped)
    return cache[key]


def _member_fields(groups: Groups, mode: str, slots: str, params: PositionParams):
    """(value, nbits) of each group member's position field, and the per-group width field."""
    domain = groups.domain(slots)
    if mode == "repeat":
        return groups.index(slots).astype(np.uint64), groups.per_member(bit_length(domain - 1)), None
    d = groups.distances(slots)
    if mode == "distance":
        width = _distance_widths(groups, slots)
        return d.astype(np.uint64), groups.per_member(width), width
    group_k, group_escape, group_offset, codes, lengths, s, escaped = _huffman_codes(groups, slots, params)
    # A member's field is its symbol's code, then the remainder d - (s << k) in k bits: the sum of
    # (code - s) << k (uint64, wrapping) and d. One table per Rice shift k and flat code gives that
    # term and the width length + k, so each member needs one lookup and one addition.
    num_codes = len(codes)
    symbol_of_code = np.concatenate([np.arange(t.num_symbols, dtype=np.uint64) for t in params.tables])
    shifts = np.arange(int(group_k.max(initial=0)) + 1)[:, None]
    term = ((codes - symbol_of_code) << shifts.astype(np.uint64)).ravel()
    width = (lengths + shifts).ravel()
    at = groups.per_member(group_k * num_codes + group_offset)
    at += s
    value = term[at]
    value += d.view(np.uint64)                        # distances are non-negative int64
    nbits = width[at]
    if len(escaped):
        # The escape code is followed by the whole distance in bit_length(domain - 1) bits.
        g = groups.group[escaped]
        flat = group_offset[g] + s[escaped]
        extra_bits = bit_length(domain - 1)[g]
        value[escaped] = (codes[flat] << extra_bits.astype(np.uint64)) | d[escaped].astype(np.uint64)
        nbits[escaped] = lengths[flat] + extra_bits
    return value, nbits, None


def _member_bits_per_block(groups: Groups, mode: str, slots: str, params: PositionParams) -> np.ndarray:
    """Per block: the bits of its members' position fields (the sum of ``_member_fields``'s
    nbits), counted per group where the field width is the group's, and from a per-block symbol
    histogram in the Huffman mode."""
    B, G = len(groups.block_size), len(groups.count)
    domain = groups.domain(slots)
    code_bits = 0
    if mode == "repeat":
        per_group = groups.count * bit_length(domain - 1)
    elif mode == "distance":
        per_group = groups.count * _distance_widths(groups, slots)
    else:
        # Every member has its group's Rice shift of extra bits, except escaped members, which
        # have bit_length(domain - 1) instead.
        group_k, group_escape, group_offset, _, lengths, symbol, escaped = _huffman_codes(groups, slots, params)
        per_group = groups.count * group_k
        if len(escaped):
            escaped_per_group = np.bincount(groups.group[escaped], minlength=G)
            per_group = per_group + escaped_per_group * (bit_length(domain - 1) - group_k)
        code_index = groups.per_member(groups.block * len(lengths) + group_offset) + symbol
        code_bits = np.bincount(code_index, minlength=B * len(lengths)).reshape(B, len(lengths)) @ lengths
    return code_bits + np.bincount(groups.block, weights=per_group, minlength=B).astype(np.int64)


def _group_header_codes(groups: Groups, count_k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """What each group header codes, before Exp-Golomb: the value delta (the value minus the
    previous group's, minus one; 0 for a block's first group, which stores its value in ``b``
    bits instead) in EG(0), and the count's zigzag residual with its EG order (:func:`count_codes`)."""
    prev = np.empty_like(groups.value)
    prev[1:] = groups.value[:-1]
    value_delta = np.where(groups.first_in_block, 0, groups.value - prev - 1)
    return (value_delta, *count_codes(groups.count, groups.first_in_block, count_k))


def _group_header_fields(groups: Groups, count_k: int):
    """Each group header's two fields as (value field, its bits, count field, its bits): the
    fields of :func:`_group_header_codes`, a block's first value as ``b``-bit two's complement."""
    value_delta, count_code, count_order = _group_header_codes(groups, count_k)
    delta_v, delta_n = exp_golomb_fields(value_delta, 0)
    first = groups.first_in_block
    value_field = np.where(first, (groups.value & ((1 << groups.bits) - 1)).astype(np.uint64), delta_v)
    value_bits = np.where(first, groups.bits, delta_n)
    return (value_field, value_bits, *exp_golomb_fields(count_code, count_order))


def block_fields(groups: Groups, mode: str, slots: str, params: PositionParams):
    """All fields of all blocks in stream order: (values, nbits, per-block byte lengths)."""
    bits = groups.bits
    B, E = len(groups.block_size), len(groups.group)
    header = 3 if mode == "distance" else 2
    group_fields = header + groups.count
    block_fields_n = 3 + np.bincount(groups.block, weights=group_fields, minlength=B).astype(np.int64)
    block_off = np.cumsum(block_fields_n) - block_fields_n
    cg = np.cumsum(group_fields) - group_fields
    first_group = np.searchsorted(groups.block, np.arange(B))
    row_base = np.concatenate((cg, [group_fields.sum()]))[first_group]
    group_off = block_off[groups.block] + 2 + cg - row_base[groups.block]

    total = int(block_fields_n.sum())
    values = np.zeros(total, dtype=np.uint64)
    nbits = np.zeros(total, dtype=np.int64)
    mask = (1 << bits) - 1
    values[block_off], nbits[block_off] = exp_golomb_fields(groups.num_values - 1, 0)
    values[block_off + 1], nbits[block_off + 1] = (groups.implicit & mask).astype(np.uint64), bits

    values[group_off], nbits[group_off], values[group_off + 1], nbits[group_off + 1] = \
        _group_header_fields(groups, params.count_k)

    member_value, member_bits, width = _member_fields(groups, mode, slots, params)
    if width is not None:
        values[group_off + 2], nbits[group_off + 2] = width.astype(np.uint64), DISTANCE_WIDTH_BITS
    # Member i of the layer is member i - first_member[g] of its group g.
    first_member = np.cumsum(groups.count) - groups.count
    dest = np.arange(E) + groups.per_member(group_off + header - first_member)
    values[dest], nbits[dest] = member_value, member_bits

    pad_at = block_off + block_fields_n - 1
    ends = np.cumsum(nbits)
    block_bits_n = ends[pad_at] - np.concatenate(([0], ends[pad_at[:-1]])) if B else np.zeros(0, np.int64)
    nbits[pad_at] = -block_bits_n % 8
    return values, nbits, (block_bits_n + nbits[pad_at]) // 8


def _pack_blocks(groups: Groups, mode: str, slots: str, params: PositionParams) -> tuple[bytes, np.ndarray]:
    """The blocks of a position mode packed: (their bytes, per-block byte lengths), the same as
    ``pack_fields`` of :func:`block_fields`.

    Instead of listing every field in stream order first, each kind of field (block headers, group
    headers, members) gets its stream position from the bit counts (per block, per group, and a
    running sum over the members) and is written there with :func:`place_fields`; the padding
    fields are zero bits and need no writing.
    """
    bits = groups.bits
    B, G = len(groups.block_size), len(groups.count)
    mask = (1 << bits) - 1
    num_values_field, num_values_bits = exp_golomb_fields(groups.num_values - 1, 0)
    value_field, value_bits, group_count_field, group_count_bits = _group_header_fields(groups, params.count_k)
    member_value, member_bits, width = _member_fields(groups, mode, slots, params)
    header_bits = value_bits + group_count_bits + (DISTANCE_WIDTH_BITS if width is not None else 0)

    # Bits of each group (header and members) and of each block (header and groups), unpadded.
    member_end = np.cumsum(member_bits)                                   # per member, inclusive
    first_member = np.cumsum(groups.count) - groups.count
    member_bits_before = np.where(first_member > 0, member_end[first_member - 1], 0) if G else first_member
    member_bits_through = np.concatenate((member_bits_before[1:], member_end[-1:])) if G else member_bits_before
    group_bits = header_bits + (member_bits_through - member_bits_before)
    group_bits_before = np.concatenate(([0], np.cumsum(group_bits)))     # G + 1
    first_group = np.searchsorted(groups.block, np.arange(B + 1))
    block_header_bits = num_values_bits + bits
    block_bits_n = block_header_bits + (group_bits_before[first_group[1:]] - group_bits_before[first_group[:-1]])
    block_bytes = (block_bits_n + 7) // 8                                 # with the padding field
    block_start = 8 * (np.cumsum(block_bytes) - block_bytes)
    total_bits = 8 * int(block_bytes.sum())
    words = np.zeros(total_bits // 64 + 1, dtype=np.uint64)   # a spare word for fields of no bits

    # Where each field starts in the stream.
    group_start = (block_start + block_header_bits - group_bits_before[first_group[:-1]])[groups.block] \
        + group_bits_before[:-1]
    members_start = group_start + header_bits                             # per group
    member_start = np.subtract(member_end, member_bits, out=member_end)   # per member, running ...
    member_start += groups.per_member(members_start - member_bits_before)  # ... from its group's start

    place_fields(words, block_start, num_values_field, num_values_bits)
    place_fields(words, block_start + num_values_bits, (groups.implicit & mask).astype(np.uint64), bits)
    place_fields(words, group_start, value_field, value_bits)
    place_fields(words, group_start + value_bits, group_count_field, group_count_bits)
    if width is not None:
        place_fields(words, group_start + value_bits + group_count_bits, width.astype(np.uint64),
                     DISTANCE_WIDTH_BITS)
    place_fields(words, member_start, member_value, member_bits)
    return words.astype(">u8").tobytes()[: total_bits // 8], block_bytes


def _preamble(mode: str, params: PositionParams) -> bytes:
    w = BitWriter()
    w.write(params.count_k, COUNT_K_BITS)
    if mode == "huffman":
        w.write(params.rice_bias, RICE_BIAS_BITS)
        w.write(len(params.tables).bit_length() - 1, TABLES_LOG2_BITS)
        for table in params.tables:
            table.write(w)
    return w.getvalue()


def _preamble_bytes(mode: str, params: PositionParams) -> int:
    """``len(_preamble(mode, params))``, counted instead of packed."""
    bits = COUNT_K_BITS
    if mode == "huffman":
        bits += RICE_BIAS_BITS + TABLES_LOG2_BITS
        for table in params.tables:
            bits += SYMBOL_BITS + LENGTH_BITS + COUNT_BITS * table.max_length + SYMBOL_BITS * len(table.symbols)
    return (bits + 7) // 8


def _header_bits(groups: Groups, mode: str, params: PositionParams) -> tuple[np.ndarray, np.ndarray]:
    """Bits of each block header and of each group header (cached per count order: every mode
    shares them but for the distance mode's width field)."""
    cache = groups.__dict__.setdefault("_header_bits_cache", {})
    if params.count_k not in cache:
        value_delta, count_code, count_order = _group_header_codes(groups, params.count_k)
        value_bits = np.where(groups.first_in_block, groups.bits, exp_golomb_length(value_delta, 0))
        group_bits = value_bits + exp_golomb_length(count_code, count_order)
        cache[params.count_k] = (exp_golomb_length(groups.num_values - 1, 0) + groups.bits, group_bits)
    block_bits, group_bits = cache[params.count_k]
    if mode == "distance":
        group_bits = group_bits + DISTANCE_WIDTH_BITS
    return block_bits, group_bits


def payload_size(groups: Groups, mode: str, slots: str, params: PositionParams | None = None,
                 block_format: int = 1) -> int:
    """Exact payload size in bytes of a position mode, without packing it (format 2: packed, as
    its size depends on the word values; the packing is cached for :func:`encode_positions`)."""
    check_block_format(block_format)
    params = params or choose_params(groups, mode, slots, code_length_limit(mode, block_format))
    if block_format == 2 and mode == "huffman":
        _, block_bytes = _pack_blocks_2(groups, slots, params)
        return _preamble_bytes(mode, params) + block_length_table_bytes(block_bytes) + int(block_bytes.sum())
    block_bits, group_bits = _header_bits(groups, mode, params)
    B = len(groups.block_size)
    per_block = block_bits + np.bincount(groups.block, weights=group_bits, minlength=B).astype(np.int64)
    per_block += _member_bits_per_block(groups, mode, slots, params)
    return _preamble_bytes(mode, params) + BLOCK_OFFSET_BYTES * B + int(((per_block + 7) // 8).sum())


def huffman_size_bounds(groups: Groups, countings, max_code_length: int = MAX_CODE_LENGTH) -> list[int]:
    """:func:`huffman_size_bound` of each slot counting of ``countings``, their parameter
    searches done side by side (one pass for all, see :func:`search_huffman`)."""
    cache = groups.__dict__.get("_huffman_search_cache", {})
    todo = tuple(s for s in dict.fromkeys(countings) if (s, max_code_length) not in cache)
    if todo:
        search_huffman(groups, todo, max_code_length)
    return [huffman_size_bound(groups, s, max_code_length) for s in countings]


def huffman_size_bound(groups: Groups, slots: str, max_code_length: int = MAX_CODE_LENGTH) -> int:
    """Bytes that the Huffman mode's ``payload_size`` is never below, without building its codes.

    From the parameter search alone: the member bits are at least its entropy bound, each table
    takes at least the preamble bits of a code of one-bit lengths, and the blocks take at least
    their total bits in whole bytes.
    """
    _, hists, member_bits = huffman_search(groups, slots, max_code_length)
    block_bits, group_bits = _header_bits(groups, "huffman", PositionParams(count_k=best_count_k(groups)))
    preamble = COUNT_K_BITS + RICE_BIAS_BITS + TABLES_LOG2_BITS + sum(
        SYMBOL_BITS + LENGTH_BITS + COUNT_BITS + SYMBOL_BITS * int(np.count_nonzero(h)) for h in hists)
    stream = int(block_bits.sum()) + int(group_bits.sum()) + member_bits
    return (preamble + 7) // 8 + BLOCK_OFFSET_BYTES * len(groups.block_size) + (stream + 7) // 8


def huffman_2_size_bound(groups: Groups) -> int:
    """Bytes that the huffman mode's format-2 ``payload_size`` is never below (any slot counting):
    the preamble's fixed fields, the block table and the header sections. (The member sections
    have no lower bound above zero: their trailing zero words are dropped.)"""
    _, header_words = _header_section_words(groups, PositionParams(count_k=best_count_k(groups)))
    preamble = COUNT_K_BITS + RICE_BIAS_BITS + TABLES_LOG2_BITS + SYMBOL_BITS + LENGTH_BITS + COUNT_BITS
    return (preamble + 7) // 8 + block_length_table_bytes(2 * header_words) + 2 * int(header_words.sum())


def block_length_width(block_bytes: np.ndarray) -> int:
    """Format 2's block length field width: bits of the longest block's length in words."""
    return int(bit_length(np.int64(int(np.max(block_bytes, initial=0)) // 2)))


def block_length_table_bytes(block_bytes: np.ndarray) -> int:
    """Bytes of format 2's block length table for blocks of ``block_bytes`` bytes each."""
    return (BLOCK_LENGTH_WIDTH_BITS + len(block_bytes) * block_length_width(block_bytes) + 7) // 8


def block_length_table(block_bytes: np.ndarray) -> bytes:
    """Format 2's block length table: the width ``w`` in ``BLOCK_LENGTH_WIDTH_BITS`` bits, each
    block's length in words in ``w`` bits, zero bits to a byte."""
    width = block_length_width(block_bytes)
    values = np.concatenate(([width], np.asarray(block_bytes, dtype=np.int64) // 2)).astype(np.uint64)
    nbits = np.concatenate(([BLOCK_LENGTH_WIDTH_BITS], np.full(len(block_bytes), width)))
    total = int(nbits.sum())
    return pack_fields(np.append(values, 0), np.append(nbits, -total % 8))


def _header_section_words(groups: Groups, params: PositionParams) -> tuple[np.ndarray, np.ndarray]:
    """Per block: the header section's bits before its padding, and its length in 16-bit words."""
    block_bits, group_bits = _header_bits(groups, "huffman", params)
    B = len(groups.block_size)
    bits_n = block_bits + np.bincount(groups.block, weights=group_bits, minlength=B).astype(np.int64)
    return bits_n, -(-bits_n // MEMBER_WORD_BITS)


def header_sections(groups: Groups, params: PositionParams) -> tuple[bytes, np.ndarray]:
    """Format 2: every block's header section, back to back (their bytes), and the words of each.

    A section is format 1's block header and group headers without members (``EG(0) m - 1``, the
    implicit value, each group's value and count field), then zero bits to a whole word.
    """
    bits = groups.bits
    B = len(groups.block_size)
    block_header_bits, group_bits = _header_bits(groups, "huffman", params)
    _, words = _header_section_words(groups, params)
    block_start = MEMBER_WORD_BITS * (np.cumsum(words) - words)
    total_bits = MEMBER_WORD_BITS * int(words.sum())
    group_bits_before = np.concatenate(([0], np.cumsum(group_bits)))
    first_group = np.searchsorted(groups.block, np.arange(B))
    group_start = (block_start + block_header_bits - group_bits_before[first_group])[groups.block] \
        + group_bits_before[:-1]
    buffer = np.zeros(total_bits // 64 + 1, dtype=np.uint64)
    num_values_field, num_values_bits = exp_golomb_fields(groups.num_values - 1, 0)
    place_fields(buffer, block_start, num_values_field, num_values_bits)
    place_fields(buffer, block_start + num_values_bits, (groups.implicit & ((1 << bits) - 1)).astype(np.uint64), bits)
    value_field, value_bits, count_field, count_bits = _group_header_fields(groups, params.count_k)
    place_fields(buffer, group_start, value_field, value_bits)
    place_fields(buffer, group_start + value_bits, count_field, count_bits)
    return buffer.astype(">u8").tobytes()[: total_bits // 8], words


def member_fields_2(groups: Groups, slots: str, params: PositionParams) -> MemberFields:
    """Format 2: every member's field in block order: its symbol's code, then ``k`` remainder
    bits (the escape: the distance in ``bitlen(domain - 1)`` bits); ``need`` is the longest code
    length of the group's table."""
    group_k, _, group_offset, codes, lengths, symbol, escaped = _huffman_codes(groups, slots, params)
    _, group_table = rice_context(groups.domain(slots), groups.count, params.rice_bias, len(params.tables))
    flat = groups.per_member(group_offset)
    flat += symbol
    k = groups.per_member(group_k)
    d = groups.distances(slots)
    extra = d - (symbol << k)
    extra_bits = k
    if len(escaped):
        extra[escaped] = d[escaped]
        extra_bits[escaped] = bit_length(groups.domain(slots) - 1)[groups.group[escaped]]
    need = groups.per_member(np.asarray([t.max_length for t in params.tables])[group_table])
    return MemberFields.of(codes[flat].astype(np.int64), lengths[flat], extra, extra_bits, need,
                           groups.per_member(groups.block))


def _pack_blocks_2(groups: Groups, slots: str, params: PositionParams) -> tuple[bytes, np.ndarray]:
    """Format 2's blocks packed: (their bytes, per-block byte lengths); each block is its header
    section then its member section. The last packing is cached (sizing, then packing the pick)."""
    cache = groups.__dict__.setdefault("_pack_2_cache", {})
    key = (slots, params.count_k, params.rice_bias, tuple(params.tables))
    if key not in cache:
        B = len(groups.block_size)
        headers, header_words = header_sections(groups, params)
        sections, member_words = interleave(member_fields_2(groups, slots, params), num_blocks=B)
        header_at = 2 * (np.cumsum(header_words) - header_words)
        parts = []
        for b in range(B):
            parts.append(headers[header_at[b] : header_at[b] + 2 * header_words[b]])
            parts.append(sections[b])
        cache.clear()
        cache[key] = (b"".join(parts), 2 * (header_words + member_words))
    return cache[key]


def encode_positions(groups: Groups, mode: str, slots: str, params: PositionParams | None = None,
                     block_format: int = 1) -> bytes:
    check_block_format(block_format)
    params = params or choose_params(groups, mode, slots, code_length_limit(mode, block_format))
    if block_format == 2 and mode == "huffman":
        longest = max(t.max_length for t in params.tables)
        if longest > V2_MAX_CODE_LENGTH:
            raise ValueError(f"a Huffman table has codes of {longest} bits; block format 2 allows at most "
                             f"{V2_MAX_CODE_LENGTH}")
        blocks, block_bytes = _pack_blocks_2(groups, slots, params)
        return _preamble(mode, params) + block_length_table(block_bytes) + blocks
    blocks, block_bytes = _pack_blocks(groups, mode, slots, params)
    offsets = (np.cumsum(block_bytes) - block_bytes).astype("<u4")
    return _preamble(mode, params) + offsets.tobytes() + blocks


def encode_raw(q: np.ndarray, bits: int) -> bytes:
    """``raw`` mode: each integer in ``bits`` bits of two's complement, MSB first, back to back; the
    last byte padded with zero bits (int8 bytes at 8 bits, big-endian int16 at 16)."""
    q = np.asarray(q).ravel().astype(np.int64)
    if bits == 8:
        return q.astype(np.int8).tobytes()
    if bits == 16:
        return q.astype(">i2").tobytes()
    shifts = np.arange(bits - 1, -1, -1, dtype=np.int64)
    out = np.zeros((q.size * bits + 7) // 8, np.uint8)
    for start in range(0, q.size, _RAW_CHUNK):        # a multiple of 8 weights: whole bytes
        chunk = np.packbits(((q[start : start + _RAW_CHUNK, None] >> shifts) & 1).astype(np.uint8).ravel())
        out[start * bits // 8 : start * bits // 8 + chunk.size] = chunk
    return out.tobytes()


#: Weights packed or unpacked at a time by the generic raw coder (a multiple of 8).
_RAW_CHUNK = 1 << 20


def encode_layer(q: np.ndarray, bits: int, mode: str, slots: str, block_bits: int,
                 groups: Groups | None = None, block_format: int = 1) -> bytes:
    """A layer's payload in ``mode``; ``block_format`` (1 or 2) lays out huffman-mode blocks."""
    check_block_format(block_format)
    if mode == "raw":
        return encode_raw(q, bits)
    if mode not in POSITION_MODES or slots not in SLOTS:
        raise ValueError(f"mode must be one of {MODES} and slots one of {SLOTS}")
    groups = groups or analyze(q, bits, block_bits)
    return encode_positions(groups, mode, slots, block_format=block_format)
