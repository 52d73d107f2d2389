"""Payload layouts of the streams between decoder stages, and the codes on the decoder's ports.

The stages and their software twins (``sw_codec``):

    BitReader -> BlockParser -----------> DistanceAccumulator -> RepeatExpander
                 (+ CanonicalHuffmanDecoder)
                 emits MemberToken         emits WriteToken        emits weights

Each stream is a ``lib.stream`` valid/ready stream carrying one of the layouts below. A block on
any of these streams is ``BLOCK``, zero or more ``MEMBER``/``WRITE`` tokens, ``END``.

The codes (:class:`Mode`, :class:`Slots`, :class:`TokenKind`) are those of ``sw_codec.format``,
as ``amaranth.lib.enum`` shapes: same names, same values, the narrowest unsigned width.
"""

from amaranth.hdl import Shape, signed, unsigned
from amaranth.lib import data, enum

from sw_codec import format as fmt

__all__ = ["Mode", "Slots", "TokenKind", "hardware_enum", "word_layout", "member_layout", "write_layout",
           "weight_layout", "activation_layout"]


def hardware_enum(codes: type) -> type:
    """The ``amaranth.lib.enum.Enum`` twin of a ``sw_codec.format`` code enum: same name, members
    and values, shaped as the narrowest unsigned integer that holds them (so signals of it show
    the member names in waveforms and in the generated Verilog's attributes)."""
    shape = Shape.cast(codes)
    namespace = enum.EnumMeta.__prepare__(codes.__name__, (enum.Enum,), shape=shape)
    namespace["__module__"] = __name__
    namespace["__qualname__"] = codes.__qualname__
    namespace["__doc__"] = codes.__doc__
    for member in codes:
        namespace[member.name] = member.value
    return enum.EnumMeta(codes.__name__, (enum.Enum,), namespace, shape=shape)


#: The layer's coding (``raw``, ``repeat``, ``distance``, ``huffman``): the decoder's ``mode`` port.
Mode = hardware_enum(fmt.Mode)
#: Slot counting (``all``, ``free``): the decoder's ``slots`` port.
Slots = hardware_enum(fmt.Slots)
#: ``BLOCK``: start of a block; ``value`` is the implicit value, ``index``/``position`` the block
#: size ``n`` (1 .. 2**block_bits). ``MEMBER``: one position of a group (``member_layout``) or
#: one weight write (``write_layout``). ``END``: end of a block; no other field is meaningful.
TokenKind = hardware_enum(fmt.TokenKind)


def word_layout(word_bits: int) -> data.StructLayout:
    """Memory words into a lane's BitReader: ``data`` (byte ``k`` in bits ``8k .. 8k+7``, each
    byte read MSB first) and ``last`` on the final word of the stream."""
    return data.StructLayout({"data": word_bits, "last": 1})


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


def activation_layout(act_bits: int) -> data.StructLayout:
    """The PE array's activations: one per transfer, ``last`` on a layer's last."""
    return data.StructLayout({"value": signed(act_bits), "last": 1})
