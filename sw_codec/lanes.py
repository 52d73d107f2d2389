"""How a layer payload is fed to the hardware: a preamble, then blocks shared out among lanes.

The decoder's memory side reads, per lane, one byte stream: the payload's preamble (layer-wide
parameters and Huffman tables) followed by the lane's blocks back to back, each starting on a byte
boundary. Lane ``i`` of ``N`` decodes blocks ``i, i + N, i + 2N, ...``; the block table is used by
the host (or a DMA engine) to find them and is not part of any lane's stream. In ``raw`` mode there
is no preamble and a block is ``n * bits / 8`` consecutive bytes.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .bits import BitReader
from .decoder import read_preamble
from .errors import FormatError
from .format import BLOCK_OFFSET_BYTES


@dataclass
class LaneStream:
    """What one lane reads: its byte stream and the size of each of its blocks, in order."""

    data: bytes
    block_sizes: list[int]
    blocks: list[int]


def preamble_length(payload: bytes, mode: str) -> int:
    """Bytes of the preamble of a position-mode payload (0 for raw)."""
    if mode == "raw":
        return 0
    r = BitReader(payload)
    read_preamble(r, mode)
    return r.pos // 8


def split_payload(payload: bytes, count: int, bits: int, mode: str, block_bits: int) -> tuple[bytes, list[bytes]]:
    """(preamble, [block bytes, ...]) of a layer payload."""
    n = 1 << block_bits
    nblocks = -(-count // n)
    if mode == "raw":
        size = n * bits // 8
        return b"", [payload[i * size : (i + 1) * size] for i in range(nblocks)]
    pre = preamble_length(payload, mode)
    blocks_at = pre + BLOCK_OFFSET_BYTES * nblocks
    if blocks_at > len(payload):
        raise FormatError("payload too short for its block table", offset=pre)
    offsets = np.frombuffer(payload, "<u4", nblocks, pre).astype(np.int64)
    ends = np.append(offsets[1:], len(payload) - blocks_at)
    return payload[:pre], [payload[blocks_at + a : blocks_at + b] for a, b in zip(offsets, ends)]


def lane_streams(payload: bytes, count: int, bits: int, mode: str, block_bits: int, lanes: int) -> list[LaneStream]:
    """The byte stream and block sizes of each of ``lanes`` lanes."""
    preamble, blocks = split_payload(payload, count, bits, mode, block_bits)
    n = 1 << block_bits
    out = []
    for lane in range(lanes):
        mine = list(range(lane, len(blocks), lanes))
        out.append(LaneStream(preamble + b"".join(blocks[b] for b in mine),
                              [min(n, count - b * n) for b in mine], mine))
    return out
