"""Block format 2's member section (``sw_codec.member_streams``): four streams interleaved in the
order the reference decoder pulls their words."""

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from sw_codec.errors import FormatError
from sw_codec.huffman import HuffmanTable, code_lengths
from sw_codec.member_streams import MemberFields, Pull, decode_member_streams, interleave


def _table(rng, symbols=12, max_len=11):
    freqs = rng.integers(1, 1000, symbols) ** 2
    return HuffmanTable.from_lengths(code_lengths(freqs, max_len))


def _lookup_for(tables, table_of_field):
    """lookup(field, 16-bit window) -> (symbol, code bits) by the canonical codes."""
    maps = []
    for table in tables:
        codes, lengths = table.codes()
        maps.append({(int(lengths[s]), int(codes[s])): int(s) for s in np.flatnonzero(lengths)})

    def lookup(t, window):
        m = maps[table_of_field[t]]
        for length in range(1, 17):
            s = m.get((length, window >> (16 - length)))
            if s is not None:
                return s, length
        return 0, 0
    return lookup


def _random_block(rng, n, tables):
    table_of_field = rng.integers(0, len(tables), n)
    symbol = np.array([rng.choice(tables[i].symbols) for i in table_of_field], dtype=np.int64)
    extra_bits = rng.integers(0, 17, n) * (rng.random(n) < 0.7)
    extra = np.array([int(rng.integers(0, 1 << int(e))) for e in extra_bits], dtype=np.int64)
    codes = [t.codes() for t in tables]
    code = np.array([codes[i][0][s] for i, s in zip(table_of_field, symbol)], dtype=np.int64)
    code_bits = np.array([codes[i][1][s] for i, s in zip(table_of_field, symbol)], dtype=np.int64)
    need = np.array([tables[i].max_length for i in table_of_field], dtype=np.int64)
    return table_of_field, symbol, code, code_bits, extra, extra_bits, need


