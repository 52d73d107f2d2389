# amaranth: UnusedElaboratable=no
"""BlockHeaderReader (decoder v2's header unit) in the Amaranth simulator, bit for bit against its
software twin ``sw_codec.decoder.read_block_header`` on real format-2 payloads, and on crafted bad
headers (sticky error, bounded cycles, no token after it)."""

import functools
import random

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from hw.block_header_reader import BlockHeaderReader, field_value_bits
from sim.amaranth_tb import run
from sim.block_headers import expected_tokens, layer_blocks
from sw_codec.bits import BitReader, BitWriter
from sw_codec.decoder import PositionParams, read_block_header
from sw_codec.encoder import encode_layer
from sw_codec.errors import FormatError
from sw_codec.format import MAX_EXP_GOLOMB_PREFIX, Slots
from sw_codec.huffman import HuffmanTable
from sw_codec.models import bundled_model, load_model
from sw_codec.quantization import quantize

NUM_TABLES = 4


def rtl_headers(dut, params, slots, blocks, *, stall=0.0, backpressure=0.0, seed=0, max_cycles=200_000):
    """Run ``blocks`` (``(n, words, length)``) through ``dut``: ``(tokens, cycles, error, taken,
    times)``, the tokens as tuples in ``group_layout`` order, the cycles from the first start to
    the last token taken, the error flag at the end, the words taken per block, and the cycle
    each token was taken in."""
    rng = random.Random(seed)
    out, taken, times, state = [], [], [], {"cycles": 0, "done": False}
    empty = sum(1 << t for t, table in enumerate(params.tables) if not table.symbols)

    async def layer(ctx):
        ctx.set(dut.count_k, params.count_k)
        ctx.set(dut.rice_bias, params.rice_bias)
        ctx.set(dut.tables_log2, len(params.tables).bit_length() - 1)
        ctx.set(dut.slots, Slots.of(slots))
        ctx.set(dut.table_empty, empty)

    async def starts(ctx):
        await layer(ctx)
        for n, words, length in blocks:
            ctx.set(dut.start.valid, 1)
            ctx.set(dut.start.payload, {"n": n, "length": length})
            while True:
                *_, ready, error = await ctx.tick().sample(dut.start.ready, dut.error)
                if ready or error:
                    break
            ctx.set(dut.start.valid, 0)
            if error:
                return

    async def feed(ctx):
        for n, words, length in blocks:
            count = 0
            for word in words:
                while rng.random() < stall:
                    await ctx.tick()
                ctx.set(dut.words.valid, 1)
                ctx.set(dut.words.payload, word)
                while True:
                    *_, ready, error = await ctx.tick().sample(dut.words.ready, dut.error)
                    if ready or error:
                        break
                ctx.set(dut.words.valid, 0)
                if error:
                    taken.append(count)
                    return
                count += 1
            taken.append(count)

    async def consumer(ctx):
        idle, cycles = 0, 0
        while idle < 200:
            ready = rng.random() >= backpressure
            ctx.set(dut.o.ready, ready)
            *_, valid, payload = await ctx.tick().sample(dut.o.valid, dut.o.payload)
            cycles += 1
            idle += 1
            if valid and ready:
                out.append((payload.block, payload.value, payload.count, payload.domain, payload.table,
                            payload.shift, payload.escape_bits, payload.last))
                state["cycles"], idle = cycles, 0
                times.append(cycles)
        state["error"] = ctx.get(dut.error)

    run(dut, starts, feed, consumer, max_cycles=max_cycles)
    return out, state["cycles"], state["error"], taken, times


def check_layer(payload, count, bits, slots, block_bits, **kw):
    params, blocks = layer_blocks(payload, count, bits, slots, block_bits)
    expected = [t for _, _, tokens in blocks for t in tokens]
    dut = BlockHeaderReader(weight_bits=bits, block_bits=block_bits, num_tables=NUM_TABLES)
    tokens, cycles, error, taken, times = rtl_headers(
        dut, params, slots, [(n, words, len(words)) for n, words, _ in blocks], **kw)
    assert not error
    for i, (got, want) in enumerate(zip(tokens, expected)):
        assert got == want, f"token {i}: {got} != {want}"
    assert len(tokens) == len(expected)
    assert taken == [len(words) for _, words, _ in blocks]
    return tokens, times, sum(len(words) for _, words, _ in blocks)


