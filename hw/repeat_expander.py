from amaranth.hdl import *
from amaranth.lib import data, stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from .tokens import TokenKind, weight_layout, write_layout


__all__ = ["RepeatExpander"]


class RepeatExpander(wiring.Component):
    """Repeat expander: turns a block's weight writes into the block's weights.

    Software twin: ``sw_codec.repeat.RepeatExpander``. Every slot of a block that no ``MEMBER``
    write lands on holds the block's implicit value (carried by the ``BLOCK`` token).

    - ``in_order=False``: the write stream passes straight through (``o`` is ``i``, no
      register, zero latency); the consumer (a scatter-capable weight memory) fills the slots no
      write landed on with the implicit value of ``BLOCK``, whose ``position`` is the size ``n``.
    - ``in_order=True``: the block's ``n`` weights in position order. Writes go into a block
      buffer (:class:`lib.memory.Memory` of ``2 * 2**block_bits`` entries: two banks, so block
      ``k + 1`` fills while block ``k`` is read out). Each entry holds ``value`` and a
      ``written`` bit; the readout clears ``written`` of every entry it reads (on a second
      write port, always in the other bank than the fill), so no clearing pass is needed.

    Parameters
    ----------
    weight_bits : int
        Weight width: 4, 8 or 16.
    block_bits : int
        ``P``: blocks hold at most ``2**P`` weights; 4..16.
    in_order : bool
        Selects the output (above).

    Members
    -------
    i : ``In(stream.Signature(write_layout(weight_bits, block_bits)))``
        ``BLOCK`` (implicit ``value``, ``position`` = ``n``), ``MEMBER`` writes, ``END``.
    o : ``Out(stream.Signature(write_layout(...)))`` if not ``in_order``, else
        ``Out(stream.Signature(weight_layout(weight_bits)))``: one weight per transfer, ``last``
        on the block's last weight.
    error : ``Out(1)``
        ``in_order`` only (constant 0 otherwise). Sticky: a write at ``position >= n``, a
        ``BLOCK`` with ``n`` not in ``1..2**P``, or an unknown token kind. The write is dropped
        (it would leave a stale ``written`` bit); ``i.ready`` stays low from then on.

    Latency, throughput and backpressure (``in_order``)
    ---------------------------------------------------
    A reset (or the decoder's ``clear``) between layers costs one cycle. One that interrupts a
    block (a bank written and not read out) clears the buffer once (``2 * 2**block_bits`` cycles, ``i.ready`` low),
    since a reset may interrupt a block and leave ``written`` bits behind.
    ``i`` accepts one token per cycle while the bank being filled is free (``i.ready`` low
    while both banks hold blocks not yet read out). The readout of a block starts the cycle after
    its ``END`` is accepted; its first weight is on ``o`` one cycle later (read latency), then
    one weight per cycle while ``o.ready``: sustained 1 weight/cycle, as long as a block's
    ``writes + 2`` tokens arrive within its ``n`` readout cycles. ``o`` backpressure holds the
    read port (``en`` low), so the output stalls cleanly without losing or repeating a weight.
    """

    def __init__(self, *, weight_bits, block_bits, in_order):
        if weight_bits not in (4, 8, 16):
            raise ValueError(f"weight_bits must be 4, 8 or 16, not {weight_bits!r}")
        if not isinstance(block_bits, int) or not 4 <= block_bits <= 16:
            raise ValueError(f"block_bits must be an integer in 4..16, not {block_bits!r}")
        if not isinstance(in_order, bool):
            raise TypeError(f"in_order must be a bool, not {in_order!r}")
        self._weight_bits = weight_bits
        self._block_bits = block_bits
        self._in_order = in_order
        out_layout = weight_layout(weight_bits) if in_order else write_layout(weight_bits, block_bits)
        super().__init__({
            "i":     In(stream.Signature(write_layout(weight_bits, block_bits))),
            "o":     Out(stream.Signature(out_layout)),
            "error": Out(1),
        })

    @property
    def weight_bits(self):
        return self._weight_bits

    @property
    def block_bits(self):
        return self._block_bits

    @property
    def in_order(self):
        return self._in_order

    def elaborate(self, platform):
        m = Module()

        if not self._in_order:
            m.d.comb += [
                self.o.valid.eq(self.i.valid),
                self.o.payload.eq(self.i.payload),
                self.i.ready.eq(self.o.ready),
            ]
            return m

        P, WB = self._block_bits, self._weight_bits
        entry = data.StructLayout({"value": signed(WB), "written": 1})
        m.submodules.buffer = buffer = Memory(shape=entry, depth=2 << P, init=[])
        fill_wp  = buffer.write_port()
        clear_wp = buffer.write_port()
        rp       = buffer.read_port()       # not transparent: reads the entry before clearing

        # Per bank: implicit value, size, and `full` (filled, not yet completely read out).
        # Written through Arrays; read through `_Bank` (Muxes: an Array read becomes an
        # `always @*` block in Verilog that Icarus may never evaluate when nothing changes).
        implicit = _Bank(Signal(signed(WB), name=f"implicit{k}") for k in range(2))
        size     = _Bank(Signal(P + 1, name=f"size{k}") for k in range(2))
        full     = _Bank(Signal(name=f"full{k}") for k in range(2))
        error    = Signal()
        m.d.comb += self.error.eq(error)

        # Fill side.
        fill_bank = Signal()
        tok = self.i.payload
        # After a reset that left `written` bits behind (a bank written and not read out: the
        # reset interrupted a block), clear both banks once (2 * 2**P cycles, input blocked).
        # `pending` survives reset; after a reset between layers nothing needs clearing.
        pending    = _Bank(Signal(name=f"pending{k}", reset_less=True) for k in range(2))
        clearing   = Signal(init=1)
        clear_addr = Signal(P + 1)
        m.d.comb += self.i.ready.eq(~full[fill_bank] & ~error & ~clearing)
        with m.If(self.i.valid & self.i.ready):
            with m.Switch(tok.kind):
                with m.Case(TokenKind.BLOCK):
                    with m.If((tok.position == 0) | (tok.position > (1 << P))):
                        m.d.sync += error.eq(1)
                    with m.Else():
                        m.d.sync += [
                            implicit.at(fill_bank).eq(tok.value),
                            size.at(fill_bank).eq(tok.position),
                        ]
                with m.Case(TokenKind.MEMBER):
                    with m.If(tok.position >= size[fill_bank]):
                        m.d.sync += error.eq(1)
                    with m.Else():
                        m.d.comb += [
                            fill_wp.addr.eq(Cat(tok.position[:P], fill_bank)),
                            fill_wp.data.value.eq(tok.value),
                            fill_wp.data.written.eq(1),
                            fill_wp.en.eq(1),
                        ]
                        m.d.sync += pending.at(fill_bank).eq(1)
                with m.Case(TokenKind.END):
                    m.d.sync += [full.at(fill_bank).eq(1), fill_bank.eq(~fill_bank)]
                with m.Default():
                    m.d.sync += error.eq(1)

        # Readout side: the read port's output register is the pipeline stage in front of `o`;
        # it advances only when `o` is empty or transferring.
        read_bank = Signal()
        count     = Signal(P + 1)
        o_valid   = Signal()
        o_last    = Signal()
        o_default = Signal(signed(WB))
        advance   = ~o_valid | self.o.ready
        issue     = advance & full[read_bank]
        last      = count == size[read_bank] - 1
        m.d.comb += [
            rp.addr.eq(Cat(count[:P], read_bank)),
            rp.en.eq(advance),
            clear_wp.addr.eq(Mux(clearing, clear_addr, rp.addr)),
            clear_wp.data.eq(0),
            clear_wp.en.eq(issue | clearing),
            self.o.valid.eq(o_valid),
            self.o.payload.value.eq(Mux(rp.data.written, rp.data.value, o_default)),
            self.o.payload.last.eq(o_last),
        ]
        with m.If(clearing & ~pending[0] & ~pending[1]):
            m.d.sync += clearing.eq(0)
        with m.Elif(clearing):
            m.d.sync += clear_addr.eq(clear_addr + 1)
            with m.If(clear_addr == (2 << P) - 1):
                m.d.sync += [clearing.eq(0), pending.at(0).eq(0), pending.at(1).eq(0)]
        with m.If(advance):
            m.d.sync += o_valid.eq(issue)
        with m.If(issue):
            m.d.sync += [o_last.eq(last), o_default.eq(implicit[read_bank])]
            with m.If(last):
                m.d.sync += [count.eq(0), full.at(read_bank).eq(0), read_bank.eq(~read_bank),
                             pending.at(read_bank).eq(0)]
            with m.Else():
                m.d.sync += count.eq(count + 1)

        return m


class _Bank:
    """A pair of per-bank registers: ``bank[k]`` reads with a Mux, ``bank.at(k)`` is an
    assignable ``Array`` element."""

    def __init__(self, signals):
        self.signals = list(signals)
        self._array = Array(self.signals)

    def __getitem__(self, bank):
        return Mux(bank, self.signals[1], self.signals[0])

    def at(self, bank):
        return self._array[bank]
