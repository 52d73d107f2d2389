"""The accuracy harness, fast tier: real models on small subsets of real inputs.

Each protocol's float model clears a floor on true labels, int8 per channel stays close to it, and
int4 per tensor is visibly worse (the weights really are substituted). The codec path and the
.pcz path give the same row; a missing runtime or data package is one message naming it.
"""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from accuracy import coded, harness, metrics, minilm, ppocr
from accuracy.data import MissingPackage
from poscodec.cli import main
from sw_codec.codec import inspect
from sw_codec.quantization import dequantize, quantize

ROOT = Path(__file__).resolve().parent.parent


def fake_quantized(name: str, bits: int, granularity: str) -> dict:
    """The weights the codec decodes a setting to: tensors of 2+ dimensions quantized and scaled back."""
    return {k: dequantize(*quantize(v, bits, granularity)) for k, v in harness.float_weights(name).items()
            if v.ndim >= 2}


def test_numpy_minilm_reproduces_the_published_example_similarities():
    # sentence-transformers' documentation (quickstart) prints these for all-MiniLM-L6-v2.
    published = np.array([[1.0000, 0.6660, 0.1046], [0.6660, 1.0000, 0.1411], [0.1046, 0.1411, 1.0000]])
    e = minilm.encode(harness.float_weights("minilm"), minilm.Tokenizer(),
                      ["The weather is lovely today.", "It's so sunny outside!", "He drove to the stadium."])
    np.testing.assert_allclose(e @ e.T, published, atol=2e-4)


#: model -> (task metric, floor for float, largest int8ch loss, smallest int4-per-tensor loss)
EXPECTED = {
    "minilm": ("polarity_accuracy", 0.65, 0.04, 0.05),
    "yolov8n": ("face_auc", 0.95, 0.02, 0.1),
    "ppocr-det": ("recall", 0.9, 0.09, 0.5),
    "ppocr-rec": ("exact_match", 0.9, 0.1, 0.5),
    "silero-vad": ("frame_f1", 0.9, 0.02, 0.3),
}


@pytest.mark.parametrize("name", list(EXPECTED))
def test_float_clears_a_floor_int8_stays_close_and_int4_per_tensor_falls(name):
    metric, floor, int8_loss, int4_loss = EXPECTED[name]
    p = harness.protocol(name)
    assert metric == p.task_metrics[0]
    ref = harness.evaluate(name, None, "fast")
    int8 = harness.evaluate(name, fake_quantized(name, 8, "channel"), "fast")
    int4 = harness.evaluate(name, fake_quantized(name, 4, "tensor"), "fast")
    agree = p.agreement_metrics[0]
    assert ref[metric] >= floor and ref[agree] == pytest.approx(1.0)
    assert int8[metric] >= ref[metric] - int8_loss, (ref, int8)
    assert int4[metric] <= ref[metric] - int4_loss, (ref, int4)
    assert int4[agree] < int8[agree] <= 1.0 + 1e-9


def test_a_partial_replacement_changes_only_what_it_names():
    name = "silero-vad"
    w = harness.float_weights(name)
    assert harness.evaluate(name, {"conv1.bias": w["conv1.bias"]}, "fast")["same_decision_as_float"] == 1.0
    dead = harness.evaluate(name, {"final_conv.weight": np.zeros_like(w["final_conv.weight"])}, "fast")
    assert dead["same_decision_as_float"] < 0.9
    with pytest.raises(ValueError, match="does not have"):
        harness.evaluate(name, {"no.such.weight": np.zeros(3)}, "fast")
    with pytest.raises(ValueError, match="shape"):
        harness.evaluate(name, {"conv1.bias": np.zeros(3)}, "fast")


def test_codec_and_pcz_paths_agree_and_decode_the_quantized_weights(tmp_path):
    pcz, out, cache = tmp_path / "s.pcz", tmp_path / "a.json", tmp_path / "cache"
    assert main(["-q", "compress", "@silero-vad", "--bits", "8", "--granularity", "channel", "-o", str(pcz)]) == 0
    assert main(["-q", "eval", "@silero-vad", "--tier", "fast", "--codec", "int8ch", "--pcz", str(pcz),
                 "--cache-dir", str(cache), "--json", str(out), "--plot-dir", str(tmp_path)]) == 0
    rows = json.loads(out.read_text())["models"]["silero-vad"]["rows"]
    assert [r["setting"] for r in rows] == ["float", "int8ch", str(pcz)]
    assert rows[1]["metrics"] == rows[2]["metrics"]
    assert rows[1]["bits_per_weight"] == rows[2]["bits_per_weight"] < 8
    # The same bytes both ways: the file's layers come from the cache the codec path filled.
    assert (rows[1]["decoded_from_cache"], rows[2]["decoded_from_cache"]) == (False, True)
    decoded = coded.decode(pcz.read_bytes(), jobs=1)
    for k, v in fake_quantized("silero-vad", 8, "channel").items():
        np.testing.assert_array_equal(decoded[k], v)
    assert (tmp_path / "accuracy_silero-vad.png").stat().st_size > 0


