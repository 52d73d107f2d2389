"""System-level latency and energy of the accelerator with and without weight compression.

Method (also in ``docs/ENERGY.md``, "System-level latency and energy"):

1. Configuration. ``N`` decoder lanes feed ``N`` MACs (``AccelParams``: 4 lanes, blocks of
   ``2**12`` weights, 32-bit memory words). A lane decodes about one weight per cycle at
   ``P = 12`` (``results/sim.json``), so the decoder delivers about ``N`` weights per cycle, as
   many as the array consumes: the decoder is sized to the array, and main memory decides
   whether a layer is memory bound (``B < 8 N`` bits per cycle for int8 raw weights) or compute
   bound. Bandwidths ``B`` from 8 to 128 bits per cycle span both.
2. Measure in RTL (``sim.accel.run``: ``hw.accelerator.Accelerator`` = DecoderTop + PEArray on
   Verilator, with the main-memory model of ``sim.accel.memory``) one representative slice
   per model (the first rows of a layer, ``blocks_per_lane`` blocks per lane): MiniLM's first
   query projection (FC), the largest convolution of each CNN (im2col: ``(C_out, C_in kh kw)``),
   in ``raw`` and every mode, at each ``B``. Every output is checked bit for bit against numpy.
   Per run: ``fill(m, B)``, the cycles until the first weight reaches the array (the first block
   of each lane is decoded whole before it leaves the block buffer); the sustained cycles per
   weight ``c(m, B)`` from the first to the last weight; the output ``tail`` (drain and
   readout, per output row); and the slice's stream bits per weight ``s(m)``.
3. Whole model: every weight tensor of two or more dimensions except embedding tables (a gather
   reads a few rows, not the table). Per layer ``l``, the bits per weight ``b_l(m)`` that
   sw_codec codes it to (``encode_integers`` at the hardware's block size, on the layer's first
   ``SAMPLE`` weights). Cycles of one pass of the layer's weights through the array:
   ``max(w_l * b_l(m) / B, fill(m, B_max) * f_l + w_l * c(m, B_max)) + e(m, B) * f_l +
   tail * rows_l``: the time the memory needs for the layer's coded bits, or the time the
   decoder and array need (fill and sustained rate measured at the highest bandwidth), whichever
   is longer, plus the slice's measured excess over that model ``e`` (memory latency, the last
   block's decode after its data arrived) and the output tail per row. ``f_l = min(1, w_l / (N
   2**P))``: a layer smaller than one block per lane has shorter blocks. Each weight is
   streamed once per inference (batch 1: an FC layer per token, a convolution with its output
   pixels processed while its weights stream once), the regime where weight traffic dominates,
   as in the paper.
4. Energy per pass: Horowitz (ISSCC 2014, 45 nm) per-event energies times event counts
   (:data:`ENERGY_PJ`): main-memory bits, activation-buffer reads (one per MAC), accumulator
   accesses, MACs, and for compressed modes the decoder's energy per weight,
   :data:`DECODER_PJ_PER_WEIGHT` (measured from switching activity, ``docs/ENERGY.md``), with
   the reductions also given at :data:`DECODER_PJ_SENSITIVITY` (a 3 pJ assumption and twice
   the estimate). Static power is left out (it would add the latency saving).
5. Repeat-aware compute (``PEArray(repeat_aware=True)``): the same slices in every compressed
   mode at the lowest and highest bandwidth, multiplies and cycles against the plain array.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np

from sw_codec.codec import encode_integers
from sw_codec.models import bundled_model, load_model
from sw_codec.quantization import quantize

from .run import AccelParams, AccelRun, run_accel

__all__ = ["MODES", "BANDWIDTHS", "ENERGY_PJ", "DECODER_PJ_PER_WEIGHT", "DECODER_PJ_SENSITIVITY", "PAPER",
           "DEFAULT_HW", "representative_slices", "measure", "measure_repeat_aware", "model_layers",
           "extrapolate", "evaluate", "markdown_table", "repeat_table", "plot", "lossy_point", "lossy_table",
           "DNNZIP"]

MODES = [("raw", "all")] + [(m, s) for m in ("repeat", "distance", "huffman") for s in ("all", "free")]
BANDWIDTHS = (8, 16, 32, 64, 128)
MODELS = ("minilm", "yolov8n", "ppocr-det")
SAMPLE = 1 << 15
#: The evaluated hardware (``make accel``): 4 lanes = 4 MACs, blocks of 2**12 weights.
DEFAULT_HW = dict(lanes=4, block_bits=12, word_bits=32, scan_bits=256, max_k=1152, max_rows=256)
#: Bandwidths of the README table: memory bound and compute bound.
TABLE_BANDWIDTHS = (16, 128)

#: Horowitz, "Computing's energy problem (and what we can do about it)", ISSCC 2014, 45 nm, 0.9 V.
ENERGY_PJ = {
    "dram_bit": 640 / 32,            # DRAM: 1.3-2.6 nJ per 64 bit; "~640 pJ per 32-bit word" -> 20 pJ/bit
    "sram_8kb_64bit": 10.0,          # cache 8 KB: 10 pJ per 64-bit access
    "sram_32kb_64bit": 20.0,         # cache 32 KB: 20 pJ
    "sram_1mb_64bit": 100.0,         # cache 1 MB: 100 pJ
    "int8_mult": 0.2, "int8_add": 0.03, "int32_add": 0.1, "int32_mult": 3.1,
}
#: Decoder energy per decoded weight, set from the switching-activity estimate of one
#: LayerDecoder lane at P = 6, huffman/all (``make synth``, ``results/synth.json`` "energy";
#: docs/ENERGY.md). The only measured figure; a lane at P = 12 decodes more weights per cycle
#: (less clock energy per weight) but has more flip-flops, and the block buffer's SRAM accesses
#: are not in it.
DECODER_PJ_PER_WEIGHT = 4.0
#: Other decoder energies the reductions are also given at: an assumption (block buffer write +
#: read in a small SRAM, 2 x 10 pJ x 8/64, plus 0.5 pJ of logic) and twice
#: :data:`DECODER_PJ_PER_WEIGHT`.
DECODER_PJ_SENSITIVITY = (3.0, 8.0)

#: The paper's claims: reduction of latency and energy, per mode.
PAPER = {"repeat": (0.38, 0.36), "distance": (0.41, 0.39), "huffman": (0.45, 0.43)}


def _pick(model, tensors, hw):
    """MiniLM: the first query projection (FC). A CNN: its largest convolution whose
    ``C_in kh kw`` fits the array (YOLOv8n: a 3x3 conv; PP-OCR det: a 1x1 conv)."""
    if model == "minilm":
        name = "encoder.layer.0.attention.self.query.weight"
        return name, tensors[name]
    convs = [(v.size, name) for name, v in tensors.items()
             if v.ndim == 4 and 64 <= int(np.prod(v.shape[1:])) <= hw.max_k]
    if not convs:
        raise ValueError(f"{model}: no conv layer fits a {hw.max_k}-column array")
    name = max(convs)[1]
    return name, tensors[name]


def representative_slices(models, hw: AccelParams, weights: int = 4096) -> list[dict]:
    """Per model: an int weight slice ``W`` (rows x k) of a representative layer (its first rows),
    at most ``weights`` weights: an FC matrix, or a conv as (C_out, C_in kh kw) for im2col."""
    out = []
    for model in models:
        tensors = load_model(bundled_model(model))
        name, W = _pick(model, tensors, hw)
        q = quantize(W, hw.weight_bits, "tensor")[0].reshape(W.shape[0], -1)
        rows = max(1, min(hw.max_rows, q.shape[0], weights // q.shape[1]))
        out.append({"model": model, "layer": name, "kind": "fc" if W.ndim == 2 else f"conv{W.shape[2]}x{W.shape[3]}",
                    "W": q[:rows].astype(np.int64)})
    return out


def measure(models=MODELS, hw: AccelParams | None = None, bandwidths=BANDWIDTHS, weights: int = 4096,
            latency: int = 20, seed: int = 0, modes=MODES, progress=print) -> list[dict]:
    """RTL runs: every model's slice in every mode at every bandwidth (one simulator invocation
    per model, so progress shows; the Verilator build is shared)."""
    hw = hw or AccelParams()
    rng = np.random.default_rng(seed)
    out = []
    for s in representative_slices(models, hw, weights):
        t0 = time.time()
        x = rng.integers(-(1 << (hw.act_bits - 1)), 1 << (hw.act_bits - 1), s["W"].shape[1])
        runs = [AccelRun(f"{s['model']} {mode}/{slots} bw{bw:g}", s["W"], x, mode, slots, bw, latency)
                for mode, slots in modes for bw in bandwidths]
        meta = {"model": s["model"], "layer": s["layer"], "kind": s["kind"]}
        out += [dict(r, **meta) for r in run_accel(runs, hw, optimize=True)]
        progress(f"  {s['model']} ({s['layer']}, {s['W'].shape[0]} x {s['W'].shape[1]}"
                 f"{', repeat-aware' if hw.repeat_aware else ''}): {len(runs)} runs, outputs match numpy "
                 f"({time.time() - t0:.0f} s)")
    return out


def measure_repeat_aware(models=MODELS, hw: AccelParams | None = None, bandwidths=(8, 128), weights: int = 4096,
                         latency: int = 20, seed: int = 0, progress=print) -> list[dict]:
    """The same slices (same activations) on the repeat-aware array, every compressed mode."""
    hw = replace(hw or AccelParams(), repeat_aware=True)
    return measure(models, hw, bandwidths, weights, latency, seed, MODES[1:], progress)


def model_layers(model: str, hw: AccelParams) -> list[dict]:
    """The model's MAC layers: weights, shape, rows and bits per weight per mode (sw_codec)."""
    layers = []
    for name, v in load_model(bundled_model(model)).items():
        if np.ndim(v) < 2 or "embedding" in name:
            continue
        q = quantize(v, hw.weight_bits, "tensor")[0].ravel()
        sample = q[:SAMPLE]
        bpw = {}
        for mode, slots in MODES:
            enc = encode_integers(sample, hw.weight_bits, mode, slots, hw.block_bits)
            bpw[f"{mode}/{slots}"] = 8 * len(enc.payload) / sample.size
        layers.append({"name": name, "weights": int(q.size), "rows": int(v.shape[0]), "bpw": bpw})
    return layers


