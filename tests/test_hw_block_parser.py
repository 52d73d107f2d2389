# amaranth: UnusedElaboratable=no
"""BlockParser in the Amaranth simulator: token streams against sw_codec.decoder.trace_layer."""

import random
import zlib

import numpy as np
import pytest
from amaranth.sim import Simulator

from hw.block_parser import BlockParser, ParserError, RiceContext
from hw.tokens import Mode, Slots, TokenKind
from sim.bitstream_model import bytes_to_words
from sim.block_parser_model import (UNDETECTABLE, block_sizes, contiguous_trace, expected_tokens,
                                    pad_to_words, parser_stream, random_weights)
from sw_codec import format as fmt
from sw_codec.analysis import analyze
from sw_codec.decoder import PositionParams
from sw_codec.encoder import encode_layer, encode_positions
from sw_codec.errors import FormatError
from sw_codec.huffman import HuffmanTable, rice_context


def token_tuple(payload):
    kind = payload.kind
    if kind == TokenKind.BLOCK:
        return ("BLOCK", payload.value, payload.index)
    if kind == TokenKind.MEMBER:
        return ("MEMBER", payload.value, payload.index, payload.first, payload.absolute)
    return ("END",)


class Run:
    """One layer through a BlockParser: words in, block sizes in, tokens out."""

    def __init__(self, dut, stream, sizes, *, mode, slots, block_bits, rng=None,
                 in_stall=0.0, cmd_stall=0.0, backpressure=0.0):
        self.dut, self.sizes = dut, sizes
        self.words = bytes_to_words(stream, dut.word_bits)
        self.mode, self.slots, self.block_bits = mode, slots, block_bits
        self.rng = rng or random.Random(0)
        self.in_stall, self.cmd_stall, self.backpressure = in_stall, cmd_stall, backpressure
        self.tokens, self.cycles, self.error = [], [], None

    @staticmethod
    async def transfer(ctx, ready):
        # Not tick().until(): these testbenches run in the background and may be abandoned
        # mid-wait (after an error), and an abandoned async generator warns when collected.
        # Both ready signals are registered, so reading them before the edge is exact.
        while True:
            taken = ctx.get(ready)
            await ctx.tick()
            if taken:
                return

    async def producer(self, ctx):
        dut = self.dut
        for n, word in enumerate(self.words):
            while self.rng.random() < self.in_stall:
                await ctx.tick()
            ctx.set(dut.i.valid, 1)
            ctx.set(dut.i.payload, {"data": word, "last": n == len(self.words) - 1})
            await self.transfer(ctx, dut.i.ready)
            ctx.set(dut.i.valid, 0)

    async def commands(self, ctx):
        dut = self.dut
        for size in self.sizes:
            while self.rng.random() < self.cmd_stall:
                await ctx.tick()
            ctx.set(dut.blocks.valid, 1)
            ctx.set(dut.blocks.payload, size)
            await self.transfer(ctx, dut.blocks.ready)
            ctx.set(dut.blocks.valid, 0)

    async def consumer(self, ctx):
        dut = self.dut
        ctx.set(dut.mode, Mode(self.mode))
        ctx.set(dut.slots, Slots(self.slots))
        ctx.set(dut.layer_block_bits, self.block_bits)
        ends, cycle = 0, 0
        while ends < len(self.sizes):
            if ctx.get(dut.error):
                self.error = ctx.get(dut.error_code)
                assert not ctx.get(dut.o.valid), "o.valid while error"
                return
            ready = self.rng.random() >= self.backpressure
            ctx.set(dut.o.ready, ready)
            valid, payload = ctx.get(dut.o.valid), ctx.get(dut.o.payload)
            await ctx.tick()
            cycle += 1
            if valid and ready:
                token = token_tuple(payload)
                self.tokens.append(token)
                self.cycles.append(cycle)
                ends += token[0] == "END"
        ctx.set(dut.o.ready, 0)
        for _ in range(4):                 # no stray tokens or errors after the last block
            await ctx.tick()
            assert not ctx.get(dut.o.valid) and not ctx.get(dut.error)

    def run(self, max_cycles):
        """Simulate this layer from reset; raises if the parser neither ends nor fails in time."""
        self.max_cycles = max_cycles
        _simulation(self.dut).run(self)
        return self


