"""Payload layouts of the streams between decoder stages (shared by hw/ and the testbenches).

The stages and their software twins (``sw_codec``):

    BitReader -> BlockParser -----------> DistanceAccumulator -> RepeatExpander
                 (+ CanonicalHuffmanDecoder)
                 emits MemberToken         emits WriteToken        emits weights

Each stream is a ``lib.stream`` valid/ready stream carrying one of the layouts below. A block on
any of these streams is ``BLOCK``, zero or more ``MEMBER``/``WRITE`` tokens, ``END``.
"""

from amaranth.hdl import signed, unsigned
from amaranth.lib import data, enum

__all__ = ["TokenKind", "member_layout", "write_layout", "weight_layout"]


class TokenKind(enum.Enum, shape=2):
    #: Start of a block. ``value`` is the implicit value; ``index``/``position`` is the block
    #: size ``n`` (1 .. 2**block_bits).
    BLOCK = 0
    #: One position of a group (``MemberToken``) or one weight write (``WriteToken``).
    MEMBER = 1
    #: End of a block; no other field is meaningful.
    END = 2


def member_layout(weight_bits: int, block_bits: int) -> data.StructLayout:
    """BlockParser -> DistanceAccumulator.

    ``MEMBER``: ``value`` is the group's value; ``index`` is the distance ``d`` (modes
    ``distance`` and ``huffman``) or, with ``absolute`` set, the domain index itself (mode
    ``repeat``, and ``raw`` where every weight is its own group); ``first`` marks the first
    member of a group (the accumulator restarts at index -1, and in ``free`` counting the slots
    of the previous group leave the domain).
    """
    return data.StructLayout({
        "kind": TokenKind,
        "value": signed(weight_bits),
        "index": unsigned(block_bits + 1),
        "first": 1,
        "absolute": 1,
    })


def write_layout(weight_bits: int, block_bits: int) -> data.StructLayout:
    """DistanceAccumulator -> RepeatExpander (and RepeatExpander's write-stream output).

    ``MEMBER``: write ``value`` at in-block ``position``. ``BLOCK``: ``value`` is the implicit
    value, ``position`` the block size.
    """
    return data.StructLayout({
        "kind": TokenKind,
        "value": signed(weight_bits),
        "position": unsigned(block_bits + 1),
    })


def weight_layout(weight_bits: int) -> data.StructLayout:
    """RepeatExpander's in-order output: one weight per transfer, ``last`` on a block's last."""
    return data.StructLayout({"value": signed(weight_bits), "last": 1})
