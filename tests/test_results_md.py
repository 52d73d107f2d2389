"""``python -m poscodec.results_md`` rewrites the marked result tables of the docs from
``results/*.json``, leaves a region alone when its file is missing, and ``--check`` fails on a
stale document. The results files here are small synthetic ones with the writers' keys."""

import json
from pathlib import Path

import pytest

from poscodec.results_md import main, update_text

ROOT = Path(__file__).resolve().parents[1]


def _codec_run(model, bits, granularity, best, zstd, lzma, encode_s, zstd_s):
    total = {"params": 2_500_000, "layers": 3, "H0": 4.5, "raw": 8.0, "repeat/all": 9.0, "repeat/free": 8.5,
             "distance/all": 6.0, "distance/free": 5.5, "huffman/all": 5.6, "huffman/free": best,
             "zstd-19": zstd, "lzma-9": lzma, "ethos-u": 5.9, "best": best}
    return {"model": model, "description": "a model", "settings": {"bits": bits, "granularity": granularity,
                                                                   "block_bits": 14},
            "layers": [], "total": total, "seconds": {"encode_auto": encode_s, "zstd-19": zstd_s}}


CODEC = {"machine": "test", "date": "2026-12-01 10:00", "runs": [
    _codec_run("minilm", 8, "tensor", 4.6, 4.7, 4.8, 1.234, 5.0),      # beats both: bold
    _codec_run("yolov8n", 8, "channel", 4.9, 4.7, 4.8, 0.5, 0.4)]}     # loses to both


def _sim_run(layer, mode, slots, lanes, sustained):
    return {"layer": layer, "mode": mode, "slots": slots, "lanes": lanes, "weights": 12288, "cycles": 13000,
            "weights_per_cycle_per_lane": 0.9, "sustained_per_lane": sustained, "bits_per_weight": 5.0,
            "mismatches": 0}


SIM = {"hardware": {"block_bits": 12, "word_bits": 32, "scan_bits": 256, "simulator": "verilator"},
       "summary_sustained_weights_per_cycle_per_lane": {},
       "runs": [_sim_run("minilm:encoder.ffn.weight", m, s, lanes, 0.5 + 0.1 * i + 0.01 * lanes)
                for lanes in (1, 2) for i, (m, s) in enumerate(
                    [("raw", "all"), ("repeat", "all"), ("huffman", "all"), ("huffman", "free"),
                     ("distance", "free")])]}


def _accel_row(model, mode, slots, bw, lat):
    return {"model": model, "mode": mode, "slots": slots, "bandwidth": bw, "weights": 1000, "layers": 2,
            "bits_per_weight": 8.0 if mode == "raw" else 5.123, "cycles": 1.0, "cycles_ideal_decoder": 1.0,
            "latency_reduction": 0.0 if mode == "raw" else lat,
            "latency_reduction_ideal_decoder": 0.0 if mode == "raw" else 0.3,
            "energy_reduction": 0.0 if mode == "raw" else 0.333,
            "energy_reduction_by_decoder_pj": {"4.0": 0.333, "3.0": 0.34, "8.0": 0.30}}


ACCEL = {"hardware": {"lanes": 4, "block_bits": 12, "word_bits": 32}, "latency": 20, "bandwidths": [16, 128],
         "slice_weights": 65536, "decoder_pj_per_weight": 4.0, "decoder_pj_sensitivity": [3.0, 8.0],
         "paper": {"repeat": [0.38, 0.36], "distance": [0.41, 0.39], "huffman": [0.45, 0.43]},
         "measured": [{"model": "minilm", "layer": "q.weight", "kind": "fc"}],
         "models": [_accel_row("minilm", m, s, bw, 0.27 if bw == 16 else -0.14)
                    for m, s in (("raw", "all"), ("huffman", "free")) for bw in (16, 128)],
         "repeat_aware": [{"model": "minilm", "layer": "q.weight", "mode": "huffman", "slots": "free",
                           "bandwidth": bw, "weights": 65280, "tokens": 60000, "mults_plain": 65280,
                           "mults_repeat_aware": 13952, "mults_saved": 1 - 13952 / 65280,
                           "cycles_plain": 56454, "cycles_repeat_aware": 52369,
                           "cycles_change": 52369 / 56454 - 1} for bw in (8, 128)]}

DOC = """# A doc

Before the tables.

<!-- results:codec -->
old codec table
<!-- /results:codec -->

Between.

<!-- results:throughput -->
old throughput table
<!-- /results:throughput -->

<!-- results:accel -->
old accel table
<!-- /results:accel -->

<!-- results:accel-repeat -->
old repeat table
<!-- /results:accel-repeat -->

After the tables.
"""