class _Simulation:
    """One compiled simulation of a parser, reset to its initial state for every layer.

    Compiling a parser for the Amaranth simulator takes seconds (its Huffman decoder has a
    comparator bank per offset); simulating a small layer a fraction of that. `reset()` restores
    every signal and restarts every testbench, so each layer runs as in a fresh simulator.
    """

    def __init__(self, dut):
        self.dut, self.layer = dut, None
        self.sim = Simulator(dut)
        self.sim.add_clock(1e-6)

        async def producer(ctx):
            await self.layer.producer(ctx)

        async def commands(ctx):
            await self.layer.commands(ctx)

        async def consumer(ctx):
            await self.layer.consumer(ctx)

        async def watchdog(ctx):
            for _ in range(self.layer.max_cycles):
                await ctx.tick()
            raise AssertionError(f"watchdog: parser neither finished nor failed in "
                                 f"{self.layer.max_cycles} cycles ({len(self.layer.tokens)} tokens)")

        self.sim.add_testbench(producer, background=True)
        self.sim.add_testbench(commands, background=True)
        self.sim.add_testbench(consumer)
        self.sim.add_testbench(watchdog, background=True)

    def run(self, layer):
        if self.layer is not None:
            self.sim.reset()
        self.layer = layer
        self.sim.run()


_SIMULATIONS = {}      # BlockParser parameters -> _Simulation


def parser(**params):
    """The BlockParser with these parameters: one instance (and simulation) per configuration."""
    key = tuple(sorted(params.items()))
    if key not in _SIMULATIONS:
        _SIMULATIONS[key] = _Simulation(BlockParser(**params))
    return _SIMULATIONS[key].dut


def _simulation(dut):
    return next(s for s in _SIMULATIONS.values() if s.dut is dut)


def parse(q, bits, mode, slots, block_bits, *, word_bits=32, payload=None, **kwargs):
    payload = encode_layer(q, bits, mode, slots, block_bits) if payload is None else payload
    stream = parser_stream(payload, len(q), mode, block_bits)
    dut = parser(weight_bits=bits, block_bits=block_bits, word_bits=word_bits)
    run = Run(dut, stream, block_sizes(len(q), block_bits), mode=fmt.Mode.of(mode),
              slots=("all", "free").index(slots), block_bits=block_bits, **kwargs)
    return payload, run.run(max_cycles=40 * len(stream) + 20 * len(q) + 500)


def assert_tokens(got, expected):
    for i, (g, e) in enumerate(zip(got, expected)):
        assert g == e, f"token {i}: got {g}, expected {e}"
    assert len(got) == len(expected), f"{len(got)} tokens, expected {len(expected)}"


LAYERS = [
    # (kind, count, block_bits): last partial blocks, one-value blocks, all-distinct blocks
    ("skewed", 120, 5),
    ("constant", 20, 4),
    ("distinct", 48, 4),
    ("uniform", 40, 6),
]


@pytest.mark.parametrize("bits", [4, 5, 8, 12, 16])
@pytest.mark.parametrize("slots", ["all", "free"])
@pytest.mark.parametrize("mode", ["raw", "repeat", "distance", "huffman"])
def test_tokens_match_trace(mode, slots, bits):
    """Every mode x slots x bits, several layer shapes, random stalls and backpressure."""
    if mode == "raw" and slots == "free":
        pytest.skip("raw has no slot counting")
    seed = zlib.crc32(f"{mode}/{slots}/{bits}".encode())
    rng = np.random.default_rng(seed)
    for n, (kind, count, block_bits) in enumerate(LAYERS):
        q = random_weights(rng, count, bits, kind)
        payload, run = parse(q, bits, mode, slots, block_bits, rng=random.Random(seed + n),
                             in_stall=0.3, cmd_stall=0.3, backpressure=0.3)
        assert run.error is None, f"{kind}: error {run.error}"
        assert_tokens(run.tokens, expected_tokens(payload, count, bits, mode, slots, block_bits))


