"""cocotb testbench for sim.backend.Backend (DistanceAccumulator -> in-order RepeatExpander).

Parameters (from sim.runner.test_params): ``weight_bits``, ``block_bits``, ``scan_bits``.
Member tokens come from sw_codec traces (sim.traces); the weights out are compared with
sw_codec's decode of the same payloads.
"""

import random

import cocotb
import numpy as np
from cocotb.clock import Clock
from cocotb.triggers import ClockCycles, FallingEdge

from hw.tokens import member_layout, weight_layout
from sim.bfm import StreamSink, StreamSource, random_pauses, watchdog
from sim.runner import test_params
from sim.traces import KINDS, layer_case, member_port_fields
from sw_codec.format import MODES, POSITION_MODES, Slots


class TB:
    def __init__(self, dut):
        params = test_params()
        self.dut = dut
        self.weight_bits = params["weight_bits"]
        self.block_bits = params["block_bits"]
        self.rng = random.Random(cocotb.RANDOM_SEED)
        self.nprng = np.random.default_rng(cocotb.RANDOM_SEED)
        # Drive reset and the input payload before the first edge: on Icarus (4-state) an edge
        # with rst undriven would load X into registers and memory read ports.
        dut.rst.value = 1
        dut.i__payload.value = 0
        dut.slots.value = 0
        cocotb.start_soon(Clock(dut.clk, 10, unit="ns").start())
        wb, P = self.weight_bits, self.block_bits
        self.source = StreamSource(dut, "i", dut.clk, layout=member_layout(wb, P))
        self.sink = StreamSink(dut, "o", dut.clk, layout=weight_layout(wb))

    async def reset(self, slots):
        self.dut.slots.value = Slots.of(slots)
        self.dut.rst.value = 1
        await ClockCycles(self.dut.clk, 2)
        self.dut.rst.value = 0

    def send(self, members):
        for token in members:
            self.source.send_nowait(member_port_fields(token, self.weight_bits))

    async def expect(self, weights, block_ends):
        """Scoreboard: every weight and `last` flag in order; reports the first mismatch."""
        half = 1 << (self.weight_bits - 1)
        for k, expected in enumerate(weights):
            item = await self.sink.recv()
            value = item["value"] - 2 * half if item["value"] >= half else item["value"]
            got, want = (value, item["last"]), (int(expected), int(k in block_ends))
            assert got == want, f"weight {k}: got (value, last) {got}, expected {want}"
            assert not int(self.dut.error.value), f"error flag at weight {k}"


@cocotb.test()
@cocotb.parametrize(slots=["all", "free"], pause=[0.0, 0.4])
async def test_layers(dut, slots, pause):
    """Layers of every mode and data character back to back, random stalls and backpressure."""
    tb = TB(dut)
    await tb.reset(slots)
    tb.source.set_pause_generator(random_pauses(tb.rng, pause))
    tb.sink.set_pause_generator(random_pauses(tb.rng, pause))
    modes = MODES if slots == "all" else POSITION_MODES
    n = 1 << tb.block_bits
    weights, ends = [], set()
    for mode in modes:
        for kind in KINDS:
            count = tb.rng.randint(1, 3 * n)
            w, trace = layer_case(tb.nprng, kind, count, tb.weight_bits, mode, slots,
                                  tb.block_bits)
            start = sum(len(x) for x in weights)
            ends |= {start + min(b + n, len(w)) - 1 for b in range(0, len(w), n)}
            weights.append(w)
            tb.send(trace.members)
    weights = np.concatenate(weights)
    dog = watchdog(dut.clk, 20 * len(weights) + 1000, f"layers ({slots})")
    await tb.expect(weights, ends)
    dog.cancel()


@cocotb.test()
async def test_duplicate_position(dut):
    """slots=all: two groups claiming one slot raise the error flag; the lane stops, no hang."""
    tb = TB(dut)
    await tb.reset("all")
    n = 1 << tb.block_bits
    tb.send([("BLOCK", 0, n), ("MEMBER", 1, 3, 1, 1), ("MEMBER", 1, 5, 0, 1),
             ("MEMBER", 2, 5, 1, 1), ("MEMBER", 2, 6, 0, 1), ("END",)])
    dog = watchdog(dut.clk, 2_000, "duplicate position")
    bound = 50 + (2 << tb.block_bits)       # the expander clears its buffer after reset
    for cycle in range(bound):
        await FallingEdge(dut.clk)
        if int(dut.error.value):
            break
    assert int(dut.error.value), f"error not flagged within {bound} cycles"
    await ClockCycles(dut.clk, 10)
    assert int(dut.error.value), "error is not sticky"
    assert int(dut.i__ready.value) == 0, "input still accepted after the error"
    assert tb.sink.empty(), "weights came out of a block with an error"
    dog.cancel()
