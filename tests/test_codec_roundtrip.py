"""Lossless round trips: every mode gives back exactly the integers and scales it was given."""

import numpy as np
import pytest
from hypothesis import given, strategies as st

from sw_codec import compress, compress_integers, decompress, encode_integers, inspect, quantize
from sw_codec.codec import candidate_sizes, dominated_by_free
from sw_codec.analysis import analyze
from sw_codec.decoder import decode_layer
from sw_codec.encoder import huffman_size_bound, huffman_size_bounds, payload_size
from sw_codec.format import MODES, POSITION_MODES, SLOTS, WEIGHT_BITS as BITS
from sw_codec.search import choose_params

DISTRIBUTIONS = ("laplace", "uniform", "single", "all_distinct", "sparse")


def make_integers(rng, shape, bits, distribution):
    hi = (1 << (bits - 1)) - 1
    n = int(np.prod(shape))
    if distribution == "laplace":
        q = np.rint(rng.laplace(0, max(1.0, hi / 20), n))
    elif distribution == "uniform":
        q = rng.integers(-hi - 1, hi + 1, n)
    elif distribution == "single":
        q = np.full(n, rng.integers(-hi - 1, hi + 1))
    elif distribution == "all_distinct":
        q = rng.permutation(np.arange(-hi - 1, hi + 1))[:n] if n <= 2 * hi + 2 else rng.integers(-hi - 1, hi + 1, n)
        q = np.resize(q, n)
    else:  # mostly zeros, a few outliers at the extremes
        q = np.where(rng.random(n) < 0.05, rng.choice([-hi - 1, hi], n), 0)
    return np.clip(q, -hi - 1, hi).astype(np.int64).reshape(shape)


#: Draws of a random layer beside its length and block bits (which each test bounds itself).
LAYER_DRAWS = dict(bits=st.sampled_from(BITS), distribution=st.sampled_from(DISTRIBUTIONS),
                   seed=st.integers(0, 2**32 - 1))


def analyzed_layer(length, bits, block_bits, distribution, seed):
    """A random 1-D layer of ``length`` integers and its block analysis."""
    q = make_integers(np.random.default_rng(seed), (length,), bits, distribution)
    return q, analyze(q, bits, block_bits)


@given(
    shape=st.lists(st.integers(1, 40), min_size=1, max_size=3).map(tuple),
    bits=st.sampled_from(BITS),
    block_bits=st.integers(4, 9),
    distribution=st.sampled_from(DISTRIBUTIONS),
    seed=st.integers(0, 2**32 - 1),
)
def test_every_mode_round_trips(shape, bits, block_bits, distribution, seed):
    q = make_integers(np.random.default_rng(seed), shape, bits, distribution)
    groups = analyze(q, bits, block_bits)
    sizes = {}
    for mode in MODES:
        for slots in SLOTS if mode in POSITION_MODES else ("all",):
            enc = encode_integers(q, bits, mode, slots, block_bits)
            assert (enc.mode, enc.slots) == (mode, slots)
            out = decode_layer(enc.payload, q.size, bits, mode, slots, block_bits)
            np.testing.assert_array_equal(out, q.ravel(), err_msg=f"{mode}/{slots}")
            sizes[f"{mode}/{slots}" if mode != "raw" else "raw"] = len(enc.payload)
            if mode != "raw":
                assert len(enc.payload) == payload_size(groups, mode, slots)
            if mode == "huffman":       # the bound auto uses to skip Huffman candidates
                assert huffman_size_bound(groups, slots) <= len(enc.payload)
    # Searching both slot countings side by side (as auto does) finds what each search alone finds.
    side_by_side = analyze(q, bits, block_bits)
    assert huffman_size_bounds(side_by_side, SLOTS) == [huffman_size_bound(groups, s) for s in SLOTS]
    for slots in SLOTS:
        assert choose_params(side_by_side, "huffman", slots) == choose_params(groups, "huffman", slots)
    # auto skips the candidates that free-slot counting dominates; that must never cost a byte
    for mode in POSITION_MODES:
        if dominated_by_free(mode, "all"):
            assert sizes[f"{mode}/free"] <= sizes[f"{mode}/all"], mode
    auto = encode_integers(q, bits, "auto", "auto", block_bits)
    assert len(auto.payload) == min(sizes.values())
    assert candidate_sizes(auto) == sizes


@given(bits=st.sampled_from(BITS), block_bits=st.integers(4, 8), seed=st.integers(0, 2**32 - 1),
       granularity=st.sampled_from(["tensor", "channel"]), mode=st.sampled_from(("auto",) + MODES))