def custom_huffman_payload(q, bits, slots, block_bits, tables, rice_bias=0):
    groups = analyze(q, bits, block_bits)
    params = PositionParams(count_k=1, rice_bias=rice_bias, tables=tables)
    return encode_positions(groups, "huffman", slots, params)


CUSTOM_TABLES = {
    # lengths 1..15 (the longest code the format has) and an escape at length 15
    "max_length": [HuffmanTable.from_lengths(np.array(list(range(1, 16)) + [15]))],
    # lengths 2 and 4 only: length 1 and 3 unused
    "unused_lengths": [HuffmanTable.from_lengths(np.array([2, 2, 2, 4, 4, 4, 4]))] * 2,
    # one symbol: it is the escape, every distance is coded raw after a 1-bit code
    "single_symbol": [HuffmanTable.from_lengths(np.array([1]))],
    # eight tables (the decoder holds four) is a BAD_TABLE for this parser
}


@pytest.mark.parametrize("slots", ["all", "free"])
@pytest.mark.parametrize("name", sorted(CUSTOM_TABLES))
def test_crafted_tables(name, slots):
    rng = np.random.default_rng(7)
    q = random_weights(rng, 150, 8, "skewed")
    payload = custom_huffman_payload(q, 8, slots, 6, CUSTOM_TABLES[name], rice_bias=3)
    _, run = parse(q, 8, "huffman", slots, 6, payload=payload, rng=random.Random(1),
                   backpressure=0.2, in_stall=0.2)
    assert run.error is None
    assert_tokens(run.tokens, expected_tokens(payload, len(q), 8, "huffman", slots, 6))


def _set_bits(data, offset, value, nbits):
    """``data`` with stream bits ``offset .. offset + nbits`` (MSB first in each byte) set to ``value``."""
    bits = [(byte >> (7 - i)) & 1 for byte in data for i in range(8)]
    bits[offset:offset + nbits] = [(value >> (nbits - 1 - i)) & 1 for i in range(nbits)]
    return bytes(int("".join(map(str, bits[i:i + 8])), 2) for i in range(0, len(bits), 8))


@pytest.mark.parametrize("position", ["first", "last"])
@pytest.mark.parametrize("fault", ["repeated", "out_of_range"])
def test_bad_table_symbol_is_bad_table(position, fault):
    """A table symbol listed twice or past the alphabet fails BAD_TABLE, also as the table's last
    field (its check reaches the FSM a cycle later: the loads go through registers)."""
    rng = np.random.default_rng(9)
    q = random_weights(rng, 64, 8, "skewed")
    table = HuffmanTable.from_lengths(np.array([1, 2, 2]))          # 3 symbols, counts 1, 2
    payload = custom_huffman_payload(q, 8, "free", 5, [table])
    expected_tokens(payload, len(q), 8, "huffman", "free", 5)      # valid as made
    # count_k, rice_bias, tables_log2; symbols - 1, max length, 2 counts; then the 3 symbols
    first = 4 + 4 + 2 + 6 + 4 + 2 * 7
    offset = first + (2 * 6 if position == "last" else 0)
    other = table.symbols[1 if position == "first" else 0]
    stream = parser_stream(payload, len(q), "huffman", 5)         # the preamble leads both
    bad = _set_bits(stream, offset, other if fault == "repeated" else 3, 6)
    with pytest.raises(FormatError, match="symbol"):
        contiguous_trace(pad_to_words(bad, 32), len(q), 8, "huffman", "free", 5)
    dut = parser(weight_bits=8, block_bits=5)
    run = Run(dut, bad, block_sizes(len(q), 5), mode=fmt.Mode.of("huffman"), slots=1,
              block_bits=5).run(max_cycles=2000)
    assert run.error == ParserError.BAD_TABLE
    assert not run.tokens


