"""A test top for the lane's back end: ``DistanceAccumulator`` -> in-order ``RepeatExpander``.

Not part of the decoder (``hw.layer_decoder.LayerDecoder`` connects the stages itself): it lets
``sim/tb_backend.py`` drive the two stages from member tokens, without a block parser.
"""

from amaranth.hdl import *
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from hw.distance_accumulator import DistanceAccumulator
from hw.repeat_expander import RepeatExpander
from hw.tokens import member_layout, weight_layout


__all__ = ["Backend"]


class Backend(wiring.Component):
    """Back end of a decoder lane: member tokens to in-order weights.

    ``DistanceAccumulator`` -> ``RepeatExpander(in_order=True)``, connected stream to stream.

    Parameters
    ----------
    weight_bits, block_bits, scan_bits : int
        As for :class:`DistanceAccumulator`.

    Members
    -------
    i : ``In(stream.Signature(member_layout(weight_bits, block_bits)))``
        From the block parser.
    o : ``Out(stream.Signature(weight_layout(weight_bits)))``
        Weights in layer order, ``last`` on each block's last weight.
    slots : ``In(1)``
        0 = ``all``, 1 = ``free`` (static per layer).
    error : ``Out(1)``
        Sticky: either stage's error.

    Latency: the first weight of a block leaves 2 cycles after its ``END`` token is accepted by
    the expander (accumulator register + buffer read); throughput as the two stages.
    """

    def __init__(self, *, weight_bits, block_bits, scan_bits=256):
        self.accumulator = DistanceAccumulator(weight_bits=weight_bits, block_bits=block_bits,
                                               scan_bits=scan_bits)
        self.expander = RepeatExpander(weight_bits=weight_bits, block_bits=block_bits,
                                       in_order=True)
        super().__init__({
            "i":     In(stream.Signature(member_layout(weight_bits, block_bits))),
            "o":     Out(stream.Signature(weight_layout(weight_bits))),
            "slots": In(1),
            "error": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        m.submodules.accumulator = accumulator = self.accumulator
        m.submodules.expander = expander = self.expander
        wiring.connect(m, wiring.flipped(self.i), accumulator.i)
        wiring.connect(m, accumulator.o, expander.i)
        wiring.connect(m, expander.o, wiring.flipped(self.o))
        m.d.comb += [
            accumulator.slots.eq(self.slots),
            self.error.eq(accumulator.error | expander.error),
        ]
        return m
