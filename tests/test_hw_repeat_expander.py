# amaranth: UnusedElaboratable=no
"""RepeatExpander in the Amaranth simulator: write stream (sw_codec trace) -> decoded weights."""

import random

import numpy as np
import pytest

from hw.repeat_expander import RepeatExpander
from hw.tokens import TokenKind, write_layout
from sim.amaranth_tb import run as run_testbenches, stream_get, stream_put
from sim.traces import KINDS, layer_case, write_fields


def write(token):
    fields = write_fields(token)
    return {**fields, "kind": TokenKind[fields["kind"]]}


def run(dut, *testbenches, max_cycles=50_000):
    """The pass-through has no clock domain of its own: run it inside one."""
    run_testbenches(dut, *testbenches, max_cycles=max_cycles, add_domain=True)


def make_producer(dut, tokens, rng, stall=0.0):
    layout = write_layout(dut.weight_bits, dut.block_bits)
    packed = [layout.const(write(token)).as_bits() for token in tokens]

    async def producer(ctx):
        for bits in packed:
            while rng.random() < stall:
                await ctx.tick()
            await stream_put(ctx, dut.i, bits)
    return producer


def block_ends(count, block_bits):
    n = 1 << block_bits
    return {min(start + n, count) - 1 for start in range(0, count, n)}


def make_weight_consumer(dut, weights, block_bits, rng, result, backpressure=0.0):
    """Check every weight and `last` flag; `result` gets the cycle of the first and last weight."""
    ends = block_ends(len(weights), block_bits)

    async def consumer(ctx):
        cycles = 0
        for k, expected in enumerate(weights):
            while rng.random() < backpressure:
                await ctx.tick()
                cycles += 1
            ctx.set(dut.o.ready, 1)
            while True:
                *_, valid, payload = await ctx.tick().sample(dut.o.valid, dut.o.payload)
                cycles += 1
                if valid:
                    break
            ctx.set(dut.o.ready, 0)
            if k == 0:
                result["first"] = cycles
            got = (payload.value, payload.last)
            assert got == (int(expected), int(k in ends)), \
                f"weight {k}: got (value, last) {got}, expected {(int(expected), int(k in ends))}"
            assert not ctx.get(dut.error)
        result["cycles"] = cycles
    return consumer


def check_in_order(dut, weights, trace, rng, *, stall=0.0, backpressure=0.0):
    result = {}
    run(dut, make_producer(dut, trace.writes, rng, stall),
        make_weight_consumer(dut, weights, dut.block_bits, rng, result, backpressure))
    assert "cycles" in result, "consumer did not see every weight"
    return result


CASES = [(mode, slots) for mode in ("raw", "repeat", "distance", "huffman")
         for slots in ("all", "free") if not (mode == "raw" and slots == "free")]


@pytest.mark.parametrize("mode,slots", CASES)
@pytest.mark.parametrize("bits", [4, 5, 8, 12, 16])
def test_in_order(mode, slots, bits):
    """Every data character, block_bits 4..6, partial last blocks, random stalls and
    backpressure: the weights equal sw_codec's decode exactly, `last` on each block's end."""
    rng = random.Random(f"{mode}{slots}{bits}")
    nprng = np.random.default_rng(rng.randrange(1 << 32))
    block_bits = rng.choice([4, 5, 6])
    dut = RepeatExpander(weight_bits=bits, block_bits=block_bits, in_order=True)
    traces, weights = [], []
    for kind in KINDS:          # one simulation: the layers back to back
        count = rng.randint(1, 3 << block_bits)
        w, trace = layer_case(nprng, kind, count, bits, mode, slots, block_bits)
        traces.append(trace)
        weights.append(w)
    from sw_codec.decoder import StageTrace
    trace = StageTrace([], sum((t.writes for t in traces), []))
    ends = np.cumsum([len(w) for w in weights])
    result = {}
    all_weights = np.concatenate(weights)

    # Blocks of consecutive layers: `last` marks each layer's own block ends.
    lasts = set()
    for start, w in zip(np.append(0, ends[:-1]), weights):
        lasts |= {start + e for e in block_ends(len(w), block_bits)}

    async def consumer(ctx):
        for k, expected in enumerate(all_weights):
            while rng.random() < 0.3:
                await ctx.tick()
            payload = await stream_get(ctx, dut.o)
            got = (payload.value, payload.last)
            assert got == (int(expected), int(k in lasts)), \
                f"weight {k}: got {got}, expected {(int(expected), int(k in lasts))}"
        result["done"] = True

    run(dut, make_producer(dut, trace.writes, rng, stall=0.3), consumer)
    assert result.get("done")


