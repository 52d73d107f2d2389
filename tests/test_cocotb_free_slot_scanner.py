"""FreeSlotScanner as Verilog under cocotb (sim/tb_free_slot_scanner.py), on Verilator and
Icarus."""

import pytest

from sim.runner import available_simulators, generate_verilog, run_cocotb, top_name_for


SIMULATORS = [
    "verilator",
    pytest.param("icarus", marks=pytest.mark.skipif(
        "icarus" not in available_simulators(),
        reason="Icarus Verilog not installed (iverilog/vvp not on PATH)")),
]


@pytest.mark.parametrize("params", [
    {"weight_bits": 8, "block_bits": 8, "real": True},
], ids=lambda p: f"b{p['weight_bits']}_P{p['block_bits']}")
@pytest.mark.parametrize("sim", SIMULATORS)
def test_free_slot_scanner(sim, params):
    from hw.free_slot_scanner import FreeSlotScanner

    top = top_name_for("free_slot_scanner", params)
    rtl = {k: v for k, v in params.items() if k in ("weight_bits", "block_bits")}
    verilog = generate_verilog(FreeSlotScanner(**rtl), top)
    run_cocotb(sim=sim, top_name=top, verilog=verilog, test_module="sim.tb_free_slot_scanner",
               params=params)