def test_too_many_tables_is_bad_table():
    rng = np.random.default_rng(8)
    q = random_weights(rng, 64, 8, "skewed")
    tables = [HuffmanTable.from_lengths(np.array([1, 2, 2]))] * 8
    payload = custom_huffman_payload(q, 8, "free", 5, tables)
    expected_tokens(payload, len(q), 8, "huffman", "free", 5)      # valid for sw_codec
    _, run = parse(q, 8, "huffman", "free", 5, payload=payload)
    assert run.error == ParserError.BAD_TABLE


@pytest.mark.parametrize("num_tables", [1, 2, 4, 8])
def test_rice_context_matches_sw_codec(num_tables):
    """Every count below every domain of 5-bit blocks, every table count the capacity holds, a
    few biases: the one-cycle RiceContext gives sw_codec.huffman.rice_context's shift and table."""
    P = 5
    dut = RiceContext(block_bits=P, num_tables=num_tables)
    cases = [(d, c, bias, tl) for d in range(2, 2 ** P + 1) for c in range(1, d)
             for bias in (0, 1, 3) for tl in range((num_tables - 1).bit_length() + 1)]
    seen = []

    async def bench(ctx):
        for d, c, bias, tl in cases:
            ctx.set(dut.domain, d)
            ctx.set(dut.count, c)
            ctx.set(dut.bias, bias)
            ctx.set(dut.tables_log2, tl)
            seen.append((ctx.get(dut.k), ctx.get(dut.table)))

    sim = Simulator(dut)
    sim.add_testbench(bench)
    sim.run()
    expected = [tuple(int(v) for v in rice_context(d, c, bias, 1 << tl))
                for d, c, bias, tl in cases]
    wrong = [(case, got, want) for case, got, want in zip(cases, seen, expected) if got != want]
    assert not wrong, wrong[:5]
    assert len({t for _, t in seen}) == num_tables       # every table is chosen somewhere


@pytest.mark.parametrize("mode", ["repeat", "distance", "huffman", "raw"])
def test_member_throughput(mode, capsys):
    """No stalls, no backpressure: inside a group, one member per cycle."""
    rng = np.random.default_rng(3)
    n = 64
    q = np.where(rng.random(2 * n) < 0.5, 0, 1)                   # 2 values: ~32 members a group
    payload, run = parse(q, 8, mode, "free", 6)
    assert_tokens(run.tokens, expected_tokens(payload, len(q), 8, mode, "free", 6))
    members = [c for t, c in zip(run.tokens, run.cycles) if t[0] == "MEMBER"]
    groups = [[]]                      # raw: a block's members count as one group
    for t, c in zip(run.tokens, run.cycles):
        if groups[-1] and (t[0] == "BLOCK" or (t[0] == "MEMBER" and t[3] and mode != "raw")):
            groups.append([])
        if t[0] == "MEMBER":
            groups[-1].append(c)
    rate = min(len(g) / (g[-1] - g[0] + 1) for g in groups if len(g) >= 16)
    end = run.tokens.index(("END",))
    block_members = sum(t[0] == "MEMBER" for t in run.tokens[:end])
    block_rate = block_members / (run.cycles[end] - run.cycles[0] + 1)
    with capsys.disabled():
        print(f"\n{mode}: {rate:.3f} members/cycle inside groups, "
              f"{block_rate:.3f} members/cycle over a block (BLOCK..END), "
              f"{len(members)} members in {run.cycles[-1]} cycles total")
    assert rate >= 0.9


def corrupt(stream, rng, how):
    data = bytearray(stream)
    if how == "truncate":
        return bytes(data[:rng.randrange(1, len(data))])   # at least one word, to carry `last`
    for _ in range(rng.randint(1, 3)):
        data[rng.randrange(len(data))] ^= 1 << rng.randrange(8)
    return bytes(data)


