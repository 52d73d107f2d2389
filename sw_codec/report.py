"""``poscodec report``: bits per weight of every mode and of the baselines, per layer and in total."""

from __future__ import annotations

import time

import numpy as np

from . import baselines
from .codec import DEFAULT_BLOCK_BITS, candidate_sizes, check_choices, encode_integers
from .quantization import quantize

#: Columns of the report in order: our modes, then the baselines.
MODE_COLUMNS = ("raw", "repeat/all", "repeat/free", "distance/all", "distance/free", "huffman/all", "huffman/free")
BASELINE_COLUMNS = ("zstd-19", "lzma-9", "ethos-u")


def report(tensors: dict[str, np.ndarray], *, bits: int = 8, granularity: str = "tensor",
           block_bits: int = DEFAULT_BLOCK_BITS, baselines_enabled: bool = True, progress: bool = False,
           min_params: int = 0) -> dict:
    """Per-layer and total bits/weight of every mode and baseline on the quantized integers.

    Only tensors of two or more dimensions with at least ``min_params`` weights are reported (1-D
    tensors stay float32). Times: ``encode_seconds`` is poscodec's ``auto`` encoding (analysis,
    every mode's size, packing the best) and ``zstd_seconds`` zstd -19 on the same bytes, measured
    in the same run.
    """
    check_choices(bits, granularity, "auto", "auto", block_bits)
    names = [n for n, x in tensors.items() if np.ndim(x) >= 2 and np.size(x) >= min_params]
    iterator = names
    if progress:
        from tqdm import tqdm

        iterator = tqdm(names, desc="report", unit="layer")
    layers = []
    totals = {c: 0.0 for c in MODE_COLUMNS + BASELINE_COLUMNS + ("best", "H0")}
    has_ethos = True
    encode_s = zstd_s = 0.0
    for name in iterator:
        q, _ = quantize(tensors[name], bits, granularity)
        t0 = time.perf_counter()
        enc = encode_integers(q, bits, "auto", "auto", block_bits)
        encode_s += time.perf_counter() - t0
        n = q.size
        sizes = candidate_sizes(enc)  # the candidates auto skips, sized outside the timed part
        row = {"name": name, "shape": list(q.shape), "params": n, "distinct": int(len(np.unique(q))),
               "H0": baselines.entropy_bits(q)}
        for c in MODE_COLUMNS:
            row[c] = 8 * sizes[c] / n
        if baselines_enabled:
            t0 = time.perf_counter()
            row["zstd-19"] = 8 * baselines.zstd_bytes(q, bits) / n
            zstd_s += time.perf_counter() - t0
            row["lzma-9"] = 8 * baselines.lzma_bytes(q, bits) / n
            ethos = baselines.ethos_u_bytes(q, bits)
            row["ethos-u"] = None if ethos is None else 8 * ethos / n
            has_ethos &= ethos is not None
        row["auto"] = f"{enc.mode}/{enc.slots}" if enc.mode != "raw" else "raw"
        row["best"] = 8 * len(enc.payload) / n
        layers.append(row)
        for c in totals:
            if row.get(c) is not None:
                totals[c] += row[c] * n
    params = sum(r["params"] for r in layers)
    total = {"params": params, "layers": len(layers)}
    for c, v in totals.items():
        if c in BASELINE_COLUMNS and (not baselines_enabled or (c == "ethos-u" and not has_ethos)):
            total[c] = None
        else:
            total[c] = v / params if params else 0.0
    return {
        "settings": {"bits": bits, "granularity": granularity, "block_bits": block_bits},
        "layers": layers,
        "total": total,
        "seconds": {"encode_auto": encode_s, "zstd-19": zstd_s if baselines_enabled else None},
    }


def format_report(result: dict, *, per_layer: bool = True) -> str:
    """A plain-text table: one row per layer, then the totals (bits per weight)."""
    cols = ("H0",) + MODE_COLUMNS + BASELINE_COLUMNS + ("best",)
    head = f"{'layer':<44} {'params':>10} {'distinct':>8} " + " ".join(f"{c:>13}" for c in cols) + "  auto"
    lines = [head, "-" * len(head)]

    def fmt(v):
        return f"{'n/a':>13}" if v is None else f"{v:13.3f}"

    rows = result["layers"] if per_layer else []
    for r in rows:
        name = r["name"] if len(r["name"]) <= 44 else "..." + r["name"][-41:]
        lines.append(f"{name:<44} {r['params']:>10} {r['distinct']:>8} " + " ".join(fmt(r.get(c)) for c in cols)
                     + f"  {r['auto']}")
    t = result["total"]
    lines.append(f"{'TOTAL (' + str(t['layers']) + ' layers)':<44} {t['params']:>10} {'':>8} "
                 + " ".join(fmt(t.get(c)) for c in cols))
    s = result["seconds"]
    if s.get("zstd-19") is not None:
        lines.append(f"encode time: poscodec auto {s['encode_auto']:.2f} s, zstd -19 {s['zstd-19']:.2f} s "
                     "(same integers, same run)")
    return "\n".join(lines)
