"""BlockParser as Verilog under cocotb (sim/tb_block_parser.py), on Verilator and Icarus."""

import pytest

from sim.runner import available_simulators, generate_verilog, run_cocotb, top_name_for


SIMULATORS = [
    "verilator",
    pytest.param("icarus", marks=[
        pytest.mark.skipif("icarus" not in available_simulators(),
                           reason="Icarus Verilog not installed (iverilog/vvp not on PATH)"),
    ]),
]

PARAMS = [
    {"weight_bits": 8, "block_bits": 6, "word_bits": 32},
    {"weight_bits": 4, "block_bits": 5, "word_bits": 64},
]


@pytest.mark.parametrize("params", PARAMS, ids=lambda p: "-".join(map(str, p.values())))
@pytest.mark.parametrize("sim", SIMULATORS)
def test_block_parser(sim, params):
    from hw.block_parser import BlockParser

    top = top_name_for("block_parser", params)
    verilog = generate_verilog(BlockParser(**params), top)
    run_cocotb(sim=sim, top_name=top, verilog=verilog, test_module="sim.tb_block_parser",
               params=params)
