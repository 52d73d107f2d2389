"""Digest of the Verilog of every hardware component, to check that two versions build alike.

Usage (compare the working tree with another checkout)::

    PYTHONPATH=/path/to/other python tools/rtl_digest.py --out /tmp/ref.json
    PYTHONPATH=.              python tools/rtl_digest.py --out /tmp/new.json --compare /tmp/ref.json

Each component of ``hw/`` is converted to Verilog at the parameter sets the tests, ``make sim``,
``make synth`` and ``make accel`` build (see ``DESIGNS``); the JSON maps the design's name to the
SHA-256 of its Verilog. Equal digests mean the same netlist, so every simulation and synthesis
figure of that design carries over. With ``--compare`` the exit status is 1 if any digest
differs from (or is missing in) the other file (with ``--only``: any of those designs).
"""

from __future__ import annotations

import argparse
import hashlib
import importlib
import sys

from digest_compare import write_and_compare

#: (name, module, class, parameters): the designs the Makefile targets and the tests build.
LANE = dict(weight_bits=8, block_bits=14, word_bits=32, max_code_len=15, num_tables=4, scan_bits=256)
SMALL_LANE = dict(weight_bits=8, block_bits=6, word_bits=32, max_code_len=15, num_tables=4, scan_bits=16)
DESIGNS = [
    ("BitReader_w32", "hw.bit_reader", "BitReader", dict(word_bits=32)),
    ("BitReader_w64", "hw.bit_reader", "BitReader", dict(word_bits=64)),
    ("CanonicalHuffmanDecoder", "hw.huffman_decoder", "CanonicalHuffmanDecoder",
     dict(max_code_len=15, num_tables=4, max_extra_bits=14)),
    ("BlockParser", "hw.block_parser", "BlockParser",
     dict(weight_bits=8, block_bits=14, word_bits=32, max_code_len=15, num_tables=4)),
    ("BlockParser_b4_p5_w64", "hw.block_parser", "BlockParser",
     dict(weight_bits=4, block_bits=5, word_bits=64, max_code_len=12, num_tables=2)),
    ("DistanceAccumulator_p14", "hw.distance_accumulator", "DistanceAccumulator",
     dict(weight_bits=8, block_bits=14, scan_bits=256)),
    ("DistanceAccumulator_p6", "hw.distance_accumulator", "DistanceAccumulator",
     dict(weight_bits=8, block_bits=6, scan_bits=16)),
    ("RepeatExpander_in_order", "hw.repeat_expander", "RepeatExpander",
     dict(weight_bits=8, block_bits=14, in_order=True)),
    ("RepeatExpander_writes", "hw.repeat_expander", "RepeatExpander",
     dict(weight_bits=8, block_bits=6, in_order=False)),
    ("LayerDecoder_p14", "hw.layer_decoder", "LayerDecoder", LANE),
    ("LayerDecoder_p6", "hw.layer_decoder", "LayerDecoder", dict(LANE, block_bits=6)),
    ("DecoderTop_x2_p14", "hw.decoder_top", "DecoderTop", dict(LANE, lanes=2)),
    ("DecoderTop_x2_p6", "hw.decoder_top", "DecoderTop", dict(SMALL_LANE, lanes=2)),
    ("PEArray", "hw.pe_array", "PEArray", dict(lanes=4, block_bits=12, max_k=1152)),
    ("PEArray_repeat_aware", "hw.pe_array", "PEArray",
     dict(lanes=2, block_bits=8, max_k=1152, repeat_aware=True)),
    ("Accelerator", "hw.accelerator", "Accelerator",
     dict(lanes=4, block_bits=12, word_bits=32, scan_bits=256, max_k=1152, max_rows=256)),
    ("Accelerator_repeat_aware", "hw.accelerator", "Accelerator",
     dict(lanes=4, block_bits=12, word_bits=32, scan_bits=256, max_k=1152, max_rows=256, repeat_aware=True)),
]


def digests(only=None) -> dict[str, str]:
    from amaranth.back import verilog

    out = {}
    for name, module, cls, params in DESIGNS:
        if only and name not in only:
            continue
        component = getattr(importlib.import_module(module), cls)(**params)
        text = verilog.convert(component, name="top", emit_src=False)
        out[name] = hashlib.sha256(text.encode()).hexdigest()
        print(f"{name:<28} {out[name][:16]}", flush=True)
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="*", help="design names (default: all)")
    parser.add_argument("--out", required=True)
    parser.add_argument("--compare", help="a digest JSON written by another version")
    args = parser.parse_args(argv)
    return write_and_compare(digests(args.only), args.out, args.compare, "designs", args.only)

if __name__ == "__main__":
    sys.exit(main())
