# amaranth: UnusedElaboratable=no
"""CanonicalHuffmanDecoder in the Amaranth simulator, against sw_codec.huffman."""

import random

import numpy as np
import pytest

from hw.huffman_decoder import CanonicalHuffmanDecoder
from sim.amaranth_tb import run
from sw_codec.bits import BitReader
from sw_codec.huffman import CanonicalHuffmanDecoder as SwDecoder
from sw_codec.huffman import HuffmanTable, code_lengths



async def load_table(ctx, dut, t, table):
    """Write `table` into slot `t` field by field, as the BlockParser does; (error, incomplete)."""
    ctx.set(dut.load_table, t)
    ctx.set(dut.load_num_symbols, table.num_symbols)
    ctx.set(dut.load_begin, 1)
    await ctx.tick()
    ctx.set(dut.load_begin, 0)
    for c in table.counts[1:]:
        ctx.set(dut.load_count_en, 1)
        ctx.set(dut.load_count, c)
        await ctx.tick()
    ctx.set(dut.load_count_en, 0)
    for s in table.symbols:
        ctx.set(dut.load_symbol_en, 1)
        ctx.set(dut.load_symbol, s)
        await ctx.tick()
    ctx.set(dut.load_symbol_en, 0)
    return ctx.get(dut.load_error), ctx.get(dut.load_incomplete)


async def select(ctx, dut, t, rice_k=0, escape_bits=0):
    """Make table `t` and the Rice/escape widths the group's (one edge; after a load, one more
    edge for the escape code to settle)."""
    await ctx.tick()
    ctx.set(dut.table, t)
    ctx.set(dut.rice_k, rice_k)
    ctx.set(dut.escape_bits, escape_bits)
    ctx.set(dut.select, 1)
    await ctx.tick()
    ctx.set(dut.select, 0)


def random_table(rng, max_len):
    num_symbols = rng.randint(1, 64)
    skew = rng.choice([0.3, 0.6, 0.9])
    freqs = np.array([int(1000 * skew ** s) if rng.random() < 0.8 else 0
                      for s in range(num_symbols)])
    freqs[0] = max(freqs[0], 1)
    if rng.random() < 0.5:
        freqs = np.array(rng.sample(list(freqs), len(freqs)))
    return HuffmanTable.from_lengths(code_lengths(freqs, max_len))


def encode(table, rng, n, k, escape_bits):
    """n random (symbol, extra) fields as a bit string and the distances they code."""
    codes, lengths = table.codes()
    bits, distances, escapes = [], [], []
    for _ in range(n):
        s = rng.choice(table.symbols)
        escape = s == table.num_symbols - 1
        nx = escape_bits if escape else k
        x = rng.randrange(1 << nx)
        bits.append(format(int(codes[s]), f"0{lengths[s]}b") + (format(x, f"0{nx}b") if nx else ""))
        distances.append(x if escape else (s << k) | x)
        escapes.append(escape)
    return bits, distances, escapes


def tables_for(seed, max_len, count):
    rng = random.Random(seed)
    tables = [random_table(rng, max_len) for _ in range(count)]
    # A single-symbol alphabet (one length-1 code, "1" invalid) and the tallest code allowed.
    tables[0] = HuffmanTable.from_lengths(code_lengths(np.array([5]), max_len))
    lengths = list(range(1, max_len + 1)) + [max_len]
    tables[-1] = HuffmanTable.from_lengths(np.array(lengths[:64]))
    # Symbols of one length listed out of value order (the format allows it): the escape is
    # then not the last code of its length.
    t = tables[1]
    symbols, at = [], 0
    for c in t.counts[1:]:
        symbols += list(reversed(t.symbols[at:at + c]))
        at += c
    tables[1] = HuffmanTable(t.num_symbols, t.counts, tuple(symbols))
    return rng, tables


