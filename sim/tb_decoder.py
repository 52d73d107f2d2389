"""cocotb testbench of ``hw.decoder_top.DecoderTop``: lane streams in, weights out, scoreboard.

The job (a JSON file named by the ``job`` parameter, written by ``sim.rtl_decode``) lists layers
to decode one after the other, restarting the decoder with ``clear`` between them. For each lane
it gives the byte stream, the block sizes and the weights ``sw_codec`` decoded; the testbench
feeds the words with random input stalls, takes weights with random backpressure, compares them
bit for bit (first mismatch: index and both values) and counts cycles. Results (per layer and
lane: weights, cycles, mismatches, error flag) go to the job's ``result`` file; the test fails
on any mismatch, on an unexpected error flag, or when a layer makes no progress for
``stall_cycles`` cycles (the watchdog: the decoder must never hang).
"""

import json
import random

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import FallingEdge, RisingEdge

from hw.tokens import weight_layout, word_layout
from sim.bfm import StreamSink, StreamSource
from sim.runner import test_params


def words_of(data: bytes, word_bits: int):
    """Little-endian memory words of ``data`` (zero padded), ``last`` on the final one."""
    size = word_bits // 8
    data = data + bytes(-len(data) % size) if data else bytes(size)
    count = len(data) // size
    return [{"data": int.from_bytes(data[i * size:(i + 1) * size], "little"), "last": int(i == count - 1)}
            for i in range(count)]


def signed(value: int, bits: int) -> int:
    return value - (1 << bits) if value >> (bits - 1) else value


def pauses(rng: random.Random, probability: float):
    while True:
        yield probability > 0 and rng.random() < probability


@cocotb.test()
async def decode_layers(dut):
    params = test_params()
    job = json.loads(open(params["job"]).read())
    lanes, word_bits, weight_bits = job["lanes"], job["word_bits"], job["weight_bits"]
    rng = random.Random(job.get("seed", 1))

    cocotb.start_soon(Clock(dut.clk, 10, unit="ns").start())
    dut.clear.value = 0
    dut.rst.value = 1
    for _ in range(2):
        await RisingEdge(dut.clk)
    await FallingEdge(dut.clk)
    dut.rst.value = 0

    words = [StreamSource(dut, f"words_{i}", dut.clk, word_layout(word_bits)) for i in range(lanes)]
    blocks = [StreamSource(dut, f"blocks_{i}", dut.clk) for i in range(lanes)]
    sinks = [StreamSink(dut, f"weights_{i}", dut.clk, weight_layout(weight_bits)) for i in range(lanes)]

    results = []
    for layer in job["layers"]:
        # Restart with `clear`: drop what a corrupt layer left in the sources first, and what
        # left the decoder up to and during the clear cycle after it.
        for model in words + blocks:
            model.queue.clear()
        await FallingEdge(dut.clk)
        dut.mode.value = layer["mode"]
        dut.slots.value = layer["slots"]
        dut.layer_block_bits.value = layer["layer_block_bits"]
        dut.clear.value = 1
        await FallingEdge(dut.clk)
        dut.clear.value = 0
        for sink in sinks:
            sink.queue.clear()
        for i, lane in enumerate(layer["lanes"]):
            words[i].set_pause_generator(pauses(rng, layer.get("stall_in", 0.0)))
            sinks[i].set_pause_generator(pauses(rng, layer.get("stall_out", 0.0)))
            for w in words_of(bytes.fromhex(lane["data"]), word_bits):
                words[i].send_nowait(w)
            for n in lane["block_sizes"]:
                blocks[i].send_nowait(n)

        expected = [lane["expected"] for lane in layer["lanes"]]
        # A corrupt layer is done only when the error flag rises (or the watchdog gives up).
        done_at = [None if exp or layer.get("expect_error") else 0 for exp in expected]
        first_at = [None] * lanes
        cycle, last_progress, progress = 0, 0, -1
        stall_cycles = job.get("stall_cycles", 4000)
        while True:
            await RisingEdge(dut.clk)
            cycle += 1
            # Progress: a weight out or a memory word in (a block leaves only once decoded whole).
            got = sum(len(s.queue) for s in sinks) - sum(len(w.queue) for w in words)
            if got != progress:
                progress, last_progress = got, cycle
            for i, s in enumerate(sinks):
                if first_at[i] is None and s.queue:
                    first_at[i] = cycle
                if done_at[i] is None and expected[i] and len(s.queue) >= len(expected[i]):
                    done_at[i] = cycle
            error = int(dut.error.value)
            if all(d is not None for d in done_at) or error:
                break
            if cycle - last_progress > stall_cycles:
                break
        hung = not error and any(d is None for d in done_at)
        lane_results = []
        for i, s in enumerate(sinks):
            received = [signed(item["value"], weight_bits) for item in s.queue]
            exp = expected[i]
            mismatches = sum(a != b for a, b in zip(received, exp)) + abs(len(received) - len(exp))
            first = next((j for j, (a, b) in enumerate(zip(received, exp)) if a != b),
                         None if len(received) == len(exp) else min(len(received), len(exp)))
            lasts = [j for j, item in enumerate(s.queue) if item["last"]]
            lane_results.append({
                "weights": len(received), "expected": len(exp), "cycles": done_at[i], "first_out": first_at[i],
                "mismatches": mismatches,
                "first_mismatch": None if first is None else {
                    "index": first, "got": received[first] if first < len(received) else None,
                    "expected": exp[first] if first < len(exp) else None},
                "block_ends": len(lasts),
            })
        results.append({"name": layer.get("name"), "cycles": cycle, "error": error,
                        "error_lanes": int(dut.error_lanes.value), "hung": hung, "lanes": lane_results})
        with open(job["result"], "w") as f:
            json.dump(results, f)
        if layer.get("expect_error"):
            assert error, f"layer {layer.get('name')}: corrupt stream, but no error within {stall_cycles} idle cycles"
            assert not hung
            continue
        assert not hung, f"layer {layer.get('name')}: no progress for {stall_cycles} cycles (hang)"
        assert not error, f"layer {layer.get('name')}: unexpected error flag (lanes {int(dut.error_lanes.value):b})"
        for i, r in enumerate(lane_results):
            assert r["mismatches"] == 0, f"layer {layer.get('name')} lane {i}: first mismatch {r['first_mismatch']}"
