"""The codec's commands: ``compress``, ``decompress``, ``inspect``, ``report`` (``sw_codec`` only)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from sw_codec.codec import DEFAULT_BLOCK_BITS, MODE_CHOICES, SLOTS_CHOICES, compress, decompress, inspect
from sw_codec.container import layout
from sw_codec.format import MAX_BLOCK_BITS, MIN_BLOCK_BITS, VERSION, VERSIONS, WEIGHT_BITS
from sw_codec.models import load_model, model_path
from sw_codec.quantization import GRANULARITIES

__all__ = ["add_commands", "add_quantization_arguments"]


def _block_bits(text: str) -> int:
    value = int(text)
    if not MIN_BLOCK_BITS <= value <= MAX_BLOCK_BITS:
        raise argparse.ArgumentTypeError(f"must be in {MIN_BLOCK_BITS}..{MAX_BLOCK_BITS}")
    return value


def add_quantization_arguments(p: argparse.ArgumentParser) -> None:
    """``--bits``, ``--granularity`` and ``--block-bits``, as the codec takes them."""
    p.add_argument("--bits", type=int, choices=WEIGHT_BITS, default=8, metavar="B",
                   help=f"integer width of quantized weights, {min(WEIGHT_BITS)}..{max(WEIGHT_BITS)} (default 8)")
    p.add_argument("--granularity", choices=GRANULARITIES, default="tensor",
                   help="one scale per tensor or per output channel (axis 0) (default tensor)")
    p.add_argument("--block-bits", type=_block_bits, default=DEFAULT_BLOCK_BITS, metavar="P",
                   help=f"blocks of 2**P weights, {MIN_BLOCK_BITS}..{MAX_BLOCK_BITS} (default {DEFAULT_BLOCK_BITS})")


def _cmd_compress(args) -> int:
    tensors = load_model(model_path(args.model))
    data = compress(tensors, bits=args.bits, granularity=args.granularity, mode=args.mode, slots=args.slots,
                    block_bits=args.block_bits, quantize_1d=args.quantize_1d, progress=not args.quiet,
                    version=args.container_version)
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    Path(args.output).write_bytes(data)
    records = inspect(data)
    quantized = sum(r.count for r in records if r.mode != "float32")
    qbytes = sum(r.length for r in records if r.mode != "float32")
    print(f"{args.output}: {len(records)} layers, {len(data)} bytes; quantized weights {quantized} at "
          f"{8 * qbytes / max(quantized, 1):.3f} bits/weight")
    return 0


def _cmd_decompress(args) -> int:
    data = Path(args.input).read_bytes()
    arrays = decompress(data, integers=args.integers, progress=not args.quiet)
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    np.savez(args.output, **arrays)
    print(f"{args.output}: {len(arrays)} arrays")
    return 0


def _cmd_inspect(args) -> int:
    data = Path(args.input).read_bytes()
    records = inspect(data)
    parts = layout(data)
    print(f"{args.input}: {len(data)} bytes, container version {parts['version']}, {len(records)} layers; "
          f"directory {parts['directory']} bytes, scales {parts['scales']}, payloads {parts['payloads']}")
    print(f"{'layer':<48} {'shape':<18} {'mode':<14} {'bits':>4} {'gran':<7} {'P':>2} {'offset':>10} "
          f"{'bytes':>10} {'bits/w':>7} {'crc32':>8}")
    for r in records:
        mode = r.mode if r.mode in ("raw", "float32") else f"{r.mode}/{r.slots}"
        shape = "x".join(map(str, r.shape)) or "scalar"
        print(f"{r.name[-48:]:<48} {shape:<18} {mode:<14} {r.bits:>4} {r.granularity:<7} "
              f"{r.block_bits or '':>2} {r.offset:>10} {r.length:>10} {8 * r.length / max(r.count, 1):>7.3f} "
              f"{r.crc32:08x}")
    return 0


def _cmd_report(args) -> int:
    from sw_codec.report import format_report, report

    tensors = load_model(model_path(args.model))
    result = report(tensors, bits=args.bits, granularity=args.granularity, block_bits=args.block_bits,
                    baselines_enabled=not args.no_baselines, progress=not args.quiet, min_params=args.min_params)
    result["model"] = args.model
    print(format_report(result, per_layer=not args.totals_only))
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(result, indent=1))
        print(f"wrote {args.json}")
    return 0


def add_commands(sub) -> None:
    p = sub.add_parser("compress", help="quantize a model and write a .pcz file")
    p.add_argument("model", metavar="MODEL")
    p.add_argument("-o", "--output", required=True, metavar="OUT.pcz")
    add_quantization_arguments(p)
    p.add_argument("--mode", choices=MODE_CHOICES, default="auto", help="payload mode; auto picks the smallest per layer")
    p.add_argument("--slots", choices=SLOTS_CHOICES, default="auto",
                   help="count positions among all slots or among free slots; auto picks the smallest")
    p.add_argument("--quantize-1d", action="store_true", help="quantize 1-D tensors too (default: keep them float32)")
    p.add_argument("--container-version", type=int, choices=VERSIONS, default=VERSION, metavar="V",
                   help=f".pcz container version, one of {', '.join(map(str, VERSIONS))} (default {VERSION})")
    p.set_defaults(func=_cmd_compress)

    p = sub.add_parser("decompress", help="decode a .pcz file to .npz")
    p.add_argument("input", metavar="IN.pcz")
    p.add_argument("-o", "--output", required=True, metavar="OUT.npz")
    p.add_argument("--integers", action="store_true", help="integer tensors and NAME.scale instead of float32")
    p.set_defaults(func=_cmd_decompress)

    p = sub.add_parser("inspect", help="print the layer table of a .pcz file")
    p.add_argument("input", metavar="IN.pcz")
    p.set_defaults(func=_cmd_inspect)

    p = sub.add_parser("report", help="bits/weight of every mode and of zstd, lzma and Ethos-U, per layer")
    p.add_argument("model", metavar="MODEL")
    add_quantization_arguments(p)
    p.add_argument("--json", metavar="F", help="also write the report as JSON")
    p.add_argument("--no-baselines", action="store_true", help="skip zstd, lzma and Ethos-U")
    p.add_argument("--totals-only", action="store_true", help="print only the total row")
    p.add_argument("--min-params", type=int, default=0, metavar="N", help="skip tensors with fewer weights")
    p.set_defaults(func=_cmd_report)
