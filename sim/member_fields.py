"""Golden cases for the member-stream decoder (``hw.member_stream_decoder``), from sw_codec.

A :class:`MemberBlock` is one block's member section as the decoder's ports see it: the tables,
one context per field (table, Rice shift, escape width, last), the section's bytes and the
distances the reference decoder (``sw_codec.member_streams.decode_member_streams``) reads from
them. :func:`random_blocks` makes random ones, :func:`layer_blocks` those of a real layer
(huffman mode, codes limited to ``V2_MAX_CODE_LENGTH`` bits, as ``sw_codec.encoder`` codes the
members). ``*_items`` turn them into the payloads of the decoder's streams.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from sw_codec.bits import bit_length
from sw_codec.format import MEMBER_WORD_BITS, V2_MAX_CODE_LENGTH
from sw_codec.huffman import CanonicalHuffmanDecoder, HuffmanTable, code_lengths
from sw_codec.member_streams import MemberFields, decode_member_streams, interleave

__all__ = ["MemberBlock", "reference_distances", "random_table", "random_blocks", "layer_blocks",
           "table_items", "word_items", "field_items"]


@dataclass
class MemberBlock:
    """One block: ``fields`` are ``(table, rice_k, escape_bits)`` per field; ``distances`` what the
    reference decoder reads (``None`` when it raises ``FormatError``)."""

    tables: list
    fields: list
    section: bytes
    distances: list | None


def reference_distances(tables, fields, section):
    """The distances ``decode_member_streams`` reads from ``section`` with canonical ``tables``
    (``FormatError`` for a bad section)."""
    decoder = CanonicalHuffmanDecoder(tables)

    def lookup(t, window):
        table = tables[fields[t][0]]
        symbols, lengths = decoder.lookup(fields[t][0])
        w = window >> (MEMBER_WORD_BITS - table.max_length)
        return symbols[w], lengths[w]

    context = []
    for table, k, escape_bits in fields:
        escape = tables[table].num_symbols - 1
        context.append((tables[table].max_length, (lambda esc, k, e: lambda s: e if s == esc else k)(escape, k, escape_bits)))
    out = decode_member_streams(section, lookup, context)
    return [x if s == tables[f[0]].num_symbols - 1 else (s << f[1]) | x for (s, x), f in zip(out, fields)]


def random_table(rng: np.random.Generator, max_len: int = V2_MAX_CODE_LENGTH) -> HuffmanTable:
    """A canonical code of 1..64 symbols with skewed frequencies (often with codes of max_len
    bits), its symbols of one length sometimes listed out of value order (the format allows it)."""
    n = int(rng.integers(1, 65))
    freqs = (rng.pareto(rng.uniform(0.3, 2.0), n) * 1000).astype(np.int64) + 1
    freqs[rng.random(n) < 0.2] = 0
    freqs[int(rng.integers(n))] += 1
    table = HuffmanTable.from_lengths(code_lengths(freqs, max_len))
    if rng.random() < 0.5:
        symbols, at = [], 0
        for c in table.counts[1:]:
            symbols += list(rng.permutation(table.symbols[at:at + c]))
            at += c
        table = HuffmanTable(table.num_symbols, table.counts, tuple(int(s) for s in symbols))
    return table


def _fields_of(tables, table_of, symbol):
    """Each field's code, code length and need (its table's longest code) from its symbol."""
    codes = [t.codes() for t in tables]
    code = np.array([codes[i][0][s] for i, s in zip(table_of, symbol)], dtype=np.int64)
    code_bits = np.array([codes[i][1][s] for i, s in zip(table_of, symbol)], dtype=np.int64)
    need = np.array([tables[i].max_length for i in table_of], dtype=np.int64)
    return code, code_bits, need


def random_blocks(rng: np.random.Generator, num_blocks: int, max_fields: int, tables, max_extra_bits: int = 16):
    """``num_blocks`` blocks of 1..max_fields random fields over ``tables``: random Rice shifts
    and escape widths up to ``max_extra_bits``, the escape symbol now and then."""
    blocks = []
    for _ in range(num_blocks):
        n = int(rng.integers(1, max_fields + 1))
        table_of = rng.integers(0, len(tables), n)
        k = rng.integers(0, max_extra_bits + 1, n) * (rng.random(n) < 0.8)
        escape_bits = rng.integers(0, max_extra_bits + 1, n)
        symbol = np.array([int(rng.choice(tables[i].symbols)) for i in table_of], dtype=np.int64)
        escaped = symbol == np.array([tables[i].num_symbols - 1 for i in table_of])
        extra_bits = np.where(escaped, escape_bits, k)
        extra = np.array([int(rng.integers(0, 1 << int(e))) for e in extra_bits], dtype=np.int64)
        code, code_bits, need = _fields_of(tables, table_of, symbol)
        (section,), _ = interleave(MemberFields.of(code, code_bits, extra, extra_bits, need), num_blocks=1)
        fields = [(int(t), int(a), int(b)) for t, a, b in zip(table_of, k, escape_bits)]
        distances = np.where(escaped, extra, (symbol << k) | extra).tolist()
        assert reference_distances(tables, fields, section) == distances
        blocks.append(MemberBlock(tables, fields, section, distances))
    return blocks


def layer_blocks(q: np.ndarray, bits: int, block_bits: int, slots: str = "free",
                 max_code_length: int = V2_MAX_CODE_LENGTH, blocks: int | None = None):
    """The member sections of a real layer's first ``blocks`` blocks (all by default) in block
    format 2: huffman mode with the encoder's parameters (tables of codes up to
    ``max_code_length`` bits, Rice shifts and table per group), its fields dealt into streams."""
    from sw_codec.analysis import analyze
    from sw_codec.encoder import _huffman_codes
    from sw_codec.huffman import rice_context
    from sw_codec.search import choose_params

    groups = analyze(q, bits, block_bits)
    params = choose_params(groups, "huffman", slots, max_code_length=max_code_length)
    tables = params.tables
    _, _, _, _, _, symbol, escaped = _huffman_codes(groups, slots, params)
    domain = groups.domain(slots)
    group_k, group_table = rice_context(domain, groups.count, params.rice_bias, len(tables))
    k = groups.per_member(group_k)
    table_of = groups.per_member(group_table)
    escape_bits = groups.per_member(bit_length(domain - 1))
    block = groups.per_member(groups.block)
    d = groups.distances(slots)
    is_escape = np.zeros(len(d), dtype=bool)
    is_escape[escaped] = True
    extra_bits = np.where(is_escape, escape_bits, k)
    extra = np.where(is_escape, d, d - (symbol << k))
    code, code_bits, need = _fields_of(tables, table_of, symbol)
    num_blocks = len(groups.block_size) if blocks is None else min(blocks, len(groups.block_size))
    keep = block < num_blocks
    sections, _ = interleave(MemberFields.of(code[keep], code_bits[keep], extra[keep], extra_bits[keep],
                                             need[keep], block[keep]), num_blocks=num_blocks)
    out = []
    starts = np.searchsorted(block, np.arange(num_blocks + 1))
    for b in range(num_blocks):
        s = slice(starts[b], starts[b + 1])
        fields = [(int(t), int(a), int(e)) for t, a, e in zip(table_of[s], k[s], escape_bits[s])]
        if fields:
            out.append(MemberBlock(tables, fields, sections[b], d[s].tolist()))
    return out


def table_items(index: int, table: HuffmanTable) -> list[dict]:
    """The table-load stream's items for ``table`` into slot ``index`` (``TableItem`` values)."""
    items = [{"kind": 0, "table": index, "value": table.num_symbols - 1}]
    items += [{"kind": 1, "table": index, "value": c} for c in table.counts[1:]]
    items += [{"kind": 2, "table": index, "value": s} for s in table.symbols]
    return items + [{"kind": 3, "table": index, "value": 0}]


def word_items(section: bytes) -> list[dict]:
    """The word stream's items of one section: its words, then the ``end`` item."""
    words = np.frombuffer(section, dtype=">u2")
    return [{"data": int(w), "end": 0} for w in words] + [{"data": 0, "end": 1}]


def field_items(block: MemberBlock) -> list[dict]:
    """The field-context stream's items of one block."""
    n = len(block.fields)
    return [{"table": t, "rice_k": k, "escape_bits": e, "last": int(i == n - 1)}
            for i, (t, k, e) in enumerate(block.fields)]
