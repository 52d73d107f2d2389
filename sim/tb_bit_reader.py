"""cocotb testbench for hw.bit_reader.BitReader (Verilog generated per parameter set).

Parameters (from sim.runner.test_params): ``word_bits``, ``window_bits``.
"""

import itertools
import random

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import ClockCycles, FallingEdge

from hw.tokens import word_layout
from sim.bfm import StreamSource, random_pauses, watchdog
from sim.bitstream_model import BitReaderModel, bytes_to_words
from sim.runner import test_params


class TB:
    def __init__(self, dut):
        params = test_params()
        self.dut = dut
        self.word_bits = params["word_bits"]
        self.window_bits = params["window_bits"]
        self.rng = random.Random(cocotb.RANDOM_SEED)
        cocotb.start_soon(Clock(dut.clk, 10, unit="ns").start())
        self.source = StreamSource(dut, "i", dut.clk,
                                   layout=word_layout(self.word_bits))
        dut.consume.value = 0
        dut.align.value = 0
        dut.clear.value = 0

    async def reset(self):
        self.dut.rst.value = 1
        await ClockCycles(self.dut.clk, 2)
        self.dut.rst.value = 0

    async def clear(self):
        await FallingEdge(self.dut.clk)
        self.dut.consume.value = 0
        self.dut.clear.value = 1
        await FallingEdge(self.dut.clk)
        self.dut.clear.value = 0

    def send_stream(self, data):
        words = bytes_to_words(data, self.word_bits)
        for n, word in enumerate(words):
            self.source.send_nowait({"data": word, "last": int(n == len(words) - 1)})
        return data + bytes(-len(data) % (self.word_bits // 8))

    def outputs(self):
        dut = self.dut
        return (int(dut.count.value), int(dut.window.value),
                int(dut.ended.value), int(dut.error.value))

    async def consume_all(self, padded, *, align_rate=0.0):
        """Take random amounts each cycle until the stream is drained, checking every window."""
        W, model = self.window_bits, BitReaderModel(padded)
        while True:
            await FallingEdge(self.dut.clk)
            count, window, ended, error = self.outputs()
            assert not error, f"error flag at bit {model.pos}"
            expected = model.window(count, W)
            assert window == expected, (f"at bit {model.pos} (count {count}): "
                                        f"window {window:0{W}b}, expected {expected:0{W}b}")
            if ended and model.remaining == 0:
                self.dut.consume.value = 0
                self.dut.align.value = 0
                return
            take = self.rng.randint(0, count)
            align = self.rng.random() < align_rate
            self.dut.consume.value = take
            self.dut.align.value = int(align)
            model.consume(take)
            if align:
                model.align()


@cocotb.test()
@cocotb.parametrize(stall=[0.0, 0.5])
async def test_random_streams(dut, stall):
    """Several random streams back to back (clear between), random stalls, consume and align."""
    tb = TB(dut)
    await tb.reset()
    tb.source.set_pause_generator(random_pauses(tb.rng, stall))
    dog = watchdog(dut.clk, 20_000, "random streams")
    for _ in range(4):
        padded = tb.send_stream(tb.rng.randbytes(tb.rng.randint(1, 200)))
        await tb.consume_all(padded, align_rate=0.1)
        await tb.clear()
    dog.cancel()


@cocotb.test()
async def test_full_rate(dut):
    """Words every cycle and the full window taken every cycle: count never drops."""
    tb = TB(dut)
    await tb.reset()
    W = tb.window_bits
    padded = tb.send_stream(tb.rng.randbytes(32 * tb.word_bits // 8))
    model = BitReaderModel(padded)
    dog = watchdog(dut.clk, 2_000, "full rate")
    while True:                                   # wait for the first full window
        await FallingEdge(dut.clk)
        if int(dut.count.value) == W:
            break
    while model.remaining >= W:
        count, window, _, error = tb.outputs()
        assert count == W and not error, f"bubble at bit {model.pos}: count {count}"
        assert window == model.peek(W), f"at bit {model.pos}"
        dut.consume.value = W
        model.consume(W)
        await FallingEdge(dut.clk)
    dut.consume.value = 0
    dog.cancel()


@cocotb.test()
async def test_truncated(dut):
    """Asking for more bits than a truncated stream holds sets error within a few cycles."""
    tb = TB(dut)
    await tb.reset()
    nbytes = tb.word_bits // 8 + 3
    padded = tb.send_stream(tb.rng.randbytes(nbytes))
    dog = watchdog(dut.clk, 1_000, "truncated")
    # Read all but 5 bits, then ask for 6.
    left, model = 5, BitReaderModel(padded)
    while True:
        await FallingEdge(dut.clk)
        count, _, ended, error = tb.outputs()
        assert not error
        if ended and model.remaining == left:
            break
        take = min(count, model.remaining - left, tb.rng.randint(1, tb.window_bits))
        dut.consume.value = take
        model.consume(take)
    assert count == left
    dut.consume.value = left + 1
    for cycle in itertools.count():
        await FallingEdge(dut.clk)
        dut.consume.value = 0
        if int(dut.error.value):
            break
        assert cycle < 4, "error not flagged"
    count, window, ended, error = tb.outputs()
    assert (count, window) == (left, model.window(left, tb.window_bits)), "bits were consumed"
    await ClockCycles(dut.clk, 3)
    assert int(dut.error.value), "error is not sticky"
    dog.cancel()
