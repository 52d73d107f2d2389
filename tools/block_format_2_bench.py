"""Block format 2 against format 1 on every ``make bench`` row (issue 25), and where the difference comes from.

Usage::

    PYTHONPATH=. python tools/block_format_2_bench.py [--models ...] [--block-bits 14 12]
    PYTHONPATH=. python tools/block_format_2_bench.py --report results/block_format_2.json

For every bundled model, every ``make bench`` setting (``sw_codec.bench.SETTINGS``) and each block
size, over the tensors of two or more dimensions (as ``make bench``), per layer:

- the best of ``raw``, ``repeat/free``, ``distance/free`` and ``huffman/all|free`` in format 1
  (what ``auto`` picks: ``make bench``'s *best* column) and the same with huffman blocks in
  format 2 (raw, repeat and distance payloads are the same in both formats);
- for each huffman candidate, the steps from format 1 to format 2, every one counted exactly:
  the 11-bit code length limit (format 1 with the encoder's search at ``max_code_length`` 11
  against 15), the header sections' padding to 16 bits, the member sections' words against their
  fields' bits (each stream's last partial word, the zero words pulled ahead of a short last field,
  less the trailing zero words dropped), less format 1's padding of each block to a byte, and
  format 2's block length table (a 5-bit width, then each block's length in words) against
  format 1's offset table (4 bytes a block). ``limit + header padding + member padding -
  format 1 byte padding + length table - offset table`` is the whole difference.

The format-2 sizes are the lengths of the payloads ``sw_codec.encoder`` packs (``payload_size``
with ``block_format=2`` packs them); ``--verify N`` also decodes back every chosen format-2
payload of at most ``N`` weights with the reference decoder. Writes ``results/block_format_2.json``
and prints the rows; the target is no row more than 0.03 bits/weight above format 1 at 2^14 (the
bench).
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import numpy as np

from sw_codec.analysis import analyze
from sw_codec.bench import SETTINGS
from sw_codec.decoder import decode_layer
from sw_codec.encoder import (_header_section_words, _member_bits_per_block, _pack_blocks_2, block_length_table_bytes,
                              encode_positions, payload_size)
from sw_codec.format import BLOCK_OFFSET_BYTES, MAX_CODE_LENGTH, MEMBER_WORD_BITS, V2_MAX_CODE_LENGTH
from sw_codec.models import BUNDLED, bundled_model, load_model
from sw_codec.quantization import quantize
from sw_codec.search import choose_params

TARGET = 0.03
PARTS = ("limit", "header_pad", "member_pad", "f1_byte_pad", "offset_table", "length_table")


def measure_layer(q: np.ndarray, bits: int, block_bits: int, verify: int) -> dict:
    """Bits of every candidate in both formats and the parts of the huffman differences."""
    g = analyze(q, bits, block_bits)
    B = len(g.block_size)
    row = {"params": int(q.size), "blocks": B, "raw": 8 * ((q.size * bits + 7) // 8)}
    for m in ("repeat", "distance"):
        row[f"{m}/free"] = 8 * payload_size(g, m, "free")
    for slots in ("all", "free"):
        p15 = choose_params(g, "huffman", slots, MAX_CODE_LENGTH)
        p11 = choose_params(g, "huffman", slots, V2_MAX_CODE_LENGTH)
        f1 = 8 * payload_size(g, "huffman", slots, p15)
        f1_11 = 8 * payload_size(g, "huffman", slots, p11)
        f2 = 8 * payload_size(g, "huffman", slots, p11, block_format=2)
        header_bits, header_words = _header_section_words(g, p11)
        member_bits = _member_bits_per_block(g, "huffman", slots, p11)
        _, block_bytes = _pack_blocks_2(g, slots, p11)
        member_words = block_bytes // 2 - header_words
        f1_bits = header_bits + member_bits
        parts = {
            "limit": f1_11 - f1,
            "header_pad": int((MEMBER_WORD_BITS * header_words - header_bits).sum()),
            "member_pad": int((MEMBER_WORD_BITS * member_words - member_bits).sum()),
            "f1_byte_pad": int((8 * ((f1_bits + 7) // 8) - f1_bits).sum()),
            "offset_table": 8 * BLOCK_OFFSET_BYTES * B,
            "length_table": 8 * block_length_table_bytes(block_bytes),
        }
        assert f2 - f1_11 == (parts["header_pad"] + parts["member_pad"] - parts["f1_byte_pad"]
                              + parts["length_table"] - parts["offset_table"]), "parts must add up"
        row[f"huffman/{slots}"] = {"f1": f1, "f1_l11": f1_11, "f2": f2, **parts}
    others = min(row["raw"], row["repeat/free"], row["distance/free"])
    row["best_f1"] = min(others, *(row[f"huffman/{s}"]["f1"] for s in ("all", "free")))
    row["best_f2"] = min(others, *(row[f"huffman/{s}"]["f2"] for s in ("all", "free")))
    f2_slots = min(("free", "all"), key=lambda s: row[f"huffman/{s}"]["f2"])
    row["pick_f2"] = f"huffman/{f2_slots}" if row["best_f2"] < others else "other"
    if verify and row["pick_f2"] != "other" and q.size <= verify:
        payload = encode_positions(g, "huffman", f2_slots, choose_params(g, "huffman", f2_slots, V2_MAX_CODE_LENGTH),
                                   block_format=2)
        assert 8 * len(payload) == row["best_f2"]
        out = decode_layer(payload, q.size, bits, "huffman", f2_slots, block_bits, block_format=2)
        assert np.array_equal(out, q.ravel()), "format-2 payload does not decode back"
        row["verified"] = True
    return row


def run_setting(tensors: dict, bits: int, granularity: str, block_bits: int, verify: int) -> dict:
    layers = []
    for name, x in tensors.items():
        if np.ndim(x) < 2:
            continue
        q, _ = quantize(x, bits, granularity)
        layers.append({"name": name, **measure_layer(q, bits, block_bits, verify)})
    n = sum(r["params"] for r in layers)
    total = {"params": n, "layers": len(layers), "verified": sum(1 for r in layers if r.get("verified"))}
    for key in ("best_f1", "best_f2"):
        total[key] = sum(r[key] for r in layers) / n
    # The parts where format 2 picks huffman (the layers whose difference they explain).
    for slots in ("all", "free"):
        picked = [r for r in layers if r["pick_f2"] == f"huffman/{slots}"]
        for part in ("f1", "f1_l11", "f2") + PARTS:
            total[f"huffman/{slots}.{part}"] = sum(r[f"huffman/{slots}"][part] for r in picked) / n
    return {"total": total, "layers": layers}


def print_report(result: dict) -> None:
    bench = {(r["model"], r["bits"], r["granularity"]): r["total"]["best_f1"]
             for r in result["runs"] if r["block_bits"] == 14}
    print("bits/weight; bench = format 1 at 2^14; parts of format 2 - format 1 on the layers where format 2 picks "
          "huffman, summed over both slot countings")
    head = (f"{'model':<11} {'setting':<10} {'P':>2} {'bench':>7} {'f1':>7} {'f2':>7} {'f2-bench':>8} {'ok':>3} "
            f"{'limit':>7} {'hdr pad':>7} {'mem pad':>7} {'-f1 pad':>7} {'-offsets':>8} {'lengths':>7}")
    print(head)
    print("-" * len(head))
    for r in result["runs"]:
        t = r["total"]
        ref = bench.get((r["model"], r["bits"], r["granularity"]))
        diff = None if ref is None else t["best_f2"] - ref
        part = {p: sum(t[f"huffman/{s}.{p}"] for s in ("all", "free")) for p in PARTS}
        print(f"{r['model']:<11} {'int%d %s' % (r['bits'], r['granularity'][:2]):<10} {r['block_bits']:>2} "
              + (f"{ref:7.3f}" if ref is not None else f"{'n/a':>7}")
              + f" {t['best_f1']:7.3f} {t['best_f2']:7.3f} "
              + (f"{diff:+8.4f} {'yes' if diff <= TARGET else 'NO':>3}" if diff is not None else f"{'':>8} {'':>3}")
              + f" {part['limit']:+7.4f} {part['header_pad']:+7.4f} {part['member_pad']:+7.4f}"
              f" {-part['f1_byte_pad']:+7.4f} {-part['offset_table']:+8.4f} {part['length_table']:+7.4f}")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", nargs="*", default=list(BUNDLED), choices=list(BUNDLED))
    ap.add_argument("--block-bits", nargs="*", type=int, default=[14, 12])
    ap.add_argument("--verify", type=int, default=0, metavar="N",
                    help="decode back the chosen format-2 payload of every layer of at most N weights")
    ap.add_argument("--out", default="results/block_format_2.json")
    ap.add_argument("--report", metavar="JSON", help="print the rows of a results file instead of measuring")
    args = ap.parse_args(argv)
    if args.report:
        print_report(json.loads(Path(args.report).read_text()))
        return 0
    t0 = time.time()
    result = {"machine": platform.platform(), "date": time.strftime("%Y-%m-%d %H:%M"), "runs": []}
    for model in args.models:
        tensors = load_model(bundled_model(model))
        for s in SETTINGS:
            for P in args.block_bits:
                t1 = time.time()
                run = run_setting(tensors, s["bits"], s["granularity"], P, args.verify)
                result["runs"].append({"model": model, **s, "block_bits": P, "seconds": time.time() - t1, **run})
                t = run["total"]
                print(f"{model} int{s['bits']} {s['granularity']} P={P}: f1 {t['best_f1']:.4f} f2 {t['best_f2']:.4f} "
                      f"({time.time() - t1:.1f} s, {t['verified']} layers decoded back)", flush=True)
    result["seconds"] = time.time() - t0
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=1, default=int))
    print_report(result)
    print(f"\nwrote {args.out} in {result['seconds']:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