def _decode(section, tables, table_of_field, extra_bits, trace=None):
    context = [(tables[i].max_length, (lambda e: lambda s: e)(int(e))) for i, e in zip(table_of_field, extra_bits)]
    return decode_member_streams(section, _lookup_for(tables, table_of_field), context, trace)


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), n=st.integers(0, 300))
def test_the_reference_decoder_reads_back_every_field(seed, n):
    rng = np.random.default_rng(seed)
    tables = [_table(rng, int(rng.integers(2, 64)), int(rng.integers(6, 12))) for _ in range(3)]
    table_of_field, symbol, code, code_bits, extra, extra_bits, need = _random_block(rng, n, tables)
    sections, words = interleave(MemberFields.of(code, code_bits, extra, extra_bits, need), num_blocks=1)
    assert words[0] * 2 == len(sections[0])
    trace = []
    out = _decode(sections[0], tables, table_of_field, extra_bits, trace)
    assert [s for s, _ in out] == symbol.tolist()
    assert [e for _, e in out] == extra.tolist()
    # Only each stream's last word may be partly padding: the section is no longer than the
    # streams' bits rounded up to words, plus what pulling need(t) bits ahead may add.
    bits = int((code_bits + extra_bits).sum())
    assert words[0] <= -(-bits // 16) + 4 * 2
    # One word per pull, pulled in order; streams get words only at their own fields.
    assert [p.word for p in trace] == list(range(len(trace)))
    assert all(p.stream == p.field % 4 for p in trace)


def test_blocks_are_interleaved_on_their_own_and_blocks_without_fields_are_empty():
    rng = np.random.default_rng(1)
    tables = [_table(rng)]
    parts = [_random_block(rng, n, tables) for n in (50, 0, 7)]
    block = np.repeat([0, 1, 2], [50, 0, 7])
    cat = [np.concatenate([p[i] for p in parts]) for i in range(7)]
    _, _, code, code_bits, extra, extra_bits, need = cat
    sections, words = interleave(MemberFields.of(code, code_bits, extra, extra_bits, need, block), num_blocks=4)
    assert sections[1] == b"" and sections[3] == b"" and words[1] == 0
    for section, part in zip((sections[0], sections[2]), (parts[0], parts[2])):
        alone, _ = interleave(MemberFields.of(*part[2:]), num_blocks=1)
        assert section == alone[0]
        assert [s for s, _ in _decode(section, tables, part[0], part[5])] == part[1].tolist()


def test_the_word_order_of_a_small_example():
    """Field 0 (stream 0): code 1, then 16 extra bits of ones: stream 0 is 1 + 16 ones = words
    ffff 8000. Field 1 (stream 1): code 1, then 3 extra bits 101: stream 1 is 1101 = word d000.
    Both tables have need 2. The reference decoder: field 0's symbol pull (0 bits < 2) takes word 0
    (ffff) to stream 0, its code drops 1 bit (15 left); field 1's symbol pull (0 < 2) takes word 1
    (d000) to stream 1, its code drops 1 bit (15 left); then field 0's extra pull (15 < 16) takes
    word 2 (8000) to stream 0 (the extra pull of field t comes after the symbol pull of t + 1);
    field 1's extra pull (15 >= 3) pulls nothing. So ffff d000 8000 (the old order, extra pull
    right after its own code, was ffff 8000 d000).

    With field 1's code 0 and no extras instead, stream 1 is the word 0000: ffff 0000 8000. The
    zero word is not trailing, so it stays; a trailing zero word would be dropped (a single field
    0 of code 0, no extras: one zero word, an empty section)."""
    sections, words = interleave(MemberFields.of([1, 1], [1, 1], [0xFFFF, 0b101], [16, 3], [2, 2]), num_blocks=1)
    assert sections[0].hex() == "ffff" "d000" "8000" and words[0] == 3
    trace = []
    ctx = [(2, lambda s: 16), (2, lambda s: 3)]
    out = decode_member_streams(sections[0], lambda t, w: (w >> 15, 1), ctx, trace)
    assert out == [(1, 0xFFFF), (1, 0b101)]
    assert trace == [Pull(0, 0, 0, 0), Pull(1, 1, 0, 1), Pull(2, 0, 1, 0)]
    sections, words = interleave(MemberFields.of([1, 0], [1, 1], [0xFFFF, 0], [16, 0], [2, 2]), num_blocks=1)
    assert sections[0].hex() == "ffff" "0000" "8000" and words[0] == 3
    sections, words = interleave(MemberFields.of([0], [1], [0], [0], [2]), num_blocks=1)
    assert sections[0] == b"" and words[0] == 0


def test_bad_sections_are_errors():
    rng = np.random.default_rng(2)
    tables = [_table(rng)]
    table_of_field, symbol, code, code_bits, extra, extra_bits, need = _random_block(rng, 40, tables)
    (section,), _ = interleave(MemberFields.of(code, code_bits, extra, extra_bits, need), num_blocks=1)
    with pytest.raises(FormatError, match="words after its last field"):
        _decode(section + b"\x12\x34", tables, table_of_field, extra_bits)
    with pytest.raises(FormatError, match="odd number of bytes"):
        _decode(section + b"\x12", tables, table_of_field, extra_bits)
    with pytest.raises(FormatError, match="padding bits are not zero|invalid Huffman code|words after"):
        _decode(section[:-2] + bytes([section[-2], section[-1] | 1]), tables, table_of_field, extra_bits)


def test_fields_are_checked():
    with pytest.raises(ValueError, match="code_bits must be in 1..16"):
        MemberFields.of([0], [0], [0], [0], [1])
    with pytest.raises(ValueError, match="longer than its table's longest code"):
        MemberFields.of([0], [3], [0], [0], [2])
    with pytest.raises(ValueError, match="more bits than its length"):
        MemberFields.of([4], [2], [0], [0], [2])
