"""``poscodec accel``: system-level latency and energy with and without weight compression."""

from __future__ import annotations

from pathlib import Path

from hw.params import WORD_BITS_CHOICES

__all__ = ["add_commands"]


def _cmd_accel(args) -> int:
    import json

    from sim.accel.model import DEFAULT_HW, evaluate, lossy_point, lossy_table
    from sim.accel.run import AccelParams

    hw = AccelParams(**dict(DEFAULT_HW, lanes=args.lanes, block_bits=args.block_bits, word_bits=args.word_bits))
    models = [m.lstrip("@") for m in args.models]
    result = evaluate(models, tuple(args.bandwidth), args.weights, args.latency, hw,
                      None if args.no_write else Path(args.output), repeat_aware=not args.no_repeat_aware,
                      blocks_per_lane=args.blocks_per_lane, reuse=args.reuse)
    if args.lossy:
        points = lossy_point(result, json.loads(Path(args.lossy).read_text()))
        print(f"\nThe chosen lossy points of {args.lossy} (per-layer coded bits, huffman/free rates):")
        print(lossy_table(points))
        if not args.no_write:
            out = Path(args.output) / "accel_lossy.json"
            out.write_text(json.dumps({"lossy": args.lossy, "points": points}, indent=1))
            print(f"wrote {out}")
    return 0


def add_commands(sub) -> None:
    p = sub.add_parser("accel", help="latency and energy of the accelerator (decoder + PE array, RTL) "
                                     "with and without compression")
    p.add_argument("models", metavar="MODEL", nargs="*", default=["minilm", "yolov8n", "ppocr-det"],
                   help="bundled models (default: minilm yolov8n ppocr-det)")
    p.add_argument("--bandwidth", type=float, nargs="+", default=[8, 16, 32, 64, 128], metavar="B",
                   help="main-memory bandwidths in bits per cycle (default 8 16 32 64 128)")
    p.add_argument("--latency", type=int, default=20, help="main-memory latency in cycles (default 20)")
    p.add_argument("--weights", type=int, default=None,
                   help="weights per simulated slice (default: --blocks-per-lane blocks per lane)")
    p.add_argument("--blocks-per-lane", type=int, default=4, help="slice size in blocks per lane (default 4)")
    p.add_argument("--lanes", type=int, default=4, help="decoder lanes = MACs (default 4; a power of two)")
    p.add_argument("--block-bits", type=int, default=12, help="block size 2**P (default 12)")
    p.add_argument("--no-repeat-aware", action="store_true", help="skip the repeat-aware PE array runs")
    p.add_argument("--reuse", metavar="JSON", default=None,
                   help="take the RTL measurements from an earlier accel.json (no simulation)")
    p.add_argument("--word-bits", type=int, choices=WORD_BITS_CHOICES, default=32)
    p.add_argument("--lossy", metavar="JSON", default=None,
                   help="also the latency and energy of each model's chosen point of a poscodec lossy JSON "
                        "(results/lossy.json) against raw int8 and raw fp32 -> accel_lossy.json")
    p.add_argument("-o", "--output", default="results", help="folder for accel.json/.md/.png (default results)")
    p.add_argument("--no-write", action="store_true", help="print only")
    p.set_defaults(func=_cmd_accel, requires=("hw", "sim"))