def _energy_pj(weights: int, rows: int, bits: float, mode: str, hw: AccelParams, decoder_pj: float) -> dict:
    e = ENERGY_PJ
    sram_bit = e["sram_8kb_64bit"] / 64
    parts = {
        "dram": bits * e["dram_bit"],
        "act_buffer": weights * hw.act_bits * sram_bit,
        # clear + one flush + one read per lane and row (upper bound: every lane touches every row)
        "accumulators": 3 * rows * hw.lanes * hw.acc_bits * sram_bit,
        "mac": weights * (e["int8_mult"] + e["int32_add"]),
        "decoder": 0.0 if mode == "raw" else weights * decoder_pj,
    }
    parts["total"] = sum(parts.values())
    return parts


def _rates(r: dict) -> dict:
    """A run's fill (cycles to the first weight), sustained cycles per weight, tail per row and
    stream bits per weight."""
    return {"fill": r["first_take"], "c": (r["last_take"] - r["first_take"] + 1) / r["weights"],
            "last": r["last_take"] + 1, "weights": r["weights"],
            "tail": (r["cycles"] - r["last_take"]) / r["rows"], "s": r["stream_bits"] / r["weights"]}


def _layer_cycles(r: dict, top: dict, layer: dict, key: str, bw: float, hw: AccelParams) -> float:
    """One pass of ``layer``'s weights: the rates ``r`` of a slice run at ``bw`` and ``top`` of the
    same mode at the highest bandwidth (see the module docstring)."""
    small = min(1.0, layer["weights"] / (hw.lanes << hw.block_bits))   # blocks shorter than 2**P
    memory = layer["weights"] * layer["bpw"][key] / bw
    compute = top["fill"] * small + layer["weights"] * top["c"]
    return max(memory, compute) + r["excess"] * small + r["tail"] * layer["rows"]


