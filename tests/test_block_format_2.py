"""Block format 2 (huffman mode): a header section, then the member section in four interleaved
streams (docs/FORMAT.md, "Block format 2"). Round trips, the hardware units' traces, the 11-bit
code limit in the encoder's search, and every error of a malformed block."""

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from sw_codec import codec
from sw_codec.analysis import analyze
from sw_codec.bits import BitReader, BitWriter
from sw_codec.container import LayerRecord, write_container
from sw_codec.decoder import (PositionParams, decode_layer, read_block_header, read_preamble, trace_layer)
from sw_codec.encoder import (_header_section_words, _pack_blocks_2, _preamble, block_length_table,
                              block_length_table_bytes, encode_layer, encode_positions, huffman_2_size_bound,
                              payload_size)
from sw_codec.errors import FormatError
from sw_codec.format import MAX_BLOCK_BITS, MIN_BLOCK_BITS, V2_MAX_CODE_LENGTH, WEIGHT_BITS
from sw_codec.huffman import HuffmanTable, code_lengths, rice_context
from sw_codec.models import BUNDLED, bundled_model, load_model
from sw_codec.quantization import quantize
from sw_codec.search import choose_params


def _laplace(rng, bits, count, scale):
    hi = (1 << (bits - 1)) - 1
    return np.clip(np.round(rng.laplace(0, scale, count)), -hi, hi).astype(np.int64)


def _round_trip(q, bits, slots, block_bits):
    """Encode in format 2, check the size function and decode back (and trace) bit exactly."""
    payload = encode_layer(q, bits, "huffman", slots, block_bits, block_format=2)
    assert payload_size(analyze(q, bits, block_bits), "huffman", slots, block_format=2) == len(payload)
    out = decode_layer(payload, q.size, bits, "huffman", slots, block_bits, block_format=2)
    np.testing.assert_array_equal(out, q.ravel())
    return payload


@given(seed=st.integers(0, 2**32 - 1), bits=st.sampled_from(WEIGHT_BITS),
       block_bits=st.integers(MIN_BLOCK_BITS, MAX_BLOCK_BITS), slots=st.sampled_from(["all", "free"]),
       count=st.integers(1, 2500), spread=st.floats(0.0, 1.0))
@settings(deadline=None)
def test_random_layers_round_trip(seed, bits, block_bits, slots, count, spread):
    rng = np.random.default_rng(seed)
    q = _laplace(rng, bits, count, 0.3 + spread * 2.0 ** (bits - 2))
    payload = _round_trip(q, bits, slots, block_bits)
    # auto's lower bound for format-2 huffman candidates is one, and auto picks the smallest.
    assert huffman_2_size_bound(analyze(q, bits, block_bits)) <= len(payload)
    enc = codec.encode_integers(q, bits, "auto", "auto", block_bits, block_format=2)
    assert len(enc.payload) == min(codec.candidate_sizes(enc).values())


def _real_layer(model):
    """The smallest weight tensor of two or more dimensions with at least 700 weights (its first 4096)."""
    tensors = load_model(bundled_model(model))
    name = min((x.size, k) for k, x in tensors.items() if x.ndim >= 2 and x.size >= 700)[1]
    return name, tensors[name].reshape(-1)[:4096]


@pytest.mark.parametrize("index, model", list(enumerate(BUNDLED)))
def test_a_real_layer_of_each_model_round_trips_at_every_width(index, model):
    """Every width on one real layer a model; slot countings and block sizes rotate so that every
    width meets both countings over the models and every block size 4..16 occurs."""
    _, x = _real_layer(model)
    for bits in WEIGHT_BITS:
        slots = ("all", "free")[(index + bits) % 2]
        block_bits = MIN_BLOCK_BITS + (3 * index + bits) % (MAX_BLOCK_BITS - MIN_BLOCK_BITS + 1)
        q, _ = quantize(x[None, :], bits, "tensor")
        _round_trip(q, bits, slots, block_bits)