@pytest.mark.parametrize("mode", ["repeat", "distance", "huffman"])
@pytest.mark.parametrize("slots", ["all", "free"])
def test_corrupt_streams(mode, slots, seed=0):
    """Flipped bits and truncations: the parser errs exactly when sw_codec would (for what it
    checks), else gives sw_codec's tokens; it never hangs and never emits after an error."""
    rng = random.Random(zlib.crc32(f"{mode}/{slots}/{seed}".encode()))
    nrng = np.random.default_rng(rng.randrange(2**32))
    bits, block_bits, word_bits = rng.choice([4, 8, 16]), 5, 32
    errors = 0
    for trial in range(6):
        q = random_weights(nrng, 100, bits, rng.choice(["skewed", "uniform"]))
        payload = encode_layer(q, bits, mode, slots, block_bits)
        stream = corrupt(parser_stream(payload, len(q), mode, block_bits), rng,
                         "truncate" if trial % 3 == 0 else "flip")
        try:
            expected = contiguous_trace(pad_to_words(stream, word_bits), len(q), bits, mode,
                                        slots, block_bits, num_tables=4)
            reason = None
        except FormatError as exc:
            expected, reason = None, exc.reason
        dut = parser(weight_bits=bits, block_bits=block_bits, word_bits=word_bits)
        run = Run(dut, stream, block_sizes(len(q), block_bits), mode=fmt.Mode.of(mode),
                  slots=("all", "free").index(slots), block_bits=block_bits,
                  rng=rng, backpressure=0.2).run(max_cycles=40 * len(stream) + 3000)
        if expected is not None:
            assert run.error is None, f"trial {trial}: error {run.error}, sw_codec decodes it"
            assert_tokens(run.tokens, expected)
        elif reason not in UNDETECTABLE:
            assert run.error is not None, f"trial {trial}: no error, sw_codec says {reason!r}"
            errors += 1
    assert errors >= 1, "corruptions too mild to test anything"


def test_error_codes():
    """A few hand-made faults and the cause the parser reports."""
    q = np.array([0] * 20 + [3] * 6 + [5] * 6, dtype=np.int64)      # one block of 32
    cases = {}
    payload = encode_layer(q, 8, "distance", "all", 5)
    stream = parser_stream(payload, len(q), "distance", 5)
    # preamble 1 byte, then EG(0) m-1 = 2 ('011'), implicit 8 bits, value 8 bits, ...
    cases["truncated"] = (stream[:len(stream) - 2], ParserError.TRUNCATED)
    cases["too_many"] = (stream[:1] + bytes([0b00000000, 0b01000000]) + stream[3:],
                         ParserError.TOO_MANY_VALUES)       # 33 zeros would be EG_TOO_LONG...
    cases["eg_too_long"] = (stream[:1] + bytes(6) + stream[1:], ParserError.EG_TOO_LONG)
    for name, (data, code) in cases.items():
        dut = parser(weight_bits=8, block_bits=5)
        run = Run(dut, data, [32], mode=2, slots=0, block_bits=5).run(max_cycles=2000)
        assert run.error == code, f"{name}: {run.error}"

    dut = parser(weight_bits=8, block_bits=5)
    run = Run(dut, stream, [32], mode=2, slots=0, block_bits=6).run(max_cycles=200)
    assert run.error == ParserError.BAD_BLOCK_BITS


def _two_group_block(count_k, z1, z2, n=32, value2=5, implicit=0):
    """A distance/free stream of one block of `n` (FORMAT.md "Block") with `implicit`, values
    3 and `value2` with count codes z1 and z2 (zigzag residuals against the previous count),
    members of width 0."""
    from sw_codec.bits import BitWriter

    c1 = z1 // 2 if z1 % 2 == 0 else -(z1 + 1) // 2
    w = BitWriter()
    w.write(count_k, 4)
    w.align()
    w.write_exp_golomb(3 - 1, 0)                       # m = 3
    w.write(implicit & 0xFF, 8)
    w.write(3, 8)                                      # value 3
    w.write_exp_golomb(z1, count_k)                    # k_c = count_k + bitlen(0) >> 1
    w.write(0, 5)                                      # width 0: every distance is 0
    w.write_exp_golomb(value2 - 3 - 1, 0)              # value2 > 3
    w.write_exp_golomb(z2, count_k + (max(c1, 0).bit_length() >> 1))
    w.write(0, 5)
    w.align()
    return w.getvalue()


