# amaranth: UnusedElaboratable=no
"""PEArray in the Amaranth simulator: y = W x against numpy, weights in decoder lane order.

Each lane's weight stream is what DecoderTop would send: blocks of 2**P weights of the flattened
matrix, block b to lane b % N, ``last`` on each block's last weight; random stalls on the weight
streams and backpressure on ``y``.
"""

import random

import numpy as np
import pytest
from amaranth.sim import Simulator

from hw.pe_array import PEArray, layer_config
from sim.amaranth_tb import pe_array_layer


def lane_weights(w_flat, block_bits, lanes):
    n = 1 << block_bits
    blocks = [w_flat[i:i + n] for i in range(0, len(w_flat), n)]
    out = [[] for _ in range(lanes)]
    for b, block in enumerate(blocks):
        out[b % lanes] += [(int(v), int(j == len(block) - 1)) for j, v in enumerate(block)]
    return out


def run_layers(dut, layers, block_bits, stall=0.3, seed=0):
    """Simulate ``layers`` [(W, x), ...] one after the other; returns [(y, cycles), ...]."""
    rng = random.Random(seed)
    results = []

    async def bench(ctx):
        for W, x in layers:
            queues = lane_weights(W.ravel(), block_bits, dut.n_lanes)
            y, cycles, _ = await pe_array_layer(ctx, dut, W, x, block_bits, queues,
                                                lambda w: {"value": w[0], "last": w[1]}, rng, stall)
            results.append((np.array(y), cycles))

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    return results


@pytest.mark.parametrize("lanes,block_bits", [(1, 4), (3, 4), (4, 5)])
def test_matches_numpy(lanes, block_bits):
    rng = np.random.default_rng(lanes)
    dut = PEArray(lanes=lanes, weight_bits=8, act_bits=8, acc_bits=32, max_k=128, max_rows=32, block_bits=block_bits)
    layers = []
    # Rows shorter than a block, a block exactly, longer, a partial last block, and one row.
    for rows, k in [(7, 5), (4, 16), (3, 100), (11, 37), (1, 128), (32, 1)]:
        W = rng.integers(-128, 128, (rows, k))
        x = rng.integers(-128, 128, k)
        layers.append((W, x))
    for (W, x), (y, _) in zip(layers, run_layers(dut, layers, block_bits)):
        np.testing.assert_array_equal(y, W @ x)


def test_matrix_matrix_product_one_pass_per_activation_column():
    """Y = W X (an FC layer on a batch of tokens, or a convolution's im2col columns): the weights
    stream once per column of X, and the passes are independent (accumulators cleared)."""
    rng = np.random.default_rng(11)
    dut = PEArray(lanes=2, weight_bits=8, act_bits=8, acc_bits=32, max_k=64, max_rows=16, block_bits=5)
    W, X = rng.integers(-128, 128, (9, 23)), rng.integers(-128, 128, (23, 3))
    results = run_layers(dut, [(W, X[:, j]) for j in range(X.shape[1])], 5)
    np.testing.assert_array_equal(np.stack([y for y, _ in results], axis=1), W @ X)


def test_one_weight_per_cycle_per_lane():
    lanes, block_bits = 4, 4
    rng = np.random.default_rng(7)
    dut = PEArray(lanes=lanes, weight_bits=4, act_bits=8, max_k=64, max_rows=64, block_bits=block_bits)
    W, x = rng.integers(-8, 8, (64, 64)), rng.integers(-128, 128, 64)
    (y, cycles), = run_layers(dut, [(W, x)], block_bits, stall=0.0)
    np.testing.assert_array_equal(y, W @ x)
    # clear (rows) + W.size / lanes + drain + two cycles per output row
    assert cycles <= 64 + W.size // lanes + 4 + 2 * 64 + 2, cycles


def test_bad_parameters():
    with pytest.raises(ValueError, match="lanes"):
        PEArray(lanes=0)
    with pytest.raises(ValueError, match="rows"):
        layer_config(0, 4, 4, 1)
