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
import sys

import numpy as np

from digest_compare import write_and_compare
from sw_codec.bench import SETTINGS
from sw_codec.codec import encode_integers
from sw_codec.models import BUNDLED, bundled_model, load_model
from sw_codec.quantization import quantize


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
    return write_and_compare(digests(args.models, args.block_bits), args.out, args.compare, "layers")

if __name__ == "__main__":
    sys.exit(main())