def test_container_round_trips_integers_and_scales(bits, block_bits, seed, granularity, mode):
    rng = np.random.default_rng(seed)
    x = rng.laplace(size=(rng.integers(1, 9), rng.integers(1, 70))).astype(np.float32)
    bias = rng.normal(size=7).astype(np.float32)
    data = compress({"w": x, "b": bias}, bits=bits, granularity=granularity, mode=mode, block_bits=block_bits)
    q, scales = quantize(x, bits, granularity)
    out = decompress(data, integers=True)
    np.testing.assert_array_equal(out["w"], q)
    np.testing.assert_array_equal(out["w.scale"], scales)
    np.testing.assert_array_equal(out["b"], bias)
    floats = decompress(data)
    np.testing.assert_allclose(floats["w"], q * scales.reshape((-1, 1)) if granularity == "channel" else q * scales[0])


@pytest.mark.parametrize("mode", POSITION_MODES)
@pytest.mark.parametrize("slots", SLOTS)
def test_block_boundaries_and_last_partial_block(mode, slots):
    rng = np.random.default_rng(1)
    n = 1 << 6
    for count in (1, n - 1, n, n + 1, 3 * n + 17):
        q = make_integers(rng, (count,), 8, "laplace")
        enc = encode_integers(q, 8, mode, slots, 6)
        np.testing.assert_array_equal(decode_layer(enc.payload, count, 8, mode, slots, 6), q)


def test_auto_picks_the_smallest_candidate():
    q = make_integers(np.random.default_rng(2), (3000,), 8, "laplace")
    enc = encode_integers(q, 8, "auto", "auto", 10)
    assert len(enc.payload) == min(enc.sizes.values())
    # Huffman candidates whose lower bound shows they cannot be picked are not measured.
    assert {"raw", "repeat/free", "distance/free"} <= set(enc.sizes) \
        <= {"raw", "repeat/free", "distance/free", "huffman/all", "huffman/free"}
    sizes = candidate_sizes(enc)
    assert set(sizes) == {"raw"} | {f"{m}/{s}" for m in POSITION_MODES for s in SLOTS}
    assert len(enc.payload) == min(sizes.values())


def test_free_slots_beat_all_slots_on_smooth_weights():
    """The design claim in docs/FORMAT.md: free-slot counting saves about log2(e) bits/weight."""
    q = make_integers(np.random.default_rng(3), (1 << 14,), 8, "laplace")
    sizes = candidate_sizes(encode_integers(q, 8, "auto", "auto", 12))
    saving = 8 * (sizes["huffman/all"] - sizes["huffman/free"]) / q.size
    assert 0.8 < saving < 1.6


def test_raw_packs_b_bit_twos_complement_msb_first():
    """The raw layout of docs/FORMAT.md at every width; at 4, 8 and 16 bits it is the nibble, int8
    and big-endian int16 layout files of the 4/8/16-only format have."""
    from sw_codec.decoder import decode_raw
    from sw_codec.encoder import encode_raw

    assert encode_raw(np.array([-1, 2, -16, 15]), 5) == bytes([0b11111_000, 0b10_10000_0, 0b1111_0000])
    assert encode_raw(np.array([1, -2]), 2) == bytes([0b01_10_0000])
    rng = np.random.default_rng(7)
    q = rng.integers(-8, 8, 101)
    nibbles = np.append(q & 15, 0)
    assert encode_raw(q, 4) == ((nibbles[0::2] << 4) | nibbles[1::2]).astype(np.uint8).tobytes()
    assert encode_raw(q, 8) == q.astype(np.int8).tobytes()
    assert encode_raw(q, 16) == q.astype(">i2").tobytes()
    for bits in BITS:
        q = rng.integers(-(1 << (bits - 1)), 1 << (bits - 1), 77)
        payload = encode_raw(q, bits)
        assert len(payload) == (77 * bits + 7) // 8
        np.testing.assert_array_equal(decode_raw(payload, 77, bits), q)
        value = int("".join(format(int(v) & ((1 << bits) - 1), f"0{bits}b") for v in q), 2)
        assert int.from_bytes(payload, "big") >> (8 * len(payload) - 77 * bits) == value


@pytest.mark.parametrize("version", [1, 2])
@pytest.mark.parametrize("bits", [1, 17, 32])
def test_a_layer_of_an_unknown_width_is_refused_by_name(bits, version):
    from sw_codec.container import LayerRecord, write_container
    from sw_codec.errors import FormatError

    record = LayerRecord("odd", (4,), "raw", bits, "tensor", scales=np.ones(1, np.float32))
    data = write_container([record], [b"\0" * 8], version=version, validate=False)
    with pytest.raises(FormatError, match=f"unsupported bit width {bits} \\(integer layers have 2..16 bits\\).*'odd'"):
        inspect(data)
    with pytest.raises(ValueError, match="odd"):
        write_container([record], [b"\0" * 8], version=version)


