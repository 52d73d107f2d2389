# amaranth: UnusedElaboratable=no
"""MemberStreamDecoder (and its HuffmanTableBuilder) in the Amaranth simulator, bit-exact against
sw_codec.member_streams.decode_member_streams, on random and real fields, with stalls."""

import random

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from hw.huffman_table_builder import L1_BITS, L2_INDEX_BITS, HuffmanTableBuilder
from hw.member_stream_decoder import MemberStreamDecoder
from sim.amaranth_tb import run
from sim.member_fields import (MemberBlock, field_items, layer_blocks, random_blocks, random_table, table_items,
                               word_items)
from sw_codec.errors import FormatError
from sw_codec.huffman import HuffmanTable
from sw_codec.member_streams import MemberFields, interleave


async def _put_all(ctx, port, items, rng, stall, stop=lambda: False):
    """Offer ``items`` one by one (not valid with probability ``stall`` per cycle), until ``stop()``."""
    for item in items:
        while stall and rng.random() < stall:
            await ctx.tick()
        ctx.set(port.valid, 1)
        ctx.set(port.payload, item)
        while True:
            _, _, ready = await ctx.tick().sample(port.ready)
            if ready or stop():
                break
        ctx.set(port.valid, 0)
        if stop():
            return


def rtl_member_stream_decoder(blocks, *, stall=0.0, backpressure=0.0, seed=0, max_extra_bits=16,
                              max_cycles=None, expect_error=False):
    """Load the blocks' tables, feed their fields and sections (stalling each input with
    probability ``stall`` per item), take the distances (not ready with probability
    ``backpressure``). Returns ``(outputs, cycles, error)``: ``outputs`` is ``[(distance, last)]``,
    ``cycles`` from the first field offered to the last distance taken (with ``expect_error``, to
    the error flag; the flag must then rise and no distance may follow)."""
    tables = blocks[0].tables
    dut = MemberStreamDecoder(num_tables=len(tables), max_code_len=11, max_extra_bits=max_extra_bits)
    rng = random.Random(seed)
    expected = sum(len(b.fields) for b in blocks)
    result = {"out": [], "loaded": False, "error": False}
    max_cycles = max_cycles or 2000 + 12 * expected

    async def tables_in(ctx):
        for i, table in enumerate(tables):
            await _put_all(ctx, dut.tables, table_items(i, table), rng, 0.0)
        await ctx.tick().until(dut.tables.ready)       # the last table's entries are written
        result["loaded"] = True

    async def fields_in(ctx):
        while not result["loaded"]:
            await ctx.tick()
        await _put_all(ctx, dut.fields, [f for b in blocks for f in field_items(b)], rng, stall,
                       lambda: result["error"])

    async def words_in(ctx):
        while not result["loaded"]:
            await ctx.tick()
        await _put_all(ctx, dut.words, [w for b in blocks for w in word_items(b.section)], rng, stall,
                       lambda: result["error"])

    async def out(ctx):
        while not result["loaded"]:
            await ctx.tick()
        cycles = 0
        while len(result["out"]) < expected:
            ready = not (backpressure and rng.random() < backpressure)
            ctx.set(dut.o.ready, ready)
            _, _, valid, payload, error = await ctx.tick().sample(dut.o.valid, dut.o.payload, dut.error)
            cycles += 1
            if error:
                result["error"] = True
                break
            if valid and ready:
                result["out"].append((payload.distance, payload.last))
        if result["error"]:
            for _ in range(50):                        # the flag stays; nothing more comes out
                _, _, valid, error = await ctx.tick().sample(dut.o.valid, dut.error)
                assert error and not valid
        result["cycles"] = cycles

    run(dut, tables_in, fields_in, words_in, out, max_cycles=max_cycles + 5000)
    return result["out"], result["cycles"], result["error"]


def expected_outputs(blocks):
    return [(d, int(i == len(b.distances) - 1)) for b in blocks for i, d in enumerate(b.distances)]


# ---------------------------------------------------------------------------------------------

@settings(max_examples=6, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), num_tables=st.sampled_from([1, 2, 4]),
       stall=st.sampled_from([0.0, 0.3]), backpressure=st.sampled_from([0.0, 0.3]))
