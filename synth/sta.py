"""Static timing of every endpoint, from the SDF that nextpnr writes for a routed design.

nextpnr reports one critical path per clock. To see *where* a design misses its clock, this
module reads the SDF delay file of the routed design (``nextpnr --sdf``: every cell's delays and
every routed connection's delay) and computes, for every clocked endpoint (a flip-flop's data,
enable or reset input, a block RAM's inputs), the latest arrival from any clocked start point
plus the endpoint's setup time: the clock period that endpoint needs. It then groups the
endpoints by the register (or memory) they belong to and by the module that holds it.

Model, the same as nextpnr's setup analysis for one clock domain: paths start at a clock pin
(clock-to-output delay of a flip-flop or block RAM) and end at a pin with a setup check against
that clock; delays are the slow corner (the third value of each ``min:typ:max`` triple, the
larger of rise and fall); the clock network has no skew (nextpnr writes zero delay for it).
Paths from or to I/O pins are not counted (nextpnr reports them as ``<async>``).

``python -m synth.sta SDF`` lists the registers with the longest paths; ``python -m synth.sta
SDF REGISTER...`` prints the worst path into each register named, pin by pin (:func:`worst_paths`).
"""

from __future__ import annotations

import re
import sys
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["Endpoint", "EndpointTiming", "PathStep", "parse_sdf", "endpoint_timing", "summarize",
           "worst_path", "worst_paths"]

_TRIPLE = r"\(([-\d.]*):([-\d.]*):([-\d.]*)\)"
_INSTANCE = re.compile(r"^\s*\(INSTANCE\s*(.*?)\)\s*$")
_CELLTYPE = re.compile(r'^\s*\(CELLTYPE\s+"([^"]*)"\)')
_IOPATH = re.compile(r"^\s*\(IOPATH\s+(\S+)\s+(\S+)\s+" + _TRIPLE + r"(?:\s+" + _TRIPLE + r")?\)")
_INTERCONNECT = re.compile(r"^\s*\(INTERCONNECT\s+(\S+)\s+(\S+)\s+" + _TRIPLE + r"(?:\s+" + _TRIPLE + r")?\)")
_SETUP = re.compile(r"^\s*\((?:SETUPHOLD|SETUP)\s+\((?:posedge|negedge)\s+(\S+)\)\s+\((?:posedge|negedge)\s+(\S+)\)\s+"
                    + _TRIPLE)
_TIMESCALE = re.compile(r"\(TIMESCALE\s+(\d+)\s*(ps|ns)\)")
_ESCAPE = re.compile(r"\\(.)")


def _unescape(name: str) -> str:
    return _ESCAPE.sub(r"\1", name)


def _pin(text: str) -> tuple[str, str]:
    """``inst/port`` (SDF hierarchy divider ``/``, escaped ``\\/`` inside names) -> names."""
    m = re.match(r"^(.*?)(?<!\\)/([^/]+)$", text)
    if not m:
        raise ValueError(f"SDF pin without an instance: {text!r}")
    return _unescape(m.group(1)), _unescape(m.group(2))


def _slow(groups) -> float:
    """The slow-corner value of one or two ``(min:typ:max)`` triples (rise, fall)."""
    values = [float(v) for v in groups if v not in (None, "")]
    return max(values[2::3] or values or [0.0])


@dataclass
class Sdf:
    """The timing graph of a routed design: delays in ns."""

    #: (driver pin) -> [(sink pin, delay)], cell arcs and routed connections alike.
    arcs: dict = field(default_factory=lambda: defaultdict(list))
    #: clock pin -> [(output pin, clock-to-output delay)]
    starts: dict = field(default_factory=lambda: defaultdict(list))
    #: endpoint pin -> setup time
    setups: dict = field(default_factory=dict)
    #: instance -> cell type
    cell_types: dict = field(default_factory=dict)


def parse_sdf(path: Path | str) -> Sdf:
    """Read an SDF file as nextpnr writes it (one statement per line)."""
    sdf = Sdf()
    scale = 1e-3                                 # nextpnr writes TIMESCALE 1ps
    cell_type, instance = None, ""
    iopaths = []                                 # (instance, in, out, delay) until clocks are known
    clocks = defaultdict(set)                    # instance -> its clock pins (setup references)
    with open(path, errors="replace") as f:
        for line in f:
            if m := _TIMESCALE.search(line):
                scale = int(m.group(1)) * (1e-3 if m.group(2) == "ps" else 1.0)
            elif m := _CELLTYPE.match(line):
                cell_type = m.group(1)
            elif m := _INSTANCE.match(line):
                instance = _unescape(m.group(1))
                sdf.cell_types[instance] = cell_type
            elif m := _IOPATH.match(line):
                iopaths.append((instance, _unescape(m.group(1)), _unescape(m.group(2)), _slow(m.groups()[2:]) * scale))
            elif m := _INTERCONNECT.match(line):
                sdf.arcs[_pin(m.group(1))].append((_pin(m.group(2)), _slow(m.groups()[2:]) * scale))
            elif m := _SETUP.match(line):
                pin, clock = (instance, _unescape(m.group(1))), _unescape(m.group(2))
                clocks[instance].add(clock)
                sdf.setups[pin] = max(sdf.setups.get(pin, 0.0), _slow(m.groups()[2:5]) * scale)
    for inst, a, b, delay in iopaths:
        if sdf.cell_types.get(inst) == "DCCA":     # the global clock buffer carries no data
            continue
        if a in clocks[inst] or a.startswith("CLK"):
            sdf.starts[(inst, a)].append(((inst, b), delay))
        else:
            sdf.arcs[(inst, a)].append(((inst, b), delay))
    return sdf