async def decode_stream(ctx, dut, fields, rng=None, starve=0.0):
    """Show the concatenated `fields` in the window as a bit reader would, taking each field as
    soon as it is `known`; returns [(consume, escape, distance)] and the cycles taken. With
    `starve` > 0, that share of cycles shows only part of the buffered bits (a reader waiting
    for memory words)."""
    W = dut.window_bits
    stream, pos, out, cycles = "".join(fields), 0, [], 0
    for field in fields:
        for _ in range(20):
            rest = stream[pos:]
            count = min(W, len(rest))
            ended = len(rest) <= W
            if rng is not None and rng.random() < starve:
                count, ended = rng.randint(0, count), False
            ctx.set(dut.window, int((rest[:count] + "0" * W)[:W], 2))
            ctx.set(dut.window_count, count)
            ctx.set(dut.ended, ended)
            if ctx.get(dut.known) and (ctx.get(dut.consume) <= count or ended):
                break                                   # (the consumer has the extra bits)
            if not ctx.get(dut.known):
                assert not ctx.get(dut.valid) and not ctx.get(dut.invalid)
            cycles += 1
            await ctx.tick()
        else:
            raise AssertionError(f"field {field} never known")
        assert ctx.get(dut.valid) and not ctx.get(dut.invalid), field
        consume, escape = ctx.get(dut.consume), ctx.get(dut.escape)
        ctx.set(dut.take, 1)
        cycles += 1
        await ctx.tick()
        ctx.set(dut.take, 0)
        out.append((consume, escape, ctx.get(dut.distance)))
        pos += consume
    return out, cycles


@pytest.mark.parametrize("max_len", [15, 9])
@pytest.mark.parametrize("num_tables", [1, 4])
def test_decode_matches_software(max_len, num_tables):
    """Random canonical tables (incl. single symbol and max length codes): every field of a
    stream decodes to the software decoder's distance and length, from any table slot, one
    field per cycle after the group's first."""
    rng, tables = tables_for(max_len * 10 + num_tables, max_len, 6)
    dut = CanonicalHuffmanDecoder(max_code_len=max_len, num_tables=num_tables, max_extra_bits=16)
    assert dut.window_bits == 2 * max_len + 16

    async def testbench(ctx):
        for n, table in enumerate(tables):
            assert table.check() is None
            t = n % num_tables
            assert await load_table(ctx, dut, t, table) == (0, 0)
            sw = SwDecoder([table])
            k, escape_bits = rng.randint(0, 16), rng.randint(0, 16)
            fields, distances, escapes = encode(table, rng, 60, k, escape_bits)
            stream = "".join(fields)
            reader = BitReader(bytes(int((stream + "0" * 8)[i:i + 8], 2)
                                     for i in range(0, len(stream), 8)))
            assert list(sw.decode_distances(reader, len(fields), 1 << escape_bits, k, 0)) \
                == distances
            await select(ctx, dut, t, k, escape_bits)
            decoded, cycles = await decode_stream(ctx, dut, fields)
            assert decoded == [(len(f), e, d) for f, e, d in zip(fields, escapes, distances)]
            assert cycles == len(fields) + 1

    run(dut, testbench)


def test_decode_with_starved_window():
    """A window that often holds fewer bits than a decode needs only delays fields: each is
    decoded at an offset only when all of its code's bits were there, so none is wrong."""
    rng, tables = tables_for(7, 15, 3)
    dut = CanonicalHuffmanDecoder(max_code_len=15, num_tables=1, max_extra_bits=8)

    async def testbench(ctx):
        for table in tables:
            assert await load_table(ctx, dut, 0, table) == (0, 0)
            k, escape_bits = rng.randint(0, 8), rng.randint(0, 8)
            fields, distances, escapes = encode(table, rng, 80, k, escape_bits)
            await select(ctx, dut, 0, k, escape_bits)
            decoded, cycles = await decode_stream(ctx, dut, fields, rng, starve=0.4)
            assert decoded == [(len(f), e, d) for f, e, d in zip(fields, escapes, distances)]
            assert cycles > len(fields) + 1

    run(dut, testbench)


