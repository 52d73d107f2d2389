"""One decoding lane: memory words in, the layer's weights out in order."""

from amaranth.hdl import Module, ResetInserter
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from .block_parser import BlockParser, ParserError
from .distance_accumulator import DistanceAccumulator
from .repeat_expander import RepeatExpander
from .tokens import Mode, Slots, weight_layout, word_layout, write_layout

__all__ = ["LayerDecoder"]


class LayerDecoder(wiring.Component):
    """A lane of the decoder: ``BlockParser`` -> ``DistanceAccumulator`` -> ``RepeatExpander``.

    Reads one lane's stream (the layer payload's preamble, then the lane's blocks back to back;
    see ``sw_codec.lanes``) and the size of each of its blocks, and writes every weight of those
    blocks in position order. The mode (``raw``, ``repeat``, ``distance``, ``huffman``) selects
    how the parser reads member fields; ``raw`` layers are framed into blocks too and pass the
    same stages with ``all`` slot counting, so one netlist decodes every mode.

    Parameters
    ----------
    weight_bits : int
        ``b``: any width of the format, 2..16.
    block_bits : int
        ``P``: blocks of up to ``2**P`` weights (4..16); sets the block buffer (2 x ``2**P``
        entries) and the occupancy bitmap.
    word_bits : int
        Memory word width: 32, 64 or 128.
    max_code_len, num_tables : int
        Huffman capacity: longest code (<= 15) and number of tables (1, 2, 4, 8).
    scan_bits : int
        Width ``W`` of the accumulator's bitmap words (a power of two; default 256, see
        ``DistanceAccumulator``).
    in_order : bool
        ``True`` (default): ``weights`` are the weights in position order (the expander's block
        buffer). ``False``: ``weights`` is the write stream (``write_layout``: ``BLOCK``, the
        value-grouped ``MEMBER`` writes, ``END``), for a consumer that scatters or, like the
        repeat-aware PE array, computes on value groups; no block buffer.

    Members
    -------
    words : ``In(stream.Signature(StructLayout({"data": word_bits, "last": 1})))``
        The lane's byte stream as little-endian memory words; ``last`` on the final word.
    blocks : ``In(stream.Signature(range(2**block_bits + 1)))``
        Size of each block of the lane, in order.
    weights : ``Out(stream.Signature(weight_layout(weight_bits)))``
        The decoded weights, in order; ``last`` on each block's last weight.
    mode : ``In(Mode)``, slots : ``In(Slots)``, layer_block_bits : ``In(5)``
        The layer's parameters from its layer table entry; static during the layer.
    clear : ``In(1)``
        Restart every stage for a new layer (synchronous); pulse it with the new parameters.
    error : ``Out(1)``
        Sticky until ``clear``: some stage found the stream malformed and the lane stopped.
    error_code : ``Out(ParserError)``
        The parser's reason, or ``NONE`` when a later stage raised ``error`` (slot claimed
        twice, position outside the block).

    Throughput and latency
    ----------------------
    About one weight per cycle sustained on ``weights`` after the block and group headers: with
    ``all`` slot counting one member per cycle; ``free`` counting adds about one cycle per
    distinct value and block (the accumulator finds any member's bitmap word in one cycle; at
    most ``c + 2m`` cycles for ``c`` members in ``m`` values; measured rates are in
    ``results/sim.json``). The first
    weight of a block leaves after the whole block is decoded (the block buffer is
    double-buffered, so decoding block ``k + 1`` overlaps the readout of block ``k``).
    Backpressure on ``weights`` stalls the lane back to the memory without loss.
    """

    def __init__(self, *, weight_bits=8, block_bits=14, word_bits=32, max_code_len=15, num_tables=4,
                 scan_bits=256, in_order=True):
        self._parser = BlockParser(weight_bits=weight_bits, block_bits=block_bits, word_bits=word_bits,
                                   max_code_len=max_code_len, num_tables=num_tables)
        self._accumulator = DistanceAccumulator(weight_bits=weight_bits, block_bits=block_bits,
                                                scan_bits=scan_bits)
        self._expander = RepeatExpander(weight_bits=weight_bits, block_bits=block_bits, in_order=in_order)
        self.params = dict(weight_bits=weight_bits, block_bits=block_bits, word_bits=word_bits,
                           max_code_len=max_code_len, num_tables=num_tables, scan_bits=scan_bits,
                           in_order=in_order)
        super().__init__({
            "words": In(stream.Signature(word_layout(word_bits))),
            "blocks": In(stream.Signature(range((1 << block_bits) + 1))),
            "weights": Out(stream.Signature(weight_layout(weight_bits) if in_order
                                            else write_layout(weight_bits, block_bits))),
            "mode": In(Mode),
            "slots": In(Slots),
            "layer_block_bits": In(5),
            "clear": In(1),
            "error": Out(1),
            "error_code": Out(ParserError),
        })

    def elaborate(self, platform):
        m = Module()
        parser = self._parser
        m.submodules.parser = parser
        m.submodules.accumulator = accumulator = ResetInserter(self.clear)(self._accumulator)
        m.submodules.expander = expander = ResetInserter(self.clear)(self._expander)
        accumulator, expander = self._accumulator, self._expander

        wiring.connect(m, wiring.flipped(self.words), parser.i)
        wiring.connect(m, wiring.flipped(self.blocks), parser.blocks)
        wiring.connect(m, parser.o, accumulator.i)
        wiring.connect(m, accumulator.o, expander.i)
        wiring.connect(m, expander.o, wiring.flipped(self.weights))

        m.d.comb += [
            parser.mode.eq(self.mode),
            parser.slots.eq(self.slots),
            parser.layer_block_bits.eq(self.layer_block_bits),
            parser.clear.eq(self.clear),
            # Raw layers are framed as one-member groups at absolute positions: count all slots.
            accumulator.slots.eq(_accumulator_slots(self.mode, self.slots)),
            self.error.eq(parser.error | accumulator.error | expander.error),
            self.error_code.eq(parser.error_code),
        ]
        return m


def _accumulator_slots(mode, slots):
    """Free-slot counting for the accumulator: never in raw mode."""
    return (mode != Mode.RAW) & (slots == Slots.FREE)
