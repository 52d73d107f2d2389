"""System-level latency and energy of the accelerator with and without weight compression.

Method (also in ``docs/ENERGY.md``, "System-level energy model"):

1. Measure in RTL (``sim.rtl_accel``: ``hw.accelerator.Accelerator`` = DecoderTop + PEArray on
   Verilator, the testbench's main-memory model) one representative slice per model: an FC
   slice for transformers, a 3x3 conv (im2col) for CNNs, in ``raw`` and every mode, at each
   memory bandwidth ``B`` (bits per cycle). The outputs are checked bit for bit against numpy.
   Per run: weight-phase cycles per weight ``c(m, B)``, and the slice's stream bits per weight
   ``s(m)``.
2. Whole model: every weight tensor of two or more dimensions except embedding tables (a gather
   reads a few rows, not the table). Per layer, the bits per weight ``b_l(m)`` that sw_codec
   codes it to (``encode_integers`` at the hardware's block size, on the layer's first
   ``SAMPLE`` weights). Latency of one pass of the layer's weights through the array:
   ``w_l * max(c(m, B_max), c(m, B) * b_l(m) / s(m))``: the slice's memory-bound rate scaled by
   how much better or worse the layer compresses, never faster than the array's compute/decoder
   rate measured at the highest bandwidth. Each weight is streamed once per inference (batch 1:
   an FC layer per token, a conv with as many output pixels per pass as the array holds
   columns), the regime where weight traffic dominates, as in the paper.
3. Energy per weight pass: Horowitz (ISSCC 2014, 45 nm) per-event energies times event counts
   (:data:`ENERGY_PJ`): main-memory bits, activation-buffer reads (one per MAC), accumulator
   accesses, MACs, and for compressed modes the decoder's energy per weight (an assumption,
   :data:`DECODER_PJ_PER_WEIGHT`). Static power is left out (it would add the latency saving).
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np

from sw_codec.codec import encode_integers
from sw_codec.models import bundled_model, load_model
from sw_codec.quantize import quantize

from .rtl_accel import AccelParams, AccelRun, run_accel

__all__ = ["MODES", "BANDWIDTHS", "ENERGY_PJ", "DECODER_PJ_PER_WEIGHT", "PAPER",
           "representative_slices", "measure", "model_layers", "extrapolate", "evaluate", "markdown_table", "plot"]

MODES = [("raw", "all")] + [(m, s) for m in ("repeat", "distance", "huffman") for s in ("all", "free")]
BANDWIDTHS = (8, 16, 32, 64, 128)
MODELS = ("minilm", "yolov8n", "ppocr-det")
SAMPLE = 1 << 15

#: Horowitz, "Computing's energy problem (and what we can do about it)", ISSCC 2014, 45 nm, 0.9 V.
ENERGY_PJ = {
    "dram_bit": 640 / 32,            # DRAM: 1.3-2.6 nJ per 64 bit; "~640 pJ per 32-bit word" -> 20 pJ/bit
    "sram_8kb_64bit": 10.0,          # cache 8 KB: 10 pJ per 64-bit access
    "sram_32kb_64bit": 20.0,         # cache 32 KB: 20 pJ
    "sram_1mb_64bit": 100.0,         # cache 1 MB: 100 pJ
    "int8_mult": 0.2, "int8_add": 0.03, "int32_add": 0.1, "int32_mult": 3.1,
}
#: Decoder energy per decoded weight (assumption until docs/ENERGY.md has a switching-activity
#: number): the block buffer's write and read of a b-bit entry in a < 8 KB SRAM
#: (2 x 10 pJ x 8/64 = 2.5 pJ) plus ~0.5 pJ of logic (Huffman table lookup, distance adder,
#: occupancy bitmap: a few int32 adds' worth).
DECODER_PJ_PER_WEIGHT = 3.0

#: The paper's claims: reduction of latency and energy, per mode.
PAPER = {"repeat": (0.38, 0.36), "distance": (0.41, 0.39), "huffman": (0.45, 0.43)}


def _pick(model, tensors, hw):
    if model == "minilm":
        name = "encoder.layer.0.attention.self.query.weight"
        return name, tensors[name]
    for name, v in tensors.items():
        if v.ndim == 4 and v.shape[2:] == (3, 3) and v.shape[1] > 3 and 64 <= v.shape[1] * 9 <= hw.max_k:
            return name, v
    raise ValueError(f"{model}: no 3x3 conv layer fits a {hw.max_k}-column array")


def representative_slices(models, hw: AccelParams, weights: int = 4096) -> list[dict]:
    """Per model: an int weight slice ``W`` (rows x k) of a representative layer, about ``weights``
    weights: an FC matrix (transformer) or a 3x3 conv as (C_out, C_in*9) for im2col (CNN)."""
    out = []
    for model in models:
        tensors = load_model(bundled_model(model))
        name, W = _pick(model, tensors, hw)
        q = quantize(W, hw.weight_bits, "tensor")[0].reshape(W.shape[0], -1)
        rows = max(1, min(hw.max_rows, weights // q.shape[1]))
        out.append({"model": model, "layer": name, "kind": "fc" if W.ndim == 2 else "conv",
                    "W": q[:rows].astype(np.int64)})
    return out


def measure(models=MODELS, hw: AccelParams | None = None, bandwidths=BANDWIDTHS, weights: int = 4096,
            latency: int = 20, seed: int = 0) -> list[dict]:
    """RTL runs: every model's slice in every mode at every bandwidth (one simulator invocation)."""
    hw = hw or AccelParams()
    rng = np.random.default_rng(seed)
    runs, meta = [], []
    for s in representative_slices(models, hw, weights):
        x = rng.integers(-(1 << (hw.act_bits - 1)), 1 << (hw.act_bits - 1), s["W"].shape[1])
        for mode, slots in MODES:
            for bw in bandwidths:
                runs.append(AccelRun(f"{s['model']} {mode}/{slots} bw{bw}", s["W"], x, mode, slots, bw, latency))
                meta.append({"model": s["model"], "layer": s["layer"], "kind": s["kind"]})
    return [dict(r, **m) for r, m in zip(run_accel(runs, hw), meta)]


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


