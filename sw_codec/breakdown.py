"""Where the bits of a huffman/free layer go: ideal, symbols, remainders, headers.

``python -m sw_codec.breakdown MODEL [LAYER] [--bits 8] [--block-bits 14]`` prints, in bits per
weight (of one layer, or without LAYER weighted over every layer of ``--min-params`` weights or
more): H0; the ideal cost of the positions given the block counts (sum of log2 C(D, c) over the
groups, the multinomial bound); the Huffman-coded quotient symbols against their empirical
entropy (the Huffman redundancy); the raw Rice remainders; and everything else (block and group
headers, tables, padding, block offsets).
"""

from __future__ import annotations

import argparse
from math import lgamma, log

import numpy as np

from .analysis import analyze
from .baselines import entropy_bits
from .encoder import payload_size
from .huffman import rice_context
from .models import load_model, model_path
from .quantization import quantize
from .search import choose_params


def breakdown(q: np.ndarray, bits: int = 8, block_bits: int = 14) -> dict:
    n = q.size
    g = analyze(q, bits, block_bits)
    p = choose_params(g, "huffman", "free")
    D, c = g.domain_free, g.count
    lg = np.vectorize(lgamma)
    ideal = float(((lg(D + 1.0) - lg(c + 1.0) - lg(D - c + 1.0)) / log(2)).sum())
    k, table = rice_context(D, c, p.rice_bias, len(p.tables))
    km, tm = k[g.group], table[g.group]
    quotient = g.distances("free") >> km
    symbols = entropy = 0.0
    for t, code in enumerate(p.tables):
        s = np.minimum(quotient[tm == t], code.num_symbols - 1)
        h = np.bincount(s, minlength=code.num_symbols)
        symbols += float((h * code.lengths()).sum())
        nz = h[h > 0]
        entropy += float(-(nz * np.log2(nz / nz.sum())).sum())
    total = 8.0 * payload_size(g, "huffman", "free", p)
    remainders = float(km.sum())
    return {"H0": entropy_bits(q), "ideal_positions": ideal / n, "huffman_symbols": symbols / n,
            "symbol_entropy": entropy / n, "rice_remainders": remainders / n,
            "headers_and_rest": (total - symbols - remainders) / n, "total": total / n}


def breakdown_model(tensors: dict, bits: int = 8, granularity: str = "tensor", block_bits: int = 14,
                    min_params: int = 4096, progress: bool = False) -> dict:
    """:func:`breakdown` weighted by weights over every tensor of two or more dimensions with at
    least ``min_params`` weights; ``layers`` and ``params`` say how many were counted."""
    names = [k for k, x in tensors.items() if np.ndim(x) >= 2 and np.size(x) >= min_params]
    if not names:
        raise ValueError(f"no tensor of two or more dimensions has {min_params} weights or more")
    if progress:
        from tqdm import tqdm

        names = tqdm(names, desc="breakdown", unit="layer")
    sums, params = {}, 0
    for name in names:
        q, _ = quantize(tensors[name], bits, granularity)
        for key, value in breakdown(q, bits, block_bits).items():
            sums[key] = sums.get(key, 0.0) + value * q.size
        params += q.size
    return {**{k: v / params for k, v in sums.items()}, "layers": len(names), "params": params}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m sw_codec.breakdown", description=__doc__.splitlines()[0])
    ap.add_argument("model")
    ap.add_argument("layer", nargs="?", help="a tensor name; without it, every layer (weighted)")
    ap.add_argument("--bits", type=int, default=8)
    ap.add_argument("--granularity", default="tensor")
    ap.add_argument("--block-bits", type=int, default=14)
    ap.add_argument("--min-params", type=int, default=4096, help="without LAYER: skip smaller layers (default 4096)")
    args = ap.parse_args(argv)
    tensors = load_model(model_path(args.model))
    if args.layer is None:
        result = breakdown_model(tensors, args.bits, args.granularity, args.block_bits, args.min_params, progress=True)
        print(f"{result.pop('layers')} layers, {result.pop('params')} weights")
    else:
        if args.layer not in tensors:
            ap.error(f"no tensor {args.layer!r} in {args.model}")
        result = breakdown(quantize(tensors[args.layer], args.bits, args.granularity)[0], args.bits, args.block_bits)
    for key, value in result.items():
        print(f"{key:<18} {value:8.4f} bits/weight")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