def test_random_tables_and_fields(seed, num_tables, stall, backpressure):
    """Random canonical tables (1..64 symbols, codes up to 11 bits, symbols of a length out of
    order), random Rice shifts and escape widths up to 16 bits, blocks of 1..60 fields (so
    blocks shorter than the ring too), stalls on every input and backpressure on the output:
    every distance and `last` as the reference decoder reads them."""
    rng = np.random.default_rng(seed)
    tables = [random_table(rng) for _ in range(num_tables)]
    blocks = random_blocks(rng, 6, 60, tables)
    out, _, error = rtl_member_stream_decoder(blocks, stall=stall, backpressure=backpressure, seed=seed)
    assert not error
    assert out == expected_outputs(blocks)


def test_escape_and_extreme_tables():
    """A one-symbol alphabet (its only symbol the escape), a code with every length 1..11 (the
    longest codes in the second level), 64 symbols of 6 bits, and extra fields of 0 and 16 bits."""
    rng = np.random.default_rng(5)
    tables = [HuffmanTable(1, (0, 1), (0,)),
              HuffmanTable.from_lengths(np.array(list(range(1, 12)) + [11])),
              HuffmanTable(64, (0, 0, 0, 0, 0, 0, 64), tuple(range(63, -1, -1))),
              HuffmanTable.from_lengths(np.array([2, 2, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 11]))]
    for t in tables:
        assert t.check() is None
    blocks = random_blocks(rng, 4, 200, tables)
    out, _, error = rtl_member_stream_decoder(blocks, stall=0.2, backpressure=0.2)
    assert not error and out == expected_outputs(blocks)


@pytest.fixture(scope="module")
def minilm_ffn():
    from sw_codec.models import bundled_model, load_model
    from sw_codec.quantization import quantize

    w = load_model(bundled_model("minilm"))["encoder.layer.0.intermediate.dense.weight"]
    return quantize(w, 8, "channel")[0]


def test_real_layer_one_field_per_cycle(minilm_ffn):
    """A MiniLM FFN layer, int8 per channel, blocks of 2**12, free slots, codes up to 11 bits:
    bit-exact, and one field per cycle without stalls (codes longer than 8 bits included), but
    for the pipeline's fill and the block's end."""
    blocks = layer_blocks(minilm_ffn, 8, 12, "free", blocks=1)
    out, cycles, error = rtl_member_stream_decoder(blocks)
    assert not error and out == expected_outputs(blocks)
    fields = len(out)
    long_codes = _long_codes(blocks)
    print(f"MiniLM FFN block: {fields} fields, {long_codes} codes > 8 bits, {cycles} cycles, "
          f"{cycles / fields:.4f} cycles/field")
    assert long_codes > 0
    assert cycles <= fields + 4 * len(blocks) + 6


def _long_codes(blocks):
    n = 0
    for b in blocks:
        lengths = [t.lengths() for t in b.tables]
        codes = _symbols(b)
        n += sum(int(lengths[t][s] > L1_BITS) for (t, _, _), s in zip(b.fields, codes))
    return n


def _symbols(block):
    """The symbol of each field (the distance's quotient, or the escape)."""
    out = []
    for (t, k, e), d in zip(block.fields, block.distances):
        esc = block.tables[t].num_symbols - 1
        s = d >> k
        out.append(esc if s >= esc else s)
    return out


def test_real_layer_with_stalls(minilm_ffn):
    """The same layer's next two blocks with stalls on both inputs and the output."""
    blocks = layer_blocks(minilm_ffn[256:], 8, 12, "free", blocks=2)
    blocks = [MemberBlock(b.tables, b.fields[:700], *_cut(b, 700)) for b in blocks]
    out, _, error = rtl_member_stream_decoder(blocks, stall=0.3, backpressure=0.3, seed=3)
    assert not error and out == expected_outputs(blocks)


def _cut(block, n):
    """The section and distances of a block's first ``n`` fields (re-interleaved)."""
    from sim.member_fields import _fields_of

    tables = block.tables
    table_of = [t for t, _, _ in block.fields[:n]]
    symbol = np.array(_symbols(block)[:n])
    k = np.array([k for _, k, _ in block.fields[:n]])
    eb = np.array([e for _, _, e in block.fields[:n]])
    d = np.array(block.distances[:n])
    escaped = symbol == np.array([tables[t].num_symbols - 1 for t in table_of])
    extra_bits = np.where(escaped, eb, k)
    extra = np.where(escaped, d, d - (symbol << k))
    code, code_bits, need = _fields_of(tables, table_of, symbol)
    (section,), _ = interleave(MemberFields.of(code, code_bits, extra, extra_bits, need), num_blocks=1)
    return section, d.tolist()