def _laplace(rng, bits, count, scale):
    hi = (1 << (bits - 1)) - 1
    return np.clip(np.round(rng.laplace(0, scale, count)), -hi, hi).astype(np.int64)


@given(seed=st.integers(0, 2**32 - 1), bits=st.sampled_from([2, 4, 8, 12]), block_bits=st.integers(4, 7),
       slots=st.sampled_from(["all", "free"]), count=st.integers(1, 300), spread=st.floats(0.0, 1.0))
@settings(deadline=None, max_examples=25)
def test_random_layers(seed, bits, block_bits, slots, count, spread):
    rng = np.random.default_rng(seed)
    q = _laplace(rng, bits, count, 0.3 + spread * 2.0 ** (bits - 2))
    payload = encode_layer(q, bits, "huffman", slots, block_bits, block_format=2)
    check_layer(payload, count, bits, slots, block_bits, stall=0.2, backpressure=0.3, seed=seed)


@functools.cache
def real_payload(blocks=4, block_bits=12):
    q = quantize(load_model(bundled_model("minilm"))["encoder.layer.0.intermediate.dense.weight"], 8,
                 "channel")[0].ravel()[: blocks << block_bits]
    return encode_layer(q, 8, "huffman", "free", block_bits, block_format=2), q.size


def member_decoder_model(tokens, times, depth=None):
    """A member decoder taking one member per cycle behind the unit, through a FIFO of ``depth``
    group tokens (``None``: unbounded). The unit's tokens come ``times[g] - times[g - 1]`` cycles
    apart as measured, later when the FIFO is full (a token enters one cycle after a group
    leaves it; pessimistic: the unit does no work while it waits). Group ``g`` starts when its
    token is in and group ``g - 1`` has ended, and takes ``count_g`` cycles. Returns the cycles
    the decoder waits for a header per block (not counting the layer's first group), and the
    cycle its last member ends."""
    groups = [(token, t) for token, t in zip(tokens, times)]
    entered, starts, waits, end, block = [], [], [], None, -1
    prev_time, prev_in = None, None
    for k, (token, t) in enumerate(groups):
        arrival = t if prev_time is None else prev_in + (t - prev_time)
        if depth is not None and len(starts) >= depth:
            arrival = max(arrival, starts[len(starts) - depth] + 1)
        prev_time, prev_in = t, arrival
        if token[0]:
            block += 1
            waits.append(0)
            continue
        begin = arrival + 1 if end is None else max(arrival + 1, end)
        if end is not None:
            waits[block] += begin - end
        starts.append(begin)
        end = begin + token[2]
    return waits, end


def test_real_layer():
    """Four blocks of 2**12 of MiniLM's FFN (int8 per channel, huffman/free): bit-exact; fields
    per cycle, and what a member decoder taking one member per cycle waits for headers
    (:func:`member_decoder_model`) with a group FIFO of several depths."""
    payload, count = real_payload()
    tokens, times, words = check_layer(payload, count, 8, "free", 12)
    blocks = sum(t[0] for t in tokens)
    groups = len(tokens) - blocks
    fields = 2 * blocks + 2 * groups
    members = sum(t[2] for t in tokens if not t[0])
    print(f"\nBlockHeaderReader P=12 minilm FFN {blocks} blocks: {groups} groups, {members} members, "
          f"{words} header words, {times[-1]} cycles: {fields / times[-1]:.3f} fields/cycle, "
          f"{times[-1] / groups:.2f} cycles/group, {16 * words / groups:.2f} header bits/group, "
          f"{members / groups:.2f} members/group")
    for depth in (None, 32, 8, 4, 2):
        waits, end = member_decoder_model(tokens, times, depth)
        print(f"  member decoder at 1 member/cycle, FIFO of {depth or 'unbounded'}: waits per block {waits}, "
              f"ends at cycle {end} ({members} members)")
    waits, _ = member_decoder_model(tokens, times)
    assert sum(waits[1:]) == 0          # with room to run ahead, only the layer's start waits


def test_real_layer_stalls_and_backpressure():
    payload, count = real_payload(blocks=1)
    check_layer(payload, count, 8, "free", 12, stall=0.3, backpressure=0.5, seed=4)


