"""cocotb testbench of the accelerator in ``sim.accel.memory.AccelHarness`` (the main-memory
model is in HDL there; this module only loads memories, starts runs and checks ``y``).

The job (JSON named by the ``job`` parameter, written by ``sim.accel.run``) lists runs: a layer
slice in one coding mode (each lane's memory words and block sizes), its activations, the
expected outputs, and the memory model's ``bandwidth`` (bits per cycle, all lanes together),
``latency`` (cycles from a word's request to its arrival) and per-lane prefetch depth
``fifo_words``. Consecutive runs with the same streams (one slice at several bandwidths) load
the memories once.

Per run the testbench records the harness's counters (cycles from ``start`` to ``done``, the
weight phase, words read, weights/tokens taken, multiplies, first and last take) and checks
every output bit for bit.
"""

import json

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import FallingEdge, RisingEdge

from hw.tokens import activation_layout
from sim.accel.memory import FRAC
from sim.bfm import pack
from sim.runner import test_params
from sim.tb_decoder import signed, words_of


async def _load(dut, lanes, word_bits):
    """Write every lane's words and block sizes, one per cycle (the harness's load port)."""
    for i, lane in enumerate(lanes):
        words = words_of(bytes.fromhex(lane["data"]), word_bits)
        dut.load_lane.value = i
        dut.load_we.value = 1
        for sel, items in ((0, [w["data"] for w in words]), (1, lane["block_sizes"])):
            dut.load_sel.value = sel
            for a, v in enumerate(items):
                dut.load_addr.value = a
                dut.load_data.value = v
                await FallingEdge(dut.clk)
        for sel, v in ((2, len(words)), (3, len(lane["block_sizes"]))):
            dut.load_sel.value = sel
            dut.load_data.value = v
            await FallingEdge(dut.clk)
    dut.load_we.value = 0


@cocotb.test()
async def accelerate(dut):
    params = test_params()
    job = json.loads(open(params["job"]).read())
    word_bits, act_bits = job["word_bits"], job["act_bits"]
    acts = activation_layout(act_bits)

    cocotb.start_soon(Clock(dut.clk, 10, unit="ns", impl="gpi").start())
    dut.start.value = 0
    dut.load_we.value = 0
    dut.acts__valid.value = 0
    dut.rst.value = 1
    for _ in range(2):
        await RisingEdge(dut.clk)
    await FallingEdge(dut.clk)
    dut.rst.value = 0

    results, loaded, acts_loaded = [], None, None
    for run in job["runs"]:
        if run["data_key"] != loaded:
            await _load(dut, run["lanes"], word_bits)
            loaded = run["data_key"]
        if run["acts"] != acts_loaded:
            dut.acts__valid.value = 1
            for j, a in enumerate(run["acts"]):
                dut.acts__payload.value = pack(acts, {"value": a & ((1 << act_bits) - 1),
                                                      "last": int(j == len(run["acts"]) - 1)})
                await FallingEdge(dut.clk)
            dut.acts__valid.value = 0
            acts_loaded = run["acts"]
        dut.mode.value = run["mode"]
        dut.slots.value = run["slots"]
        dut.layer_block_bits.value = run["layer_block_bits"]
        for name, value in run["config"].items():
            getattr(dut, name).value = value
        dut.bandwidth.value = round(run["bandwidth"] * (1 << FRAC))
        dut.latency.value = run["latency"]
        dut.depth.value = run["fifo_words"]
        dut.start.value = 1
        await FallingEdge(dut.clk)
        dut.start.value = 0
        await FallingEdge(dut.clk)
        if not int(dut.finished.value):
            await RisingEdge(dut.finished)
        await FallingEdge(dut.clk)
        counters = {name: int(getattr(dut, name).value) for name in
                    ("cycles", "streaming", "words_read", "takes", "mults", "first_take", "last_take", "y_count")}
        error = int(dut.error.value)
        expected = run["expected"]
        got = []
        for r in range(len(expected)):
            dut.y_addr.value = r
            await FallingEdge(dut.clk)
            got.append(signed(int(dut.y_data.value), job["acc_bits"]))
        mismatches = [r for r in range(len(expected)) if got[r] != expected[r]]
        if counters["y_count"] != len(expected):    # stale rows of an earlier run must not pass
            mismatches = mismatches or [0]
        results.append({"name": run["name"], "cycles": counters["cycles"], "streaming_cycles": counters["streaming"],
                        "bits_read": counters["words_read"] * word_bits, "takes": counters["takes"],
                        "mults": counters["mults"], "first_take": counters["first_take"],
                        "last_take": counters["last_take"], "error": error, "mismatches": len(mismatches),
                        "first_mismatch": None if not mismatches else
                        {"row": mismatches[0], "got": got[mismatches[0]], "expected": expected[mismatches[0]]}})
        with open(job["result"], "w") as f:
            json.dump(results, f)
        assert not error, f"{run['name']}: decoder error flag"
        assert not mismatches, f"{run['name']}: {len(mismatches)} wrong outputs, first {results[-1]['first_mismatch']}"