# ---- Bad streams: a sticky error within bounded cycles, no output after it. ----

def _one_table_block(rng, table, n=40):
    return random_blocks(rng, 1, n, [table])[0]


def test_invalid_code_in_incomplete_table():
    """A one-symbol code (``0``) meets a ``1`` bit: no code matches; the reference raises, the
    hardware flags the error and stops."""
    table = HuffmanTable(4, (0, 1), (2,))
    fields = [(0, 3, 2)] * 6
    section = bytes([0b0001_0010, 0b0011_0000, 0b1000_0000, 0])       # field 0 ok, then a 1 bit
    block = MemberBlock([table], fields, section, None)
    with pytest.raises(FormatError, match="invalid Huffman code"):
        from sim.member_fields import reference_distances
        reference_distances([table], fields, section)
    out, cycles, error = rtl_member_stream_decoder([block], max_cycles=200)
    assert error and cycles < 100


@pytest.mark.parametrize("garbage", ["word", "padding"])
def test_trailing_garbage(garbage):
    """Words after the block's last field, or non-zero bits left in a stream: an error once the
    block ends, within a bounded number of cycles."""
    rng = np.random.default_rng(11)
    table = random_table(rng)
    block = _one_table_block(rng, table)
    if garbage == "word":
        section = block.section + b"\x12\x34"
    else:
        section = block.section + b"\x00\x01"       # pulled by no field: words left, or bits left
    from sim.member_fields import reference_distances
    with pytest.raises(FormatError):
        reference_distances(block.tables, block.fields, section)
    bad = MemberBlock(block.tables, block.fields, section, None)
    good = _one_table_block(rng, table)
    out, cycles, error = rtl_member_stream_decoder([bad, good], max_cycles=2000)
    assert error and len(out) <= len(block.fields)
    assert out == expected_outputs([block])[:len(out)]


def test_nonzero_padding_in_a_pulled_word():
    """The last word of a stream has a 1 in its padding: the reference raises "padding bits are
    not zero"; so does the hardware (it checks each stream's leftover bits after the block)."""
    table = HuffmanTable(2, (0, 2), (0, 1))
    # Four fields, code 0 each with 0 extra bits; stream 0 pulls word 0 = 0x0001 (padding 1).
    fields = [(0, 0, 0)] * 4
    section = bytes([0x00, 0x01])
    from sim.member_fields import reference_distances
    with pytest.raises(FormatError, match="padding"):
        reference_distances([table], fields, section)
    out, cycles, error = rtl_member_stream_decoder([MemberBlock([table], fields, section, None)], max_cycles=200)
    assert error


def test_many_words_after_the_last_field():
    """More trailing words than the word queue holds: an error, not a hang (the ring waited for
    the section's ``end`` item behind a full queue; found by the formal liveness proof)."""
    rng = np.random.default_rng(11)
    table = random_table(rng)
    block = _one_table_block(rng, table)
    section = block.section + b"\x12\x34" * 8
    bad = MemberBlock(block.tables, block.fields, section, None)
    out, cycles, error = rtl_member_stream_decoder([bad], max_cycles=2000)
    assert error and out == expected_outputs([block])[:len(out)]


def test_no_table_item_taken_after_the_error():
    """Once ``error`` is up, ``tables.ready`` is low too, like every ready (found by the formal
    proof ``silent``): a bad table, then more items offered."""
    dut = MemberStreamDecoder(num_tables=1, max_code_len=11, max_extra_bits=4)
    bad = HuffmanTable(4, (0, 1, 3), (0, 1, 2, 3))                 # over-subscribed
    items = table_items(0, bad) + table_items(0, HuffmanTable(2, (0, 2), (0, 1))) * 4
    seen = {"error": 0, "taken_after": 0}

    async def tables_in(ctx):
        for item in items:
            ctx.set(dut.tables.valid, 1)
            ctx.set(dut.tables.payload, item)
            while True:
                _, _, ready, error = await ctx.tick().sample(dut.tables.ready, dut.error)
                seen["error"] |= error
                seen["taken_after"] += ready and error
                if ready or seen["error"]:
                    break
        for _ in range(20):
            _, _, ready, error = await ctx.tick().sample(dut.tables.ready, dut.error)
            seen["taken_after"] += ready and error

    run(dut, tables_in, max_cycles=3000)
    assert seen["error"] and seen["taken_after"] == 0


# ---- The table builder against the canonical codes. ----

