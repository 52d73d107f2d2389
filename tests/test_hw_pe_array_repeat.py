# amaranth: UnusedElaboratable=no
"""Repeat-aware PEArray in the Amaranth simulator: y = W x against numpy from value-grouped
write streams (what the decoder sends with ``in_order=False``), with fewer multiplies than
weights. The real decoder feeding it is checked in ``tests/test_cocotb_accel.py``."""

import random
from collections import Counter

import numpy as np
import pytest
from amaranth.sim import Simulator

from hw.pe_array import PEArray
from hw.tokens import TokenKind
from sim.amaranth_tb import pe_array_layer


def lane_writes(w_flat, block_bits, lanes, rng):
    """Per lane the write stream of its blocks: BLOCK (implicit = most frequent value, n), the
    other values' positions grouped by value (groups in random order, positions increasing),
    END. Returns (streams, weights written)."""
    n = 1 << block_bits
    out = [[] for _ in range(lanes)]
    for b, start in enumerate(range(0, len(w_flat), n)):
        block = [int(v) for v in w_flat[start:start + n]]
        implicit = Counter(block).most_common(1)[0][0]
        groups = {}
        for pos, v in enumerate(block):
            if v != implicit:
                groups.setdefault(v, []).append(pos)
        order = list(groups)
        rng.shuffle(order)
        s = out[b % lanes]
        s.append((TokenKind.BLOCK, implicit, len(block)))
        s += [(TokenKind.MEMBER, v, pos) for v in order for pos in groups[v]]
        s.append((TokenKind.END, 0, 0))
    return out


def run(dut, W, x, block_bits, stall, seed=0):
    rng = random.Random(seed)
    queues = lane_writes(W.ravel(), block_bits, dut.n_lanes, rng)
    result = {}

    async def bench(ctx):
        y, cycles, mults = await pe_array_layer(
            ctx, dut, W, x, block_bits, queues,
            lambda t: {"kind": t[0], "value": t[1], "position": t[2]}, rng, stall)
        result.update(y=np.array(y), cycles=cycles, mults=mults)

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    return result


@pytest.mark.parametrize("lanes,block_bits,lookahead", [(1, 4, 2), (3, 5, 1), (4, 6, 4)])
def test_matches_numpy_with_fewer_multiplies(lanes, block_bits, lookahead):
    rng = np.random.default_rng(lanes)
    # Rows shorter than a block, longer, a partial last block, one column.
    for rows, k in [(7, 5), (3, 100), (11, 37), (40, 1)]:
        dut = PEArray(lanes=lanes, weight_bits=8, act_bits=8, acc_bits=32, max_k=128, max_rows=64,
                      block_bits=block_bits, repeat_aware=True, row_lookahead=lookahead)
        # Few distinct values, like quantized weights (a peaked distribution).
        W = np.clip(np.round(rng.normal(0, 2, (rows, k))), -128, 127).astype(np.int64)
        x = rng.integers(-128, 128, k)
        r = run(dut, W, x, block_bits, stall=0.3, seed=rows)
        np.testing.assert_array_equal(r["y"], W @ x, err_msg=f"{rows}x{k}")
        if W.size >= 64 and k >= 16:
            assert r["mults"] < W.size, (rows, k, r["mults"])


def test_extreme_values_and_uniform_blocks():
    """int8 extremes (the (v - v0) factor needs 9 bits), and blocks of one value (only the sweep)."""
    block_bits, lanes = 4, 2
    dut = PEArray(lanes=lanes, weight_bits=8, act_bits=8, acc_bits=32, max_k=64, max_rows=16,
                  block_bits=block_bits, repeat_aware=True, row_lookahead=2)
    rng = np.random.default_rng(3)
    W = rng.choice([-128, 127, 0], size=(6, 20)).astype(np.int64)
    W[0:2] = -128
    x = rng.choice([-128, 127], size=20)
    r = run(dut, W, x, block_bits, stall=0.0)
    np.testing.assert_array_equal(r["y"], W @ x)
