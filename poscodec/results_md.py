"""Regenerate the result tables of the README and ``docs/`` from ``results/*.json``.

    python -m poscodec.results_md               # rewrite the marked regions in place (make results-md)
    python -m poscodec.results_md --check       # exit 1 if a document differs from what the results give
    python -m poscodec.results_md --results DIR README.md docs/HARDWARE.md

A region of a document is the text between ``<!-- results:NAME -->`` and
``<!-- /results:NAME -->``; this module owns it and rewrites it whole. :data:`REGIONS` names
each region, the results file it is made from and the ``make`` target that writes that file.
When the file is missing (or holds nothing for the region), the region is left as it is and a
note says which file is missing and which target makes it: no figure is ever made up.

Standard library only: it reads the JSON the benchmarks write and formats it.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

__all__ = ["REGIONS", "DEFAULT_DOCUMENTS", "MissingResults", "render", "update_text", "update_files", "main"]

DEFAULT_DOCUMENTS = ("README.md", "docs/HARDWARE.md", "docs/ENERGY.md")

#: Display names of the bundled models (``sw_codec.models.BUNDLED``) in the compression table.
MODEL_NAMES = {"minilm": "MiniLM-L6", "yolov8n": "YOLOv8n", "ppocr-det": "PP-OCRv4 det",
               "ppocr-rec": "PP-OCRv4 rec", "silero-vad": "Silero VAD"}
SIMULATORS = {"verilator": "Verilator", "icarus": "Icarus"}
#: Columns of the throughput table (``make sim-bench``).
THROUGHPUT_MODES = ("raw", "repeat/all", "huffman/all", "huffman/free", "distance/free")
#: Bandwidths (bits per cycle) of the accelerator table: memory bound, compute bound.
ACCEL_BANDWIDTHS = (16, 128)

_MARKER = re.compile(r"<!-- (/?)results:([a-z0-9-]+) -->")


class MissingResults(Exception):
    """The results file holds nothing for a region (for example a run with ``--only``)."""


@dataclass(frozen=True)
class Region:
    """What a marked region is made from: ``results/<file>``, written by ``make <target>``."""

    file: str
    target: str
    render: Callable[[dict], str]


def _para(text: str) -> str:
    """A sentence or paragraph wrapped at 100 columns, as the docs are, never inside a number
    with a thousands separator ("4 096")."""
    text = re.sub(r"(?<=\d) (?=\d{3}\b)", "\0", text)
    return textwrap.fill(text, 100, break_long_words=False, break_on_hyphens=False).replace("\0", " ")


def _f(x, digits: int) -> str:
    return "-" if x is None else f"{x:.{digits}f}"


def _thousands(n) -> str:
    return f"{n:,}".replace(",", " ")


def _and(items) -> str:
    items = [str(i) for i in items]
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


def _table(head: list[str], align: str, rows: list[list]) -> list[str]:
    """A Markdown table; ``align`` has one letter per column, ``l`` or ``r``."""
    return (["| " + " | ".join(head) + " |", "|" + "".join("---|" if a == "l" else "---:|" for a in align)]
            + ["| " + " | ".join(str(c) for c in row) + " |" for row in rows])


# ---------------------------------------------------------------------------------------------
# results/codec.json (python -m sw_codec.bench)

def codec_table(doc: dict) -> str:
    """Bits per weight per model and setting against the baselines, and the encode times;
    **bold** where the best mode beats both zstd -19 and lzma -9. A summary sentence follows."""
    runs = doc.get("runs") or []
    if not runs:
        raise MissingResults("no runs")
    rows = []
    for r in runs:
        t, s = r["total"], r["settings"]
        best = f"{t['best']:.3f}"
        beats = [t[c] for c in ("zstd-19", "lzma-9") if t.get(c) is not None]
        if beats and t["best"] < min(beats):
            best = f"**{best}**"
        sec = r["seconds"]
        times = f"{_f(sec['encode_auto'], 2)} / {_f(sec.get('zstd-19'), 2)}"
        rows.append([MODEL_NAMES.get(r["model"], r["model"]), f"int{s['bits']} {s['granularity']}",
                     f"{t['params'] / 1e6:.2f} M", f"{t['H0']:.3f}", best, _f(t.get("zstd-19"), 3),
                     _f(t.get("lzma-9"), 3), _f(t.get("ethos-u"), 3), times])
    lines = _table(["model", "setting", "params", "H0", "best (mode)", "zstd -19", "lzma -9", "Ethos-U",
                    "encode s (ours / zstd)"], "llrrrrrrr", rows)
    totals = [r["total"] for r in runs]
    n = len(totals)

    def wins(col):
        scored = [t for t in totals if t.get(col) is not None]
        return f"{sum(t['best'] < t[col] for t in scored)} of {len(scored)}"

    gap = [t["best"] - t["H0"] for t in totals]
    free = [t["huffman/all"] - t["huffman/free"] for t in totals
            if t.get("huffman/all") is not None and t.get("huffman/free") is not None]
    timed = [r["seconds"] for r in runs if r["seconds"].get("zstd-19") is not None]
    ours = [round(s["encode_auto"], 2) for s in timed]
    zstd = [round(s["zstd-19"], 2) for s in timed]
    faster = sum(a < b for a, b in zip(ours, zstd))
    level = sum(a == b for a, b in zip(ours, zstd))
    block_bits = {r["settings"]["block_bits"] for r in runs}
    lines += ["", _para(f"Blocks of 2^{'/'.join(map(str, sorted(block_bits)))} weights, {n} settings. The best mode beats "
              f"zstd -19 in {wins('zstd-19')}, lzma -9 in {wins('lzma-9')} and Ethos-U in {wins('ethos-u')}; "
              f"it is {min(gap):+.3f} to {max(gap):+.3f} bits/weight from H0"
              + (f", and with Huffman `free` slot counting saves {min(free):.2f} to {max(free):.2f} bits/weight "
                 f"over `all`" if free else "")
              + f". Encoding is faster than zstd -19 in {faster} of {len(timed)} settings"
              + (f", level (to 0.01 s) in {level}" if level else "") + ".")]
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------
# results/sim.json (python -m sim.bench) and results/sim_minilm.json (make sim)

def _mode_key(run: dict) -> str:
    return "raw" if run["mode"] == "raw" else f"{run['mode']}/{run['slots']}"


def throughput_table(doc: dict) -> str:
    """Sustained weights per cycle per lane, per layer and mode, at the smallest lane count run;
    a sentence says how far the other lane counts differ."""
    runs = doc.get("runs") or []
    if not runs:
        raise MissingResults("no runs")
    lane_counts = sorted({r["lanes"] for r in runs})
    by = {(r["layer"], _mode_key(r), r["lanes"]): r for r in runs}
    layers = list(dict.fromkeys(r["layer"] for r in runs))
    rows = []
    for layer in layers:
        model, _, name = layer.partition(":")
        cells = [by.get((layer, m, lane_counts[0])) for m in THROUGHPUT_MODES]
        rows.append([f"{MODEL_NAMES.get(model, model)} `{name}`"]
                    + [_f(c["sustained_per_lane"], 2) if c else "-" for c in cells])
    lines = _table(["layer"] + list(THROUGHPUT_MODES), "l" + "r" * len(THROUGHPUT_MODES), rows)
    hw = doc.get("hardware", {})
    weights = {r["weights"] for r in runs if r["lanes"] == lane_counts[0]}
    mismatches = sum(r.get("mismatches", 0) for r in runs)
    spread = 0.0
    for (layer, mode, _), _r in by.items():
        values = [by[(layer, mode, n)]["sustained_per_lane"] for n in lane_counts if (layer, mode, n) in by]
        spread = max(spread, max(values) - min(values))
    lane_word = "lane" if lane_counts[0] == 1 else "lanes"
    lines += ["", _para(f"{lane_counts[0]} {lane_word}, blocks of 2^{hw.get('block_bits', '?')}, "
              f"{_thousands(max(weights))} weights per layer, {hw.get('word_bits', '?')}-bit words, "
              f"{SIMULATORS.get(hw.get('simulator'), hw.get('simulator', '?'))}, {mismatches} mismatches over {len(runs)} runs."
              + (f" With {_and(lane_counts)} lanes the per-lane figures differ by at most "
                 f"{spread:.2f} weights/cycle." if len(lane_counts) > 1 else ""))]
    return "\n".join(lines)


def sim_sentence(doc: dict) -> str:
    """One sentence per run of ``poscodec sim`` (``make sim``)."""
    runs = doc.get("runs") or []
    if not runs:
        raise MissingResults("no runs")
    hw = doc.get("hardware", {})
    out = []
    for r in runs:
        model = str(doc.get("model", "?")).lstrip("@")
        out.append(_para(f"`make sim` decodes {MODEL_NAMES.get(model, model)} `{r['layer']}` ({_thousands(r['weights'])} weights, "
                   f"{_mode_key(r)}, 2^{hw.get('block_bits', '?')} blocks, {hw.get('lanes', '?')} lanes) on "
                   f"{SIMULATORS.get(doc.get('simulator'), doc.get('simulator', '?'))} with {r['mismatches']} mismatches: "
                   f"{r['sustained_per_lane']:.2f} weights/cycle/lane sustained, "
                   f"{r['weights_per_cycle_per_lane']:.2f} over the whole layer including the first block's fill."))
    return "\n".join(out)


# ---------------------------------------------------------------------------------------------
# results/synth.json (python -m synth)

def _designs(doc: dict) -> list[dict]:
    designs = [d for d in doc.get("designs") or [] if "error" not in d]
    if not designs:
        raise MissingResults("no synthesized design")
    return designs


def _design_name(r: dict) -> str:
    return r["component"] + (f" x{r['lanes']}" if r.get("kind") == "top" else "")


def _config(r: dict) -> str:
    c = r["config"]
    return f"P = {c['block_bits']}, L = {c['max_code_len']}"


def _where(doc: dict) -> str:
    r = doc["designs"][0]
    return (f"{doc.get('device') or doc.get('target', '?')}, {doc.get('freq_mhz', r.get('freq_mhz', 100)):g} MHz "
            f"requested, seed {doc.get('seed', r.get('options', {}).get('seed', 1))}")


def _failed(doc: dict) -> list[str]:
    """A note per design whose synthesis failed (its row says "failed")."""
    notes = []
    for r in doc.get("designs") or []:
        if "error" in r:
            why = r["error"].splitlines()[0].split(" (log ")[0].removeprefix(f"{r.get('name')}: ")
            notes.append(f"{_design_name(r)} ({_config(r)}) failed: {why[:160]}")
    return notes


def _fmax(r: dict) -> str:
    if r.get("fmax_mhz"):
        return f"{r['fmax_mhz']:.2f}"
    return "not placed" if r.get("place_skipped") or not r.get("options", {}).get("place", True) else "-"


def synth_table(doc: dict) -> str:
    """The README's area and Fmax table, one row per design, and the decoder energy."""
    _designs(doc)
    rows = []
    for r in doc["designs"]:
        if "error" in r:
            rows.append([_design_name(r), _config(r)] + ["-"] * 4 + ["failed"])
            continue
        if r.get("luts") is None:
            continue
        lut4s = r.get("lut4s", r["luts"])
        rows.append([_design_name(r), _config(r), lut4s, lut4s - r["luts"], r["ffs"], r["brams"], _fmax(r)])
    lines = _table(["design", "config", "LUT4s", "of them carry", "FFs", "BRAMs", "Fmax MHz"], "llrrrrr", rows)
    caption = " ".join([f"{_where(doc)}."] + [f"{n}." for n in _failed(doc)])
    if doc.get("energy"):
        caption += " " + energy_sentence(doc)
    lines += ["", _para(caption)]
    return "\n".join(lines)