def _calibrate(runs: dict) -> None:
    """Per run the ``excess``: measured cycles to the last weight over the simple model
    ``max(weights * s / B, fill(B_max) + weights * c(B_max))`` (the memory latency and the last
    block's decode after its data arrived: a per-layer constant)."""
    for (mode, slots, bw), r in runs.items():
        top = runs[(mode, slots, max(b for m, s_, b in runs if (m, s_) == (mode, slots)))]
        model = max(r["weights"] * r["s"] / bw, top["fill"] + r["weights"] * top["c"])
        r["excess"] = r["last"] - model


def extrapolate(measured: list[dict], layers_by_model: dict, hw: AccelParams) -> list[dict]:
    """Whole-model cycles and energy per mode and bandwidth (method in the module docstring)."""
    out = []
    for model, layers in layers_by_model.items():
        runs = {(r["mode"], r["slots"], r["bandwidth"]): _rates(r) for r in measured if r["model"] == model}
        _calibrate(runs)
        bmax = max(b for _, _, b in runs)
        total_w = sum(l["weights"] for l in layers)
        for mode, slots in MODES:
            key = f"{mode}/{slots}"
            top, raw_top = runs[(mode, slots, bmax)], runs[("raw", "all", bmax)]
            for bw in sorted(b for m, s, b in runs if (m, s) == (mode, slots)):
                r = runs[(mode, slots, bw)]
                cycles = sum(_layer_cycles(r, top, l, key, bw, hw) for l in layers)
                # The paper's idealization: a decoder as fast as the raw path, only the traffic shrinks.
                ideal = sum(_layer_cycles(runs[("raw", "all", bw)], raw_top, l, key, bw, hw) for l in layers)
                bits = sum(l["weights"] * l["bpw"][key] for l in layers)
                energy = {}
                for pj in (DECODER_PJ_PER_WEIGHT,) + DECODER_PJ_SENSITIVITY:
                    parts = {}
                    for l in layers:
                        for part, v in _energy_pj(l["weights"], l["rows"], l["weights"] * l["bpw"][key], mode,
                                                  hw, pj).items():
                            parts[part] = parts.get(part, 0.0) + v
                    energy[pj] = parts
                out.append({"model": model, "mode": mode, "slots": slots, "bandwidth": bw,
                            "weights": total_w, "layers": len(layers), "bits_per_weight": bits / total_w,
                            "cycles": cycles, "cycles_ideal_decoder": ideal,
                            "energy_uj": energy[DECODER_PJ_PER_WEIGHT]["total"] / 1e6,
                            "energy_parts_uj": {k: v / 1e6 for k, v in energy[DECODER_PJ_PER_WEIGHT].items()},
                            "energy_uj_by_decoder_pj": {str(pj): e["total"] / 1e6 for pj, e in energy.items()},
                            "slice_fill_cycles": r["fill"], "slice_cycles_per_weight": r["c"],
                            "slice_excess_cycles": r["excess"], "slice_bits_per_weight": r["s"]})
    base = {(r["model"], r["bandwidth"]): r for r in out if r["mode"] == "raw"}
    for r in out:
        b = base[(r["model"], r["bandwidth"])]
        r["latency_reduction"] = 1 - r["cycles"] / b["cycles"]
        r["latency_reduction_ideal_decoder"] = 1 - r["cycles_ideal_decoder"] / b["cycles"]
        r["energy_reduction"] = 1 - r["energy_uj"] / b["energy_uj"]
        r["energy_reduction_by_decoder_pj"] = {pj: 1 - e / b["energy_uj_by_decoder_pj"][pj]
                                               for pj, e in r["energy_uj_by_decoder_pj"].items()}
    return out


