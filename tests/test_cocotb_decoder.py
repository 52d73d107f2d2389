"""The whole decoder (DecoderTop: parser, accumulator, expander per lane) in RTL vs sw_codec.

Every mode and slot counting, special blocks, a real model's weights, random stalls on input and
output, and corrupt streams (the error flag rises, nothing hangs, and the next layer after
``clear`` decodes again), on Verilator and, when installed, Icarus.
"""

import numpy as np
import pytest

from hw.params import DecoderParams
from sim.rtl_decode import LayerJob, run_layers
from sim.runner import available_simulators
from sw_codec.encoder import encode_layer

SIMULATORS = ["verilator", pytest.param("icarus", marks=pytest.mark.skipif(
    "icarus" not in available_simulators(), reason="Icarus Verilog not installed (iverilog/vvp not on PATH)"))]

HARDWARE = [
    DecoderParams(lanes=2, weight_bits=8, block_bits=6, word_bits=32, scan_bits=16),
    DecoderParams(lanes=1, weight_bits=4, block_bits=5, word_bits=64, max_code_len=12, num_tables=2),
    # a width that is not a byte, a nibble or a half-word (the format has every width 2..16)
    DecoderParams(lanes=1, weight_bits=5, block_bits=6, word_bits=32, scan_bits=16),
]
MODES = [("raw", "all")] + [(m, s) for m in ("repeat", "distance", "huffman") for s in ("all", "free")]


def layers_for(hw: DecoderParams):
    rng = np.random.default_rng(hw.weight_bits)
    hi = (1 << (hw.weight_bits - 1)) - 1
    n = 1 << hw.block_bits
    laplace = np.clip(np.rint(rng.laplace(0, hi / 12, 5 * n + 7)), -hi, hi).astype(int)
    # A block with one value, an all-distinct block (as far as b bits allow), then a partial one.
    special = np.concatenate([np.full(n, 3), rng.permutation(np.resize(np.arange(-hi - 1, hi + 1), n)),
                              rng.integers(-2, 3, n // 2 + 1)])
    data = [("laplace", laplace), ("special", special)]
    if hw.weight_bits != 4:
        from sw_codec.models import bundled_model, load_model
        from sw_codec.quantization import quantize

        w = load_model(bundled_model("minilm"))["encoder.layer.0.attention.self.query.weight"]
        data.append(("minilm-query", quantize(w, hw.weight_bits, "tensor")[0].ravel()[: 6 * n]))
    jobs = []
    for label, q in data:
        for mode, slots in MODES:
            jobs.append(LayerJob(f"{label} {mode}/{slots}", encode_layer(q, hw.weight_bits, mode, slots, hw.block_bits),
                                 q.size, hw.weight_bits, mode, slots, hw.block_bits, stall_in=0.3, stall_out=0.3))
    # Truncated streams must raise the error flag; the layer after them (after clear) decodes.
    for mode in ("huffman", "distance"):
        jobs.append(LayerJob(f"truncated {mode}", encode_layer(laplace, hw.weight_bits, mode, "free", hw.block_bits),
                             laplace.size, hw.weight_bits, mode, "free", hw.block_bits, expect_error=True, cut=0.5))
    jobs.append(jobs[0])
    return jobs


@pytest.mark.parametrize("hw", HARDWARE, ids=lambda h: f"b{h.weight_bits}-P{h.block_bits}-w{h.word_bits}-l{h.lanes}")
@pytest.mark.parametrize("sim", SIMULATORS)
def test_decoder_matches_sw_codec(sim, hw):
    jobs = layers_for(hw)
    results = run_layers(jobs, hw, sim=sim)
    assert len(results) == len(jobs)
    for job, r in zip(jobs, results):
        if job.expect_error:
            assert r.error, job.name
        else:
            assert (r.weights, r.mismatches, r.error) == (job.count, 0, False), job.name


def test_throughput_one_weight_per_cycle_per_lane_without_stalls():
    """All-slot counting on a real layer sustains about one weight per cycle per lane."""
    from sw_codec.models import bundled_model, load_model
    from sw_codec.quantization import quantize

    hw = HARDWARE[0]
    w = load_model(bundled_model("minilm"))["embeddings.position_embeddings.weight"]
    q = quantize(w, 8, "tensor")[0].ravel()[: 64 << hw.block_bits]
    jobs = [LayerJob(f"pos-emb {m}/all", encode_layer(q, 8, m, "all", hw.block_bits), q.size, 8, m, "all",
                     hw.block_bits) for m in ("repeat", "huffman")]
    for r in run_layers(jobs, hw):
        assert r.mismatches == 0
        # 64-weight blocks carry several groups, and each group header costs several cycles;
        # the floors sit a few percent under the rates those header cycles give.
        floor = {"repeat": 0.73, "huffman": 0.61}[r.name.split()[1].split("/")[0]]
        assert r.weights_per_cycle_per_lane > floor, (r.name, r.weights_per_cycle_per_lane)