def synth_stages_table(doc: dict) -> str:
    """HARDWARE.md: area, Fmax, endpoints past the clock and the critical path of every design."""
    _designs(doc)
    rows = []
    for r in doc["designs"]:
        if "error" in r:
            rows.append([_design_name(r), _config(r)] + ["-"] * 3 + ["failed"] + ["-"] * 3)
            continue
        if r.get("luts") is None:
            continue
        lut4s = r.get("lut4s", r["luts"])
        t = r.get("endpoint_timing") or {}
        past = f"{_thousands(t['failing'])} of {_thousands(t['endpoints'])}" if t else "-"
        p = r.get("critical_path")
        path = f"`{p['from']}` -> `{p['to']}`, {p['delay_ns']:.2f} ns, {p['logic_levels']} levels" if p else "-"
        wps = f"{r['weights_per_s'] / 1e6:.1f}" if r.get("weights_per_s") else "-"
        rows.append([_design_name(r), _config(r), lut4s, r["ffs"], r["brams"], _fmax(r), past, wps, path])
    period = next((r["endpoint_timing"]["period_ns"] for r in doc["designs"] if r.get("endpoint_timing")), 10)
    lines = _table(["design", "config", "LUT4s", "FFs", "BRAMs", "Fmax MHz", f"endpoints past {period:g} ns",
                    "Mweights/s", "critical path"], "llrrrrrrl", rows)
    sources = sorted({r["weights_per_cycle_source"] for r in doc["designs"] if r.get("weights_per_cycle_source")})
    lines += ["", _para(" ".join([f"{_where(doc)}. Mweights/s = Fmax x lanes x weights/cycle/lane "
                                  f"({'; '.join(sources) or '-'})."] + [f"{n}." for n in _failed(doc)]))]
    return "\n".join(lines)