@dataclass(frozen=True)
class Endpoint:
    """A clocked cell (flip-flop, block RAM) and its worst input."""

    instance: str
    pin: str                  # the input with the longest path
    cell_type: str
    period_ns: float          # arrival + setup: the clock period this cell needs
    start: str                # the instance the worst path to it starts at


def _longest_paths(sdf: Sdf) -> tuple[dict, dict, dict]:
    """Latest arrival (ns) at every pin reached from a clocked start, the start instance it
    comes from, and the pin before it on that path (the clock pin at a start)."""
    arrival, origin, before = {}, {}, {}
    for clk, outs in sdf.starts.items():
        for pin, delay in outs:
            if delay > arrival.get(pin, -1.0):
                arrival[pin], origin[pin], before[pin] = delay, clk[0], clk
    # Longest path over the acyclic graph of cell arcs and connections (Kahn's order).
    indegree = defaultdict(int)
    for src, sinks in sdf.arcs.items():
        for dst, _ in sinks:
            indegree[dst] += 1
    ready = [p for p in sdf.arcs if indegree[p] == 0]
    while ready:
        p = ready.pop()
        t = arrival.get(p)
        for q, d in sdf.arcs.get(p, ()):
            if t is not None and t + d > arrival.get(q, -1.0):
                arrival[q], origin[q], before[q] = t + d, origin[p], p
            indegree[q] -= 1
            if indegree[q] == 0:
                ready.append(q)
    if any(v > 0 for v in indegree.values()):
        raise ValueError("the SDF's timing graph has a combinational loop")
    return arrival, origin, before


def endpoint_timing(sdf: Sdf) -> list[Endpoint]:
    """Every clocked cell with the period its worst input needs, worst first."""
    arrival, origin, _ = _longest_paths(sdf)
    worst = {}
    for (inst, port), setup in sdf.setups.items():
        if (inst, port) in arrival and arrival[(inst, port)] + setup > worst.get(inst, (-1.0,))[0]:
            worst[inst] = (arrival[(inst, port)] + setup, port)
    out = [Endpoint(inst, port, sdf.cell_types.get(inst, "?"), period, origin[(inst, port)])
           for inst, (period, port) in worst.items()]
    return sorted(out, key=lambda e: -e.period_ns)


@dataclass(frozen=True)
class PathStep:
    """One pin of a path: where the signal is and when it gets there."""

    instance: str
    pin: str
    cell_type: str
    arrival_ns: float


def worst_paths(sdf: Sdf, registers) -> dict[str, list[PathStep]]:
    """The longest path into each of ``registers`` (names as :func:`register_of` gives them,
    e.g. ``parser.core.huffman.shift``: the worst of a register's bits), from the clocked output
    it starts at to the endpoint pin; the last step's arrival includes the setup time. One
    longest-path pass for all of them; a register with no clocked cell in the design is left
    out of the result."""
    arrival, _, before = _longest_paths(sdf)
    wanted, ends = set(registers), {}
    for pin, setup in sdf.setups.items():
        register = register_of(pin[0])
        if register in wanted and pin in arrival:
            ends[register] = max(ends.get(register, (-1.0, pin)), (arrival[pin] + setup, pin))
    paths = {}
    for register, (total, pin) in ends.items():
        steps = [PathStep(pin[0], pin[1], sdf.cell_types.get(pin[0], "?"), total)]
        while pin in before and before[pin] in arrival:
            pin = before[pin]
            steps.append(PathStep(pin[0], pin[1], sdf.cell_types.get(pin[0], "?"), arrival[pin]))
        paths[register] = steps[::-1]
    return paths


def worst_path(sdf: Sdf, register: str) -> list[PathStep]:
    """:func:`worst_paths` for one register; ``KeyError`` if the design has no clocked cell of
    that name."""
    try:
        return worst_paths(sdf, [register])[register]
    except KeyError:
        raise KeyError(f"no clocked cell of register {register!r} in the SDF") from None