def repeat_compare(plain: list[dict], aware: list[dict]) -> list[dict]:
    """Per slice, mode and bandwidth: multiplies and cycles of the repeat-aware array against the
    plain one (same slice, same activations, same memory model)."""
    by = {(r["model"], r["mode"], r["slots"], r["bandwidth"]): r for r in plain}
    out = []
    for a in aware:
        p = by[(a["model"], a["mode"], a["slots"], a["bandwidth"])]
        out.append({"model": a["model"], "layer": a["layer"], "mode": a["mode"], "slots": a["slots"],
                    "bandwidth": a["bandwidth"], "weights": a["weights"], "tokens": a["takes"],
                    "mults_plain": p["mults"], "mults_repeat_aware": a["mults"],
                    "mults_saved": 1 - a["mults"] / p["mults"],
                    "cycles_plain": p["cycles"], "cycles_repeat_aware": a["cycles"],
                    "cycles_change": a["cycles"] / p["cycles"] - 1})
    return out


#: DNNZip's claims (Palesi et al., DSD 2020): up to 67 % latency and 64 % energy saving.
DNNZIP = {"latency": 0.67, "energy": 0.64}
#: The coded size of a layer kept float32 in a lossy file, and of the fp32 baseline: 32 bits a weight.
FLOAT_BITS = 32.0


