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


def test_a_lossy_point_against_raw_int8_and_fp32():
    """Per-layer coded bits of a lossy file at the huffman/free rates; a float layer at 32 bits."""
    from dataclasses import asdict

    from sim.accel.model import lossy_point, lossy_table

    hw = AccelParams(lanes=4, block_bits=12)
    measured = [_run(m, s, bw, 8 if m == "raw" else 4, peak_cycles_per_weight=0.01) for m, s in MODES for bw in (16, 128)]
    layers = [{"name": n, "weights": 100_000, "rows": 100, "bpw": {"raw/all": 8.0}} for n in ("a", "b")]
    accel = {"hardware": asdict(hw), "measured": measured, "layers": {"m": layers}}
    lossy = {"models": {"m": {"chosen": {"layers": {"a": {"setting": "rel:0.01", "payload_bits_per_weight": 2.0},
                                                    "b": {"setting": "rel:0.02", "payload_bits_per_weight": 2.0}}}}}}
    p16, p128 = lossy_point(accel, lossy)
    assert p16["lossy"]["bits_per_weight"] == 2 and p16["fp32"]["bits_per_weight"] == 32
    # Memory bound at 16 bits/cycle: 2 bits against 8 and 32 (per-layer fill and tail aside).
    assert p16["latency_reduction_vs_int8"] == pytest.approx(0.75, abs=0.02)
    assert p16["latency_reduction_vs_fp32"] == pytest.approx(1 - 2 / 32, abs=0.01)
    assert p16["energy_reduction_vs_fp32"] > p16["energy_reduction_vs_int8"] > 0.6
    lossy["models"]["m"]["chosen"]["layers"]["b"]["setting"] = "float"       # b kept float32
    p16 = lossy_point(accel, lossy)[0]
    assert p16["lossy"]["bits_per_weight"] == 17 and p16["latency_reduction_vs_int8"] < 0
    assert "| m | 17.00 | 16 |" in lossy_table([p16])