# ---- bad headers: a sticky error within bounded cycles, no token after it ----------------------

ONE = HuffmanTable.from_lengths(np.array([1, 0]))
EMPTY = HuffmanTable(2, (0, 0), ())


def header(m=None, implicit=0, groups=((5, 1),), pad=0, count_k=0, raw=None):
    """A header section's words (8-bit weights): EG(0) m - 1, implicit, then (value, count)."""
    w = BitWriter()
    if raw is not None:
        for value, nbits in raw:
            w.write(value, nbits)
    else:
        w.write_exp_golomb(len(groups) if m is None else m - 1, 0)
        w.write(implicit & 0xFF, 8)
        prev_value, prev_count = None, 0
        for value, count in groups:
            if prev_value is None:
                w.write(value & 0xFF, 8)
            else:
                w.write_exp_golomb(value - prev_value - 1, 0)
            r = count - prev_count
            w.write_exp_golomb(2 * r if r >= 0 else -2 * r - 1, (prev_count.bit_length() >> 1) + count_k)
            prev_value, prev_count = value, count
    w.write(pad, -w.bits % 16)
    data = w.getvalue()
    return [int.from_bytes(data[i:i + 2], "big") for i in range(0, len(data), 2)]


BAD = {
    "m-above-n": dict(words=header(m=17)),
    "m-above-values": dict(words=header(m=300), n=1024),
    "implicit-repeated": dict(words=header(implicit=5)),
    "count-too-large": dict(words=header(groups=((5, 16),))),
    "count-zero": dict(words=header(groups=((5, 0),))),
    "count-negative": dict(words=header(groups=((5, 3), (6, -1)))),
    "counts-past-free": dict(words=header(groups=((5, 8), (6, 8)))),
    "value-out-of-range": dict(words=header(groups=((120, 1), (130, 1)))),
    "long-prefix": dict(words=header(raw=[(0, 48)])),
    "long-count-prefix": dict(words=header(raw=[(0b010, 3), (0, 8), (5, 8), (0, 40), (1, 1)])),
    "padding": dict(words=header(pad=1)),
    "overrun": dict(words=header(groups=((5, 1), (6, 1), (7, 1)))[:1]),
    "empty-block": dict(words=[], length=0),
    "empty-table": dict(words=header(groups=((5, 5),)), tables=[ONE, EMPTY]),
    "n-zero": dict(words=header(), n=0),
}


@pytest.mark.parametrize("name", BAD)
def test_bad_headers(name):
    """The twin raises; the unit raises its sticky error within bounded cycles and gives no token
    of the bad block past the good ones before it, nor of the next block."""
    case = BAD[name]
    words, n = case["words"], case.get("n", 16)
    params = PositionParams(count_k=0, rice_bias=0, tables=case.get("tables", [ONE]))
    data = b"".join(w.to_bytes(2, "big") for w in words)
    if n:
        with pytest.raises(FormatError):
            read_block_header(BitReader(data), n, 8, "free", params)
    good = header()
    blocks = [(16, good, len(good)), (n, words, case.get("length", len(words))), (16, good, len(good))]
    dut = BlockHeaderReader(weight_bits=8, block_bits=10, num_tables=2)
    tokens, cycles, error, taken, _ = rtl_headers(dut, params, "free", blocks, backpressure=0.3, seed=1,
                                               max_cycles=3000)
    assert error
    assert tokens[:2] == expected_tokens(*read_block_header(BitReader(
        b"".join(w.to_bytes(2, "big") for w in good)), 16, 8, "free", params), 16)
    # No token of the bad block beyond its good ones, none of the block after it, and no word
    # past the bad block's length (the next block's words come right after it).
    assert all(not t[7] for t in tokens[2:]) and all(not t[0] for t in tokens[3:])
    assert len(taken) < 2 or taken[1] <= case.get("length", len(words))


def test_limits():
    """The widest field value fits the format's Exp-Golomb limit; parameters are checked."""
    assert field_value_bits(16, 16) + 1 <= MAX_EXP_GOLOMB_PREFIX
    with pytest.raises(ValueError, match="block_bits"):
        BlockHeaderReader(weight_bits=8, block_bits=3, num_tables=4)
    with pytest.raises(ValueError, match="num_tables"):
        BlockHeaderReader(weight_bits=8, block_bits=12, num_tables=3)