def synth_modules_table(doc: dict, modules: int = 8) -> str:
    """HARDWARE.md: where the one-lane design loses the clock, by module (``synth/sta.py``)."""
    lanes = [r for r in _designs(doc) if r.get("kind") == "lane" and r.get("endpoint_timing")]
    if not lanes:
        raise MissingResults("no placed lane with endpoint timing")
    lines = []
    for r in lanes:
        t = r["endpoint_timing"]
        if lines:
            lines.append("")
        lines += [_para(f"{r['name']}: {_thousands(t['failing'])} of {_thousands(t['endpoints'])} endpoints need "
                        f"more than {t['period_ns']:g} ns, the worst {t['worst_ns']:.2f} ns ({_where(doc)})."), ""]
        rows = [[mod, s["endpoints"], s["failing"], f"{s['worst_ns']:.2f}", f"`{s['worst_register']}` <- `{s['from']}`"]
                for mod, s in list(t["by_module"].items())[:modules]]
        lines += _table(["module", "endpoints", f"past {t['period_ns']:g} ns", "worst ns",
                         "worst register <- path start"], "lrrrl", rows)
    return "\n".join(lines)


def synth_area_table(doc: dict) -> str:
    """HARDWARE.md: where the one-lane design's area goes, per module instance (``synth/area.py``:
    the lane synthesized without flattening), beside the flattened total."""
    lanes = [r for r in _designs(doc) if r.get("kind") == "lane" and r.get("modules")
             and not r["modules"].get("error")]
    if not lanes:
        raise MissingResults("no lane with an area by module")
    lines = []
    for r in lanes:
        mods = r["modules"]
        t = mods["total"]
        d = t["lut4s"] - r["lut4s"]
        more = f"{'+' if d >= 0 else '-'}{_thousands(abs(d))} LUT4s ({100 * d / r['lut4s']:+.1f} %)"
        if lines:
            lines.append("")
        lines += [_para(f"{r['name']} ({_config(r)}) without flattening (`{mods['command']}`): "
                        f"{_thousands(t['lut4s'])} LUT4s "
                        f"({_thousands(t['lut4s'] - t['luts'])} in carry chains), {_thousands(t['ffs'])} FFs, "
                        f"{t['brams']} BRAMs, against {_thousands(r['lut4s'])} LUT4s and {_thousands(r['ffs'])} FFs "
                        f"flattened: {more}, no optimisation across module boundaries. Own: the instance's "
                        f"cells; with sub: with every instance below it; % of lane: its LUT4s with sub over the "
                        f"total without flattening; LUT RAMs: 16x4 distributed RAMs (`TRELLIS_DPR16X4`), not in "
                        f"the LUT4s."), ""]
        rows = []
        for i in mods["instances"]:
            o, w = i["own"], i["inclusive"]
            rows.append([f"`{i['path']}`" if i["path"] else "(lane)", o["lut4s"], o["lut4s"] - o["luts"], w["lut4s"],
                         w["lut4s"] - w["luts"], f"{100 * w['lut4s'] / t['lut4s']:.1f}" if t["lut4s"] else "-",
                         o["ffs"], w["ffs"], w["brams"], w.get("lutram", 0)])
        lines += _table(["instance", "LUT4s own", "of them carry", "LUT4s with sub", "of them carry", "% of lane",
                         "FFs own", "FFs with sub", "BRAMs with sub", "LUT RAMs with sub"], "lrrrrrrrrr", rows)
    return "\n".join(lines)