async def decode_window(ctx, dut, window, count=None):
    """Select table 0 again (forgetting the field known) and decode `window` alone."""
    await select(ctx, dut, 0)
    ctx.set(dut.window, window)
    ctx.set(dut.window_count, dut.window_bits if count is None else count)
    ctx.set(dut.ended, 0)
    await ctx.tick()


def test_invalid_codes():
    """A single length-1 code leaves pattern 1 invalid; an empty table matches nothing."""
    dut = CanonicalHuffmanDecoder(num_tables=2)
    W = dut.window_bits
    single = HuffmanTable(3, (0, 1), (2,))
    empty = HuffmanTable(5, (0, 0, 0), ())

    async def testbench(ctx):
        assert await load_table(ctx, dut, 0, single) == (0, 0)
        assert await load_table(ctx, dut, 1, empty) == (0, 0)
        await decode_window(ctx, dut, (1 << (W - 1)) - 1)
        assert ctx.get(dut.valid) and ctx.get(dut.consume) == 1 and ctx.get(dut.escape)
        await decode_window(ctx, dut, 1 << (W - 1))
        assert ctx.get(dut.invalid) and not ctx.get(dut.valid)
        # Fewer valid bits than the longest code, before the end: not known yet.
        await decode_window(ctx, dut, 0, count=14)
        assert not ctx.get(dut.known) and not ctx.get(dut.valid) and not ctx.get(dut.invalid)
        assert await load_table(ctx, dut, 0, empty) == (0, 0)
        for window in (0, (1 << W) - 1, 0x1234_5678):
            await decode_window(ctx, dut, window)
            assert ctx.get(dut.invalid)

    run(dut, testbench)


BAD_TABLES = [
    HuffmanTable(4, (0, 1, 1, 2), (0, 1, 2, 2)),        # duplicate symbol
    HuffmanTable(4, (0, 1, 1, 2), (0, 1, 2, 4)),        # symbol outside the alphabet
    HuffmanTable(4, (0, 1, 3), (0, 1, 2, 3)),           # over-subscribed
    HuffmanTable(4, (0, 1, 1, 1), (0, 1, 2)),           # incomplete
    HuffmanTable(4, (0, 0, 1), (1,)),                   # one code, but of length 2
    HuffmanTable(3, (0, 0, 4), (0, 1, 2, 3)),           # more codes than symbols
    HuffmanTable(64, (0, 3, 0), (0, 1, 2)),             # over-subscribed at length 1
]
GOOD_TABLES = [
    HuffmanTable(4, (0, 1, 1, 2), (0, 1, 2, 3)),
    HuffmanTable(1, (0, 1), (0,)),
    HuffmanTable(64, (0,) + (0,) * 14, ()),
    HuffmanTable(64, (0, 0, 0, 0, 0, 0, 64), tuple(range(64))),
    HuffmanTable(16, (0,) + (1,) * 14 + (1,), tuple(range(16))),        # max length 15
]


@pytest.mark.parametrize("table", BAD_TABLES + GOOD_TABLES)
def test_validation_matches_software(table):
    """load_error | load_incomplete is set exactly for the tables sw_codec rejects."""
    expect_bad = table.check() is not None or len(table.symbols) > table.num_symbols
    dut = CanonicalHuffmanDecoder(num_tables=1)
    result = []

    async def testbench(ctx):
        error, incomplete = await load_table(ctx, dut, 0, table)
        result.append(bool(error or incomplete))

    run(dut, testbench)
    assert result == [expect_bad], table


@pytest.mark.parametrize("kwargs, name", [
    ({"max_code_len": 16}, "max_code_len"),
    ({"num_tables": 3}, "num_tables"),
    ({"window_bits": 45}, "window_bits"),
    ({"max_extra_bits": 17}, "max_extra_bits"),
])
def test_parameters_checked(kwargs, name):
    with pytest.raises(ValueError, match=name):
        CanonicalHuffmanDecoder(**kwargs)
