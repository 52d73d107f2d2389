"""cocotb testbench for hw.block_parser.BlockParser (Verilog generated per parameter set).

Parameters (from sim.runner.test_params): ``weight_bits``, ``block_bits``, ``word_bits``.
Layers are made here from a seed with sw_codec; the expected tokens are
``trace_layer(...)[1].members``.
"""

import random

import cocotb
import numpy as np
from cocotb.clock import Clock
from cocotb.triggers import ClockCycles, FallingEdge

from hw.tokens import member_layout, word_layout
from sim.bfm import StreamSink, StreamSource, random_pauses, watchdog
from sim.bitstream_model import bytes_to_words
from sim.block_parser_model import block_sizes, expected_tokens, parser_stream, random_weights
from sim.runner import test_params
from sw_codec.encoder import encode_layer
from sw_codec.format import Mode, Slots, TokenKind


class TB:
    def __init__(self, dut):
        params = test_params()
        self.dut = dut
        self.bits = params["weight_bits"]
        self.block_bits = params["block_bits"]
        self.word_bits = params["word_bits"]
        self.rng = random.Random(cocotb.RANDOM_SEED)
        self.nrng = np.random.default_rng(cocotb.RANDOM_SEED)
        cocotb.start_soon(Clock(dut.clk, 10, unit="ns").start())
        self.source = StreamSource(dut, "i", dut.clk, layout=word_layout(self.word_bits))
        self.blocks = StreamSource(dut, "blocks", dut.clk)
        self.sink = StreamSink(dut, "o", dut.clk, layout=member_layout(self.bits, self.block_bits))
        dut.clear.value = 0

    def set_pauses(self, rate):
        for bfm in (self.source, self.blocks, self.sink):
            bfm.set_pause_generator(random_pauses(self.rng, rate))

    async def start_layer(self, mode, slots, layer_block_bits=None):
        """Configure the layer and restart the parser with a `clear` pulse (or the reset)."""
        dut = self.dut
        await FallingEdge(dut.clk)
        dut.mode.value = Mode.of(mode)
        dut.slots.value = Slots.of(slots)
        dut.layer_block_bits.value = layer_block_bits or self.block_bits
        dut.rst.value = 1
        dut.clear.value = 1
        await ClockCycles(dut.clk, 2)
        await FallingEdge(dut.clk)
        dut.rst.value = 0
        dut.clear.value = 0

    def send(self, stream, sizes):
        words = bytes_to_words(stream, self.word_bits)
        for n, word in enumerate(words):
            self.source.send_nowait({"data": word, "last": int(n == len(words) - 1)})
        for size in sizes:
            self.blocks.send_nowait(size)

    def token(self, item):
        kind = TokenKind(item["kind"]).name
        value = item["value"] - ((item["value"] >> (self.bits - 1)) << self.bits)
        if kind == "BLOCK":
            return (kind, value, item["index"])
        if kind == "MEMBER":
            return (kind, value, item["index"], item["first"], item["absolute"])
        return (kind,)

    async def expect(self, expected):
        for i, want in enumerate(expected):
            self.received = i
            got = self.token(await self.sink.recv())
            assert got == want, f"token {i}: got {got}, expected {want}"
        await ClockCycles(self.dut.clk, 5)
        assert self.sink.empty(), "tokens after the last block"
        assert not int(self.dut.error.value), "error flag"

    def layer(self, mode, slots, kind, count):
        q = random_weights(self.nrng, count, self.bits, kind)
        payload = encode_layer(q, self.bits, mode, slots, self.block_bits)
        stream = parser_stream(payload, count, mode, self.block_bits)
        expected = expected_tokens(payload, count, self.bits, mode, slots, self.block_bits)
        return stream, block_sizes(count, self.block_bits), expected


@cocotb.test()
@cocotb.parametrize(pause=[0.0, 0.3])
async def test_layers(dut, pause):
    """Every mode and slot counting, one after the other (restart with `clear`), bit exact."""
    tb = TB(dut)
    tb.set_pauses(pause)
    dog = watchdog(dut.clk, 60_000, "layers")
    count = 3 * (1 << tb.block_bits) + 5
    for mode, slots, kind in [("raw", "all", "uniform"), ("repeat", "all", "skewed"),
                              ("repeat", "free", "distinct"), ("distance", "all", "skewed"),
                              ("distance", "free", "constant"), ("huffman", "all", "skewed"),
                              ("huffman", "free", "skewed")]:
        stream, sizes, expected = tb.layer(mode, slots, kind, count)
        dut._log.info(f"layer {mode}/{slots}/{kind}: {len(stream)} bytes, {len(expected)} tokens")
        await tb.start_layer(mode, slots)
        tb.send(stream, sizes)
        await tb.expect(expected)
        await tb.source.wait()
    dog.cancel()


@cocotb.test()
async def test_truncated_stream_errors(dut):
    """A payload cut short raises the error flag within a bounded time; o.valid stays low.

    The cut is half way through four blocks, so that the preamble and the first block's header
    are whole (with two blocks of 4-bit weights the cut could fall before the first block token),
    and the sink never pauses: the error hides the tokens still in the output FIFO."""
    tb = TB(dut)
    tb.set_pauses(0.2)
    tb.sink.clear_pause_generator()
    stream, sizes, expected = tb.layer("huffman", "free", "skewed", 4 * (1 << tb.block_bits))
    await tb.start_layer("huffman", "free")
    tb.send(stream[: len(stream) // 2], sizes)
    dog = watchdog(dut.clk, 20 * len(stream) + 2_000, "truncated stream")
    while not int(dut.error.value):
        await FallingEdge(dut.clk)
    dog.cancel()
    for _ in range(5):
        await FallingEdge(dut.clk)
        assert int(dut.error.value) and not int(dut.o__valid.value)
    # Tokens up to the cut match; near it the parser may read the last word's zero padding.
    received = [tb.token(item) for item in tb.sink.queue]
    assert received[:1] == expected[:1], "first block header differs"