def energy_sentence(doc: dict) -> str:
    """The decoder energy per weight from switching activity (``synth/energy.py``)."""
    e = doc.get("energy")
    if not e:
        raise MissingResults("no energy figure (python -m synth --no-energy?)")
    s = e["sim"]
    total, data = e["energy_per_weight_j"] * 1e12, e["energy_per_weight_data_j"] * 1e12
    return _para(f"Decoder energy: {e['design']} decodes {_thousands(s['weights'])} weights of `{e['layer']}` "
            f"({s['mode']}/{s['slots']}, {s['bits_per_weight']:.2f} bits/weight) in {_thousands(s['cycles'])} cycles "
            f"with {s['mismatches']} mismatches: {e['toggles_per_weight']:.0f} net toggles/weight, "
            f"**{total:.2f} pJ/weight** ({data:.2f} pJ switching + {total - data:.2f} pJ clock, "
            f"{_thousands(e['flip_flops'])} flip-flops).")


# ---------------------------------------------------------------------------------------------
# results/accel.json (poscodec accel)

def accel_table(doc: dict) -> str:
    """Whole-model reduction against raw int8, in the layout of ``results/accel.md``."""
    rows = doc.get("models") or []
    if not rows:
        raise MissingResults("no whole-model rows")
    by = {(r["model"], r["mode"], r["slots"], r["bandwidth"]): r for r in rows}
    models = list(dict.fromkeys(r["model"] for r in rows))
    bws = [b for b in ACCEL_BANDWIDTHS if any(r["bandwidth"] == b for r in rows)]
    if not bws:
        raise MissingResults(f"no run at {ACCEL_BANDWIDTHS} bits/cycle")
    lo, hi = doc.get("decoder_pj_sensitivity", (3.0, 8.0))
    paper = doc.get("paper", {})
    head = (["model", "mode", "bits/w"] + [f"latency -% @{b:g}" for b in bws]
            + [f"latency -% @{bws[0]:g}, decoder at raw speed", "energy -%", f"energy -% (decoder {lo:g} / {hi:g} pJ)",
               "paper latency / energy -%"])
    out = []
    for model in models:
        modes = list(dict.fromkeys((r["mode"], r["slots"]) for r in rows if r["model"] == model))
        for mode, slots in modes:
            r0 = by[(model, mode, slots, bws[0])]
            if mode == "raw":
                out.append([model, "raw", f"{r0['bits_per_weight']:.2f}"] + ["0"] * len(bws) + ["0", "0", "0 / 0", "-"])
                continue
            sens = r0["energy_reduction_by_decoder_pj"]
            pl, pe = paper.get(mode, (None, None))
            out.append([model, f"{mode}/{slots}", f"{r0['bits_per_weight']:.2f}"]
                       + [f"{100 * by[(model, mode, slots, b)]['latency_reduction']:.0f}" for b in bws]
                       + [f"{100 * r0['latency_reduction_ideal_decoder']:.0f}", f"{100 * r0['energy_reduction']:.0f}",
                          f"{100 * sens[str(lo)]:.0f} / {100 * sens[str(hi)]:.0f}",
                          "-" if pl is None else f"{100 * pl:.0f} / {100 * pe:.0f}"])
    hw = doc.get("hardware", {})
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(row) + " |" for row in out]
    lines += ["", _para(f"{hw.get('lanes', '?')} lanes, blocks of 2^{hw.get('block_bits', '?')}, "
              f"{hw.get('word_bits', '?')}-bit words, memory latency {doc.get('latency', '?')} cycles, "
              f"decoder {doc.get('decoder_pj_per_weight', '?'):g} pJ/weight; "
              f"{len(doc.get('measured', []))} RTL runs, slices of {_thousands(doc.get('slice_weights', 0))} weights.")]
    return "\n".join(lines)


