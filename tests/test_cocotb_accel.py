"""The accelerator (DecoderTop + PEArray) on Verilator: real layers, every mode, y = W x bit for bit.

An FC slice of MiniLM and a 3x3 conv of YOLOv8n (im2col: W is (C_out, C_in*9), x one output
pixel's patch), int8 weights from sw_codec's quantizer, random int8 activations, fed from the
testbench's main-memory model at a low and a high bandwidth.
"""

import numpy as np
import pytest

from sim.accel import representative_slices
from sim.rtl_accel import AccelParams, AccelRun, run_accel

HW = AccelParams()


@pytest.fixture(scope="module")
def results():
    slices = representative_slices(["minilm", "yolov8n"], HW, weights=1024)
    rng = np.random.default_rng(0)
    runs = []
    for s in slices:
        x = rng.integers(-128, 128, s["W"].shape[1])
        for mode, slots in [("raw", "all"), ("repeat", "free"), ("distance", "all"), ("huffman", "free")]:
            for bw in (8, 64):
                runs.append(AccelRun(f"{s['model']} {mode}/{slots} bw{bw}", s["W"], x, mode, slots,
                                     bandwidth=bw, latency=20))
    return run_accel(runs, HW)


def test_outputs_match_numpy(results):
    assert len(results) == 16
    for r in results:
        assert (r["mismatches"], r["error"]) == (0, 0), r["name"]


def test_memory_model_bandwidth_and_compressed_traffic(results):
    by = {r["name"]: r for r in results}
    for model in ("minilm", "yolov8n"):
        raw8, raw64 = by[f"{model} raw/all bw8"], by[f"{model} raw/all bw64"]
        # 8 bits per cycle carry one raw int8 weight per cycle: memory bound, whatever the lanes.
        assert raw8["streaming_cycles"] >= 0.95 * raw8["weights"]
        assert raw64["streaming_cycles"] < 0.7 * raw8["streaming_cycles"]
        assert raw8["bits_read"] >= 8 * raw8["weights"]
        # Even on a slice this small (preamble and Huffman tables included) Huffman reads less.
        assert by[f"{model} huffman/free bw8"]["bits_read"] < raw8["bits_read"]