def lossy_point(accel: dict, lossy: dict, bandwidths=TABLE_BANDWIDTHS) -> list[dict]:
    """Whole-model latency and energy of each model's chosen lossy setting (``results/lossy.json``)
    against raw int8 and raw fp32, with the RTL rates of an ``accel.json`` (same layers: every
    weight tensor of two or more dimensions but embedding tables).

    Per layer, the chosen setting's coded bits per weight (its payload in the ``.pcz`` file) stream
    through the decoder at the measured ``huffman/free`` rates; a layer kept float32 streams 32-bit
    words at the raw rates. Raw int8 is the measured ``raw`` mode (8 bits a weight); raw fp32 is
    the same accelerator fed 32-bit weights (four times the traffic, the raw rates, the same
    int8 compute and buffers): the traffic of the uncompressed float model.
    """
    hw = AccelParams(**accel["hardware"])
    out = []
    for model, layers in accel["layers"].items():
        if model not in lossy.get("models", {}):
            continue
        chosen = lossy["models"][model]["chosen"]["layers"]
        runs = {(r["mode"], r["slots"], r["bandwidth"]): _rates(r) for r in accel["measured"] if r["model"] == model}
        _calibrate(runs)
        bmax = max(b for _, _, b in runs)
        rows = []
        for layer in layers:
            c = chosen[layer["name"]]
            coded = c["setting"] != "float"
            bits = c["payload_bits_per_weight"] if coded else FLOAT_BITS
            rows.append(dict(layer, bpw={"raw/all": 8.0, "fp32": FLOAT_BITS, "lossy": bits}, coded=coded))
        total = sum(l["weights"] for l in rows)
        for bw in bandwidths:
            if ("raw", "all", bw) not in runs:
                continue
            raw, raw_top = runs[("raw", "all", bw)], runs[("raw", "all", bmax)]
            huff, huff_top = runs[("huffman", "free", bw)], runs[("huffman", "free", bmax)]
            point = {"model": model, "bandwidth": bw, "weights": total, "layers": len(rows)}
            for key, mode in (("raw/all", "raw"), ("fp32", "raw"), ("lossy", "huffman")):
                cycles = energy = bits = 0.0
                for l in rows:
                    decoded = key == "lossy" and l["coded"]
                    r, top = (huff, huff_top) if decoded else (raw, raw_top)
                    cycles += _layer_cycles(r, top, l, key, bw, hw)
                    bits += l["weights"] * l["bpw"][key]
                    energy += _energy_pj(l["weights"], l["rows"], l["weights"] * l["bpw"][key],
                                         "huffman" if decoded else "raw", hw, DECODER_PJ_PER_WEIGHT)["total"]
                name = {"raw/all": "int8", "fp32": "fp32", "lossy": "lossy"}[key]
                point[name] = {"bits_per_weight": bits / total, "cycles": cycles, "energy_uj": energy / 1e6}
            for base in ("int8", "fp32"):
                point[f"latency_reduction_vs_{base}"] = 1 - point["lossy"]["cycles"] / point[base]["cycles"]
                point[f"energy_reduction_vs_{base}"] = 1 - point["lossy"]["energy_uj"] / point[base]["energy_uj"]
            out.append(point)
    return out