def test_settings_parse_and_store_their_width():
    assert coded.parse_setting("int8ch") == coded.Setting(8, "channel")
    data = coded.encode({"w": np.linspace(-1, 1, 600, dtype=np.float32).reshape(20, 30)}, coded.parse_setting("int5ch"))
    assert [r.bits for r in inspect(data)] == [5]
    assert coded.parse_setting("INT4").granularity == "tensor"
    for bad in ("int1", "int17", "8ch", "int8c"):
        with pytest.raises(ValueError):
            coded.parse_setting(bad)


def run_cli(prelude: str, args: list[str]):
    code = f"import sys\n{prelude}\nfrom poscodec.cli import main\nsys.exit(main({args!r}))"
    return subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)


@pytest.mark.parametrize("blocked,model,says", [
    ("gensim", "minilm", "needs the data package gensim (pip install --no-deps gensim==4.4.0)"),
    ("skimage", "yolov8n", "needs the data package scikit-image (pip install --no-deps scikit-image==0.26.0)"),
    ("pytest_audioeval", "silero-vad", "needs the data package pytest-audioeval"),
    ("onnxruntime", "ppocr-rec", "needs onnxruntime"),
])
def test_a_missing_package_is_one_message_naming_it(blocked, model, says):
    out = run_cli(f"sys.modules[{blocked!r}] = None", ["eval", model, "--tier", "fast"])
    assert out.returncode == 2, out.stderr
    assert says in out.stderr and "Traceback" not in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1


def test_the_api_names_a_missing_runtime_too():
    code = ("import sys\nsys.modules['tokenizers'] = None\nfrom accuracy.harness import evaluate\n"
            "from accuracy.data import MissingPackage\n"
            "try:\n    evaluate('minilm')\nexcept MissingPackage as e:\n    print(e)\n")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert "model minilm needs tokenizers to run it (pip install 'poscodec[eval]')" in out.stdout, out.stderr


def test_an_unknown_model_names_the_known_ones():
    out = run_cli("", ["eval", "resnet50"])
    assert out.returncode == 2 and "no accuracy protocol for model 'resnet50' (known: minilm," in out.stderr
    with pytest.raises(ValueError, match="tier"):
        harness.inputs("minilm", "huge")
    assert issubclass(MissingPackage, LookupError)


def test_metrics_on_known_cases():
    assert metrics.auc([0.1, 0.4, 0.35, 0.8], [0, 0, 1, 1]) == 0.75
    assert metrics.auc([1, 1, 1, 1], [0, 1, 0, 1]) == 0.5              # ties count half
    assert metrics.spearman([1, 2, 2, 3], [10, 20, 20, 30]) == pytest.approx(1.0)
    assert metrics.edit_distance("kitten", "sitting") == 3
    assert metrics.char_error_rate(["abd", ""], ["abc", "xy"]) == pytest.approx(3 / 5)
    assert metrics.f1([1, 1, 0, 0], [1, 0, 1, 0]) == 0.5
    assert metrics.match_boxes([(0, 0, 10, 10), (0, 0, 10, 10)], [(1, 1, 10, 10), (50, 50, 60, 60)]) == 1
    x = np.r_[np.linspace(-2, -0.1, 20), np.linspace(0.1, 2, 20)][:, None]
    y = (x[:, 0] > 0).astype(float)
    assert metrics.cross_val_accuracy(x, y) == 1.0
    w = metrics.logistic_regression(x, y, c=1.0)                        # the gradient vanishes at the optimum
    p = 1 / (1 + np.exp(-(x[:, 0] * w[0] + w[1])))
    assert abs(((p - y) * x[:, 0]).sum() + w[0]) < 1e-6 and abs((p - y).sum()) < 1e-6


def test_db_boxes_join_8_connected_pixels_and_unclip():
    prob = np.zeros((40, 60), np.float32)
    prob[8:15, 8:33] = 1.0
    prob[15:17, 33:36] = 1.0              # touches the first blob at a corner only: one component
    prob[25:30, 5:20] = 0.9
    prob[35:37, 40:41] = 0.9              # too thin to be a box
    boxes = sorted(ppocr.db_boxes(prob), key=lambda b: b[1])
    assert len(boxes) == 2
    w, h = 16, 6                          # the second blob, 15 x 5, grown by the 2x2 dilation
    d = w * h * ppocr.DET_UNCLIP / (2 * (w + h))
    assert boxes[1] == pytest.approx((5 - d, 25 - d, 5 + w + d, 25 + h + d))
    w, h = 29, 10
    d = w * h * ppocr.DET_UNCLIP / (2 * (w + h))
    assert boxes[0] == pytest.approx((8 - d, 8 - d, 8 + w + d, 8 + h + d))
