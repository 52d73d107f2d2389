"""Golden token streams for the back end (DistanceAccumulator -> RepeatExpander), from sw_codec.

``layer_case`` makes integer weights of a given character, encodes them with ``sw_codec`` and
returns the decoded weights with the stage trace (``trace.members`` into the accumulator,
``trace.writes`` out of it). ``*_fields`` turn trace tuples into plain field dicts (values as
signed ints) that testbenches pack for their payloads.
"""

import numpy as np

from sw_codec.decoder import trace_layer
from sw_codec.encoder import encode_layer
from sw_codec.format import TokenKind

__all__ = ["KINDS", "make_weights", "layer_case", "member_fields", "write_fields"]

#: Weight characters: Laplace-distributed, one value per block, all-distinct blocks, few values.
KINDS = ("laplace", "constant", "distinct", "few")


def make_weights(rng: np.random.Generator, kind: str, count: int, bits: int, block_bits: int) -> np.ndarray:
    hi = (1 << (bits - 1)) - 1
    n = 1 << block_bits
    if kind == "laplace":
        scale = rng.uniform(0.5, max(0.5, hi / 4))     # at 2 and 3 bits: scale 0.5
        return np.clip(np.round(rng.laplace(0, scale, count)), -hi, hi).astype(np.int64)
    if kind == "constant":
        per_block = rng.integers(-hi, hi + 1, -(-count // n))
        return np.repeat(per_block, n)[:count]
    if kind == "distinct":
        blocks = []
        for start in range(0, count, n):
            size = min(n, count - start)
            distinct = rng.choice(np.arange(-hi, hi + 1), size=min(size, 2 * hi + 1), replace=False)
            blocks.append(rng.permutation(np.resize(distinct, size)))
        return np.concatenate(blocks)
    if kind == "few":
        values = rng.integers(-hi, hi + 1, rng.integers(1, 5))
        return rng.choice(values, count)
    raise ValueError(f"kind must be one of {KINDS}, not {kind!r}")


def layer_case(rng, kind, count, bits, mode, slots, block_bits):
    """``(weights, trace)`` for a random layer; checks the software round trip."""
    q = make_weights(rng, kind, count, bits, block_bits)
    payload = encode_layer(q, bits, mode, slots, block_bits)
    weights, trace = trace_layer(payload, count, bits, mode, slots, block_bits)
    assert np.array_equal(weights, q), "sw_codec round trip failed"
    return np.asarray(weights, dtype=np.int64), trace


def member_fields(token):
    """``trace.members`` tuple -> member_layout fields."""
    kind = token[0]
    if kind == "BLOCK":
        return {"kind": kind, "value": token[1], "index": token[2], "first": 0, "absolute": 0}
    if kind == "MEMBER":
        return {"kind": kind, "value": token[1], "index": token[2], "first": token[3],
                "absolute": token[4]}
    return {"kind": kind, "value": 0, "index": 0, "first": 0, "absolute": 0}


def member_port_fields(token, weight_bits):
    """``trace.members`` tuple -> member_layout fields as a port carries them: the kind as its
    code, the value as ``weight_bits``-bit two's complement."""
    fields = member_fields(token)
    fields["kind"] = TokenKind[fields["kind"]]
    fields["value"] &= (1 << weight_bits) - 1
    return fields


def write_fields(token):
    """``trace.writes`` tuple -> write_layout fields (END: value and position 0)."""
    if token[0] == "END":
        return {"kind": "END", "value": 0, "position": 0}
    return {"kind": token[0], "value": token[1], "position": token[2]}