def lossy_table(points: list[dict]) -> str:
    """Markdown: each model's lossy point against raw int8 and raw fp32, DNNZip's claims beside."""
    head = ("| model | bits/w | B (bits/cycle) | latency -% vs int8 | vs fp32 | energy -% vs int8 | vs fp32 "
            "| DNNZip latency / energy -% |")
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    for p in points:
        lines.append(f"| {p['model']} | {p['lossy']['bits_per_weight']:.2f} | {p['bandwidth']:g} | "
                     f"{100 * p['latency_reduction_vs_int8']:.0f} | {100 * p['latency_reduction_vs_fp32']:.0f} | "
                     f"{100 * p['energy_reduction_vs_int8']:.0f} | {100 * p['energy_reduction_vs_fp32']:.0f} | "
                     f"{100 * DNNZIP['latency']:.0f} / {100 * DNNZIP['energy']:.0f} |")
    return "\n".join(lines)


def markdown_table(rows: list[dict], bandwidths=TABLE_BANDWIDTHS) -> str:
    by = {(r["model"], r["mode"], r["slots"], r["bandwidth"]): r for r in rows}
    models = list(dict.fromkeys(r["model"] for r in rows))
    bws = [b for b in bandwidths if any(r["bandwidth"] == b for r in rows)]
    lo, hi = DECODER_PJ_SENSITIVITY
    head = ("| model | mode | bits/w | " + " | ".join(f"latency -% @{b:g}" for b in bws)
            + f" | latency -% @{bws[0]:g}, decoder at raw speed | energy -% | energy -% (decoder {lo:g} / {hi:g} pJ)"
            + " | paper latency / energy -% |")
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    for model in models:
        raw = by[(model, "raw", "all", bws[0])]
        lines.append(f"| {model} | raw | {raw['bits_per_weight']:.2f} | " + " | ".join("0" for _ in bws)
                     + " | 0 | 0 | 0 / 0 | - |")
        for mode, slots in MODES[1:]:
            r0 = by[(model, mode, slots, bws[0])]
            lat = " | ".join(f"{100 * by[(model, mode, slots, b)]['latency_reduction']:.0f}" for b in bws)
            pl, pe = PAPER[mode]
            sens = r0["energy_reduction_by_decoder_pj"]
            lines.append(f"| {model} | {mode}/{slots} | {r0['bits_per_weight']:.2f} | {lat} | "
                         f"{100 * r0['latency_reduction_ideal_decoder']:.0f} | "
                         f"{100 * r0['energy_reduction']:.0f} | {100 * sens[str(lo)]:.0f} / {100 * sens[str(hi)]:.0f} | "
                         f"{100 * pl:.0f} / {100 * pe:.0f} |")
    return "\n".join(lines)


def repeat_table(cmp: list[dict]) -> str:
    head = ("| model (slice) | mode | B | weights | multiplies plain | repeat-aware | saved | "
            "cycles plain | repeat-aware | cycles change |")
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    for r in cmp:
        lines.append(f"| {r['model']} ({r['layer']}) | {r['mode']}/{r['slots']} | {r['bandwidth']:g} | {r['weights']} | "
                     f"{r['mults_plain']} | {r['mults_repeat_aware']} | {100 * r['mults_saved']:.0f}% | "
                     f"{r['cycles_plain']} | {r['cycles_repeat_aware']} | {100 * r['cycles_change']:+.0f}% |")
    return "\n".join(lines)


