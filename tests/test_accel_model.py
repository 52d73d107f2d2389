"""The system-level model of ``sim.accel.model`` on synthetic measurements (no RTL): the extrapolation
and the energy bookkeeping behave as docs/ENERGY.md says."""

import pytest

from sim.accel.model import DECODER_PJ_PER_WEIGHT, DECODER_PJ_SENSITIVITY, MODES, extrapolate, markdown_table
from sim.accel.run import AccelParams


def _run(mode, slots, bw, bits_per_weight, peak_cycles_per_weight=0.25, weights=1000, rows=10):
    # Memory bound below the peak: cycles per weight = bits / bandwidth.
    c = max(peak_cycles_per_weight, bits_per_weight / bw)
    return {"model": "m", "mode": mode, "slots": slots, "bandwidth": bw, "weights": weights, "rows": rows,
            "first_take": 100, "last_take": 100 + round(c * weights) - 1, "cycles": 100 + round(c * weights) + 2 * rows,
            "stream_bits": bits_per_weight * weights}


def test_extrapolation_memory_and_compute_bound():
    hw = AccelParams(lanes=4, block_bits=12)
    measured = [_run(m, s, bw, 8 if m == "raw" else 4) for m, s in MODES for bw in (8, 128)]
    layers = {"m": [{"name": "l", "weights": 100_000, "rows": 100,
                     "bpw": {f"{m}/{s}": (8 if m == "raw" else 4) for m, s in MODES}}]}
    rows = extrapolate(measured, layers, hw)
    by = {(r["mode"], r["slots"], r["bandwidth"]): r for r in rows}
    assert by[("raw", "all", 8)]["latency_reduction"] == 0
    # Half the bits at 8 bits/cycle: about half the cycles (the fill and tail are per layer).
    assert by[("huffman", "free", 8)]["latency_reduction"] == pytest.approx(0.5, abs=0.01)
    # Compute bound at 128 bits/cycle: no gain.
    assert by[("huffman", "free", 128)]["latency_reduction"] == pytest.approx(0, abs=0.01)
    # Energy: DRAM dominates; a higher decoder energy lowers the reduction.
    r = by[("huffman", "free", 8)]
    sens = r["energy_reduction_by_decoder_pj"]
    assert sens[str(DECODER_PJ_SENSITIVITY[0])] > r["energy_reduction"] > sens[str(DECODER_PJ_SENSITIVITY[1])]
    assert r["energy_reduction"] == pytest.approx(sens[str(DECODER_PJ_PER_WEIGHT)])
    assert 0.4 < r["energy_reduction"] < 0.5
    table = markdown_table(rows, bandwidths=(8, 128))
    assert "| m | huffman/free | 4.00 | 50 | 0 |" in table