def test_out_of_range_integers_are_refused():
    with pytest.raises(ValueError, match="4-bit range"):
        encode_integers(np.array([8]), 4)


def test_lossless_layers_given_as_integers():
    q = np.arange(-8, 8).reshape(4, 4)
    data = compress_integers({"q": (q, np.array([0.5], np.float32), "tensor")}, bits=4, block_bits=4)
    assert inspect(data)[0].bits == 4
    np.testing.assert_array_equal(decompress(data, integers=True)["q"], q)


def test_bit_breakdown_adds_up_and_sits_above_the_ideal():
    from sw_codec.breakdown import breakdown

    q = make_integers(np.random.default_rng(4), (1 << 13,), 8, "laplace")
    b = breakdown(q, 8, 12)
    assert b["huffman_symbols"] + b["rice_remainders"] + b["headers_and_rest"] == pytest.approx(b["total"])
    assert b["symbol_entropy"] <= b["huffman_symbols"]
    assert b["ideal_positions"] < b["total"]


def test_model_breakdown_is_the_weighted_mean_of_its_layers():
    from sw_codec.breakdown import breakdown, breakdown_model

    rng = np.random.default_rng(5)
    tensors = {"a": rng.laplace(size=(64, 96)).astype(np.float32), "b": rng.normal(size=(32, 200)).astype(np.float32),
               "small": rng.normal(size=(4, 4)).astype(np.float32), "bias": rng.normal(size=64).astype(np.float32)}
    m = breakdown_model(tensors, 8, "tensor", 12, min_params=100)
    assert (m["layers"], m["params"]) == (2, 64 * 96 + 32 * 200)
    parts = [(breakdown(quantize(tensors[k], 8, "tensor")[0], 8, 12), tensors[k].size) for k in ("a", "b")]
    for key in ("H0", "total", "headers_and_rest"):
        assert m[key] == pytest.approx(sum(p[key] * n for p, n in parts) / m["params"])
    with pytest.raises(ValueError, match="no tensor"):
        breakdown_model({"bias": tensors["bias"]})


def reference_free_indices(q: np.ndarray, g, block_bits: int) -> list[int]:
    """Free-slot index of every member of the analysis ``g`` of ``q``, straight from its definition."""
    blocks = [q[i : i + (1 << block_bits)] for i in range(0, len(q), 1 << block_bits)]
    expected = []
    for b, block in enumerate(blocks):
        for value in g.value[g.block == b]:
            # Slots holding a smaller explicit value are taken; the others (the implicit value's too) are free.
            taken = (block < value) & (block != g.implicit[b])
            positions = np.flatnonzero(block == value)
            expected.extend(positions - np.cumsum(taken)[positions] + taken[positions])
    return expected


@pytest.mark.parametrize("bits", BITS)
@pytest.mark.parametrize("distribution", DISTRIBUTIONS)
def test_free_index_is_the_position_among_slots_smaller_values_left(bits, distribution, monkeypatch):
    """The encoder's free-slot index (bitmaps for up to 8 bits, a radix rank for 16), against its
    definition, with the bitmap tables cut into several chunks of blocks."""
    from sw_codec import analysis

    monkeypatch.setattr(analysis, "_FREE_BITMAP_WORDS", 64)
    block_bits = 7
    q = make_integers(np.random.default_rng(bits), (5 * (1 << block_bits) + 37,), bits, distribution)
    g = analyze(q, bits, block_bits)
    np.testing.assert_array_equal(g.index_free, reference_free_indices(q, g, block_bits))


@given(
    length=st.integers(1, 3000),
    bits=st.sampled_from((4, 8)),
    block_bits=st.integers(4, 9),
    distribution=st.sampled_from(DISTRIBUTIONS),
    chunk_words=st.sampled_from((1, 40, 300, 2000, 1 << 16)),
    seed=st.integers(0, 2**32 - 1),
)
def test_bitmap_free_indices_match_the_definition_for_any_chunking(length, bits, block_bits, distribution,
                                                                   chunk_words, seed):
    """The bitmap free-slot indices, with chunks of one or more blocks (the last one shorter) sharing
    one table buffer, against the definition."""
    from sw_codec import analysis

    saved = analysis._FREE_BITMAP_WORDS
    analysis._FREE_BITMAP_WORDS = chunk_words
    try:
        q, g = analyzed_layer(length, bits, block_bits, distribution, seed)
    finally:
        analysis._FREE_BITMAP_WORDS = saved
    np.testing.assert_array_equal(g.index_free, reference_free_indices(q, g, block_bits))