def plot(rows: list[dict], path: Path, bandwidths=TABLE_BANDWIDTHS) -> None:
    """Bars per mode and model: latency reduction at each of ``bandwidths``, energy reduction;
    the paper's figures dashed."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    models = list(dict.fromkeys(r["model"] for r in rows))
    modes = [f"{m}/{s}" for m, s in MODES[1:]]
    by = {(r["model"], f"{r['mode']}/{r['slots']}", r["bandwidth"]): r for r in rows}
    panels = [("latency_reduction", b, f"latency reduction @ {b:g} bits/cycle") for b in bandwidths]
    panels.append(("energy_reduction", bandwidths[0], f"energy reduction (decoder {DECODER_PJ_PER_WEIGHT:g} pJ/w)"))
    fig, axes = plt.subplots(1, len(panels), figsize=(5 * len(panels), 4), sharey=True)
    width = 0.8 / len(models)
    for ax, (metric, bw, title) in zip(axes, panels):
        for j, model in enumerate(models):
            vals = [100 * by[(model, m, bw)][metric] for m in modes]
            ax.bar(np.arange(len(modes)) + j * width, vals, width, label=model)
        for i, m in enumerate(modes):
            paper = PAPER[m.split("/")[0]][0 if metric == "latency_reduction" else 1]
            ax.hlines(100 * paper, i - 0.1, i + 0.8, colors="k", linestyles="dashed", linewidth=1)
        ax.axhline(0, color="grey", linewidth=0.5)
        ax.set_xticks(np.arange(len(modes)) + 0.4 - width / 2, modes, rotation=30)
        ax.set_title(title)
        ax.set_ylabel("% vs raw int8")
    axes[0].legend()
    axes[-1].text(0.02, 0.02, "dashed: paper", transform=axes[-1].transAxes)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def evaluate(models=MODELS, bandwidths=BANDWIDTHS, weights: int | None = None, latency: int = 20,
             hw: AccelParams | None = None, out_dir: Path | None = Path("results"), progress=print,
             repeat_aware: bool = True, blocks_per_lane: int = 4, reuse: Path | None = None) -> dict:
    """Measure, extrapolate, and write ``accel.json``, ``accel.md`` and ``accel.png`` to ``out_dir``.
    ``weights`` per slice defaults to ``blocks_per_lane`` blocks per lane. ``reuse``: take the RTL
    measurements from an earlier ``accel.json`` instead of simulating (the extrapolation and
    energy model only)."""
    hw = hw or AccelParams(**DEFAULT_HW)
    weights = weights or blocks_per_lane * hw.lanes << hw.block_bits
    t0 = time.time()
    if reuse is not None:
        old = json.loads(Path(reuse).read_text())
        hw = AccelParams(**old["hardware"])
        measured, cmp, weights = old["measured"], old["repeat_aware"], old["slice_weights"]
        models = list(dict.fromkeys(r["model"] for r in measured))
        bandwidths, latency = old["bandwidths"], old["latency"]
        progress(f"RTL measurements from {reuse} ({len(measured)} runs); coding whole models ...")
        repeat_aware = False
    else:
        progress(f"RTL ({hw.lanes} lanes, blocks of 2**{hw.block_bits}, slices of <= {weights} weights): "
                 f"{len(models)} slices x {len(MODES)} modes x {len(bandwidths)} bandwidths ...")
        measured = measure(models, hw, bandwidths, weights, latency, progress=progress)
        cmp = []
    if repeat_aware:
        rb = (min(bandwidths), max(bandwidths))
        progress(f"RTL, repeat-aware PE array: {len(models)} slices x {len(MODES) - 1} modes x {len(rb)} bandwidths ...")
        aware = measure_repeat_aware(models, hw, rb, weights, latency, progress=progress)
        cmp = repeat_compare(measured, aware)
    if reuse is None:
        progress(f"  ({time.time() - t0:.0f} s); coding whole models ...")
    layers = {m: model_layers(m, hw) for m in models}
    rows = extrapolate(measured, layers, hw)
    table = markdown_table(rows)
    rtable = repeat_table([c for c in cmp if c["mode"] in ("repeat", "huffman")]) if cmp else ""
    result = {"hardware": asdict(hw), "latency": latency, "bandwidths": list(bandwidths),
              "slice_weights": weights, "energy_pj": ENERGY_PJ, "decoder_pj_per_weight": DECODER_PJ_PER_WEIGHT,
              "decoder_pj_sensitivity": list(DECODER_PJ_SENSITIVITY), "paper": PAPER,
              "measured": measured, "models": rows, "repeat_aware": cmp,
              "layers": {m: [{k: v for k, v in l.items()} for l in ls] for m, ls in layers.items()}}
    if out_dir is not None:
        out_dir.mkdir(parents=True, exist_ok=True)
        (out_dir / "accel.json").write_text(json.dumps(result, indent=1))
        (out_dir / "accel.md").write_text(table + "\n\n" + rtable + "\n")
        try:
            plot(rows, out_dir / "accel.png")
        except ImportError:
            progress("matplotlib not installed: no plot")
    progress(table)
    if rtable:
        progress("")
        progress(rtable)
    progress(f"({time.time() - t0:.0f} s)")
    return result