def accel_repeat_table(doc: dict, mode: str = "huffman/free") -> str:
    """The repeat-aware PE array against the plain one on each slice, in one mode."""
    cmp = [c for c in doc.get("repeat_aware") or [] if f"{c['mode']}/{c['slots']}" == mode]
    if not cmp:
        raise MissingResults(f"no repeat-aware {mode} runs (poscodec accel --no-repeat-aware?)")
    by = {(c["model"], c["bandwidth"]): c for c in cmp}
    bws = sorted({c["bandwidth"] for c in cmp})
    kinds = {(m["model"], m["layer"]): m.get("kind", "") for m in doc.get("measured", [])}
    rows = []
    for model in dict.fromkeys(c["model"] for c in cmp):
        first = by[(model, bws[0])]
        kind = kinds.get((model, first["layer"]), "")
        row = [f"{model} `{first['layer']}`" + (f" ({kind})" if kind else ""), _thousands(first["weights"]),
               _thousands(first["mults_plain"]), _thousands(first["mults_repeat_aware"]),
               f"{100 * first['mults_saved']:.0f} %"]
        for bw in bws:
            c = by.get((model, bw))
            row.append("-" if c is None else f"{_thousands(c['cycles_plain'])} / {_thousands(c['cycles_repeat_aware'])} "
                                             f"({100 * c['cycles_change']:+.0f} %)")
        rows.append(row)
    return "\n".join(_table(["slice", "weights", "multiplies, plain", "repeat-aware", "saved"]
                            + [f"cycles @{bw:g} plain / aware" for bw in bws], "lrrrr" + "l" * len(bws), rows)
                     + ["", f"Mode {mode}; every output checked against numpy."])


