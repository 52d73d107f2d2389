"""What the BlockParser sees and must produce, computed with sw_codec.

The parser's input is a layer payload without its block offset table (the top strips it):
preamble, then the blocks back to back. :func:`parser_stream` builds that from an
``encode_layer`` payload. :func:`expected_tokens` is the golden token list
(``trace_layer(...)[1].members``). :func:`contiguous_trace` decodes a possibly corrupt parser
stream the way the hardware sees it (one reader over the whole stream, no block table, word
padding visible) with sw_codec's own ``decode_block``, so it raises ``FormatError`` exactly for
the problems the parser can detect.
"""

import numpy as np

from sw_codec.bits import BitReader
from sw_codec.decoder import StageTrace, decode_block, read_preamble, trace_layer
from sw_codec.errors import FormatError
from sw_codec.format import BLOCK_OFFSET_BYTES
from sw_codec.huffman import CanonicalHuffmanDecoder

__all__ = ["parser_stream", "block_sizes", "expected_tokens", "contiguous_trace", "random_weights", "pad_to_words",
           "UNDETECTABLE"]

#: sw_codec errors the parser does not check: they belong to the DistanceAccumulator.
UNDETECTABLE = ("two values claim the same position",)


def block_sizes(count, block_bits):
    n = 1 << block_bits
    return [min(n, count - start) for start in range(0, count, n)]


def parser_stream(payload, count, mode, block_bits):
    """The payload as the parser reads it: the block offset table removed."""
    if mode == "raw":
        return bytes(payload)
    reader = BitReader(payload)
    read_preamble(reader, mode)
    table_at = reader.pos // 8
    blocks_at = table_at + BLOCK_OFFSET_BYTES * len(block_sizes(count, block_bits))
    return bytes(payload[:table_at]) + bytes(payload[blocks_at:])


def pad_to_words(stream, word_bits):
    return bytes(stream) + bytes(-len(stream) % (word_bits // 8))


def _as_int(token):
    return tuple(token[:1]) + tuple(int(x) for x in token[1:])


def expected_tokens(payload, count, bits, mode, slots, block_bits):
    _, trace = trace_layer(payload, count, bits, mode, slots, block_bits)
    return [_as_int(t) for t in trace.members]


def contiguous_trace(stream, count, bits, mode, slots, block_bits, num_tables=8):
    """Decode a parser stream (already padded to whole words) as the hardware does; returns the
    tokens or raises ``FormatError``. Position modes only."""
    reader = BitReader(stream)
    params = read_preamble(reader, mode)
    if mode == "huffman" and len(params.tables) > num_tables:
        raise FormatError(f"{len(params.tables)} tables, the parser holds {num_tables}")
    huffman = CanonicalHuffmanDecoder(params.tables) if mode == "huffman" else None
    trace = StageTrace([], [])
    for n in block_sizes(count, block_bits):
        decode_block(reader, n, bits, mode, slots, params, huffman, trace)
        reader.align()
    return [_as_int(t) for t in trace.members]


def random_weights(rng, count, bits, kind):
    """Test layers: `skewed` (Laplacian-like), `constant`, `distinct` (a permutation per block),
    `uniform`."""
    hi = (1 << (bits - 1)) - 1
    if kind == "constant":
        return np.full(count, rng.integers(-hi, hi + 1), dtype=np.int64)
    if kind == "distinct":
        span = min(2 * hi + 1, 1 << 16)
        return rng.permutation(np.resize(np.arange(-hi, -hi + span), count)).astype(np.int64)
    if kind == "uniform":
        return rng.integers(-hi, hi + 1, count).astype(np.int64)
    scale = rng.choice([0.3, 1.0, 3.0])
    return np.clip(np.round(rng.laplace(0, scale, count)), -hi, hi).astype(np.int64)
