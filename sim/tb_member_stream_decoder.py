"""cocotb testbench of ``hw.member_stream_decoder.MemberStreamDecoder``: tables, fields and
words in, distances out, scoreboard against sw_codec's reference decoder.

The job (a JSON file named by the ``job`` parameter, written by the pytest side with
``sim.runner.write_job``) lists cases. Each case resets the decoder, loads its tables, then
feeds its blocks' field contexts and section words (each source pausing with probability
``pause`` per cycle, the sink as well) and compares every distance and ``last`` flag with the
expected ones (first mismatch: index and both values). A case with ``expect_error`` must raise
the error flag within ``max_cycles`` and give no distance after it. Results (per case:
distances, cycles from the first field offered to the last distance, mismatches, error) go to
the job's ``result`` file.
"""

import json
import random

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import FallingEdge, RisingEdge

from hw.huffman_table_builder import table_load_layout
from hw.member_stream_decoder import distance_layout, field_layout, section_word_layout
from sim.bfm import StreamSink, StreamSource, random_pauses
from sim.runner import test_params


class TB:
    def __init__(self, dut, num_tables, max_extra_bits, seed):
        self.dut = dut
        self.rng = random.Random(seed)
        cocotb.start_soon(Clock(dut.clk, 10, unit="ns").start())
        self.tables = StreamSource(dut, "tables", dut.clk, table_load_layout(num_tables))
        self.fields = StreamSource(dut, "fields", dut.clk, field_layout(num_tables, max_extra_bits))
        self.words = StreamSource(dut, "words", dut.clk, section_word_layout())
        self.o = StreamSink(dut, "o", dut.clk, distance_layout(max_extra_bits))

    async def reset(self):
        for model in (self.tables, self.fields, self.words):
            model.queue.clear()
            model._idle.set()
        self.dut.rst.value = 1
        for _ in range(2):
            await RisingEdge(self.dut.clk)
        await FallingEdge(self.dut.clk)
        self.dut.rst.value = 0
        self.o.queue.clear()

    def pauses(self, rate):
        for model in (self.fields, self.words, self.o):
            model.set_pause_generator(random_pauses(self.rng, rate) if rate else None)

    async def load(self, items):
        for item in items:
            self.tables.send_nowait(item)
        await self.tables.wait()
        await RisingEdge(self.dut.clk)
        while not int(self.dut.tables__ready.value):   # the last table's entries are written
            await RisingEdge(self.dut.clk)


@cocotb.test()
async def decode_cases(dut):
    params = test_params()
    job = json.loads(open(params["job"]).read())
    tb = TB(dut, params["num_tables"], params["max_extra_bits"], job.get("seed", 1))
    results = []
    for case in job["cases"]:
        await tb.reset()
        tb.pauses(case.get("pause", 0.0))
        await tb.load(case["tables"])
        for item in case["fields"]:
            tb.fields.send_nowait(item)
        for item in case["words"]:
            tb.words.send_nowait(item)
        expected = [tuple(x) for x in case["expected"]]
        cycle, error = 0, 0
        bad = case.get("expect_error", False)
        while (bad or len(tb.o.queue) < len(expected)) and cycle < case["max_cycles"]:
            await RisingEdge(dut.clk)
            cycle += 1
            error = int(dut.error.value)
            if error:
                break
        got = [(item["distance"], item["last"]) for item in tb.o.queue]
        if error:
            before = len(got)
            for _ in range(50):
                await RisingEdge(dut.clk)
                assert int(dut.error.value), f"{case['name']}: the error flag fell"
            assert len(tb.o.queue) == before, f"{case['name']}: a distance after the error"
        mismatches = sum(a != b for a, b in zip(got, expected)) + abs(len(got) - len(expected))
        first = next((i for i, (a, b) in enumerate(zip(got, expected)) if a != b), None)
        results.append({"name": case["name"], "fields": len(expected), "distances": len(got), "cycles": cycle,
                        "mismatches": mismatches, "error": error,
                        "first_mismatch": None if first is None else
                        {"index": first, "got": got[first], "expected": expected[first]}})
        with open(job["result"], "w") as f:
            json.dump(results, f)
        if case.get("expect_error"):
            assert error, f"{case['name']}: bad stream, no error flag within {case['max_cycles']} cycles"
            assert got == expected[:len(got)], f"{case['name']}: a wrong distance before the error"
        else:
            assert not error, f"{case['name']}: unexpected error flag"
            assert mismatches == 0, f"{case['name']}: {mismatches} mismatches, first {results[-1]['first_mismatch']}"
