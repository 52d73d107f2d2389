"""BitReader as Verilog under cocotb (sim/tb_bit_reader.py), on Verilator and Icarus."""

import pytest

from sim.runner import available_simulators, generate_verilog, run_cocotb, top_name_for


SIMULATORS = [
    "verilator",
    pytest.param("icarus", marks=pytest.mark.skipif(
        "icarus" not in available_simulators(),
        reason="Icarus Verilog not installed (iverilog/vvp not on PATH)")),
]


@pytest.mark.parametrize("word_bits", [32, 64, 128])
@pytest.mark.parametrize("sim", SIMULATORS)
def test_bit_reader(sim, word_bits):
    from hw.bit_reader import BitReader

    params = {"word_bits": word_bits, "window_bits": 32}
    top = top_name_for("bit_reader", params)
    verilog = generate_verilog(BitReader(**params), top)
    run_cocotb(sim=sim, top_name=top, verilog=verilog, test_module="sim.tb_bit_reader",
               params=params)