#: Display names of the accuracy protocols (``accuracy.harness.PROTOCOLS``).
PROTOCOL_NAMES = {"minilm": "MiniLM-L6", "yolov8n": "YOLOv8n", "ppocr-det": "PP-OCRv4 det",
                  "ppocr-rec": "PP-OCRv4 rec", "silero-vad": "Silero VAD"}


def accuracy_table(doc: dict) -> str:
    """Per model, the headline metric on true labels and the headline agreement with the float
    model, for float and each codec setting, with its bits per weight (``make accuracy``)."""
    models = doc.get("models") or {}
    if not models:
        raise MissingResults("no models")
    settings = list(dict.fromkeys(r["setting"] for m in models.values() for r in m["rows"]))
    head = ["model", "metric"] + settings
    rows = []
    for name, m in models.items():
        by = {r["setting"]: r for r in m["rows"]}
        label = PROTOCOL_NAMES.get(name, name)
        for key in (m.get("task_metrics") or [])[:1] + (m.get("agreement_metrics") or [])[:1]:
            rows.append([label, key.replace("_", " ")]
                        + [_f(by[s]["metrics"][key], 3) if s in by and key in by[s]["metrics"] else "-"
                           for s in settings])
            label = ""
        rows.append(["", "bits/weight"] + [_f(by[s]["bits_per_weight"], 2) if s in by else "-" for s in settings])
    if not rows:
        raise MissingResults("no metrics")
    lines = _table(head, "ll" + "r" * len(settings), rows)
    lines += ["", _para(f"{doc.get('tier', '?')} tier. Settings: `intBch` is B-bit integers with one scale per "
                        "output channel, coded losslessly (poscodec `auto`), weights decoded by the reference "
                        "decoder; bits/weight over the quantized tensors (float: 32). The first metric of each "
                        "model is on true labels, the second its agreement with the float model "
                        "(docs/ACCURACY.md).")]
    return "\n".join(lines)


