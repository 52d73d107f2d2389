# amaranth: UnusedElaboratable=no
"""FreeSlotScanner (decoder v2's free-slot unit) in the Amaranth simulator, against its software
twin ``sw_codec.free_slots.FreeSlotScanner`` and sw_codec's stage traces."""

import functools
import random

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from hw.free_slot_scanner import FreeSlotScanner, tree_digits as hw_tree_digits
from hw.tokens import TokenKind, member_layout
from sim.amaranth_tb import run
from sim.traces import KINDS, layer_case, member_fields, write_fields
from sw_codec.codec import encode_integers
from sw_codec.decoder import StageTrace, trace_layer
from sw_codec.distance import DistanceAccumulator as ReferenceMapping
from sw_codec.errors import FormatError
from sw_codec.format import Slots
from sw_codec.free_slots import FreeSlotScanner as Twin, tree_digits
from sw_codec.models import bundled_model, load_model
from sw_codec.quantization import quantize

MODES = [(mode, slots) for mode in ("raw", "repeat", "distance", "huffman")
         for slots in ("all", "free") if not (mode == "raw" and slots == "free")]
#: Real layers of the issue's throughput target (issue 25): MiniLM's FFN, a YOLOv8n 3x3 conv.
REAL_LAYERS = [("minilm", "encoder.layer.0.intermediate.dense.weight"),
               ("yolov8n", "model.8.m.0.cv1.conv.weight")]


def write(token):
    fields = write_fields(token)
    return (fields["kind"], fields["value"], fields["position"]) if token[0] != "END" else ("END", 0, 0)


def rtl_scan(dut, tokens, slots, *, stall=0.0, backpressure=0.0, seed=0, max_cycles=200_000):
    """Run ``tokens`` (trace.members tuples) through ``dut``: ``(writes, cycles, error)``, the
    write tokens as ``(kind, value, position)``, the cycles from the first token offered to the
    last write taken (or to the error), and the error flag at the end. The producer stops at
    the first token not taken within 64 cycles of an error."""
    rng = random.Random(seed)
    layout = member_layout(dut.weight_bits, dut.block_bits)
    packed = [layout.const({**member_fields(t), "kind": TokenKind[t[0]]}).as_bits() for t in tokens]
    out, state = [], {"cycles": 0, "fed": False}

    async def producer(ctx):
        ctx.set(dut.slots, Slots.of(slots))
        for bits in packed:
            while rng.random() < stall:
                await ctx.tick()
            ctx.set(dut.i.valid, 1)
            ctx.set(dut.i.payload.as_value(), bits)
            waited = 0
            while True:
                *_, ready, error = await ctx.tick().sample(dut.i.ready, dut.error)
                if ready:
                    break
                waited = waited + 1 if error else 0
                if waited > 64:
                    ctx.set(dut.i.valid, 0)
                    state["fed"] = True
                    return
            ctx.set(dut.i.valid, 0)
        state["fed"] = True

    async def consumer(ctx):
        cycles = 0
        idle = 0
        while idle < 64 or not state["fed"]:
            ready = rng.random() >= backpressure
            ctx.set(dut.o.ready, ready)
            *_, valid, payload, error = await ctx.tick().sample(dut.o.valid, dut.o.payload, dut.error)
            cycles += 1
            if valid and ready:
                kind = TokenKind(payload.kind)
                out.append((kind.name, payload.value, payload.position) if kind != TokenKind.END
                           else ("END", 0, 0))
                state["cycles"], idle = cycles, 0
                if len(out) == len(tokens):
                    break
            elif state["fed"] or error:
                idle += 1
        state["error"] = ctx.get(dut.error)
    run(dut, producer, consumer, max_cycles=max_cycles)
    return out, state["cycles"], bool(state["error"])


def check(dut, trace, slots, **kw):
    writes, cycles, error = rtl_scan(dut, trace.members, slots, **kw)
    expected = [write(t) for t in trace.writes]
    for n, (got, want) in enumerate(zip(writes, expected)):
        assert got == want, f"token {n}: got {got}, expected {want}"
    assert len(writes) == len(expected) and not error
    return cycles


# -- the software twin ------------------------------------------------------------------------

@settings(max_examples=40)
@given(block_bits=st.integers(4, 8), mode_slots=st.sampled_from(MODES), kind=st.sampled_from(KINDS),
       blocks=st.floats(0.1, 3.0), seed=st.integers(0, 2**32 - 1))
