"""``poscodec lossy``: error-bounded, layer-selective lossy coding under an accuracy budget (DNNZip).

For each model: the sensitivity of each group of layers (fast tier), then for our coder and each
peer the per-layer selection of ``accuracy.selection`` verified on the full tier; our chosen
setting is written as a ``.pcz`` file and evaluated again from that file (decoded by the
reference decoder). docs/ACCURACY.md, "Lossy coding under a budget", describes the method and
the keys of the JSON.
"""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path

import numpy as np

from accuracy import harness, peers, selection
from accuracy.data import MissingPackage
from sw_codec.codec import compress_integers, inspect
from sw_codec.quantization import parse_error_bound, quantize_error_bounded

__all__ = ["add_commands", "write_pcz"]

DEFAULT_CACHE = "build/accuracy/decoded"
PEERS = ("intch", "sz3", "zfp-accuracy", "zfp-rate")


def write_pcz(name: str, settings: dict) -> bytes:
    """The ``.pcz`` file of a model with the chosen error bound per layer (``float``: float32);
    1-D tensors stay float32."""
    layers = {}
    for key, x in harness.float_weights(name).items():
        knob = settings.get(key, peers.FLOAT)
        if x.ndim < 2 or knob == peers.FLOAT:
            layers[key] = np.asarray(x, np.float32)
        else:
            q, scales, bits = quantize_error_bounded(x, knob, key)
            layers[key] = (q, scales, knob.granularity(x), bits)
    return compress_integers(layers)


def _layer_report(name: str, chosen: selection.Selection) -> str:
    base = harness.float_weights(name)
    lines = [f"{'layer':<48} {'weights':>9} {'setting':>13} {'E':>10} {'bits':>4}"]
    for key in sorted(chosen.settings, key=selection._natural):
        knob, x = chosen.settings[key], base[key]
        e = "-" if knob == peers.FLOAT else f"{knob.absolute(x):.3g}"
        width = chosen.widths[key] or 32
        lines.append(f"{key[-48:]:<48} {x.size:>9} {peers.knob_label(knob):>13} {e:>10} {width:>4}")
    return "\n".join(lines)


def _cmd_lossy(args) -> int:
    models = list(harness.PROTOCOLS) if "all" in args.models else [harness.protocol(m).name for m in args.models]
    methods = [peers.method("poscodec")] + [peers.method(p) for p in args.peers]
    if args.max_error_grid:
        methods[0] = dataclasses.replace(methods[0], grid=tuple(parse_error_bound(g) for g in args.max_error_grid))
    for name in models:                                  # every missing package before any work
        harness.check_packages(name)
    for m in methods[1:]:
        peers.check_method(m.name)
    if args.output and len(models) > 1 and Path(args.output).suffix == ".pcz":
        raise ValueError("-o names a folder when there are several models")
    log = (lambda *a: None) if args.quiet else (lambda text: print(text, flush=True))
    results = {"max_drop": args.max_drop, "tier": "full", "calibration_tier": "fast", "groups": args.groups,
               "models": {}}
    for name in models:
        start = time.perf_counter()
        log(f"{name}: sensitivity of each group of layers ({args.groups} groups at most, fast tier)")
        groups = selection.layer_groups(harness.float_weights(name), args.groups)
        sens = selection.sensitivities(name, groups, log=log)
        rows = {}
        for m in methods:
            log(f"{name}: {m.name}: sizing every layer at every setting, then verifying on the full tier")
            rows[m.name] = selection.select(name, m, args.max_drop, sens=sens, log=log)
        ours = rows["poscodec"]
        data = write_pcz(name, ours.settings)
        out = None
        if args.output:
            out = Path(args.output) if len(models) == 1 and Path(args.output).suffix == ".pcz" \
                else Path(args.output) / f"{name}.pcz"
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_bytes(data)
        log(f"{name}: decoding the file and running the model on it (full tier)")
        from_file = harness.evaluate_file(name, data, "full", cache_dir=None if args.no_cache else args.cache_dir,
                                          progress=not args.quiet, label=str(out or "pcz"))
        if from_file["metrics"][ours.metric] != ours.chosen_metric:
            raise AssertionError(f"{name}: the file gives {ours.metric} {from_file['metrics'][ours.metric]}, "
                                 f"the selection saw {ours.chosen_metric}")
        chosen = ours.as_dict()
        for record in inspect(data):               # what each layer's payload costs in the file
            if record.name in chosen["layers"]:
                chosen["layers"][record.name].update(mode=record.mode,
                                                     payload_bits_per_weight=round(8 * record.length / record.count, 4))
        floors = {}
        for floor in args.floors:
            try:
                floors[floor] = round(peers.float_floor(floor, {k: v for k, v in harness.float_weights(name).items()
                                                               if v.ndim >= 2}), 4)
            except MissingPackage as e:
                floors[floor] = None
                log(f"{name}: no {floor} floor: {e}")
        entry = {
            "metric": ours.metric, "float_metric": ours.float_metric, "threshold": ours.threshold,
            "chosen": {**chosen, "file": {"path": str(out) if out else None,
                                                  "bits_per_weight_payload": round(from_file["bits_per_weight"], 4),
                                                  "file_bytes": from_file["file_bytes"],
                                                  "metric": from_file["metrics"][ours.metric],
                                                  "decoded_from_cache": from_file["decoded_from_cache"]}},
            "peers": {m: rows[m].as_dict() for m in rows if m != "poscodec"},
            "floors": floors,
            "sensitivity": [{k: v for k, v in s.items()} for s in sens],
            "seconds": round(time.perf_counter() - start, 1),
        }
        results["models"][name] = entry
        if args.json:                                  # after each model: a long run keeps what it has
            Path(args.json).parent.mkdir(parents=True, exist_ok=True)
            Path(args.json).write_text(json.dumps(results, indent=1, default=str))
        print(f"\n{name}: {ours.metric} float {ours.float_metric:.4f}, budget >= {ours.threshold:.4f} "
              f"(at most {args.max_drop} points below)")
        print(f"{'method':<14} {'bits/weight':>11} {ours.metric:>12} {'runs':>5} {'missed':>6}")
        for m, r in rows.items():
            print(f"{m:<14} {r.bits_per_weight:>11.3f} {r.chosen_metric:>12.4f} {len(r.runs):>5} "
                  f"{sum(not x['meets_budget'] for x in r.runs):>6}")
        for floor, bits in floors.items():
            print(f"{floor:<14} {bits if bits is not None else 'n/a':>11} {'(lossless)':>12}")
        print(f"\n{name}: each layer's choice ({'written to ' + str(out) if out else 'not written'}; "
              f"{from_file['bits_per_weight']:.3f} bits/weight in payloads)\n{_layer_report(name, ours)}")
    if args.json:
        print(f"wrote {args.json}")
    return 0