def test_traces_are_the_hardware_units_outputs():
    """The header unit's groups are the analysis's (value, count, domain, Rice context); the member
    streams give format 1's distances, and the positions are format 1's."""
    rng = np.random.default_rng(7)
    q = _laplace(rng, 8, 3000, 6.0)
    for slots in ("all", "free"):
        g = analyze(q, 8, 10)
        params = choose_params(g, "huffman", slots, V2_MAX_CODE_LENGTH)
        payload = encode_positions(g, "huffman", slots, params, block_format=2)
        _, t2 = trace_layer(payload, q.size, 8, "huffman", slots, 10, block_format=2)
        # Format 1 with the same parameters: the same distances and positions.
        f1 = encode_positions(g, "huffman", slots, params)
        _, t1 = trace_layer(f1, q.size, 8, "huffman", slots, 10)
        assert t2.members == t1.members
        assert t2.writes == t1.writes
        k, table = rice_context(g.domain(slots), g.count, params.rice_bias, len(params.tables))
        expected = []
        for b in range(len(g.block_size)):
            expected.append(("BLOCK", int(g.implicit[b]), int(g.block_size[b])))
            for i in np.flatnonzero(g.block == b):
                d = int(g.domain(slots)[i])
                expected.append(("GROUP", int(g.value[i]), int(g.count[i]), d, int(table[i]), int(k[i]),
                                 (d - 1).bit_length()))
            expected.append(("END",))
        assert t2.headers == expected
        # One list of word pulls a block, each pulling the next word of the block's member section.
        assert len(t2.pulls) == len(g.block_size)
        assert all([p.word for p in pulls] == list(range(len(pulls))) for pulls in t2.pulls)
        assert all(p.stream == p.field % 4 for pulls in t2.pulls for p in pulls)


def _long_code_layer():
    """A real layer whose format-1 codes run past 11 bits (YOLOv8n, int8 per channel, 2^12)."""
    tensors = load_model(bundled_model("yolov8n"))
    q, _ = quantize(tensors["model.1.conv.weight"], 8, "channel")
    return q


def test_the_search_keeps_codes_within_11_bits_in_format_2():
    q = _long_code_layer()
    g = analyze(q, 8, 12)
    assert max(t.max_length for t in choose_params(g, "huffman", "free").tables) > V2_MAX_CODE_LENGTH
    for slots in ("all", "free"):
        payload = encode_layer(q, 8, "huffman", slots, 12, block_format=2)
        params = read_preamble(BitReader(payload), "huffman", 2)
        assert max(t.max_length for t in params.tables) <= V2_MAX_CODE_LENGTH
    enc = codec.encode_integers(q, 8, "auto", "auto", 12, block_format=2)
    assert enc.mode == "huffman"
    assert len(enc.payload) == min(codec.candidate_sizes(enc).values())
    np.testing.assert_array_equal(decode_layer(enc.payload, q.size, 8, enc.mode, enc.slots, 12, 2), q.ravel())


def test_encoder_refuses_tables_past_the_limit_and_decoder_names_the_limit():
    q = _long_code_layer()
    g = analyze(q, 8, 12)
    params = choose_params(g, "huffman", "free")                  # format 1's limit of 15
    with pytest.raises(ValueError, match="at most 11"):
        encode_positions(g, "huffman", "free", params, block_format=2)
    blocks, block_bytes = _pack_blocks_2(g, "free", params)
    payload = _preamble("huffman", params) + block_length_table(block_bytes) + blocks
    with pytest.raises(FormatError, match="block format 2 allows at most 11"):
        decode_layer(payload, q.size, 8, "huffman", "free", 12, block_format=2)
    # Format 1 reads the same tables.
    f1 = encode_positions(g, "huffman", "free", params)
    np.testing.assert_array_equal(decode_layer(f1, q.size, 8, "huffman", "free", 12), q.ravel())


# ---- Crafted blocks ----------------------------------------------------------------------------
# A block of 16 weights, 8 bits: implicit 0, the value 5 at position 3. One table of one symbol
# (code "0"); k = 4 (domain 16, count 1, bias 0): the member field is "0" then "0011".

ONE_SYMBOL = HuffmanTable.from_lengths(np.array([1, 0]))          # symbol 0 coded "0"; escape 1 has no code
PARAMS = PositionParams(count_k=0, rice_bias=0, tables=[ONE_SYMBOL])


def _header(writer, implicit=0, groups=((5, 1),), m=None):
    """Write a header section: EG(0) m - 1, implicit, then (value, count) groups."""
    writer.write_exp_golomb(len(groups) if m is None else m - 1, 0)
    writer.write(implicit & 0xFF, 8)
    prev_value, prev_count = None, 0
    for value, count in groups:
        if prev_value is None:
            writer.write(value & 0xFF, 8)
        else:
            writer.write_exp_golomb(value - prev_value - 1, 0)
        r = count - prev_count
        writer.write_exp_golomb(2 * r if r >= 0 else -2 * r - 1, (prev_count.bit_length() >> 1) + PARAMS.count_k)
        prev_value, prev_count = value, count