def _energy_pj(weights: int, rows: int, bits: float, mode: str, hw: AccelParams) -> dict:
    e = ENERGY_PJ
    sram_bit = e["sram_8kb_64bit"] / 64
    parts = {
        "dram": bits * e["dram_bit"],
        "act_buffer": weights * hw.act_bits * sram_bit,
        # clear + one flush + one read per lane and row (upper bound: every lane touches every row)
        "accumulators": 3 * rows * hw.lanes * hw.acc_bits * sram_bit,
        "mac": weights * (e["int8_mult"] + e["int32_add"]),
        "decoder": 0.0 if mode == "raw" else weights * DECODER_PJ_PER_WEIGHT,
    }
    parts["total"] = sum(parts.values())
    return parts


def extrapolate(measured: list[dict], layers_by_model: dict, hw: AccelParams) -> list[dict]:
    """Whole-model cycles and energy per mode and bandwidth (method in the module docstring)."""
    out = []
    for model, layers in layers_by_model.items():
        runs = {(r["mode"], r["slots"], r["bandwidth"]): r for r in measured if r["model"] == model}
        bmax = max(b for _, _, b in runs)
        for mode, slots in MODES:
            key = f"{mode}/{slots}"
            peak = runs[(mode, slots, bmax)]["streaming_cycles"] / runs[(mode, slots, bmax)]["weights"]
            for (m, s, bw), r in sorted(runs.items()):
                if (m, s) != (mode, slots):
                    continue
                c = r["streaming_cycles"] / r["weights"]
                s_bpw = r["stream_bits"] / r["weights"]
                cycles = sum(l["weights"] * max(peak, c * l["bpw"][key] / s_bpw) for l in layers)
                # The paper's idealization: a decoder as fast as the raw path, only the traffic shrinks.
                raw_r, raw_peak = runs[("raw", "all", bw)], runs[("raw", "all", bmax)]
                c_raw, p_raw = (raw_r["streaming_cycles"] / raw_r["weights"],
                                raw_peak["streaming_cycles"] / raw_peak["weights"])
                ideal = sum(l["weights"] * max(p_raw, c_raw * l["bpw"][key] / (raw_r["stream_bits"] / raw_r["weights"]))
                            for l in layers)
                bits = sum(l["weights"] * l["bpw"][key] for l in layers)
                energy = {}
                for l in layers:
                    for part, v in _energy_pj(l["weights"], l["rows"], l["weights"] * l["bpw"][key], mode, hw).items():
                        energy[part] = energy.get(part, 0.0) + v
                out.append({"model": model, "mode": mode, "slots": slots, "bandwidth": bw,
                            "weights": sum(l["weights"] for l in layers), "bits_per_weight": bits / sum(
                                l["weights"] for l in layers), "cycles": cycles, "cycles_ideal_decoder": ideal, "energy_uj": energy["total"] / 1e6,
                            "energy_parts_uj": {k: v / 1e6 for k, v in energy.items()},
                            "slice_cycles_per_weight": c, "slice_bits_per_weight": s_bpw})
    base = {(r["model"], r["bandwidth"]): r for r in out if r["mode"] == "raw"}
    for r in out:
        b = base[(r["model"], r["bandwidth"])]
        r["latency_reduction"] = 1 - r["cycles"] / b["cycles"]
        r["latency_reduction_ideal_decoder"] = 1 - r["cycles_ideal_decoder"] / b["cycles"]
        r["energy_reduction"] = 1 - r["energy_uj"] / b["energy_uj"]
    return out


