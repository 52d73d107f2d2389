"""Layer-selective lossy coding under an accuracy budget (``accuracy.selection``, ``poscodec lossy``)."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from accuracy import harness, peers, selection
from sw_codec.codec import decompress, inspect
from sw_codec.quantization import ErrorBound

ROOT = Path(__file__).resolve().parent.parent


def test_groups_keep_big_layers_alone_and_neighbours_together():
    w = {f"conv{i}.w": np.zeros((4, 4)) for i in range(12)}
    w["conv3.w"] = np.zeros((100, 100))
    w["bias"] = np.zeros(7)
    groups = selection.layer_groups(w, max_groups=4)
    assert ["conv3.w"] in groups and sum(groups, []) == [f"conv{i}.w" for i in range(12)]   # natural order
    assert len(groups) <= 5 and all(len(g) <= 4 for g in groups)


def test_output_distortion_weighs_each_output_alike():
    ref = {"boxes": np.array([300.0, 200.0]), "scores": np.array([0.5, 0.5]), "names": ["a"]}
    assert selection.output_distortion(ref, ref) == 0
    off = {**ref, "scores": np.array([0.5, 0.0])}
    assert selection.output_distortion(off, ref) == pytest.approx(0.25)      # (0.5^2 / 0.5) / 2 outputs


def test_the_path_runs_from_float_to_the_coarsest_setting():
    table = {"a": [{"knob": "float", "bytes": 400, "sse": 0.0}, {"knob": 1, "bytes": 100, "sse": 1.0},
                   {"knob": 2, "bytes": 50, "sse": 4.0}],
             "b": [{"knob": "float", "bytes": 400, "sse": 0.0}, {"knob": 1, "bytes": 100, "sse": 1.0}]}
    path = selection.lagrangian_path(table, {"a": 1.0, "b": 100.0})
    assert path[0] == {"a": 0, "b": 0} and path[-1] == {"a": 2, "b": 1}
    bits = [sum(table[k][i]["bytes"] for k, i in c.items()) for c in path]
    assert bits == sorted(bits, reverse=True) and len(set(bits)) == len(bits)
    assert path == [{"a": 0, "b": 0}, {"a": 1, "b": 0}, {"a": 2, "b": 0}, {"a": 2, "b": 1}]   # sensitive b last


def test_every_method_codes_within_its_setting():
    x = np.random.default_rng(0).standard_normal((64, 48)).astype(np.float32)
    coded = peers.method("poscodec").code(x, ErrorBound(2 ** -5, relative=True))
    assert np.abs(coded.decoded - x).max() <= 2 ** -5 * np.abs(x).max() and 2 <= coded.bits <= 16
    assert peers.method("intch").code(x, 4).bits == 4
    assert peers.method("poscodec").code(x, peers.FLOAT).nbytes == 4 * x.size


def run_cli(prelude: str, args: list[str]):
    code = f"import sys\n{prelude}\nfrom poscodec.cli import main\nsys.exit(main({args!r}))"
    return subprocess.run([sys.executable, "-W", "ignore", "-c", code], cwd=ROOT, capture_output=True, text=True)


def test_lossy_writes_a_file_that_meets_the_budget(tmp_path):
    """Silero VAD (the smallest model), our coder and the int-per-channel peer, 1 point."""
    out = run_cli("", ["-q", "lossy", "silero-vad", "--max-drop", "1", "--peers", "intch", "--floors",
                       "--groups", "4", "--no-cache", "-o", str(tmp_path / "s.pcz"), "--json", str(tmp_path / "s.json")])
    assert out.returncode == 0, out.stderr
    entry = json.loads((tmp_path / "s.json").read_text())["models"]["silero-vad"]
    chosen = entry["chosen"]
    assert entry["metric"] == "frame_f1" and chosen["metric"] >= entry["threshold"] == entry["float_metric"] - 0.01
    assert chosen["file"]["metric"] == chosen["metric"] and len(entry["sensitivity"]) <= 5
    assert set(entry["peers"]) == {"intch"} and entry["peers"]["intch"]["metric"] >= entry["threshold"]
    data = (tmp_path / "s.pcz").read_bytes()
    records = {r.name: r for r in inspect(data)}
    base = harness.float_weights("silero-vad")
    decoded = decompress(data)
    for name, layer in chosen["layers"].items():
        assert records[name].bits == (layer["bits"] or 32)
        if layer["setting"] != "float":
            bound = float(layer["setting"].removeprefix("rel:")) * np.abs(base[name]).max()
            assert np.abs(decoded[name] - base[name]).max() <= bound * (1 + 1e-3)   # the label has 4 digits
    assert "each layer's choice" in out.stdout and "conv1.weight" in out.stdout
    assert chosen["bits_per_weight"] < 32


def test_a_missing_peer_is_one_message_naming_it():
    out = run_cli("sys.modules['pysz'] = None", ["lossy", "silero-vad", "--peers", "sz3"])
    assert out.returncode == 2, out.stderr
    assert "sz3 needs pysz (pip install 'poscodec[peers]')" in out.stderr and "Traceback" not in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1
