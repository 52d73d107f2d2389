"""Model files in every supported format, and the CLI end to end."""

import json

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper
from safetensors.numpy import save_file

from sw_codec import ModelError, load_model
from poscodec.cli import main


@pytest.fixture
def weights():
    rng = np.random.default_rng(0)
    return {"fc1.weight": rng.laplace(size=(32, 48)).astype(np.float32),
            "fc1.bias": rng.normal(size=32).astype(np.float32),
            "conv.weight": rng.laplace(size=(8, 3, 3, 3)).astype(np.float32)}


def onnx_model(weights, path, external=False):
    """Weights as initializers, one as a Constant node, one inside an If subgraph: exporters differ."""
    inits = [numpy_helper.from_array(weights["fc1.weight"], "fc1.weight"),
             numpy_helper.from_array(np.array([1, 2], np.int64), "shape_const")]
    const = helper.make_node("Constant", [], ["conv.weight"], value=numpy_helper.from_array(weights["conv.weight"]))
    sub = helper.make_graph([helper.make_node("Identity", ["fc1.bias"], ["y_then"])], "then",
                            [], [helper.make_tensor_value_info("y_then", TensorProto.FLOAT, [32])],
                            initializer=[numpy_helper.from_array(weights["fc1.bias"], "fc1.bias")])
    cond = helper.make_node("If", ["c"], ["y"], then_branch=sub, else_branch=sub)
    graph = helper.make_graph([const, cond], "g", [helper.make_tensor_value_info("c", TensorProto.BOOL, [])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [32])], initializer=inits)
    model = helper.make_model(graph)
    if external:
        onnx.save_model(model, str(path), save_as_external_data=True, all_tensors_to_one_file=True,
                        location="weights.bin", size_threshold=0)
    else:
        onnx.save_model(model, str(path))


@pytest.mark.parametrize("fmt", ["safetensors", "npz", "onnx", "onnx-external"])
def test_every_format_loads_all_float_weights(tmp_path, weights, fmt):
    path = tmp_path / f"model.{fmt.split('-')[0]}"
    if fmt == "safetensors":
        save_file(weights, str(path))
    elif fmt == "npz":
        np.savez(path, **weights, step=np.array(3))
    else:
        onnx_model(weights, path, external=fmt == "onnx-external")
    loaded = load_model(path)
    assert set(loaded) == set(weights)
    for k in weights:
        np.testing.assert_array_equal(loaded[k], weights[k])


def test_unsupported_and_corrupt_model_files(tmp_path):
    (tmp_path / "m.pt").write_bytes(b"\0" * 10)
    with pytest.raises(ModelError, match="unsupported model format '.pt'"):
        load_model(tmp_path / "m.pt")
    (tmp_path / "m.safetensors").write_bytes(b"garbage")
    with pytest.raises(ModelError, match="cannot read"):
        load_model(tmp_path / "m.safetensors")
    with pytest.raises(ModelError, match="no such file"):
        load_model(tmp_path / "missing.onnx")


def test_cli_compress_inspect_decompress_report(tmp_path, weights, capsys):
    model = tmp_path / "model.safetensors"
    save_file(weights, str(model))
    pcz, npz, js = tmp_path / "m.pcz", tmp_path / "m.npz", tmp_path / "r.json"
    assert main(["-q", "compress", str(model), "-o", str(pcz), "--block-bits", "8", "--granularity", "channel"]) == 0
    assert "bits/weight" in capsys.readouterr().out
    assert main(["inspect", str(pcz)]) == 0
    table = capsys.readouterr().out
    assert "fc1.weight" in table and "float32" in table and "channel" in table
    assert main(["-q", "decompress", str(pcz), "-o", str(npz), "--integers"]) == 0
    with np.load(npz) as z:
        assert z["fc1.weight"].dtype == np.int8 and z["fc1.weight.scale"].shape == (32,)
        np.testing.assert_array_equal(z["fc1.bias"], weights["fc1.bias"])
    assert main(["-q", "report", str(model), "--json", str(js), "--block-bits", "8"]) == 0
    out = capsys.readouterr().out
    assert "huffman/free" in out and "zstd-19" in out
    result = json.loads(js.read_text())
    assert {r["name"] for r in result["layers"]} == {"fc1.weight", "conv.weight"}
    assert result["total"]["best"] <= result["total"]["raw"]


def test_cli_refuses_bad_parameters(tmp_path, capsys):
    with pytest.raises(SystemExit):
        main(["compress", "x.npz", "-o", "y.pcz", "--block-bits", "30"])
    assert "must be in 4..16" in capsys.readouterr().err
    assert main(["compress", str(tmp_path / "nope.npz"), "-o", str(tmp_path / "y.pcz")]) == 2
    assert "no such file" in capsys.readouterr().err