def markdown_table(rows: list[dict], bandwidths=(16, 32, 128)) -> str:
    by = {(r["model"], r["mode"], r["slots"], r["bandwidth"]): r for r in rows}
    models = list(dict.fromkeys(r["model"] for r in rows))
    bws = [b for b in bandwidths if any(r["bandwidth"] == b for r in rows)]
    head = ("| model | mode | bits/w | " + " | ".join(f"latency -% @{b} b/cyc" for b in bws)
            + f" | latency -% @{bws[0]}, decoder at raw speed | energy -% | paper latency / energy -% |")
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    for model in models:
        for mode, slots in MODES[1:]:
            r0 = by[(model, mode, slots, bws[0])]
            lat = " | ".join(f"{100 * by[(model, mode, slots, b)]['latency_reduction']:.0f}" for b in bws)
            pl, pe = PAPER[mode]
            lines.append(f"| {model} | {mode}/{slots} | {r0['bits_per_weight']:.2f} | {lat} | "
                         f"{100 * r0['latency_reduction_ideal_decoder']:.0f} | "
                         f"{100 * r0['energy_reduction']:.0f} | {100 * pl:.0f} / {100 * pe:.0f} |")
    return "\n".join(lines)


def plot(rows: list[dict], path: Path, bandwidth: int = 16) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    models = list(dict.fromkeys(r["model"] for r in rows))
    modes = [f"{m}/{s}" for m, s in MODES[1:]]
    by = {(r["model"], f"{r['mode']}/{r['slots']}", r["bandwidth"]): r for r in rows}
    fig, axes = plt.subplots(1, 2, figsize=(12, 4), sharey=True)
    width = 0.8 / len(models)
    for ax, metric, title in ((axes[0], "latency_reduction", f"latency reduction @ {bandwidth} bits/cycle"),
                              (axes[1], "energy_reduction", "energy reduction")):
        for j, model in enumerate(models):
            vals = [100 * by[(model, m, bandwidth)][metric] for m in modes]
            ax.bar(np.arange(len(modes)) + j * width, vals, width, label=model)
        for i, m in enumerate(modes):
            paper = PAPER[m.split("/")[0]][0 if metric == "latency_reduction" else 1]
            ax.hlines(100 * paper, i - 0.1, i + 0.8, colors="k", linestyles="dashed", linewidth=1)
        ax.set_xticks(np.arange(len(modes)) + 0.4 - width / 2, modes, rotation=30)
        ax.set_title(title)
        ax.set_ylabel("% vs raw")
    axes[0].legend()
    axes[1].text(0.02, 0.02, "dashed: paper", transform=axes[1].transAxes)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def evaluate(models=MODELS, bandwidths=BANDWIDTHS, weights: int = 4096, latency: int = 20,
             hw: AccelParams | None = None, out_dir: Path | None = Path("results"), progress=print) -> dict:
    """Measure, extrapolate, and write ``accel.json``, ``accel.md`` and ``accel.png`` to ``out_dir``."""
    hw = hw or AccelParams()
    t0 = time.time()
    progress(f"RTL: {len(models)} slices x {len(MODES)} modes x {len(bandwidths)} bandwidths ...")
    measured = measure(models, hw, bandwidths, weights, latency)
    progress(f"  {len(measured)} runs, all outputs match numpy ({time.time() - t0:.0f} s); coding whole models ...")
    layers = {m: model_layers(m, hw) for m in models}
    rows = extrapolate(measured, layers, hw)
    table = markdown_table(rows)
    result = {"hardware": hw.__dict__, "latency": latency, "bandwidths": list(bandwidths),
              "energy_pj": ENERGY_PJ, "decoder_pj_per_weight": DECODER_PJ_PER_WEIGHT, "paper": PAPER,
              "measured": measured, "models": rows}
    if out_dir is not None:
        out_dir.mkdir(parents=True, exist_ok=True)
        (out_dir / "accel.json").write_text(json.dumps(result, indent=1))
        (out_dir / "accel.md").write_text(table + "\n")
        try:
            plot(rows, out_dir / "accel.png")
        except ImportError:
            progress("matplotlib not installed: no plot")
    progress(table)
    progress(f"({time.time() - t0:.0f} s)")
    return result
