"""cocotb testbench for hw.free_slot_scanner.FreeSlotScanner.

Parameters (from sim.runner.test_params): ``weight_bits``, ``block_bits``, ``real`` (also decode a
block of a real layer: YOLOv8n, int8 per channel, huffman/free), ``layer_weights`` (the random
layers' largest size; default two blocks). Member tokens come from sw_codec
traces; the write tokens out are compared in order with the software twin's
(``sw_codec.free_slots.FreeSlotScanner``), which the traces' own writes confirm.
"""

import random

import cocotb
import numpy as np
from cocotb.clock import Clock
from cocotb.triggers import ClockCycles, FallingEdge

from hw.tokens import member_layout, write_layout
from sim.bfm import StreamSink, StreamSource, random_pauses, watchdog
from sim.runner import test_params
from sim.traces import KINDS, layer_case, member_port_fields
from sw_codec.codec import encode_integers
from sw_codec.decoder import trace_layer
from sw_codec.format import POSITION_MODES, MODES, Slots, TokenKind
from sw_codec.free_slots import FreeSlotScanner as Twin


class TB:
    def __init__(self, dut):
        params = test_params()
        self.dut = dut
        self.weight_bits = params["weight_bits"]
        self.block_bits = params["block_bits"]
        self.real = params.get("real", False)
        # weights per random layer (default: up to two blocks)
        self.layer_weights = params.get("layer_weights", 2 << self.block_bits)
        self.rng = random.Random(cocotb.RANDOM_SEED)
        self.nprng = np.random.default_rng(cocotb.RANDOM_SEED)
        dut.rst.value = 1
        dut.i__payload.value = 0
        dut.slots.value = 0
        cocotb.start_soon(Clock(dut.clk, 10, unit="ns").start())
        wb, P = self.weight_bits, self.block_bits
        self.source = StreamSource(dut, "i", dut.clk, layout=member_layout(wb, P))
        self.sink = StreamSink(dut, "o", dut.clk, layout=write_layout(wb, P))

    async def reset(self, slots):
        self.dut.slots.value = Slots.of(slots)
        self.dut.rst.value = 1
        await ClockCycles(self.dut.clk, 2)
        self.dut.rst.value = 0

    def send(self, members):
        for token in members:
            self.source.send_nowait(member_port_fields(token, self.weight_bits))

    async def expect(self, writes):
        """Scoreboard: every write token in order; reports the first mismatch."""
        half = 1 << (self.weight_bits - 1)
        for k, want in enumerate(writes):
            item = await self.sink.recv()
            kind = TokenKind(item["kind"]).name
            value = item["value"] - 2 * half if item["value"] >= half else item["value"]
            got = ("END",) if kind == "END" else (kind, value, item["position"])
            assert got == tuple(want), f"write {k}: got {got}, expected {tuple(want)}"
            assert not int(self.dut.error.value), f"error flag at write {k}"


@cocotb.test()
@cocotb.parametrize(slots=["all", "free"], pause=[0.0, 0.4])
async def test_layers(dut, slots, pause):
    """Layers of every mode and data character back to back, random stalls and backpressure."""
    tb = TB(dut)
    await tb.reset(slots)
    tb.source.set_pause_generator(random_pauses(tb.rng, pause))
    tb.sink.set_pause_generator(random_pauses(tb.rng, pause))
    modes = MODES if slots == "all" else POSITION_MODES
    members = []
    for mode in modes:
        for kind in KINDS:
            _, trace = layer_case(tb.nprng, kind, tb.rng.randint(1, tb.layer_weights), tb.weight_bits,
                                  mode, slots, tb.block_bits)
            members += trace.members
    writes = Twin(tb.block_bits, slots).run(members)
    tb.send(members)
    dog = watchdog(dut.clk, 10 * len(members) + 1000, f"layers ({slots})")
    await tb.expect(writes)
    dog.cancel()


@cocotb.test()
async def test_real_layer(dut):
    """Two blocks of a real layer (YOLOv8n conv, int8 per channel, huffman/free) at full rate:
    bit-exact, and one token per cycle (the twin's cycle model)."""
    tb = TB(dut)
    if not tb.real:
        return
    from sw_codec.models import bundled_model, load_model
    from sw_codec.quantization import quantize
    await tb.reset("free")
    layer = load_model(bundled_model("yolov8n"))["model.8.m.0.cv1.conv.weight"]
    q = quantize(layer, 8, "channel")[0].ravel()[: 2 << tb.block_bits]
    enc = encode_integers(q, 8, "huffman", "free", tb.block_bits)
    _, trace = trace_layer(enc.payload, q.size, 8, "huffman", "free", tb.block_bits)
    twin = Twin(tb.block_bits, "free")
    assert twin.run(trace.members) == trace.writes
    await FallingEdge(dut.clk)
    start = cocotb.utils.get_sim_time("ns")
    tb.send(trace.members)
    dog = watchdog(dut.clk, 4 * len(trace.members) + 1000, "real layer")
    await tb.expect(trace.writes)
    cycles = round((cocotb.utils.get_sim_time("ns") - start) / 10)
    dog.cancel()
    dut._log.info(f"real block: {len(trace.members)} tokens in {cycles} cycles "
                  f"(model {twin.cycles(trace.members)})")
    assert abs(cycles - twin.cycles(trace.members)) <= 2


@cocotb.test()
async def test_duplicate_position(dut):
    """slots=all: two groups claiming one slot raise the sticky error; nothing more is taken."""
    tb = TB(dut)
    await tb.reset("all")
    n = 1 << tb.block_bits
    tb.send([("BLOCK", 0, n), ("MEMBER", 1, 3, 1, 1), ("MEMBER", 1, 5, 0, 1),
             ("MEMBER", 2, 5, 1, 1), ("MEMBER", 2, 6, 0, 1), ("END",), ("BLOCK", 0, n)])
    dog = watchdog(dut.clk, 2_000, "duplicate position")
    for _ in range(100):
        await FallingEdge(dut.clk)
        if int(dut.error.value):
            break
    assert int(dut.error.value), "error not flagged"
    await ClockCycles(dut.clk, 10)
    assert int(dut.error.value), "error is not sticky"
    assert int(dut.i__ready.value) == 0, "input still accepted after the error"
    got = []
    while not tb.sink.empty():
        item = await tb.sink.recv()
        got.append((TokenKind(item["kind"]).name, item["position"]))
    assert got == [("BLOCK", n), ("MEMBER", 3), ("MEMBER", 5)], got
    dog.cancel()
