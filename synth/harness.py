"""An I/O harness: a component's Fmax on a device with fewer pins than the component has port bits.

The iCE40 UP5K in its sg48 package has 39 user I/Os; every decoder stage has more port bits than
that, so nextpnr cannot place it as a top ("Unable to find a placement location for
window[24]$sb_io"). :class:`IOHarness` wraps the component so that the top needs three pins
besides the clock: the component's inputs come from one shift register and its outputs go into
another. Place and route then measures the component as it would sit in a larger design, with
registers driving and taking its ports.
"""

from amaranth.hdl import Cat, Module, Signal, Value
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

__all__ = ["IOHarness", "port_widths"]


def port_widths(component: wiring.Component) -> tuple[int, int]:
    """``(input bits, output bits)`` of ``component``'s signature (clock and reset not counted)."""
    widths = {"In": 0, "Out": 0}
    for _, member, value in component.signature.flatten(component):
        widths[member.flow.name] += len(Value.cast(value))
    return widths["In"], widths["Out"]


class IOHarness(wiring.Component):
    """``component`` with every port bit behind a flip-flop of a shift register.

    Every input bit of the component is driven by a flip-flop of the input chain, which shifts
    ``sin`` in one bit per cycle. Every output bit is taken by a flip-flop of the capture chain:
    it loads all outputs in a cycle where ``load`` (registered) is high and otherwise shifts one bit
    per cycle toward ``sout``. The paths place and route measures are then register to register
    (input chain -> component, inside the component, component -> capture chain), and synthesis
    keeps all of the component's logic: no input is constant and every output is observed.

    Cost: one flip-flop per port bit, plus one LUT per output bit for the load multiplexer; the
    flow reports the component's own cell counts from a synthesis without the harness.

    Members
    -------
    sin : ``In(1)``
        Next bit of the input chain.
    load : ``In(1)``
        Capture the component's outputs at the clock edge after next (registered).
    sout : ``Out(1)``
        Last bit of the capture chain.
    """

    def __init__(self, component: wiring.Component):
        self.component = component
        super().__init__({"sin": In(1), "load": In(1), "sout": Out(1)})

    def elaborate(self, platform):
        m = Module()
        m.submodules.core = core = self.component

        inputs, outputs = [], []
        for _, member, value in core.signature.flatten(core):
            (inputs if member.flow == In else outputs).append(Value.cast(value))

        if inputs:
            chain = Signal(sum(len(v) for v in inputs))
            m.d.sync += chain.eq(Cat(self.sin, chain[:-1]))
            offset = 0
            for v in inputs:
                m.d.comb += v.eq(chain[offset:offset + len(v)])
                offset += len(v)

        load = Signal()
        m.d.sync += load.eq(self.load)
        capture = Signal(max(1, sum(len(v) for v in outputs)))
        with m.If(load):
            m.d.sync += capture.eq(Cat(*outputs))
        with m.Else():
            m.d.sync += capture.eq(capture >> 1)
        m.d.comb += self.sout.eq(capture[0])
        return m