@pytest.fixture
def results(tmp_path):
    folder = tmp_path / "results"
    folder.mkdir()
    for name, doc in (("codec.json", CODEC), ("sim.json", SIM), ("accel.json", ACCEL)):
        (folder / name).write_text(json.dumps(doc))
    return folder


@pytest.fixture
def doc(tmp_path):
    path = tmp_path / "doc.md"
    path.write_text(DOC)
    return path


def _region(text, name):
    return text.split(f"<!-- results:{name} -->\n")[1].split(f"<!-- /results:{name} -->")[0]


def _words(text):
    """Sentences are wrapped at 100 columns: compare them with single spaces."""
    return " ".join(text.split())


def test_regions_are_replaced_and_the_rest_kept(results, doc):
    assert main([str(doc), "--results", str(results)]) == 0
    text = doc.read_text()
    assert "old " not in text
    codec = _region(text, "codec")
    assert "| MiniLM-L6 | int8 tensor | 2.50 M | 4.500 | **4.600** | 4.700 | 4.800 | 5.900 | 1.23 / 5.00 |" in codec
    assert "| YOLOv8n | int8 channel | 2.50 M | 4.500 | 4.900 | 4.700 |" in codec
    assert "\n|---|---|---:|---:|---:|---:|---:|---:|---:|\n" in codec
    assert "beats zstd -19 in 1 of 2" in _words(codec) and "faster than zstd -19 in 1 of 2" in _words(codec)
    throughput = _region(text, "throughput")
    assert "| MiniLM-L6 `encoder.ffn.weight` | 0.51 | 0.61 | 0.71 | 0.81 | 0.91 |" in throughput   # 1 lane
    assert "With 1 and 2 lanes the per-lane figures differ by at most 0.01" in _words(throughput)
    accel = _region(text, "accel")
    assert "| minilm | raw | 8.00 | 0 | 0 | 0 | 0 | 0 / 0 | - |" in accel
    assert "| minilm | huffman/free | 5.12 | 27 | -14 | 30 | 33 | 34 / 30 | 45 / 43 |" in accel
    repeat = _region(text, "accel-repeat")
    assert "| 65 280 | 65 280 | 13 952 | 79 % | 56 454 / 52 369 (-7 %) | 56 454 / 52 369 (-7 %) |" in repeat
    for kept in ("# A doc\n\nBefore the tables.\n\n", "\n\nBetween.\n\n", "\n\nAfter the tables.\n"):
        assert kept in text
    # A second run changes nothing.
    assert main([str(doc), "--results", str(results), "--check"]) == 0


def test_missing_file_leaves_its_region_and_names_the_target(results, doc, capsys):
    (results / "sim.json").unlink()
    assert main([str(doc), "--results", str(results)]) == 0
    text = doc.read_text()
    assert "old throughput table" in text
    assert "old codec table" not in text and "old accel table" not in text
    err = capsys.readouterr().err
    assert "sim.json is missing" in err and "make sim-bench" in err


def test_results_without_the_region_data_leave_it(results, doc, capsys):
    (results / "accel.json").write_text(json.dumps(dict(ACCEL, repeat_aware=[])))
    main([str(doc), "--results", str(results)])
    assert "old repeat table" in doc.read_text() and "old accel table" not in doc.read_text()
    assert "make accel" in capsys.readouterr().err


def test_check_fails_on_a_stale_doc_and_changes_nothing(results, doc):
    assert main([str(doc), "--results", str(results), "--check"]) == 1
    assert doc.read_text() == DOC
    main([str(doc), "--results", str(results)])
    assert main([str(doc), "--results", str(results), "--check"]) == 0
    # New results make the doc stale again.
    runs = [dict(r, total=dict(r["total"], H0=4.4)) for r in CODEC["runs"]]
    (results / "codec.json").write_text(json.dumps(dict(CODEC, runs=runs)))
    assert main([str(doc), "--results", str(results), "--check"]) == 1


def test_check_passes_when_every_file_is_missing(tmp_path, doc):
    assert main([str(doc), "--results", str(tmp_path / "nothing"), "--check"]) == 0
    assert doc.read_text() == DOC


@pytest.mark.parametrize("bad", ["<!-- results:nonesuch -->\nx\n<!-- /results:nonesuch -->\n",
                                 "<!-- results:codec -->\nx\n", "<!-- results:codec -->\n<!-- /results:accel -->\n"])
def test_bad_markers_are_errors(results, tmp_path, bad):
    path = tmp_path / "bad.md"
    path.write_text(bad)
    assert main([str(path), "--results", str(results)]) == 2
    assert path.read_text() == bad