def builder_tables(tables, max_code_len=11):
    """Load ``tables`` into a HuffmanTableBuilder; return (first level, second level, need, error)
    as written to its ports."""
    dut = HuffmanTableBuilder(num_tables=len(tables), max_code_len=max_code_len)
    l1, l2, need, result = {}, {}, {}, {}

    async def load(ctx):
        for i, table in enumerate(tables):
            await _put_all(ctx, dut.load, table_items(i, table), None, 0.0)
        for _ in range(600):
            await ctx.tick()
        result["error"] = ctx.get(dut.error)

    async def capture(ctx):
        while "error" not in result:
            _, _, l1_en, l1_addr, l1_data, l2_en, l2_addr, l2_data, n_en, n_t, n_v = await ctx.tick().sample(
                dut.l1_en, dut.l1_addr, dut.l1_data, dut.l2_en, dut.l2_addr, dut.l2_data,
                dut.need_en, dut.need_table, dut.need_value)
            if l1_en:
                l1[l1_addr] = (l1_data.length, l1_data.symbol, l1_data.escape, l1_data.long)
            if l2_en:
                l2[l2_addr] = (l2_data.length, l2_data.symbol, l2_data.escape)
            if n_en:
                need[n_t] = n_v

    run(dut, load, capture, max_cycles=50_000)
    return l1, l2, need, result["error"]


def expected_levels(tables, max_code_len=11):
    """The two-level tables from ``HuffmanTable.codes()``: the entry of every window value ``v``
    (first level at ``v >> (W - L1_BITS)``, second level at ``v mod 2**L2_INDEX_BITS``)."""
    W = max_code_len
    SUB = W - L1_BITS
    l1, l2 = {}, {}
    for i, table in enumerate(tables):
        codes, lengths = table.codes()
        for a in range(1 << L1_BITS):
            l1[(i << L1_BITS) | a] = (0, 0, 0, 0)
        end = 0
        for s in table.symbols:           # canonical order = code order
            length, code = int(lengths[s]), int(codes[s])
            start = code << (W - length)
            esc = int(s == table.num_symbols - 1)
            for v in range(start, start + (1 << (W - length))):
                if length <= L1_BITS:
                    l1[(i << L1_BITS) | (v >> SUB)] = (length, s, esc, 0)
                else:
                    l1[(i << L1_BITS) | (v >> SUB)] = (0, 0, 0, 1)
                    l2[(i << L2_INDEX_BITS) | (v % (1 << L2_INDEX_BITS))] = (length - L1_BITS, s, esc)
            end = start + (1 << (W - length))
        for v in range(end, -(-end >> SUB) << SUB):   # the rest of the last long prefix: no code
            l2[(i << L2_INDEX_BITS) | (v % (1 << L2_INDEX_BITS))] = (0, 0, 0)
    return l1, l2


def test_builder_matches_canonical_codes():
    """Every first-level entry of each table and every entry of its subtables as the canonical
    codes give them; need = the table's longest code length."""
    rng = np.random.default_rng(2)
    tables = [random_table(rng) for _ in range(3)] + [HuffmanTable(3, (0, 1), (1,))]
    l1, l2, need, error = builder_tables(tables)
    exp1, exp2 = expected_levels(tables)
    assert not error
    assert l1 == exp1
    assert l2 == exp2
    assert need == {i: t.max_length for i, t in enumerate(tables)}


@pytest.mark.parametrize("table", [
    HuffmanTable(4, (0, 1, 3), (0, 1, 2, 3)),          # over-subscribed
    HuffmanTable(4, (0, 1, 1), (0, 1, 2)),             # more symbols than counted codes
    HuffmanTable(4, (0,) + (0,) * 11 + (1,), (0,)),    # a code of 12 bits: past max_code_len
])
def test_builder_rejects_bad_descriptions(table):
    _, _, _, error = builder_tables([table])
    assert error


@pytest.mark.parametrize("kwargs, name", [
    ({"num_tables": 3}, "num_tables"), ({"num_tables": 8}, "num_tables"),
    ({"max_code_len": 8}, "max_code_len"), ({"max_code_len": 12}, "max_code_len"),
    ({"max_extra_bits": 17}, "max_extra_bits"), ({"max_extra_bits": 0}, "max_extra_bits"),
])
def test_parameters_checked(kwargs, name):
    with pytest.raises(ValueError, match=name):
        MemberStreamDecoder(**kwargs)
