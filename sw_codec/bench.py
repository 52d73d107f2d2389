"""``make bench``: compression of every bundled real model, side by side with the baselines.

Writes ``results/codec.json`` (per model: settings, totals, per-layer rows, encode times) and
prints one line per model and setting. Targets (issue 2): the best position-based mode at or
below H0 and below zstd -19 and the Ethos-U codec; encoding at least as fast as zstd -19.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

from .models import BUNDLED, bundled_model, load_model
from .report import report

SETTINGS = ({"bits": 8, "granularity": "tensor"}, {"bits": 8, "granularity": "channel"},
            {"bits": 4, "granularity": "channel"})


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sw_codec.bench", description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="results/codec.json")
    parser.add_argument("--models", nargs="*", default=list(BUNDLED), choices=list(BUNDLED))
    parser.add_argument("--block-bits", type=int, default=14)
    args = parser.parse_args(argv)
    results = {"machine": platform.platform(), "date": time.strftime("%Y-%m-%d %H:%M"), "runs": []}
    cols = ("H0", "huffman/free", "best", "zstd-19", "lzma-9", "ethos-u")
    print(f"{'model':<12} {'bits':>4} {'gran':<8} {'params':>10} " + " ".join(f"{c:>12}" for c in cols)
          + f" {'enc s':>7} {'zstd s':>7}")
    for name in args.models:
        tensors = load_model(bundled_model(name))
        for s in SETTINGS:
            r = report(tensors, block_bits=args.block_bits, progress=False, **s)
            t = r["total"]
            results["runs"].append({"model": name, "description": BUNDLED[name][3], **r})
            print(f"{name:<12} {s['bits']:>4} {s['granularity']:<8} {t['params']:>10} "
                  + " ".join(f"{t[c]:12.3f}" if t[c] is not None else f"{'n/a':>12}" for c in cols)
                  + f" {r['seconds']['encode_auto']:7.2f} {r['seconds']['zstd-19']:7.2f}", flush=True)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(results, indent=1))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