def _zigzag(r):
    return 2 * r if r >= 0 else -2 * r - 1


@pytest.mark.parametrize("count_k", [0, 3])
def test_count_range_boundaries(count_k):
    """Counts at and around the edges of 1 <= c <= free - 1, from both signs of the residual:
    COUNT_RANGE exactly where sw_codec fails, no member of the group whose count failed (the
    check fails one edge after the count is read), the same tokens elsewhere."""
    n = 32
    cases = [(_zigzag(c1), 0) for c1 in (-1, 0, 1, n - 1, n)]        # the first group, p = 0
    for c1 in (1, 6, 20):
        free = n - c1
        cases += [(_zigzag(c1), _zigzag(c2 - c1)) for c2 in (-1, 0, 1, 2, free - 2, free - 1, free)]
    bad = 0
    for z1, z2 in cases:
        stream = _two_group_block(count_k, z1, z2, n)
        try:
            expected = contiguous_trace(pad_to_words(stream, 32), n, 8, "distance", "free", 5)
        except FormatError:
            expected = None
        dut = parser(weight_bits=8, block_bits=5)
        run = Run(dut, stream, [n], mode=2, slots=1, block_bits=5).run(max_cycles=2000)
        if expected is None:
            assert run.error == ParserError.COUNT_RANGE, (z1, z2, run.error)
            values = {t[1] for t in run.tokens if t[0] == "MEMBER"}
            c1 = z1 // 2 if z1 % 2 == 0 else -(z1 + 1) // 2
            assert values <= ({3} if 1 <= c1 <= n - 1 else set()), (z1, z2, values)
            bad += 1
        else:
            assert run.error is None, (z1, z2, run.error)
            assert_tokens(run.tokens, expected)
    assert 0 < bad < len(cases)


@pytest.mark.parametrize("value2, implicit, ok", [(127, 0, True), (128, 0, False), (300, 0, False),
                                                  (10, 10, False), (10, -1, True), (4, 4, False)])
def test_value_range_boundaries(value2, implicit, ok):
    """A value delta up to the top of the b-bit range is taken; past it, or onto the implicit
    value, it is VALUE_RANGE, as in sw_codec."""
    stream = _two_group_block(0, _zigzag(4), _zigzag(0), 32, value2=value2, implicit=implicit)
    try:
        expected = contiguous_trace(pad_to_words(stream, 32), 32, 8, "distance", "free", 5)
    except FormatError:
        expected = None
    assert (expected is not None) == ok
    dut = parser(weight_bits=8, block_bits=5)
    run = Run(dut, stream, [32], mode=2, slots=1, block_bits=5).run(max_cycles=2000)
    if ok:
        assert run.error is None
        assert_tokens(run.tokens, expected)
    else:
        assert run.error == ParserError.VALUE_RANGE


@pytest.mark.parametrize("kwargs, name", [
    ({"weight_bits": 17, "block_bits": 5}, "weight_bits"),
    ({"weight_bits": 8, "block_bits": 17}, "block_bits"),
    ({"weight_bits": 8, "block_bits": 5, "word_bits": 48}, "word_bits"),
    ({"weight_bits": 8, "block_bits": 16, "window_bits": 24}, "window_bits"),
    ({"weight_bits": 8, "block_bits": 5, "num_tables": 3}, "num_tables"),
])
def test_parameters_checked(kwargs, name):
    with pytest.raises(ValueError, match=name):
        BlockParser(**kwargs)
