"""cocotb testbench for hw.block_header_reader.BlockHeaderReader.

Parameters (from sim.runner.test_params): ``weight_bits``, ``block_bits``, ``num_tables``. Blocks
come from format-2 payloads (``sw_codec.encoder.encode_layer``): a real layer (MiniLM FFN, int8 per
channel, huffman/free, two blocks) and random layers; the tokens out are compared in order with
``sw_codec.decoder.read_block_header``'s (``sim.block_headers``).
"""

import random

import cocotb
import numpy as np
from cocotb.clock import Clock
from cocotb.triggers import ClockCycles, FallingEdge

from hw.block_header_reader import group_layout, start_layout
from sim.bfm import StreamSink, StreamSource, random_pauses, watchdog
from sim.block_headers import layer_blocks
from sim.runner import test_params
from sw_codec.encoder import encode_layer
from sw_codec.format import Slots


class TB:
    def __init__(self, dut):
        params = test_params()
        self.dut = dut
        self.bits, self.P, self.Tc = params["weight_bits"], params["block_bits"], params["num_tables"]
        self.rng = random.Random(cocotb.RANDOM_SEED)
        self.nprng = np.random.default_rng(cocotb.RANDOM_SEED)
        dut.rst.value = 1
        dut.start__payload.value = 0
        dut.words__payload.value = 0
        cocotb.start_soon(Clock(dut.clk, 10, unit="ns").start())
        self.starts = StreamSource(dut, "start", dut.clk, layout=start_layout(self.P))
        self.words = StreamSource(dut, "words", dut.clk)
        self.sink = StreamSink(dut, "o", dut.clk, layout=group_layout(self.bits, self.P, self.Tc))

    async def reset(self, params, slots):
        d = self.dut
        d.count_k.value = params.count_k
        d.rice_bias.value = params.rice_bias
        d.tables_log2.value = len(params.tables).bit_length() - 1
        d.slots.value = Slots.of(slots)
        d.table_empty.value = sum(1 << t for t, table in enumerate(params.tables) if not table.symbols)
        d.rst.value = 1
        await ClockCycles(d.clk, 2)
        d.rst.value = 0

    def send(self, blocks):
        for n, words, _ in blocks:
            self.starts.send_nowait({"n": n, "length": len(words)})
            for word in words:
                self.words.send_nowait(word)

    async def expect(self, tokens):
        """Scoreboard: every token in order; reports the first mismatch."""
        half = 1 << (self.bits - 1)
        for k, want in enumerate(tokens):
            item = await self.sink.recv()
            value = item["value"] - 2 * half if item["value"] >= half else item["value"]
            got = (item["block"], value, item["count"], item["domain"], item["table"], item["shift"],
                   item["escape_bits"], item["last"])
            assert got == tuple(want), f"token {k}: got {got}, expected {tuple(want)}"
            assert not int(self.dut.error.value), f"error flag at token {k}"


async def run_layer(dut, q, slots, pause):
    tb = TB(dut)
    payload = encode_layer(q, tb.bits, "huffman", slots, tb.P, block_format=2)
    params, blocks = layer_blocks(payload, q.size, tb.bits, slots, tb.P)
    await tb.reset(params, slots)
    for bfm in (tb.starts, tb.words, tb.sink):
        bfm.set_pause_generator(random_pauses(tb.rng, pause))
    tokens = [t for _, _, block in blocks for t in block]
    await FallingEdge(dut.clk)
    start = cocotb.utils.get_sim_time("ns")
    tb.send(blocks)
    dog = watchdog(dut.clk, 40 * len(tokens) + 20 * sum(len(w) for _, w, _ in blocks) + 1000, "layer")
    await tb.expect(tokens)
    cycles = round((cocotb.utils.get_sim_time("ns") - start) / 10)
    dog.cancel()
    return tokens, cycles


@cocotb.test()
async def test_real_layer(dut):
    """Two blocks of MiniLM's FFN (int8 per channel, huffman/free) at full rate: bit-exact."""
    from sw_codec.models import bundled_model, load_model
    from sw_codec.quantization import quantize
    P = test_params()["block_bits"]
    layer = load_model(bundled_model("minilm"))["encoder.layer.0.intermediate.dense.weight"]
    q = quantize(layer, 8, "channel")[0].ravel()[: 2 << P]
    tokens, cycles = await run_layer(dut, q, "free", 0.0)
    groups = sum(1 for t in tokens if not t[0])
    dut._log.info(f"real layer: {groups} groups in {cycles} cycles ({cycles / groups:.2f} per group)")


@cocotb.test()
@cocotb.parametrize(slots=["all", "free"], pause=[0.0, 0.4])
async def test_random_layers(dut, slots, pause):
    """A random layer (Laplace integers, three blocks) with random stalls and backpressure."""
    tb_rng = np.random.default_rng(cocotb.RANDOM_SEED)
    P = test_params()["block_bits"]
    hi = (1 << 7) - 1
    q = np.clip(np.round(tb_rng.laplace(0, 6.0, 3 << P)), -hi, hi).astype(np.int64)
    await run_layer(dut, q, slots, pause)


@cocotb.test()
async def test_bad_padding(dut):
    """Non-zero padding: the sticky error, no token of the block, nothing more taken."""
    tb = TB(dut)
    q = np.zeros(1 << tb.P, np.int64)
    q[3] = 5
    payload = encode_layer(q, tb.bits, "huffman", "free", tb.P, block_format=2)
    params, blocks = layer_blocks(payload, q.size, tb.bits, "free", tb.P)
    (n, words, tokens), = blocks
    assert words[-1] & 1 == 0              # the header section ends in padding bits
    await tb.reset(params, "free")
    tb.send([(n, words[:-1] + [words[-1] | 1], None), (n, words, None)])
    dog = watchdog(dut.clk, 2_000, "bad padding")
    for _ in range(200):
        await FallingEdge(dut.clk)
        if int(dut.error.value):
            break
    assert int(dut.error.value), "error not flagged"
    await ClockCycles(dut.clk, 20)
    assert int(dut.error.value), "error is not sticky"
    assert int(dut.start__ready.value) == 0 and int(dut.words__ready.value) == 0
    got = []
    while not tb.sink.empty():
        got.append(await tb.sink.recv())
    assert [item["block"] for item in got] == [1] and not got[0]["last"], got
    dog.cancel()