def _block(header_bits_fn=_header, members=((0b00011, 5),), pad=0, extra_words=b""):
    """A block's bytes: the header section (padded to 16 bits, ``pad`` ORed into the padding's
    last bit), then a word per member field given as (bits, length): at most four fields, each
    of at most 16 bits, are one word each of streams 0, 1, 2, 3, pulled in that order."""
    w = BitWriter()
    header_bits_fn(w)
    w.write(pad, -w.bits % 16)
    for value, length in members:
        w.write(value, length)
        w.write(0, -w.bits % 16)
    return w.getvalue() + extra_words


def _payload(blocks, params=PARAMS):
    return _preamble("huffman", params) + block_length_table(np.array([len(b) for b in blocks])) + b"".join(blocks)


def _decode(payload, count=16, slots="free"):
    return decode_layer(payload, count, 8, "huffman", slots, 4, block_format=2)


def test_the_crafted_block_decodes():
    out = _decode(_payload([_block()]))
    assert out.tolist() == [0, 0, 0, 5] + [0] * 12


def test_a_pull_past_the_blocks_end_reads_zero():
    """Value 5 at position 0: the member field is all zeros, so the section is empty (its words
    implicit), and a pull does not read the next block's bytes."""
    block0 = _block(members=())
    w = BitWriter()
    _header(w)
    assert len(block0) == 2 * -(-w.bits // 16)                     # the header section alone
    out = _decode(_payload([block0, _block()]), count=32)
    assert out.tolist() == [5] + [0] * 15 + [0, 0, 0, 5] + [0] * 12
    # The encoder drops such words too: here block 0 is its header section alone.
    q = np.zeros(32, np.int64)
    q[[0, 19]] = 5
    g = analyze(q, 8, 4)
    params = choose_params(g, "huffman", "free", V2_MAX_CODE_LENGTH)
    _, block_bytes = _pack_blocks_2(g, "free", params)
    assert block_bytes[0] == 2 * _header_section_words(g, params)[1][0] < block_bytes[1]
    _round_trip(q, 8, "free", 4)


@pytest.mark.parametrize("blocks, count, message", [
    ([_block()[:2]], 16, "header section overruns the block"),
    ([_block()[:0]], 16, "header section overruns the block"),
    ([_block(pad=1)], 16, "header section padding bits are not zero"),
    ([_block(members=((0b0001100000000001, 16),))], 16, "member section padding bits are not zero"),
    ([_block(extra_words=b"\0\0")], 16, "1 words after its last field"),
    ([_block(members=((0b10011, 5),))], 16, "invalid Huffman code"),
    ([_block(lambda w: _header(w, m=17))], 16, "17 distinct values in 16 slots"),
    ([_block(lambda w: _header(w, implicit=5))], 16, "repeats the implicit value"),
    ([_block(lambda w: _header(w, groups=((5, 16),)))], 16, "exceeds the 15 slots left"),
    ([_block(lambda w: _header(w, groups=((120, 1), (130, 1))))], 16, "outside the 8-bit range"),
    ([_block(lambda w: _header(w, groups=((5, 0),)))], 16, "group count 0 is not positive"),
    ([_block(lambda w: w.write(0, 40))], 16, "Exp-Golomb prefix longer than 32 bits"),
    ([_block(), _block()[:2]], 32, "block 1: header section overruns"),
])
def test_malformed_blocks_are_errors_naming_the_block(blocks, count, message):
    with pytest.raises(FormatError, match=message) as e:
        _decode(_payload(blocks), count)
    assert "block " in str(e.value)


def test_an_index_outside_the_domain_is_an_error():
    """Two members of value 5 in 16 slots (k = 3): distances 7 and 7 are indices 7 and 15; with an
    escape code ("1", then the distance in bitlen(15) = 4 bits), distances 15 and 0 give index 16."""
    header = lambda w: _header(w, groups=((5, 2),))
    ok = _decode(_payload([_block(header, members=((0b0111, 4), (0b0111, 4)))]))
    assert np.flatnonzero(ok == 5).tolist() == [7, 15]
    params = PositionParams(count_k=0, rice_bias=0, tables=[HuffmanTable.from_lengths(np.array([1, 1]))])
    with pytest.raises(FormatError, match="outside its domain") as e:
        _decode(_payload([_block(header, members=((0b11111, 5), (0b10000, 5)))], params))
    assert "block 0" in str(e.value)


def test_two_groups_claiming_one_slot_is_an_error_with_all_slots():
    """With ``all``, both groups (5 and 6, one member each, k = 4) code position 3; with ``free``
    the second group's index 3 (k = 3 in 15 slots) is the free slot at position 4."""
    header = lambda w: _header(w, groups=((5, 1), (6, 1)))
    with pytest.raises(FormatError, match="block 0: two values claim the same position"):
        _decode(_payload([_block(header, members=((0b00011, 5), (0b00011, 5)))]), slots="all")
    free = _block(header, members=((0b00011, 5), (0b0011, 4)))
    assert _decode(_payload([free]), slots="free").tolist() == [0, 0, 0, 5, 6] + [0] * 11


def test_a_group_using_an_empty_table_is_an_error():
    params = PositionParams(count_k=0, rice_bias=0, tables=[ONE_SYMBOL, HuffmanTable(2, (0, 0), ())])
    # A count of 5 in 16 slots: k0 = 1, x = 10, D / x = 1.6 >= 1.5: table 1 of 2.
    header = lambda w: _header(w, groups=((5, 5),))
    with pytest.raises(FormatError, match="table 1, which is empty"):
        _decode(_payload([_block(header)], params))


def test_errors_in_a_file_name_the_layer_and_the_block():
    record = LayerRecord("conv.w", (16,), "huffman", 8, "tensor", "free", 4, np.ones(1, np.float32))
    data = write_container([record], [_payload([_block(pad=1)])])
    with pytest.raises(FormatError, match=r"block 0: header section padding.*layer 'conv.w'"):
        codec.decompress(data)
    good = write_container([record], [_payload([_block()])])
    assert codec.decompress(good, integers=True)["conv.w"].tolist() == [0, 0, 0, 5] + [0] * 12


def test_files_round_trip_in_format_2_and_other_modes_are_unchanged():
    rng = np.random.default_rng(3)
    tensors = {"a": rng.normal(size=(40, 100)).astype(np.float32) ** 3, "b": rng.normal(size=(7,)).astype(np.float32)}
    data = codec.compress(tensors, bits=6, granularity="channel", block_bits=8, version=2)
    back = codec.decompress(data, integers=True)
    q, _ = quantize(tensors["a"], 6, "channel")
    np.testing.assert_array_equal(back["a"], q)
    q = _laplace(rng, 8, 2000, 3.0)
    for mode in ("raw", "repeat", "distance"):
        assert encode_layer(q, 8, mode, "free", 8, block_format=2) == encode_layer(q, 8, mode, "free", 8)
    with pytest.raises(ValueError, match="block_format must be one of"):
        encode_layer(q, 8, "huffman", "free", 8, block_format=3)


def test_header_sections_are_whole_words():
    rng = np.random.default_rng(4)
    q = _laplace(rng, 8, 5000, 20.0)
    g = analyze(q, 8, 9)
    params = choose_params(g, "huffman", "free", V2_MAX_CODE_LENGTH)
    bits_n, words = _header_section_words(g, params)
    assert (16 * words - bits_n >= 0).all() and (16 * words - bits_n < 16).all()
    _, block_bytes = _pack_blocks_2(g, "free", params)
    payload = encode_positions(g, "huffman", "free", params, block_format=2)
    reader = BitReader(payload)
    read_preamble(reader, "huffman", 2)
    start = reader.pos // 8 + block_length_table_bytes(block_bytes)
    for b, size in enumerate(block_bytes):
        block = BitReader(payload, start, start + int(size))
        read_block_header(block, int(g.block_size[b]), 8, "free", params)
        assert block.pos - 8 * start == 16 * words[b]
        start += int(size)


def test_the_block_length_table():
    """Block i starts at twice the sum of the lengths before it; the blocks end exactly at the
    payload's end; the table's padding is zero."""
    preamble = _preamble("huffman", PARAMS)
    blocks = [_block(), _block(members=()), _block()]
    table = block_length_table(np.array([len(b) for b in blocks]))
    # width 2 (the longest block, 3 words), lengths 3, 2, 3: 00010 11 10 11, five zero bits.
    assert table.hex() == "17" "60"
    payload = preamble + table + b"".join(blocks)
    third = [0, 0, 0, 5] + [0] * 12
    assert _decode(payload, 48).tolist() == third + [5] + [0] * 15 + third
    with pytest.raises(FormatError, match="block lengths add up to 16 bytes, the payload has 18"):
        _decode(payload + b"\0\0", 48)
    with pytest.raises(FormatError, match="block lengths add up to 16 bytes, the payload has 14"):
        _decode(payload[:-2], 48)
    with pytest.raises(FormatError, match="block length table padding bits are not zero"):
        _decode(preamble + bytes([table[0], table[1] | 1]) + b"".join(blocks), 48)
    with pytest.raises(FormatError, match="runs past the payload"):
        _decode(preamble + bytes([0xF8]), 48)