@given(rows=st.integers(1, 300), row_words=st.sampled_from((1, 3, 64, 255, 256, 257, 300)),
       seed=st.integers(0, 2**32 - 1))
def test_or_accumulation_of_table_rows_matches_numpy_accumulate(rows, row_words, seed):
    """Each row of the result is the OR of the table's rows up to it, by numpy's accumulate (short
    rows) or by doubling (long rows), whichever buffer holds the result."""
    from sw_codec.analysis import _or_accumulate_rows

    rng = np.random.default_rng(seed)
    # Sparse words, as in the free-slot tables (dense ones OR to all ones after a few rows): a third
    # of the words hold one random bit.
    one_bit = np.left_shift(np.uint64(1), rng.integers(0, 64, (rows, row_words)).astype(np.uint64))
    table = np.where(rng.random((rows, row_words)) < 1 / 3, one_bit, np.uint64(0))
    expected = np.bitwise_or.accumulate(table, axis=0)
    result = _or_accumulate_rows(table.copy(), np.empty_like(table))
    np.testing.assert_array_equal(result, expected)


@given(rows=st.integers(0, 5), length=st.integers(1, 300), top=st.sampled_from((1, 16, 256)),
       seed=st.integers(0, 2**32 - 1))
def test_value_runs_by_histogram_match_the_runs_of_the_sorted_rows(rows, length, top, seed):
    """The analysis' runs of equal values (row, value, length) of uint8 blocks, from per-row
    histograms, against the runs found in the sorted rows."""
    from sw_codec.analysis import _value_runs_by_histogram, _value_runs_of_sorted

    V = np.random.default_rng(seed).integers(0, top, (rows, length)).astype(np.uint8)
    for got, expected in zip(_value_runs_by_histogram(V), _value_runs_of_sorted(np.sort(V, axis=1))):
        assert got.dtype == expected.dtype == np.int64
        np.testing.assert_array_equal(got, expected)


@given(length=st.integers(1, 2000), block_bits=st.integers(4, 9), **LAYER_DRAWS)
def test_payload_is_the_packed_field_list(length, bits, block_bits, distribution, seed):
    """``encode_positions`` (each kind of field placed at its computed stream position) gives the
    bytes of the straightforward way: every field listed in stream order (``block_fields``), then
    packed one after the other (``pack_fields``), behind the preamble and the block offsets."""
    from sw_codec.bits import pack_fields
    from sw_codec.encoder import _preamble, block_fields, encode_positions

    _, g = analyzed_layer(length, bits, block_bits, distribution, seed)
    for mode in POSITION_MODES:
        for slots in SLOTS:
            params = choose_params(g, mode, slots)
            values, nbits, block_bytes = block_fields(g, mode, slots, params)
            offsets = (np.cumsum(block_bytes) - block_bytes).astype("<u4")
            expected = _preamble(mode, params) + offsets.tobytes() + pack_fields(values, nbits)
            assert encode_positions(g, mode, slots, params) == expected


@given(length=st.integers(1, 3000), block_bits=st.integers(4, 10), **LAYER_DRAWS)
def test_searched_huffman_histograms_count_the_members_symbols(length, bits, block_bits, distribution, seed):
    """The symbol histograms the Huffman search returns for its chosen Rice bias and table count
    (spread from one joint histogram) against counting each member's symbol directly: its
    distance shifted right by the group's Rice shift, the escape symbol if that is not below it."""
    from sw_codec.format import MAX_CODE_LENGTH, MAX_SYMBOLS
    from sw_codec.huffman import rice_context
    from sw_codec.search import huffman_search

    _, g = analyzed_layer(length, bits, block_bits, distribution, seed)
    for slots in SLOTS:
        bias, hists, _ = huffman_search(g, slots, MAX_CODE_LENGTH)
        k, table = rice_context(g.domain(slots), g.count, bias, len(hists))
        symbol = np.minimum(g.distances(slots) >> np.repeat(k, g.count), MAX_SYMBOLS - 1)
        member_table = np.repeat(table, g.count)
        for t, h in enumerate(hists):
            expected = np.bincount(symbol[member_table == t], minlength=MAX_SYMBOLS)
            used = np.flatnonzero(expected)
            expected = expected[: min(MAX_SYMBOLS, (used[-1] if len(used) else 0) + 2)]
            np.testing.assert_array_equal(h, expected)
