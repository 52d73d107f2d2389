"""MemberStreamDecoder as Verilog under cocotb (sim/tb_member_stream_decoder.py), on Verilator and
Icarus: random tables and fields with stalls and backpressure, a real layer's block without
(cycles per field), bad streams (sticky error, no distance after it)."""

import json

import numpy as np
import pytest

from sim.member_fields import field_items, layer_blocks, random_blocks, random_table, table_items, word_items
from sim.runner import available_simulators, generate_verilog, run_cocotb, top_name_for, write_job
from sw_codec.huffman import HuffmanTable

SIMULATORS = ["verilator", pytest.param("icarus", marks=pytest.mark.skipif(
    "icarus" not in available_simulators(), reason="Icarus Verilog not installed (iverilog/vvp not on PATH)"))]

PARAMS = [{"num_tables": 4, "max_extra_bits": 12}, {"num_tables": 2, "max_extra_bits": 16}]


def case(name, blocks, *, pause=0.0, expect_error=False, expected=None):
    tables = blocks[0].tables
    if expected is None:
        expected = [(d, int(i == len(b.distances) - 1)) for b in blocks for i, d in enumerate(b.distances)]
    fields = sum(len(b.fields) for b in blocks)
    return {"name": name, "pause": pause, "expect_error": expect_error,
            "tables": [item for i, t in enumerate(tables) for item in table_items(i, t)],
            "fields": [f for b in blocks for f in field_items(b)],
            "words": [w for b in blocks for w in word_items(b.section)],
            "expected": expected, "max_cycles": 1000 + 10 * fields}


def cases_for(params, minilm_ffn):
    rng = np.random.default_rng(params["num_tables"])
    P, T = params["max_extra_bits"], params["num_tables"]
    tables = [random_table(rng) for _ in range(T)]
    out = [case("random", random_blocks(rng, 8, 120, tables, P), pause=0.3)]
    if P >= 12:
        layer = layer_blocks(minilm_ffn, 8, 12, "free", blocks=1)
        if len(layer[0].tables) == T:
            out.append(case("minilm-ffn", layer))
    # Bad streams: a code no table entry has; words left after the block's last field.
    one = HuffmanTable(4, (0, 1), (2,))
    from sim.member_fields import MemberBlock
    bad = MemberBlock([one] * T, [(0, 3, 2)] * 6, bytes([0b0001_0010, 0b0011_0000, 0b1000_0000, 0]), None)
    out.append(case("invalid code", [bad], expect_error=True, expected=[]))
    good = random_blocks(rng, 1, 40, tables, P)[0]
    garbage = MemberBlock(tables, good.fields, good.section + b"\x12\x34", good.distances)
    out.append(case("trailing word", [garbage], expect_error=True))
    return out


@pytest.fixture(scope="module")
def minilm_ffn():
    from sw_codec.models import bundled_model, load_model
    from sw_codec.quantization import quantize

    w = load_model(bundled_model("minilm"))["encoder.layer.0.intermediate.dense.weight"]
    return quantize(w, 8, "channel")[0]


@pytest.mark.parametrize("params", PARAMS, ids=lambda p: f"t{p['num_tables']}-p{p['max_extra_bits']}")
@pytest.mark.parametrize("sim", SIMULATORS)
def test_member_stream_decoder(sim, params, minilm_ffn):
    from hw.member_stream_decoder import MemberStreamDecoder

    top = top_name_for("member_stream_decoder", params)
    verilog = generate_verilog(MemberStreamDecoder(**params), top)
    cases = cases_for(params, minilm_ffn)
    job, result = write_job(top, sim, {"seed": 1, "cases": cases})
    run_cocotb(sim=sim, top_name=top, verilog=verilog, test_module="sim.tb_member_stream_decoder",
               params=dict(params, job=str(job)))
    results = json.loads(result.read_text())
    assert [r["name"] for r in results] == [c["name"] for c in cases]
    for r, c in zip(results, cases):
        assert r["mismatches"] == 0 or c["expect_error"], r
        if r["name"] == "minilm-ffn":
            # Without stalls: one field per cycle, one more per code longer than 8 bits, two per block.
            print(f"{sim} {top}: {r['fields']} fields in {r['cycles']} cycles, "
                  f"{r['cycles'] / r['fields']:.4f} cycles/field")
            assert r["cycles"] < 1.03 * r["fields"]
