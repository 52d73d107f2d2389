"""Container directory sizes: version 1 against version 2 on every bundled model (issue 25).

For each bundled model and ``make bench`` setting (``sw_codec.bench.SETTINGS``, blocks of 2^14)
the model is compressed once; the same layers are written as version 1 and version 2, and each
file's bytes are split into directory, scales and payloads (``sw_codec.container.layout``).
"Directory" is everything but scales and payloads: header, layer table or stored directory, their
CRCs and (version 2) the scale section's CRC. Scales are data (4 bytes each, the same in both
versions) and are counted apart. Bits per weight are over all the model's weights.

Version 2 is also compared with the alternatives it was chosen against: no per-layer payload
CRC-32, the directory's parts interleaved per layer (rows) instead of part after part, names not
front-coded, the directory not deflated. And the scale section's bytes if it were deflated as
stored, or with its bytes regrouped by significance first (every scale's byte 0, then byte 1, ...).

    PYTHONPATH=. python tools/container_sizes.py            # -> results/container.json
"""

from __future__ import annotations

import argparse
import copy
import json
import platform
import time
import zlib
from pathlib import Path

import numpy as np

from sw_codec.bench import SETTINGS
from sw_codec.codec import compress
from sw_codec.container import directory_parts, layout, payload_of, read_table, varint, write_container
from sw_codec.format import HEADER_V2
from sw_codec.models import BUNDLED, bundled_model, load_model

#: A version-2 file's fixed bytes besides the stored directory: header, its CRC, the scale CRC.
V2_FIXED = HEADER_V2.size + 4 + 4


def deflated(data: bytes) -> int:
    c = zlib.compressobj(9, zlib.DEFLATED, -15, 9)
    return len(c.compress(data) + c.flush())


def alternatives(records) -> dict[str, int]:
    """Directory bytes of version 2 and of the layouts it was chosen against (fixed bytes included)."""
    parts = directory_parts(records)
    per_layer = {k: [] for k in parts}
    previous = b""
    for r in records:                       # the same fields, cut per layer, for the row layout
        name = r.name.encode()
        shared = next((i for i, (a, b) in enumerate(zip(name, previous)) if a != b), min(len(name), len(previous)))
        per_layer["names"].append(varint(shared) + varint(len(name) - shared) + name[shared:])
        previous = name
        one = directory_parts([r])
        for k in ("modes", "shapes", "lengths", "crcs"):
            per_layer[k].append(one[k])
    assert b"".join(per_layer["names"]) == parts["names"]
    plain_names = b"".join(varint(len(r.name.encode())) + r.name.encode() for r in records)
    whole = b"".join(parts.values())
    return {
        "v2": V2_FIXED + deflated(whole),
        "v2_without_payload_crcs": V2_FIXED + deflated(whole[: len(whole) - len(parts["crcs"])]),
        "v2_rows": V2_FIXED + deflated(b"".join(b"".join(layer) for layer in zip(*per_layer.values()))),
        "v2_names_not_front_coded": V2_FIXED + deflated(plain_names + whole[len(parts["names"]):]),
        "v2_not_deflated": V2_FIXED + len(whole),
        "payload_crcs_raw": len(parts["crcs"]),
        "names_front_coded_deflated_alone": deflated(parts["names"]),
        **{f"part_{k}_inflated": len(v) for k, v in parts.items()},
    }


def measure(model: str, setting: dict) -> dict:
    tensors = load_model(bundled_model(model))
    weights = int(sum(np.size(x) for x in tensors.values()))
    data = compress(tensors, **setting, version=2)
    records = read_table(data)
    payloads = [payload_of(data, r) for r in records]
    v1 = layout(write_container(copy.deepcopy(records), payloads, version=1))
    v2 = layout(data)
    assert v1["scales"] == v2["scales"] and v1["payloads"] == v2["payloads"]
    scales = np.concatenate([np.asarray(r.scales, "<f4") for r in records] + [np.zeros(0, "<f4")])
    row = {"model": model, **setting, "tensors": len(records), "weights": weights,
           "scales_bytes": v2["scales"], "payload_bytes": v2["payloads"],
           "scales_deflated_bytes": deflated(scales.tobytes()),
           "scales_byte_planes_deflated_bytes": deflated(scales.view(np.uint8).reshape(-1, 4).T.tobytes()),
           "v1_directory_bytes": v1["directory"], "v2_directory_bytes": v2["directory"],
           "alternatives": alternatives(records)}
    assert row["alternatives"]["v2"] == v2["directory"]
    for v in ("v1", "v2"):
        row[f"{v}_bytes_per_tensor"] = round(row[f"{v}_directory_bytes"] / len(records), 2)
        row[f"{v}_bits_per_weight"] = round(8 * row[f"{v}_directory_bytes"] / weights, 5)
        row[f"{v}_bits_per_weight_with_scales"] = round(8 * (row[f"{v}_directory_bytes"] + v2["scales"]) / weights, 5)
    return row


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="results/container.json")
    parser.add_argument("--models", nargs="*", default=list(BUNDLED), choices=list(BUNDLED))
    args = parser.parse_args(argv)
    rows = []
    print(f"{'model':<11} {'setting':<12} {'tensors':>7} {'weights':>9}  {'v1 B/t':>7} {'v1 b/w':>7}  "
          f"{'v2 B/t':>7} {'v2 b/w':>7}  {'v2 no CRC':>9} {'rows':>6} {'plain':>6} {'raw':>6}")
    for model in args.models:
        for setting in SETTINGS:
            r = measure(model, setting)
            rows.append(r)
            a, n = r["alternatives"], r["tensors"]
            print(f"{model:<11} {'int%d %s' % (setting['bits'], setting['granularity']):<12} {n:>7} {r['weights']:>9}  "
                  f"{r['v1_bytes_per_tensor']:7.1f} {r['v1_bits_per_weight']:7.4f}  "
                  f"{r['v2_bytes_per_tensor']:7.2f} {r['v2_bits_per_weight']:7.4f}  "
                  f"{a['v2_without_payload_crcs'] / n:9.2f} {a['v2_rows'] / n:6.2f} "
                  f"{a['v2_names_not_front_coded'] / n:6.2f} {a['v2_not_deflated'] / n:6.2f}", flush=True)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps({"machine": platform.platform(), "date": time.strftime("%Y-%m-%d %H:%M"),
                                          "command": "PYTHONPATH=. python tools/container_sizes.py",
                                          "rows": rows}, indent=1))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
