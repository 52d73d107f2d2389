"""Golden cases for the header unit (``hw.block_header_reader``): a format-2 payload's blocks with
their header words and the tokens ``sw_codec.decoder.read_block_header`` gives."""

from sw_codec.bits import BitReader
from sw_codec.decoder import read_block_header, read_block_lengths, read_preamble
from sw_codec.errors import FormatError

__all__ = ["expected_tokens", "layer_blocks"]


def expected_tokens(implicit, groups, n):
    """The unit's tokens for one block, as tuples in ``group_layout`` order: ``(block, value,
    count, domain, table, shift, escape_bits, last)``."""
    out = [(1, implicit, len(groups) + 1, n, 0, 0, 0, int(not groups))]
    out += [(0, g.value, g.count, g.domain, g.table, g.shift, g.escape_bits, int(i == len(groups) - 1))
            for i, g in enumerate(groups)]
    return out


def layer_blocks(payload, count, bits, slots, block_bits):
    """A format-2 huffman payload's blocks: ``(params, [(n, words, expected tokens or None)])``;
    for a good block ``words`` is its header section (the twin's length), for a bad one the
    whole block."""
    reader = BitReader(payload)
    params = read_preamble(reader, "huffman", 2)
    nblocks = -(-count // (1 << block_bits))
    starts, ends = read_block_lengths(reader, nblocks)
    blocks = []
    for b, (s, e) in enumerate(zip(starts, ends)):
        n = min(1 << block_bits, count - (b << block_bits))
        block = BitReader(payload, int(s), int(e))
        raw = payload[int(s):int(e)]
        words = [int.from_bytes(raw[i:i + 2], "big") for i in range(0, len(raw), 2)]
        try:
            implicit, groups = read_block_header(block, n, bits, slots, params)
        except FormatError:
            blocks.append((n, words, None))
            continue
        header_words = (block.pos - 8 * int(s)) // 16
        blocks.append((n, words[:header_words], expected_tokens(implicit, groups, n)))
    return params, blocks
