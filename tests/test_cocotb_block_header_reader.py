"""BlockHeaderReader as Verilog under cocotb (sim/tb_block_header_reader.py), on Verilator and
Icarus."""

import pytest

from sim.runner import available_simulators, generate_verilog, run_cocotb, top_name_for


SIMULATORS = [
    "verilator",
    pytest.param("icarus", marks=pytest.mark.skipif(
        "icarus" not in available_simulators(),
        reason="Icarus Verilog not installed (iverilog/vvp not on PATH)")),
]


@pytest.mark.parametrize("params", [{"weight_bits": 8, "block_bits": 12, "num_tables": 4}],
                         ids=lambda p: f"b{p['weight_bits']}_P{p['block_bits']}_T{p['num_tables']}")
@pytest.mark.parametrize("sim", SIMULATORS)
def test_block_header_reader(sim, params):
    from hw.block_header_reader import BlockHeaderReader

    top = top_name_for("block_header_reader", params)
    verilog = generate_verilog(BlockHeaderReader(**params), top)
    run_cocotb(sim=sim, top_name=top, verilog=verilog, test_module="sim.tb_block_header_reader",
               params=params)