_FF_SUFFIX = re.compile(r"_TRELLIS_FF_Q(?:_\d+)?$|_SB_DFF\w*$|_DP16KD$")


def register_of(instance: str) -> str:
    """The HDL register (or memory) a flip-flop or RAM cell implements: Yosys names a flip-flop
    after the net on its output, ``<path>.<signal>_TRELLIS_FF_Q_<bit>``."""
    base = _FF_SUFFIX.sub("", instance)
    return base.split("$", 1)[0].rstrip("._") or instance


def module_of(register: str, depth: int = 3) -> str:
    """The first ``depth`` levels of a register's hierarchical name (``parser.core.huffman``)."""
    parts = register.split(".")[:-1]
    return ".".join(parts[:depth]) or "(top)"


@dataclass
class EndpointTiming:
    """Summary of :func:`endpoint_timing` against one clock period."""

    period_ns: float
    endpoints: int
    failing: int
    worst_ns: float
    #: module -> {"endpoints", "failing", "worst_ns", "worst_register", "from"}
    by_module: dict
    #: the registers with the longest paths: {"register", "worst_ns", "failing_bits", "from"}
    worst_registers: list

    def as_dict(self) -> dict:
        return {"period_ns": self.period_ns, "endpoints": self.endpoints, "failing": self.failing,
                "worst_ns": self.worst_ns, "by_module": self.by_module, "worst_registers": self.worst_registers}


def summarize(endpoints: list[Endpoint], period_ns: float, depth: int = 3, top: int = 12) -> EndpointTiming:
    """Group endpoints by register and module: how many need more than ``period_ns``."""
    registers = {}
    for e in endpoints:                  # worst first: the first seen is the register's worst
        reg = register_of(e.instance)
        r = registers.setdefault(reg, {"register": reg, "worst_ns": round(e.period_ns, 2), "endpoints": 0,
                                       "failing_endpoints": 0, "from": register_of(e.start)})
        r["endpoints"] += 1
        r["failing_endpoints"] += e.period_ns > period_ns
    modules = {}
    for reg, r in registers.items():
        mod = module_of(reg, depth)
        s = modules.setdefault(mod, {"endpoints": 0, "failing": 0, "worst_ns": 0.0, "worst_register": reg,
                                     "from": r["from"]})
        s["endpoints"] += r["endpoints"]
        s["failing"] += r["failing_endpoints"]
        if r["worst_ns"] > s["worst_ns"]:
            s.update(worst_ns=r["worst_ns"], worst_register=reg, **{"from": r["from"]})
    by_module = dict(sorted(modules.items(), key=lambda kv: (-kv[1]["failing"], -kv[1]["worst_ns"])))
    worst = sorted(registers.values(), key=lambda r: -r["worst_ns"])[:top]
    return EndpointTiming(period_ns, len(endpoints), sum(e.period_ns > period_ns for e in endpoints),
                          round(endpoints[0].period_ns, 2) if endpoints else 0.0, by_module, worst)


def main(argv=None) -> int:
    import argparse

    p = argparse.ArgumentParser(
        prog="python -m synth.sta",
        description="Where a routed design loses the clock, from the SDF that nextpnr writes "
                    "(build/synth/<design>/<target>_seed<N>/<target>.sdf): the registers with "
                    "the longest input paths, or the worst path into the registers named.")
    p.add_argument("sdf", type=Path, help="the routed design's SDF file")
    p.add_argument("registers", nargs="*",
                   help="register names as listed (e.g. parser.core.huffman.shift): print the "
                        "worst path into each, pin by pin")
    p.add_argument("--period", type=float, default=10.0, help="clock period in ns (default 10)")
    p.add_argument("--top", type=int, default=20, help="registers listed (default 20)")
    args = p.parse_args(argv)
    if not args.sdf.is_file():
        p.error(f"{args.sdf}: no such file")
    sdf = parse_sdf(args.sdf)
    if not args.registers:
        t = summarize(endpoint_timing(sdf), args.period, top=args.top)
        print(f"{t.failing} of {t.endpoints} endpoints need more than {args.period:g} ns; "
              f"worst {t.worst_ns:.2f} ns")
        for r in t.worst_registers:
            print(f"{r['worst_ns']:7.2f} ns  {r['register']}  <- {r['from']}")
        return 0
    paths = worst_paths(sdf, args.registers)
    for register in args.registers:
        if register not in paths:
            print(f"error: no clocked cell of register {register!r} in the SDF", file=sys.stderr)
            return 1
        steps = paths[register]
        print(f"{register}: {steps[-1].arrival_ns:.2f} ns")
        for s in steps:
            print(f"  {s.arrival_ns:7.2f}  {s.cell_type:<13} {s.instance} .{s.pin}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