def _design(component, kind, lanes, luts, lut4s, fmax, **extra):
    config = {"weight_bits": 8, "block_bits": 6 if kind != "stage" else 14, "word_bits": 32, "max_code_len": 15,
              "num_tables": 4, "scan_bits": 256}
    return {"name": f"{component}_b8", "component": component, "kind": kind, "lanes": lanes, "config": config,
            "target": "ecp5", "freq_mhz": 100.0, "options": {"seed": 1, "place": fmax is not None},
            "luts": luts, "lut4s": lut4s, "ffs": 100, "brams": 2, "dsps": 0, "fmax_mhz": fmax, **extra}


SYNTH = {"target": "ecp5", "device": "LFE5U-25F", "freq_mhz": 100.0, "seed": 1, "designs": [
    _design("BitReader", "stage", 1, 2000, 2037, 66.7),
    _design("LayerDecoder", "lane", 1, 9386, 14274, 58.98, weights_per_s=37.0e6, weights_per_cycle_source="measured",
            critical_path={"from": "a.q", "to": "b.d", "delay_ns": 16.95, "logic_levels": 12, "breakdown_ns": {}},
            endpoint_timing={"period_ns": 10.0, "endpoints": 3233, "failing": 1179, "worst_ns": 16.95,
                             "by_module": {"parser.core.huffman": {"endpoints": 3000, "failing": 900, "worst_ns": 16.9,
                                                                   "worst_register": "cur", "from": "window"}}}),
    _design("DecoderTop", "top", 2, 20000, 27769, None),
    {"name": "RepeatExpander_b8", "component": "RepeatExpander", "kind": "stage", "lanes": 1,
     "config": {"block_bits": 14, "max_code_len": 15}, "error": "RepeatExpander_b8: yosys synth_ecp5: exit 1\nlog"}],
    "energy": {"design": "LayerDecoder_b8_p6", "layer": "pos.weight", "toggles_per_weight": 444.2,
               "energy_per_weight_j": 4.007e-12, "energy_per_weight_data_j": 0.36e-12, "flip_flops": 2903,
               "sim": {"weights": 4096, "cycles": 6354, "mismatches": 0, "mode": "huffman", "slots": "all",
                       "bits_per_weight": 5.5}}}


def test_synthesis_regions(tmp_path, results):
    (results / "synth.json").write_text(json.dumps(SYNTH))
    path = tmp_path / "hw.md"
    path.write_text("".join(f"<!-- results:{r} -->\n<!-- /results:{r} -->\n"
                            for r in ("synth", "synth-stages", "synth-modules", "energy")))
    assert main([str(path), "--results", str(results)]) == 0
    text = path.read_text()
    assert "| LayerDecoder | P = 6, L = 15 | 14274 | 4888 | 100 | 2 | 58.98 |" in _region(text, "synth")
    assert "| DecoderTop x2 | P = 6, L = 15 | 27769 | 7769 | 100 | 2 | not placed |" in _region(text, "synth")
    assert "| RepeatExpander | P = 14, L = 15 | - | - | - | - | failed |" in _region(text, "synth")
    assert "RepeatExpander (P = 14, L = 15) failed: yosys synth_ecp5: exit 1." in _words(text)
    stages = _region(text, "synth-stages")
    assert "| 58.98 | 1 179 of 3 233 | 37.0 | `a.q` -> `b.d`, 16.95 ns, 12 levels |" in stages
    assert "| parser.core.huffman | 3000 | 900 | 16.90 | `cur` <- `window` |" in _region(text, "synth-modules")
    energy = _region(text, "energy")
    assert "**4.01 pJ/weight** (0.36 pJ switching + 3.65 pJ clock, 2 903 flip-flops)" in _words(energy)
    assert max(len(line) for line in energy.splitlines()) <= 100


def _figures(luts, carry, ffs, brams=0, lutram=0):
    return {"luts": luts, "lut4s": luts + 2 * carry, "ffs": ffs, "brams": brams, "dsps": 0, "lutram": lutram,
            "carry": carry}


def _instance(path, depth, own, inclusive):
    return {"path": path, "module": "LayerDecoder_b8" + (f".{path}" if path else ""), "depth": depth,
            "own": own, "inclusive": inclusive}


