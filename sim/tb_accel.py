"""cocotb testbench of ``hw.accelerator.Accelerator``: main-memory model in, ``y = W x`` out.

The job (JSON named by the ``job`` parameter, written by ``sim.rtl_accel``) lists runs: a layer
slice in one coding mode, its activations, the expected outputs, and the memory model's
``bandwidth`` (bits per cycle, shared by all lanes), ``latency`` (cycles from a word's request
to its arrival) and per-lane prefetch depth ``fifo_words``.

Memory model: each cycle the memory earns ``bandwidth`` bits of credit (at most one cycle's worth
is kept when nobody can use it). Lanes are served round robin: a lane gets a word when the
credit covers ``word_bits`` and its words in flight plus words waiting at the decoder are
fewer than ``fifo_words``; the word arrives ``latency`` cycles later. Activations are loaded
before the layer starts (preloaded, not timed); block sizes come from the layer table.

Per run the testbench records the cycles from ``start`` to ``done``, the cycles of the weight
phase (``streaming``), the bits read from main memory, and checks every output bit for bit.
"""

import json
from collections import deque

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import FallingEdge, ReadOnly, RisingEdge

from sim.bfm import StreamSink, StreamSource
from sim.runner import test_params
from sim.tb_decoder import signed, words_of


@cocotb.test()
async def accelerate(dut):
    params = test_params()
    job = json.loads(open(params["job"]).read())
    lanes, word_bits = job["lanes"], job["word_bits"]

    cocotb.start_soon(Clock(dut.clk, 10, unit="ns").start())
    dut.start.value = 0
    dut.rst.value = 1
    for _ in range(2):
        await RisingEdge(dut.clk)
    await FallingEdge(dut.clk)
    dut.rst.value = 0

    words = [StreamSource(dut, f"words_{i}", dut.clk, [("data", word_bits), ("last", 1)]) for i in range(lanes)]
    blocks = [StreamSource(dut, f"blocks_{i}", dut.clk) for i in range(lanes)]
    acts = StreamSource(dut, "acts", dut.clk, [("value", job["act_bits"]), ("last", 1)])
    ys = StreamSink(dut, "y", dut.clk, [("row", job["row_bits"]), ("value", job["acc_bits"]), ("last", 1)])

    results = []
    for run in job["runs"]:
        for model in words + blocks:
            model.queue.clear()
        # Preload the activations.
        for j, a in enumerate(run["acts"]):
            acts.send_nowait({"value": a & ((1 << job["act_bits"]) - 1), "last": int(j == len(run["acts"]) - 1)})
        await acts.wait()
        await FallingEdge(dut.clk)
        dut.mode.value = run["mode"]
        dut.slots.value = run["slots"]
        dut.layer_block_bits.value = run["layer_block_bits"]
        for name, value in run["config"].items():
            getattr(dut, name).value = value
        dut.start.value = 1
        await FallingEdge(dut.clk)
        dut.start.value = 0
        ys.queue.clear()
        pending = [deque(words_of(bytes.fromhex(lane["data"]), word_bits)) for lane in run["lanes"]]
        for i, lane in enumerate(run["lanes"]):
            for n in lane["block_sizes"]:
                blocks[i].send_nowait(n)
        bandwidth, latency, depth = run["bandwidth"], run["latency"], run["fifo_words"]
        in_flight = [deque() for _ in range(lanes)]     # arrival cycles
        credit, rr, cycle, streaming, words_read = 0.0, 0, 0, 0, 0
        limit = run.get("max_cycles", 2_000_000)
        while True:
            await ReadOnly()
            done = int(dut.done.value)
            streaming += int(dut.streaming.value)
            error = int(dut.error.value)
            await FallingEdge(dut.clk)
            if done or error or cycle > limit:
                break
            cycle += 1
            # Deliver what arrives this cycle, then issue new requests.
            for i in range(lanes):
                while in_flight[i] and in_flight[i][0] <= cycle:
                    in_flight[i].popleft()
                    words[i].send_nowait(pending[i].popleft())
            credit = min(credit + bandwidth, bandwidth + word_bits)
            issued = True
            while issued and credit >= word_bits:
                issued = False
                for j in range(lanes):
                    i = (rr + j) % lanes
                    waiting = len(in_flight[i]) + len(words[i].queue)
                    if len(pending[i]) > len(in_flight[i]) and waiting < depth and credit >= word_bits:
                        in_flight[i].append(cycle + latency)
                        credit -= word_bits
                        words_read += 1
                        issued = True
                        rr = (i + 1) % lanes
                        break
        got = {int(item["row"]): signed(int(item["value"]), job["acc_bits"]) for item in ys.queue}
        expected = run["expected"]
        mismatches = [r for r in range(len(expected)) if got.get(r) != expected[r]]
        results.append({"name": run["name"], "cycles": cycle, "streaming_cycles": streaming,
                        "bits_read": words_read * word_bits, "error": error, "mismatches": len(mismatches),
                        "first_mismatch": None if not mismatches else
                        {"row": mismatches[0], "got": got.get(mismatches[0]), "expected": expected[mismatches[0]]}})
        with open(job["result"], "w") as f:
            json.dump(results, f)
        assert not error, f"{run['name']}: decoder error flag"
        assert cycle <= limit, f"{run['name']}: not done after {limit} cycles"
        assert not mismatches, f"{run['name']}: {len(mismatches)} wrong outputs, first {results[-1]['first_mismatch']}"
