"""``make sim-bench``: decoder throughput in RTL, per mode and lane count, on real layers.

Decodes a slice of real layers (MiniLM attention and feed-forward weights, a YOLOv8n conv) with
every mode and slot counting on Verilator, for 1, 2 and 4 lanes, without stalls, and writes
weights per cycle per lane to ``results/sim.json``. Cycles run from the ``clear`` that starts the
layer to the last weight out of the slowest lane, so they include the preamble (Huffman tables),
every block and group header and the block-buffer latency of the last block.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from hw.params import DecoderParams
from sw_codec.codec import encode_integers
from sw_codec.models import bundled_model, load_model
from sw_codec.quantization import quantize

from .rtl_decode import LayerJob, run_layers

LAYERS = [("minilm", "encoder.layer.0.intermediate.dense.weight"),
          ("yolov8n", "model.8.m.0.cv1.conv.weight")]
MODES = [("raw", "all")] + [(m, s) for m in ("repeat", "distance", "huffman") for s in ("all", "free")]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sim.bench", description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="results/sim.json")
    parser.add_argument("--lanes", type=int, nargs="*", default=[1, 2, 4])
    parser.add_argument("--block-bits", type=int, default=12)
    parser.add_argument("--blocks-per-lane", type=int, default=3, help="blocks of each layer each lane decodes")
    parser.add_argument("--simulator", default="verilator", choices=("verilator", "icarus"))
    args = parser.parse_args(argv)
    runs = []
    models = {}
    print(f"{'layer':<48} {'mode':<14} {'lanes':>5} {'weights':>8} {'cycles':>8} {'w/cycle/lane':>12} "
          f"{'sustained':>9} {'bits/w':>7}")
    for lanes in args.lanes:
        hw = DecoderParams(lanes=lanes, block_bits=args.block_bits)
        jobs = []
        for model, layer in LAYERS:
            if model not in models:
                models[model] = load_model(bundled_model(model))
            q = quantize(models[model][layer], 8, "tensor")[0].ravel()
            q = q[: lanes * args.blocks_per_lane << args.block_bits]
            for mode, slots in MODES:
                enc = encode_integers(q, 8, mode, slots, args.block_bits)
                jobs.append(LayerJob(f"{model}:{layer}", enc.payload, q.size, 8, mode, slots, args.block_bits))
        t0 = time.time()
        for job, r in zip(jobs, run_layers(jobs, hw, sim=args.simulator)):
            row = {"layer": job.name, "mode": job.mode, "slots": job.slots, "lanes": lanes, "weights": r.weights,
                   "cycles": r.cycles, "weights_per_cycle_per_lane": r.weights_per_cycle_per_lane,
                   "sustained_per_lane": r.sustained_per_lane,
                   "bits_per_weight": 8 * len(job.payload) / job.count, "mismatches": r.mismatches}
            runs.append(row)
            print(f"{job.name[-48:]:<48} {job.mode + '/' + job.slots:<14} {lanes:>5} {r.weights:>8} {r.cycles:>8} "
                  f"{r.weights_per_cycle_per_lane:>12.3f} {r.sustained_per_lane:>9.3f} {row['bits_per_weight']:>7.3f}",
                  flush=True)
        print(f"({lanes} lane(s): {time.time() - t0:.0f} s)")
    summary = {}
    for row in runs:
        key = f"{row['mode']}/{row['slots']}" if row["mode"] != "raw" else "raw"
        summary.setdefault(key, {}).setdefault(str(row["lanes"]), []).append(row["sustained_per_lane"])
    summary = {k: {l: sum(v) / len(v) for l, v in d.items()} for k, d in summary.items()}
    print("mean sustained weights/cycle/lane:", json.dumps(summary, indent=None))
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    hw = DecoderParams(block_bits=args.block_bits)
    Path(args.out).write_text(json.dumps({"hardware": {"block_bits": args.block_bits, "word_bits": hw.word_bits,
                                                       "scan_bits": hw.scan_bits, "simulator": args.simulator},
                                          "summary_sustained_weights_per_cycle_per_lane": summary, "runs": runs}, indent=1))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