#: A lane's area by module (synth/area.py): the lane, its parser and the parser's Huffman decoder.
MODULES = {"version": 1, "command": "synth_ecp5 -noflatten", "seconds": 81.4,
           "total": _figures(10000, 2500, 3212, 2, 5),
           "instances": [_instance("", 0, _figures(2, 0, 0), _figures(10000, 2500, 3212, 2, 5)),
                         _instance("parser", 1, _figures(3000, 500, 400, 0, 5), _figures(7800, 2200, 2400, 1, 5)),
                         _instance("parser.huffman", 2, _figures(4800, 1700, 2000, 1), _figures(4800, 1700, 2000, 1)),
                         _instance("expander", 1, _figures(2198, 300, 812, 1), _figures(2198, 300, 812, 1))]}


def test_synthesis_area_region(tmp_path, results):
    """The lane's area per module instance, own and with its submodules, and its total without
    flattening against the flattened one; a results file without it leaves the region alone."""
    lane = dict(SYNTH["designs"][1], modules=MODULES, ffs=3212, lut4s=13274)
    (results / "synth.json").write_text(json.dumps(dict(SYNTH, designs=[SYNTH["designs"][0], lane])))
    path = tmp_path / "hw.md"
    path.write_text("<!-- results:synth-area -->\nold\n<!-- /results:synth-area -->\n")
    assert main([str(path), "--results", str(results)]) == 0
    table = _region(path.read_text(), "synth-area")
    assert ("| instance | LUT4s own | of them carry | LUT4s with sub | of them carry | % of lane | FFs own "
            "| FFs with sub | BRAMs with sub | LUT RAMs with sub |") in table
    assert "| (lane) | 2 | 0 | 15000 | 5000 | 100.0 | 0 | 3212 | 2 | 5 |" in table
    assert "| `parser` | 4000 | 1000 | 12200 | 4400 | 81.3 | 400 | 2400 | 1 | 5 |" in table
    assert "| `parser.huffman` | 8200 | 3400 | 8200 | 3400 | 54.7 | 2000 | 2000 | 1 | 0 |" in table
    assert table.index("`parser.huffman`") < table.index("`expander`")         # the walk's order
    words = _words(table)
    assert "15 000 LUT4s (5 000 in carry chains), 3 212 FFs, 2 BRAMs" in words
    assert "against 13 274 LUT4s and 3 212 FFs flattened: +1 726 LUT4s (+13.0 %)" in words
    assert "without flattening (`synth_ecp5 -noflatten`): 15 000 LUT4s" in words
    assert max(len(line) for line in table.splitlines() if not line.startswith("|")) <= 100
    # A lane whose breakdown failed, or none, leaves the region as it was.
    lane["modules"] = {"version": 1, "error": "yosys: exit 1"}
    (results / "synth.json").write_text(json.dumps(dict(SYNTH, designs=[lane])))
    path.write_text("<!-- results:synth-area -->\nold\n<!-- /results:synth-area -->\n")
    assert main([str(path), "--results", str(results)]) == 0
    assert "old" in _region(path.read_text(), "synth-area")


def test_the_docs_markers_are_balanced_and_known(tmp_path):
    """Every marker in the README and docs/ names a region the generator knows, and the README
    has one generated table per area."""
    for name in ("README.md", "docs/HARDWARE.md", "docs/ENERGY.md"):
        text = (ROOT / name).read_text()
        new, notes = update_text(text, tmp_path / "nothing", name)     # raises on a bad marker
        assert new == text
        assert all("is missing" in n for n in notes)
    readme = (ROOT / "README.md").read_text()
    for region in ("codec", "throughput", "synth", "accel", "accuracy"):
        assert f"<!-- results:{region} -->" in readme


ACCURACY = {"tier": "full", "machine": "test", "date": "2026-12-07 20:00", "models": {
    "yolov8n": {"description": "a detector", "task_metrics": ["face_auc"], "agreement_metrics": ["output_cosine"],
                "rows": [{"setting": "float", "bits_per_weight": 32.0,
                          "metrics": {"face_auc": 0.9941, "output_cosine": 1.0}},
                         {"setting": "int4ch", "bits_per_weight": 2.5404,
                          "metrics": {"face_auc": 0.4931, "output_cosine": 0.98764}}]}}}


def test_accuracy_region(tmp_path, results):
    """The headline metric on true labels and the agreement with float, per setting, with its rate."""
    (results / "accuracy.json").write_text(json.dumps(ACCURACY))
    path = tmp_path / "a.md"
    path.write_text("<!-- results:accuracy -->\n<!-- /results:accuracy -->\n")
    assert main([str(path), "--results", str(results)]) == 0
    table = _region(path.read_text(), "accuracy")
    assert "| model | metric | float | int4ch |" in table
    assert "| YOLOv8n | face auc | 0.994 | 0.493 |" in table
    assert "|  | output cosine | 1.000 | 0.988 |" in table
    assert "|  | bits/weight | 32.00 | 2.54 |" in table
