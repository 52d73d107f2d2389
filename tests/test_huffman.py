"""Canonical, length-limited Huffman codes and their table checks (puff.c's rules)."""

import numpy as np
import pytest
from hypothesis import given, strategies as st

from sw_codec.bits import BitReader, BitWriter, pack_fields
from sw_codec.errors import FormatError
from sw_codec.huffman import CanonicalHuffmanDecoder, HuffmanTable, code_lengths


@given(st.lists(st.integers(0, 1000), min_size=1, max_size=64), st.integers(6, 15))
def test_lengths_are_a_complete_prefix_code_within_the_limit(freqs, max_len):
    freqs = np.array(freqs)
    lengths = code_lengths(freqs, max_len)
    used = freqs > 0
    assert np.all((lengths > 0) == used)
    assert lengths.max(initial=0) <= max_len
    if used.sum() >= 2:
        assert np.sum(2.0 ** -lengths[used]) == pytest.approx(1.0)
    assert HuffmanTable.from_lengths(lengths).check() is None


def test_package_merge_is_optimal_when_the_limit_does_not_bind():
    freqs = np.array([45, 13, 12, 16, 9, 5])  # the textbook example: cost 224
    assert int((freqs * code_lengths(freqs, 15)).sum()) == 224


def test_length_limit_binds_on_fibonacci_frequencies():
    freqs = np.array([1, 1, 2, 3, 5, 8, 13, 21, 34, 55, 89, 144])
    assert code_lengths(freqs, 15).max() == 11
    assert code_lengths(freqs, 5).max() == 5


@given(st.lists(st.integers(1, 50), min_size=1, max_size=64), st.integers(0, 2**32 - 1))
def test_decoder_reads_back_every_symbol(freqs, seed):
    table = HuffmanTable.from_lengths(code_lengths(np.array(freqs), 15))
    codes, lengths = table.codes()
    symbols = np.random.default_rng(seed).choice(np.flatnonzero(lengths), 100)
    nbits = lengths[symbols]
    data = pack_fields(np.append(codes[symbols], 0), np.append(nbits, -nbits.sum() % 8))
    reader = BitReader(data)
    decoder = CanonicalHuffmanDecoder([table])
    assert [decoder.decode_symbol(reader, table) for _ in symbols] == list(symbols)


def table_bits(num_symbols, counts, symbols):
    w = BitWriter()
    w.write(num_symbols - 1, 6)
    w.write(len(counts), 4)
    for c in counts:
        w.write(c, 7)
    for s in symbols:
        w.write(s, 6)
    return w.getvalue()


@pytest.mark.parametrize("counts, symbols, message", [
    ([3], [0, 1, 2], "over-subscribed"),
    ([1, 1], [0, 1], "incomplete"),
    ([0, 2], [0, 1], "incomplete"),
    ([2], [1, 1], "twice"),
    ([2], [0, 9], "outside the alphabet"),
])
def test_bad_tables_are_refused(counts, symbols, message):
    with pytest.raises(FormatError, match=message):
        HuffmanTable.read(BitReader(table_bits(4, counts, symbols)))


def test_single_symbol_code_and_empty_code_are_allowed():
    assert HuffmanTable.read(BitReader(table_bits(4, [1], [2]))).symbols == (2,)
    assert HuffmanTable.read(BitReader(table_bits(4, [0], []))).symbols == ()


def test_single_symbol_code_refuses_the_unused_pattern():
    table = HuffmanTable.read(BitReader(table_bits(4, [1], [2])))
    decoder = CanonicalHuffmanDecoder([table])
    assert decoder.decode_symbol(BitReader(b"\x00"), table) == 2
    with pytest.raises(FormatError, match="invalid Huffman code"):
        decoder.decode_symbol(BitReader(b"\x80"), table)


def test_zero_max_length_and_too_many_codes_are_refused():
    w = BitWriter()
    w.write(3, 6)
    w.write(0, 4)
    with pytest.raises(FormatError, match="maximum code length 0"):
        HuffmanTable.read(BitReader(w.getvalue()))
    with pytest.raises(FormatError, match="codes for 2 symbols"):
        HuffmanTable.read(BitReader(table_bits(2, [0, 4], [0, 1, 0, 1])))


@given(st.lists(st.integers(1, 50), min_size=2, max_size=64), st.integers(0, 2**32 - 1), st.integers(0, 5))
def test_lookup_fast_path_matches_the_per_length_decoder(freqs, seed, rice_k):
    """decode_distances (window lookup) reads the same symbols as decode_symbol (puff's loop)."""
    table = HuffmanTable.from_lengths(code_lengths(np.array(freqs), 15))
    rng = np.random.default_rng(seed)
    data = rng.integers(0, 256, 64, dtype=np.uint8).tobytes()
    decoder = CanonicalHuffmanDecoder([table])
    fast, slow = BitReader(data), BitReader(data)
    try:
        distances = decoder.decode_distances(fast, 20, 1 << 14, rice_k, 0)
    except FormatError:
        distances = None
    expected = []
    try:
        for _ in range(20):
            s = decoder.decode_symbol(slow, table)
            expected.append(slow.read(14) if s == table.num_symbols - 1 else (s << rice_k) | slow.read(rice_k))
    except FormatError:
        expected = None
    assert (distances is None and expected is None) or list(distances) == expected


@given(st.lists(st.tuples(st.integers(0, 64), st.integers(0, 2**64 - 1)), max_size=300))
def test_packed_fields_match_the_bit_writer(fields):
    """``pack_fields`` (vectorized, only the low ``nbits`` bits of each value) against writing the
    same fields one at a time, padded to whole bytes."""
    nbits = [n for n, _ in fields]
    values = [v for _, v in fields]
    writer = BitWriter()
    for n, v in fields:
        writer.write(v & ((1 << n) - 1), n)
    pad = -sum(nbits) % 8
    packed = pack_fields(np.array(values + [0], dtype=np.uint64), np.array(nbits + [pad], dtype=np.int64))
    assert packed == writer.getvalue()
