"""The error-bounded quantizer: every decoded weight lies within the bound, at the width it needs."""

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st
from hypothesis.extra import numpy as hnp

from sw_codec import compress_integers, decompress, inspect
from sw_codec.quantization import ErrorBound, dequantize, parse_error_bound, quantize_error_bounded

FLOATS = st.floats(-1e4, 1e4, allow_nan=False, allow_infinity=False, width=32)


def assert_within(x, bound, name="t", through_codec=True):
    """Quantize, store losslessly at the width it needs, decode from the file, check every weight."""
    q, scales, bits = quantize_error_bounded(x, bound, name)
    e = bound.rows(x)[:, None] if bound.granularity(x) == "channel" else bound.absolute(x)
    assert scales.size == (x.shape[0] if bound.granularity(x) == "channel" else 1)
    assert 2 <= bits <= 16 and -(1 << (bits - 1)) <= q.min() and q.max() <= (1 << (bits - 1)) - 1
    assert q.size == 0 or bits == 2 or max(q.max(), -q.min() - 1) >= 1 << (bits - 3)   # no wider than needed
    decoded = dequantize(q, scales)
    if through_codec:
        data = compress_integers({name: (q, scales, bound.granularity(x), bits)}, block_bits=6)
        assert inspect(data)[0].bits == bits
        np.testing.assert_array_equal(decompress(data)[name], decoded)
    error = np.abs(x.astype(np.float64) - decoded.astype(np.float64)).reshape(len(np.atleast_1d(scales)), -1)
    assert np.all(error <= e), f"worst error {error.max()} over the bound"
    return bits


@settings(max_examples=150, deadline=None)
@given(x=hnp.arrays(np.float32, st.tuples(st.integers(1, 30), st.integers(1, 40)), elements=FLOATS),
       exponent=st.floats(-6, 1), kind=st.sampled_from(["abs", "rel", "ch"]))
def test_every_weight_decodes_within_the_bound(x, exponent, kind):
    bound = ErrorBound(10.0 ** exponent, kind != "abs", kind == "ch")
    e = bound.rows(x)
    amax = np.abs(x.reshape(len(e), -1)).max(axis=1)
    # A bound below float32's resolution gets the finest step, 2**-149: every float32 is a multiple of it.
    e_step = np.maximum(e, 2.0 ** -150)
    if np.any((e > 0) & (amax > (2 ** 16 - 1) * np.where(e > 0, e_step, 1))):   # some row needs more than 16 bits
        with pytest.raises(ValueError, match="t: an error bound of .* needs more than 16 bits"):
            quantize_error_bounded(x, bound, "t")
        return
    assert_within(x, bound)


def test_bounds_below_float32_resolution_keep_subnormal_weights_exact():
    """A weight of 1e-45 (the smallest float32, 2**-149) under a bound of 1e-51: step 2**-149, q = 1."""
    x = np.array([[1e-45, 3e-45, -1e-45]], np.float32)
    for bound in (ErrorBound(1e-6, relative=True), ErrorBound(1e-6, relative=True, per_channel=True)):
        q, scales, bits = quantize_error_bounded(x, bound)
        assert q.tolist() == [[1, 2, -1]] and scales.tolist() == [np.float32(2.0 ** -149)] and bits == 3
        assert_within(x, bound)
    with pytest.raises(ValueError, match="needs more than 16 bits"):
        quantize_error_bounded(np.array([[1e-40]], np.float32), ErrorBound(1e-6, relative=True))


@settings(max_examples=60, deadline=None)
@given(scale=st.floats(1e-30, 1e30), seed=st.integers(0, 2**32 - 1), bits=st.integers(2, 16))
def test_bounds_at_the_edge_of_float32_rounding(scale, seed, bits):
    """Weights of any magnitude, bounds that put the largest weight at the top of a width."""
    x = (np.random.default_rng(seed).standard_normal((17, 31)) * scale).astype(np.float32)
    amax = float(np.abs(x).max())
    if not np.isfinite(amax) or amax == 0:
        return
    assert_within(x, ErrorBound(amax / (2 * ((1 << (bits - 1)) - 1)), relative=False))


@pytest.mark.parametrize("bound", ["rel:0.25", "rel:0.01", "rel:0.001", "1e-2", "1e-3", "ch:0.01"])
def test_real_tensors_of_a_bundled_model(bound):
    """Every weight of YOLOv8n (the decoder's losslessness is tested elsewhere: here dequantize)."""
    from sw_codec.models import bundled_model, load_model

    tensors = load_model(bundled_model("yolov8n"))
    widths = [assert_within(x, parse_error_bound(bound), name, through_codec=False)
              for name, x in tensors.items() if x.ndim >= 2]
    assert len(widths) > 50 and max(widths) <= 16


def test_width_follows_the_bound():
    x = np.linspace(-1, 1, 1001, dtype=np.float32)
    assert [quantize_error_bounded(x, ErrorBound(0.5 / (2 ** (b - 1) - 1)))[2] for b in (2, 5, 12)] == [3, 6, 13] \
        or [quantize_error_bounded(x, ErrorBound(0.5 / (2 ** (b - 1) - 1)))[2] for b in (2, 5, 12)] == [2, 5, 12]
    assert quantize_error_bounded(x, ErrorBound(2.0))[2] == 2                  # everything rounds to 0
    q, scales, bits = quantize_error_bounded(np.zeros((3, 4), np.float32), ErrorBound(0.1, relative=True))
    assert (q == 0).all() and bits == 2


def test_bounds_parse_and_bad_ones_are_refused():
    assert parse_error_bound("1e-3") == ErrorBound(1e-3)
    assert parse_error_bound("abs:0.5") == ErrorBound(0.5)
    assert parse_error_bound("rel:0.01") == parse_error_bound("1%") == ErrorBound(0.01, relative=True)
    assert parse_error_bound("rel:0.01").absolute(np.array([-4.0, 2.0])) == pytest.approx(0.04)
    assert parse_error_bound("ch:0.5") == ErrorBound(0.5, relative=True, per_channel=True)
    np.testing.assert_allclose(parse_error_bound("ch:0.5").rows(np.array([[1.0, -2.0], [0.5, 0.0]])), [1.0, 0.25])
    with pytest.raises(ValueError, match="per-channel"):
        ErrorBound(0.1, relative=False, per_channel=True)
    for bad in ("", "x", "rel:", "-1e-3", "0", "nan"):
        with pytest.raises(ValueError):
            parse_error_bound(bad)
    with pytest.raises(ValueError, match="layer.7: an error bound"):
        quantize_error_bounded(np.array([1.0, -1.0], np.float32), 1e-6, "layer.7")