REGIONS: dict[str, Region] = {
    "codec": Region("codec.json", "bench", codec_table),
    "throughput": Region("sim.json", "sim-bench", throughput_table),
    "sim": Region("sim_minilm.json", "sim", sim_sentence),
    "synth": Region("synth.json", "synth", synth_table),
    "synth-stages": Region("synth.json", "synth", synth_stages_table),
    "synth-modules": Region("synth.json", "synth", synth_modules_table),
    "synth-area": Region("synth.json", "synth", synth_area_table),
    "energy": Region("synth.json", "synth", energy_sentence),
    "accel": Region("accel.json", "accel", accel_table),
    "accel-repeat": Region("accel.json", "accel", accel_repeat_table),
    "accuracy": Region("accuracy.json", "accuracy", accuracy_table),
}


def render(name: str, results: Path) -> str:
    """The text of region ``name`` from the files in ``results``; raises :class:`FileNotFoundError`
    or :class:`MissingResults` when they do not give it."""
    region = REGIONS[name]
    doc = json.loads((Path(results) / region.file).read_text())
    return region.render(doc)


def update_text(text: str, results: Path, where: str = "<text>") -> tuple[str, list[str]]:
    """``text`` with every marked region it has rendered from ``results``; and the notes on the
    regions left as they were. Raises :class:`ValueError` on an unknown or unbalanced marker."""
    out, notes, pos = [], [], 0
    markers = list(_MARKER.finditer(text))
    if len(markers) % 2:
        raise ValueError(f"{where}: unbalanced results markers")
    for start, end in zip(markers[::2], markers[1::2]):
        name = start.group(2)
        if start.group(1) or not end.group(1) or end.group(2) != name:
            raise ValueError(f"{where}: marker {start.group(0)} is not closed by <!-- /results:{name} -->")
        if name not in REGIONS:
            raise ValueError(f"{where}: unknown results region {name!r} (known: {', '.join(REGIONS)})")
        out.append(text[pos:start.end()])
        region = REGIONS[name]
        try:
            body = "\n" + render(name, results).rstrip("\n") + "\n"
        except FileNotFoundError:
            notes.append(f"{where}: region {name} left as it is: {Path(results) / region.file} is missing "
                         f"(`make {region.target}` writes it)")
            body = text[start.end():end.start()]
        except MissingResults as e:
            notes.append(f"{where}: region {name} left as it is: {Path(results) / region.file} has {e} "
                         f"(`make {region.target}` writes it whole)")
            body = text[start.end():end.start()]
        out.append(body)
        pos = end.start()
    out.append(text[pos:])
    return "".join(out), notes


def update_files(paths, results: Path, check: bool = False, log=print) -> int:
    """Rewrite (or with ``check`` compare) the marked regions of ``paths``. Returns the exit
    status: 1 with ``check`` when a document differs from what the results give, else 0."""
    stale = []
    for path in map(Path, paths):
        text = path.read_text()
        new, notes = update_text(text, results, str(path))
        for note in notes:
            log(f"note: {note}")
        if new != text:
            stale.append(path)
            if not check:
                path.write_text(new)
                log(f"updated {path}")
    if check and stale:
        log(f"out of date with {results}/: {', '.join(map(str, stale))} (make results-md)")
        return 1
    return 0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m poscodec.results_md", description=__doc__.splitlines()[0])
    parser.add_argument("documents", nargs="*", default=list(DEFAULT_DOCUMENTS),
                        help=f"Markdown files with results markers (default: {' '.join(DEFAULT_DOCUMENTS)})")
    parser.add_argument("--results", default="results", help="folder of the results JSON files (default results)")
    parser.add_argument("--check", action="store_true",
                        help="change nothing; exit 1 if a document differs from what the results give")
    args = parser.parse_args(argv)
    try:
        return update_files(args.documents, Path(args.results), args.check,
                            log=lambda s: print(s, file=sys.stderr))
    except (OSError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