def test_twin_is_the_reference_mapping(block_bits, mode_slots, kind, blocks, seed):
    """The tree descent on live claims gives sw_codec's trace (the DistanceAccumulator's mapping)."""
    mode, slots = mode_slots
    rng = np.random.default_rng(seed)
    _, trace = layer_case(rng, kind, max(1, int(blocks * (1 << block_bits))), 8, mode, slots, block_bits)
    assert Twin(block_bits, slots).run(trace.members) == trace.writes


@settings(max_examples=60)
@given(block_bits=st.integers(4, 7), slots=st.sampled_from(["all", "free"]), data=st.data())
def test_twin_agrees_on_random_groups(block_bits, slots, data):
    """Random groups (absolute indices, any spacing, including bad ones): the twin and
    ``sw_codec.distance`` place the same slots and reject the same groups."""
    n = data.draw(st.integers(1, 1 << block_bits))
    reference, twin = ReferenceMapping(n, slots), Twin(block_bits, slots)
    tokens = [("BLOCK", 0, n)]
    expected = [("BLOCK", 0, n)]
    for value in range(data.draw(st.integers(1, 6))):
        indices = sorted(data.draw(st.sets(st.integers(0, n + 1), min_size=1, max_size=n // 2 + 1)))
        tokens += [("MEMBER", value, i, int(j == 0), 1) for j, i in enumerate(indices)]
        try:
            placed = reference.place(_Reader(), np.array(indices))
        except FormatError:
            with pytest.raises(FormatError):
                twin.run(tokens)
            return
        expected += [("MEMBER", value, int(p)) for p in placed]
    assert twin.run(tokens) == expected


class _Reader:
    def error(self, message):
        return FormatError(message)


def test_tree_digits():
    """The twin builds the hardware's tree: rows of 4 claim bits at the bottom, binary levels
    above (or 2**inner_bits children, the top taking the remainder)."""
    assert tree_digits(4) == [1, 1, 2] and tree_digits(12) == [1] * 10 + [2]
    assert tree_digits(12, 3, 3) == [3, 3, 3, 3] and tree_digits(16, 3, 3) == [1, 3, 3, 3, 3, 3]
    for p in range(4, 17):
        for inner in (1, 2, 3):
            for bottom in (1, 2, 3):
                digits = tree_digits(p, inner, bottom)
                assert hw_tree_digits(p, inner, bottom) == digits and sum(digits) == p


@pytest.mark.parametrize("inner_bits,bottom_bits", [(2, 2), (3, 3), (1, 1), (2, 3)])
def test_other_trees(inner_bits, bottom_bits):
    """Wider nodes (4 or 8 children) and other bottom rows: the same writes."""
    rng = random.Random(inner_bits * 10 + bottom_bits)
    nprng = np.random.default_rng(rng.randrange(1 << 32))
    block_bits = 7
    for slots in ("all", "free"):
        trace = StageTrace([], [])
        for kind in KINDS:
            _, layer = layer_case(nprng, kind, rng.randint(1, 2 << block_bits), 8, "huffman", slots, block_bits)
            trace.members += layer.members
            trace.writes += layer.writes
        assert Twin(block_bits, slots, inner_bits, bottom_bits).run(trace.members) == trace.writes
        dut = FreeSlotScanner(weight_bits=8, block_bits=block_bits, inner_bits=inner_bits,
                              bottom_bits=bottom_bits)
        check(dut, trace, slots, stall=0.2, backpressure=0.2, seed=1)


# -- the hardware against the twin ------------------------------------------------------------

@pytest.mark.parametrize("mode,slots", MODES)
def test_trace(mode, slots):
    """Every mode and weight character, P = 4..7 (2 to 3 levels), partial last blocks, random
    stalls and backpressure: the write stream equals the trace exactly."""
    rng = random.Random(f"{mode}{slots}")
    nprng = np.random.default_rng(rng.randrange(1 << 32))
    block_bits = rng.choice([4, 5, 6, 7])
    bits = rng.choice([3, 8, 16])
    dut = FreeSlotScanner(weight_bits=bits, block_bits=block_bits)
    trace = StageTrace([], [])
    for kind in KINDS:                  # one simulation: the layers back to back
        _, layer = layer_case(nprng, kind, rng.randint(1, 3 << block_bits), bits, mode, slots, block_bits)
        trace.members += layer.members
        trace.writes += layer.writes
    assert Twin(block_bits, slots).run(trace.members) == trace.writes
    check(dut, trace, slots, stall=0.3, backpressure=0.3, seed=rng.randrange(1 << 16))


@settings(max_examples=12)
@given(block_bits=st.integers(4, 10), slots=st.sampled_from(["all", "free"]),
       values=st.integers(1, 40), seed=st.integers(0, 2**32 - 1))
def test_random_blocks(block_bits, slots, values, seed):
    """Random blocks (any P up to 4 levels, any number of distinct values), full rate: the write
    stream equals the twin's, in exactly the twin's cycle model (one token per cycle)."""
    rng = np.random.default_rng(seed)
    count = int(rng.integers(1, 2 << block_bits))
    q = rng.integers(0, values, count) - values // 2
    enc = encode_integers(q, 8, "huffman", slots, block_bits)
    _, trace = trace_layer(enc.payload, count, 8, "huffman", slots, block_bits)
    twin = Twin(block_bits, slots)
    assert twin.run(trace.members) == trace.writes
    cycles = check(FreeSlotScanner(weight_bits=8, block_bits=block_bits), trace, slots)
    assert cycles == twin.cycles(trace.members)


@functools.cache
def real_trace(model, layer, block_bits, blocks):
    q = quantize(load_model(bundled_model(model))[layer], 8, "channel")[0].ravel()[: blocks << block_bits]
    enc = encode_integers(q, 8, "huffman", "free", block_bits)
    weights, trace = trace_layer(enc.payload, q.size, 8, "huffman", "free", block_bits)
    assert np.array_equal(weights, q)
    return trace


@pytest.mark.parametrize("model,layer", REAL_LAYERS, ids=[m for m, _ in REAL_LAYERS])
def test_real_layer_cycles(model, layer):
    """A block of 2**12 of a real int8 per-channel layer, huffman/free (about 200 groups per
    block): bit-exact, one token per cycle, and the cycles are the twin's model."""
    block_bits = 12
    trace = real_trace(model, layer, block_bits, 1)
    twin = Twin(block_bits, "free")
    assert twin.run(trace.members) == trace.writes
    cycles = check(FreeSlotScanner(weight_bits=8, block_bits=block_bits), trace, "free")
    weights = 1 << block_bits
    members = sum(1 for t in trace.members if t[0] == "MEMBER")
    groups = sum(1 for t in trace.members if t[0] == "MEMBER" and t[3])
    print(f"\nFreeSlotScanner P={block_bits} {model} {layer} int8 channel huffman/free: {weights} weights, "
          f"{members} members, {groups} groups: {cycles} cycles (model {twin.cycles(trace.members)}), "
          f"{cycles / weights:.4f} cycles/weight, {members / weights:.4f} members/weight")
    assert cycles == twin.cycles(trace.members)
    assert cycles / weights <= members / weights + 0.05


def test_real_layer_backpressure():
    """Part of a real block under random stalls and backpressure (the pipeline holds, nothing is
    lost)."""
    trace = real_trace(*REAL_LAYERS[1], 12, 1)
    end = len(trace.members) // 2
    trace = StageTrace(trace.members[:end] + [("END",)], trace.writes[:end] + [("END",)])
    check(FreeSlotScanner(weight_bits=8, block_bits=12), trace, "free", stall=0.2, backpressure=0.4, seed=3)


def test_stale_rows_across_blocks():
    """Claims of a block never leak into the next: rows a block did not touch read as free,
    whatever an earlier block left in them (no clearing pass)."""
    rng = random.Random(5)
    for slots in ("all", "free"):
        tokens = []
        for k in range(30):
            n = rng.choice([64, 64, 37, 1])
            ones = sorted(rng.sample(range(n), max(1, n // (2 + k % 3))))
            twos = [p for p in range(n) if p not in ones][:: 3 + k % 2]
            free = [p for p in range(n) if p not in ones]
            indices = twos if slots == "all" else [free.index(p) for p in twos]
            tokens += [("BLOCK", 0, n)] + [("MEMBER", 1, i, int(j == 0), 1) for j, i in enumerate(ones)]
            tokens += [("MEMBER", 2, i, int(j == 0), 1) for j, i in enumerate(indices)] + [("END",)]
        expected = Twin(6, slots).run(tokens)
        assert expected == ReferenceTrace(tokens, 6, slots)
        dut = FreeSlotScanner(weight_bits=8, block_bits=6)
        check(dut, StageTrace(tokens, expected), slots, stall=0.1, backpressure=0.2, seed=7)


def ReferenceTrace(tokens, block_bits, slots):
    """The write stream of absolute-index tokens by ``sw_codec.distance`` (one group at a time)."""
    out, groups = [], []
    for t in tokens + [("END",)]:
        if t[0] == "MEMBER" and not t[3]:
            groups[-1].append(t)
            continue
        for group in groups:
            placed = mapping.place(_Reader(), np.array([g[2] for g in group]))
            out += [("MEMBER", g[1], int(p)) for g, p in zip(group, placed)]
        groups = []
        if t[0] == "MEMBER":
            groups = [[t]]
        elif t[0] == "BLOCK":
            mapping = ReferenceMapping(t[2], slots)
            out.append(t)
        else:
            out.append(t)
    return out[:-1]


# -- bad input: a sticky error, no write outside the block, no hang ---------------------------

ERRORS = {
    "all-outside": ("all", [("BLOCK", 0, 10), ("MEMBER", 2, 12, 1, 1)], 1),
    "all-duplicate": ("all", [("BLOCK", 0, 32), ("MEMBER", 3, 4, 1, 0), ("MEMBER", 3, 9, 0, 0),
                              ("MEMBER", 5, 13, 1, 0), ("MEMBER", 5, 0, 0, 0)], 4),
    "all-duplicate-back-to-back": ("all", [("BLOCK", 0, 16), ("MEMBER", 3, 7, 1, 1),
                                           ("MEMBER", 5, 7, 1, 1)], 2),
    "not-increasing": ("all", [("BLOCK", 0, 16), ("MEMBER", 2, 5, 1, 1), ("MEMBER", 2, 5, 0, 1)], 2),
    "free-past-domain": ("free", [("BLOCK", 0, 64), ("MEMBER", 2, 70, 1, 0)], 1),
    "free-past-earlier-groups": ("free", [("BLOCK", 0, 20), ("MEMBER", 2, 19, 1, 0),
                                          ("MEMBER", 3, 19, 1, 0)], 2),
    "free-too-many-members": ("free", [("BLOCK", 0, 4)] + [("MEMBER", 1, 0, int(j == 0), 0)
                                                             for j in range(5)], 5),
    "free-distance-overflow": ("free", [("BLOCK", 0, 16), ("MEMBER", 1, 3, 1, 0),
                                        ("MEMBER", 1, 31, 0, 0)], 2),
    "member-outside-block": ("free", [("MEMBER", 2, 1, 1, 0)], 0),
    "end-outside-block": ("free", [("END",)], 0),
    "block-inside-block": ("free", [("BLOCK", 0, 16), ("BLOCK", 0, 16)], 1),
    "empty-block": ("all", [("BLOCK", 0, 0)], 0),
    "block-too-large": ("all", [("BLOCK", 0, 65)], 0),
    "first-member-without-first": ("free", [("BLOCK", 0, 16), ("MEMBER", 1, 2, 0, 0)], 1),
}


@pytest.mark.parametrize("name", ERRORS)
def test_errors(name):
    """Malformed member streams: the twin raises; the hardware raises its sticky flag within a
    bounded number of cycles, emits exactly the tokens before the bad one, takes nothing more."""
    slots, tokens, good = ERRORS[name]
    with pytest.raises(FormatError):
        Twin(6, slots).run(tokens)
    expected = [write(t) for t in Twin(6, slots).run(tokens[:good])]
    dut = FreeSlotScanner(weight_bits=8, block_bits=6)
    tail = [("MEMBER", 1, 0, 1, 1), ("END",), ("BLOCK", 0, 8)]     # offered after: never taken
    writes, _, error = rtl_scan(dut, tokens + tail, slots, backpressure=0.3, seed=1, max_cycles=2000)
    assert error
    assert writes == expected


def test_parameters_checked():
    with pytest.raises(ValueError, match="block_bits"):
        FreeSlotScanner(weight_bits=8, block_bits=3)
    with pytest.raises(ValueError, match="weight_bits"):
        FreeSlotScanner(weight_bits=17, block_bits=8)
    assert FreeSlotScanner(weight_bits=8, block_bits=12).latency == 2 * len(tree_digits(12))
