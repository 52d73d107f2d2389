"""sim.runner's simulator setup, on Verilator and Icarus (cocotb module sim/tb_time0.py)."""

import pytest
from amaranth.hdl import Module, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from sim.runner import available_simulators, generate_verilog, run_cocotb


class HeldEncoder(wiring.Component):
    """``length = bitlen(value)`` of a register loaded only on ``load``."""

    load: In(1)
    d: In(4)
    length: Out(3)

    def elaborate(self, platform):
        m = Module()
        value = Signal(4)
        with m.If(self.load):
            m.d.sync += value.eq(self.d)
        for i in range(len(value)):
            with m.If(value[i]):
                m.d.comb += self.length.eq(i + 1)
        return m


SIMULATORS = [
    "verilator",
    pytest.param("icarus", marks=pytest.mark.skipif(
        "icarus" not in available_simulators(),
        reason="Icarus Verilog not installed (iverilog/vvp not on PATH)")),
]


@pytest.mark.parametrize("sim", SIMULATORS)
def test_combinational_logic_settled_at_time_0(sim):
    top = "runner_held_encoder"
    verilog = generate_verilog(HeldEncoder(), top)
    assert "always @*" in verilog.read_text()     # the construct this test is about
    run_cocotb(sim=sim, top_name=top, verilog=verilog, test_module="sim.tb_time0")