@pytest.mark.parametrize("bits", [4, 5, 8, 12, 16])
def test_write_stream_passes_through(bits):
    """in_order=False: the write stream comes out unchanged, with stalls and backpressure."""
    rng = random.Random(bits)
    nprng = np.random.default_rng(bits)
    dut = RepeatExpander(weight_bits=bits, block_bits=5, in_order=False)
    _, trace = layer_case(nprng, "laplace", 100, bits, "huffman", "free", 5)
    done = []

    async def consumer(ctx):
        for k, token in enumerate(trace.writes):
            while rng.random() < 0.3:
                await ctx.tick()
            p = await stream_get(ctx, dut.o)
            kind = TokenKind(p.kind)
            got = {"kind": kind, "value": 0, "position": 0} if kind == TokenKind.END else \
                {"kind": kind, "value": p.value, "position": p.position}
            assert got == write(token), f"token {k}: got {got}, expected {write(token)}"
        done.append(True)

    run(dut, make_producer(dut, trace.writes, rng, stall=0.3), consumer)
    assert done


@pytest.mark.parametrize("block_bits", [10])
def test_cycles_per_weight(block_bits):
    """Full-rate input and output: blocks overlap (double buffer), about 1 weight/cycle."""
    nprng = np.random.default_rng(block_bits)
    count = 4 << block_bits
    weights, trace = layer_case(nprng, "laplace", count, 8, "huffman", "free", block_bits)
    dut = RepeatExpander(weight_bits=8, block_bits=block_bits, in_order=True)
    result = check_in_order(dut, weights, trace, random.Random(0))
    steady = result["cycles"] - result["first"]
    print(f"\nRepeatExpander in_order P={block_bits}: {count} weights, first weight after "
          f"{result['first']} cycles, then {steady / (count - 1):.3f} cycles/weight "
          f"({result['cycles'] / count:.3f} overall)")
    # After the first block is in, the readout never waits: the next block fills meanwhile.
    assert steady <= count + 4


def test_backpressure_holds_weight():
    """With o.ready low the same weight stays on o; nothing is lost or repeated."""
    dut = RepeatExpander(weight_bits=8, block_bits=4, in_order=True)
    tokens = [("BLOCK", -1, 5), ("MEMBER", 7, 2), ("MEMBER", 9, 4), ("END",)]
    expected = [-1, -1, 7, -1, 9]
    seen = []

    async def consumer(ctx):
        await ctx.tick().until(dut.o.valid)
        for k in range(5):
            for _ in range(3):                      # hold ready low: payload must not change
                *_, valid, value = await ctx.tick().sample(dut.o.valid, dut.o.payload.value)
                assert valid and value == expected[k]
            ctx.set(dut.o.ready, 1)
            *_, value, last = await ctx.tick().sample(dut.o.payload.value, dut.o.payload.last)
            ctx.set(dut.o.ready, 0)
            seen.append((value, last))
        assert not ctx.get(dut.o.valid)
    run(dut, make_producer(dut, tokens, random.Random(0)), consumer, max_cycles=200)
    assert seen == [(v, int(k == 4)) for k, v in enumerate(expected)]


def test_write_outside_block_is_error():
    """A write at position >= n is dropped and sets the sticky error flag."""
    dut = RepeatExpander(weight_bits=8, block_bits=4, in_order=True)
    flagged = []

    async def producer(ctx):
        await make_producer(dut, [("BLOCK", 0, 5), ("MEMBER", 3, 6)], random.Random(0))(ctx)
        await ctx.tick()
        assert ctx.get(dut.error)
        ctx.set(dut.i.valid, 1)
        for _ in range(4):
            *_, ready = await ctx.tick().sample(dut.i.ready)
            assert not ready
        flagged.append(True)
    run(dut, producer, max_cycles=100)
    assert flagged


@pytest.mark.parametrize("kwargs,exc", [
    ({"weight_bits": 17, "block_bits": 8, "in_order": True}, ValueError),
    ({"weight_bits": 8, "block_bits": 17, "in_order": True}, ValueError),
    ({"weight_bits": 8, "block_bits": 8, "in_order": 1}, TypeError),
])
def test_parameters_checked(kwargs, exc):
    with pytest.raises(exc):
        RepeatExpander(**kwargs)


def test_no_stale_writes_across_epoch_wraps():
    """600 sparse blocks (300 fills per bank, past the 8-bit epoch's wrap): a slot written in an
    earlier block never shows through; only this block's writes and its implicit value do."""
    rng = random.Random(7)
    block_bits = 4
    n = 1 << block_bits
    dut = RepeatExpander(weight_bits=8, block_bits=block_bits, in_order=True)
    tokens, weights = [], []
    for b in range(600):
        implicit = rng.randrange(-100, 100)
        # The first blocks write every slot, later ones nothing: without the scrub, the first
        # fills' tags would come round again when the epoch wraps and show through.
        positions = range(n) if b < 4 else []
        block = [implicit] * n
        tokens.append(("BLOCK", implicit, n))
        for p in sorted(positions):
            value = rng.randrange(-120, 120)
            block[p] = value
            tokens.append(("MEMBER", value, p))
        tokens.append(("END",))
        weights.extend(block)
    result = {}
    run(dut, make_producer(dut, tokens, rng),
        make_weight_consumer(dut, np.array(weights), block_bits, rng, result), max_cycles=60_000)
    assert result["cycles"] < 600 * (n + 4)
