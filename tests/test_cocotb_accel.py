"""The accelerator (DecoderTop + PEArray) on Verilator: real layers, every mode, y = W x bit for bit.

An FC slice of MiniLM and a 3x3 conv of YOLOv8n (im2col: W is (C_out, C_in*9), x one output
pixel's patch), int8 weights from sw_codec's quantizer, random int8 activations, fed from the
main-memory model of ``sim.accel.memory`` at a low and a high bandwidth; then the same slices on
the repeat-aware PE array (the decoder's write stream, one multiply per run of equal weights).
"""

import numpy as np
import pytest

from sim.accel.model import representative_slices
from sim.accel.run import AccelParams, AccelRun, run_accel

HW = AccelParams(lanes=2, max_k=1152)
MODES = [("raw", "all"), ("repeat", "free"), ("distance", "all"), ("huffman", "free")]


def _runs(modes, bandwidths):
    slices = representative_slices(["minilm", "yolov8n"], HW, weights=1024)
    rng = np.random.default_rng(0)
    runs = []
    for s in slices:
        x = rng.integers(-128, 128, s["W"].shape[1])
        for mode, slots in modes:
            for bw in bandwidths:
                runs.append(AccelRun(f"{s['model']} {mode}/{slots} bw{bw}", s["W"], x, mode, slots,
                                     bandwidth=bw, latency=20))
    return runs


@pytest.fixture(scope="module")
def results():
    return run_accel(_runs(MODES, (8, 64)), HW)


@pytest.fixture(scope="module")
def repeat_aware_results():
    from dataclasses import replace
    return run_accel(_runs(MODES, (64,)), replace(HW, repeat_aware=True))


def test_outputs_match_numpy(results):
    assert len(results) == 16
    for r in results:
        assert (r["mismatches"], r["error"]) == (0, 0), r["name"]
        assert r["mults"] == r["takes"] == r["weights"], r["name"]


def test_memory_model_bandwidth_and_compressed_traffic(results):
    by = {r["name"]: r for r in results}
    for model in ("minilm", "yolov8n"):
        raw8, raw64 = by[f"{model} raw/all bw8"], by[f"{model} raw/all bw64"]
        # 8 bits per cycle carry one raw int8 weight per cycle: memory bound, whatever the lanes.
        assert raw8["streaming_cycles"] >= 0.95 * raw8["weights"]
        # 64 bits per cycle: bound by the 2 lanes (each decodes fewer than one weight per cycle at
        # 2**8 blocks).
        assert raw64["streaming_cycles"] < 0.8 * raw8["streaming_cycles"]
        assert raw8["bits_read"] >= 8 * raw8["weights"]
        # Even on a slice this small (preamble and Huffman tables included) Huffman reads less.
        assert by[f"{model} huffman/free bw8"]["bits_read"] < raw8["bits_read"]


def test_repeat_aware_exact_with_fewer_multiplies(results, repeat_aware_results):
    plain = {r["name"]: r for r in results}
    assert len(repeat_aware_results) == 8
    for r in repeat_aware_results:
        assert (r["mismatches"], r["error"]) == (0, 0), r["name"]
        p = plain[r["name"]]
        assert p["mults"] == p["weights"]
        if not r["name"].split()[1].startswith("raw"):
            # One multiply per run of equal weights in a row (plus one per row and block for the
            # implicit value), far fewer than the plain array's one per weight.
            assert r["mults"] < 0.8 * p["mults"], (r["name"], r["mults"], p["mults"])
            # Only the explicit writes are tokens: the implicit value's slots are never visited.
            assert r["takes"] < p["takes"], r["name"]