def add_commands(sub) -> None:
    p = sub.add_parser(
        "lossy", help="error-bounded, layer-selective lossy coding under an accuracy budget, beside SZ3, ZFP and intB",
        description="Choose per layer an error bound (or float32) so that the model's headline metric on true "
                    "labels stays at most --max-drop points below the float model's, with the fewest bits: "
                    "sensitivity per group of layers on the fast tier, a Lagrangian allocation, verification "
                    "runs on the full tier. The peers go through the same selection. Writes the .pcz file and "
                    "reports each layer's choice.")
    p.add_argument("models", metavar="MODEL", nargs="+", help=f"{', '.join(harness.PROTOCOLS)}, or all")
    p.add_argument("--max-drop", type=float, default=1.0, metavar="POINTS",
                   help="the budget: points (hundredths) of the headline metric below float (default 1.0)")
    p.add_argument("--max-error-grid", nargs="+", metavar="E",
                   help="the error bounds to choose from: E or abs:E (absolute), rel:E or P%% (relative to the "
                        "layer's max |w|); default rel:2^-1.5 .. rel:2^-12 in half octaves")
    p.add_argument("--peers", nargs="*", default=list(PEERS), choices=PEERS, metavar="PEER",
                   help=f"peers run through the same selection (default: {' '.join(PEERS)}; none: --peers)")
    p.add_argument("--floors", nargs="*", default=list(peers.FLOORS), choices=list(peers.FLOORS), metavar="CODER",
                   help="float lossless coders for their bits/weight (default: zipnn fpzip; a missing one is noted)")
    p.add_argument("--groups", type=int, default=12, metavar="N", help="sensitivity groups per model (default 12)")
    p.add_argument("-o", "--output", metavar="FILE", help="the .pcz file (a folder with several models)")
    p.add_argument("--json", metavar="F", help="also write every figure as JSON (make lossy: results/lossy.json)")
    p.add_argument("--cache-dir", default=DEFAULT_CACHE, metavar="DIR", help="decoded layers by file hash")
    p.add_argument("--no-cache", action="store_true", help="decode the file, keep nothing")
    p.set_defaults(func=_cmd_lossy, requires=("eval",))
