"""Per-layer digest of the ``auto`` encoder's output, to check that two versions encode alike.

Usage (compare the working tree with another checkout of ``sw_codec``)::

    PYTHONPATH=/path/to/other python tools/encode_digest.py --out /tmp/ref.json
    PYTHONPATH=.              python tools/encode_digest.py --out /tmp/new.json --compare /tmp/ref.json

For every bundled model (or ``--models``) and every benchmark setting (``sw_codec.bench.SETTINGS``
at ``--block-bits``), every layer the report encodes (two or more dimensions) is encoded with
``encode_integers(q, bits, "auto", "auto", block_bits)``; the JSON maps
``model/bits/granularity/layer`` to the chosen mode, slots, payload size and payload SHA-256.
With ``--compare`` the exit status is 1 if any entry differs from (or is missing in) the other file.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys

import numpy as np

from sw_codec.bench import SETTINGS
from sw_codec.codec import encode_integers
from sw_codec.models import BUNDLED, bundled_model, load_model
from sw_codec.quantize import quantize


def digests(models, block_bits: int) -> dict[str, dict]:
    out = {}
    for model in models:
        tensors = load_model(bundled_model(model))
        for s in SETTINGS:
            for name, x in tensors.items():
                if np.ndim(x) < 2:
                    continue
                q, _ = quantize(x, s["bits"], s["granularity"])
                enc = encode_integers(q, s["bits"], "auto", "auto", block_bits)
                out[f"{model}/{s['bits']}/{s['granularity']}/{name}"] = {
                    "mode": enc.mode, "slots": enc.slots, "size": len(enc.payload),
                    "sha256": hashlib.sha256(enc.payload).hexdigest()}
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="*", default=list(BUNDLED), choices=list(BUNDLED))
    parser.add_argument("--block-bits", type=int, default=14)
    parser.add_argument("--out", required=True)
    parser.add_argument("--compare", help="a digest JSON written by another version")
    args = parser.parse_args(argv)
    result = digests(args.models, args.block_bits)
    with open(args.out, "w") as f:
        json.dump(result, f, indent=1)
    print(f"{len(result)} layers -> {args.out}")
    if args.compare:
        with open(args.compare) as f:
            other = json.load(f)
        differ = sorted(k for k in set(result) | set(other) if result.get(k) != other.get(k))
        for k in differ[:20]:
            print(f"DIFFERS {k}: {other.get(k)} vs {result.get(k)}")
        print(f"{len(differ)} of {len(set(result) | set(other))} layers differ")
        return 1 if differ else 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
