"""cocotb check of sim.runner's simulator setup: combinational logic is settled at time 0.

The design (``tests/test_cocotb_runner.py``) has a register that keeps its reset value and a
priority encoder of it written as an Amaranth ``If`` chain, which Yosys emits as an
``always @*`` block. Nothing ever changes the block's inputs, so it only has a value if the
simulator runs it at time 0 (it did not on Icarus in SystemVerilog mode: X forever).
"""

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import ClockCycles, ReadOnly


@cocotb.test()
async def test_encoder_settled(dut):
    """The encoder of a register still at its reset value reads 0, not X."""
    cocotb.start_soon(Clock(dut.clk, 10, unit="ns").start())
    dut.rst.value = 0
    dut.load.value = 0
    dut.d.value = 0
    await ClockCycles(dut.clk, 3)
    await ReadOnly()
    assert dut.length.value.is_resolvable, f"length is {dut.length.value} (never evaluated)"
    assert int(dut.length.value) == 0
