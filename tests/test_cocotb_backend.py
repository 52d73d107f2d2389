"""Back end (DistanceAccumulator -> RepeatExpander in order) as Verilog under cocotb
(sim/tb_backend.py), on Verilator and Icarus."""

import pytest

from sim.runner import available_simulators, generate_verilog, run_cocotb, top_name_for


SIMULATORS = [
    "verilator",
    pytest.param("icarus", marks=pytest.mark.skipif(
        "icarus" not in available_simulators(),
        reason="Icarus Verilog not installed (iverilog/vvp not on PATH)")),
]


@pytest.mark.parametrize("params", [
    {"weight_bits": 8, "block_bits": 6, "scan_bits": 16},
    {"weight_bits": 4, "block_bits": 5, "scan_bits": 64},
    {"weight_bits": 16, "block_bits": 4, "scan_bits": 8},
], ids=lambda p: f"b{p['weight_bits']}_P{p['block_bits']}_w{p['scan_bits']}")
@pytest.mark.parametrize("sim", SIMULATORS)
def test_backend(sim, params):
    from sim.backend import Backend

    top = top_name_for("backend", params)
    verilog = generate_verilog(Backend(**params), top)
    run_cocotb(sim=sim, top_name=top, verilog=verilog, test_module="sim.tb_backend",
               params=params)
