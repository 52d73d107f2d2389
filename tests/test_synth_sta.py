"""synth/sta.py: every endpoint's worst path from a routed design's SDF (nextpnr --sdf).

A hand-written SDF in nextpnr's layout: two registers in a loop through a LUT, a pad input that
must not count (nextpnr reports I/O paths as <async>), escaped hierarchical names. The placed
comparison with nextpnr's own Fmax is in tests/test_synth.py.
"""

import pytest

from synth.sta import endpoint_timing, main, module_of, parse_sdf, register_of, summarize, worst_path

SDF = r"""(DELAYFILE
  (SDFVERSION "3.0")
  (DESIGN "top")
  (VENDOR "nextpnr")
  (DIVIDER /)
  (TIMESCALE 1ps)
  (CELL
    (CELLTYPE "top")
    (INSTANCE )
    (DELAY
      (ABSOLUTE
        (INTERCONNECT \$gbuf\$clk/CLKO core\.a_TRELLIS_FF_Q/CLK (0:0:0) (0:0:0))
        (INTERCONNECT \$gbuf\$clk/CLKO core\.b_TRELLIS_FF_Q_1/CLK (0:0:0) (0:0:0))
        (INTERCONNECT core\.a_TRELLIS_FF_Q/Q lut_1/A (900:950:1000) (900:950:1000))
        (INTERCONNECT lut_1/F core\.b_TRELLIS_FF_Q_1/DI (1500:1800:2000) (1500:1900:1900))
        (INTERCONNECT core\.b_TRELLIS_FF_Q_1/Q core\.a_TRELLIS_FF_Q/DI (100:150:200) (100:150:200))
        (INTERCONNECT pad/O lut_1/B (5000:5000:5000) (5000:5000:5000))
      )
    )
  )
  (CELL
    (CELLTYPE "DCCA")
    (INSTANCE \$gbuf\$clk)
    (DELAY
      (ABSOLUTE
        (IOPATH CLKI CLKO (0:0:0) (0:0:0))
      )
    )
  )
  (CELL
    (CELLTYPE "TRELLIS_FF")
    (INSTANCE core\.a_TRELLIS_FF_Q)
    (DELAY
      (ABSOLUTE
        (IOPATH CLK Q (400:450:500) (400:450:500))
      )
    )
    (TIMINGCHECK
      (SETUPHOLD (posedge DI) (posedge CLK) (100:100:100) (0:0:0))
      (SETUPHOLD (negedge DI) (posedge CLK) (100:100:100) (0:0:0))
    )
  )
  (CELL
    (CELLTYPE "TRELLIS_FF")
    (INSTANCE core\.b_TRELLIS_FF_Q_1)
    (DELAY
      (ABSOLUTE
        (IOPATH CLK Q (400:450:500) (400:450:500))
      )
    )
    (TIMINGCHECK
      (SETUPHOLD (posedge DI) (posedge CLK) (50:80:100) (0:0:0))
    )
  )
  (CELL
    (CELLTYPE "TRELLIS_COMB")
    (INSTANCE lut_1)
    (DELAY
      (ABSOLUTE
        (IOPATH A F (200:250:300) (200:250:300))
        (IOPATH B F (200:250:300) (200:250:300))
      )
    )
  )
)
"""


@pytest.fixture
def sdf(tmp_path):
    path = tmp_path / "design.sdf"
    path.write_text(SDF)
    return parse_sdf(path)


def test_every_register_gets_its_worst_path(sdf):
    worst_first = endpoint_timing(sdf)
    assert [e.instance for e in worst_first] == ["core.b_TRELLIS_FF_Q_1", "core.a_TRELLIS_FF_Q"]
    b, a = worst_first
    # b: clock-to-Q 0.5 + route 1.0 + LUT 0.3 + route 2.0 (slow corner, larger of rise/fall) + setup 0.1
    assert b.period_ns == pytest.approx(3.9) and b.start == "core.a_TRELLIS_FF_Q" and b.pin == "DI"
    # a: 0.5 + 0.2 + 0.1; the pad's 5 ns into the LUT is not a clocked path
    assert a.period_ns == pytest.approx(0.8)


def test_summary_counts_endpoints_past_the_clock(sdf):
    t = summarize(endpoint_timing(sdf), period_ns=3.0)
    assert (t.endpoints, t.failing, t.worst_ns) == (2, 1, 3.9)
    assert t.by_module["core"]["failing"] == 1 and t.by_module["core"]["worst_register"] == "core.b"
    assert t.by_module["core"]["from"] == "core.a"
    assert summarize(endpoint_timing(sdf), period_ns=4.0).failing == 0


def test_combinational_loop_is_an_error(tmp_path):
    path = tmp_path / "loop.sdf"
    path.write_text(SDF.replace("(INTERCONNECT pad/O lut_1/B", "(INTERCONNECT lut_1/F lut_1/B"))
    with pytest.raises(ValueError, match="loop"):
        endpoint_timing(parse_sdf(path))


@pytest.mark.parametrize("instance,register,module", [
    ("parser.core.huffman.cur_limit_15_TRELLIS_FF_Q_7", "parser.core.huffman.cur_limit_15", "parser.core.huffman"),
    ("accumulator.c_below_TRELLIS_FF_Q", "accumulator.c_below", "accumulator"),
    ("buffer_TRELLIS_FF_Q_22", "buffer", "(top)"),
])
def test_register_and_module_names(instance, register, module):
    assert register_of(instance) == register
    assert module_of(register) == module


def test_worst_path_pin_by_pin(sdf):
    steps = worst_path(sdf, "core.b")
    assert [(s.instance, s.pin) for s in steps] == [
        ("core.a_TRELLIS_FF_Q", "Q"), ("lut_1", "A"), ("lut_1", "F"), ("core.b_TRELLIS_FF_Q_1", "DI")]
    # clock-to-Q, route, LUT, route + setup (the last step's arrival is the period it needs)
    assert [s.arrival_ns for s in steps] == pytest.approx([0.5, 1.5, 1.8, 3.9])
    assert steps[2].cell_type == "TRELLIS_COMB"
    with pytest.raises(KeyError, match="core.c"):
        worst_path(sdf, "core.c")


def test_command_line(sdf, tmp_path, capsys):
    path = tmp_path / "design.sdf"
    assert main([str(path), "--period", "3"]) == 0
    out = capsys.readouterr().out
    assert "1 of 2 endpoints need more than 3 ns" in out and "core.b  <- core.a" in out
    assert main([str(path), "core.b"]) == 0
    assert "core.b: 3.90 ns" in capsys.readouterr().out
    assert main([str(path), "core.nothing"]) == 1
    assert "no clocked cell of register 'core.nothing'" in capsys.readouterr().err
