from amaranth.hdl import *
from amaranth.lib import data, stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from .params import check_block_bits, check_weight_bits
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
      ``k + 1`` fills while block ``k`` is read out) with one write and one read port, a
      simple dual-port RAM that maps to FPGA block RAM. Each entry holds ``value`` and an
      8-bit epoch ``tag``; an entry belongs to the block being read when its tag is the
      bank's epoch, which every fill advances. So no clearing pass is needed: each fill first
      rewrites ``ceil(2**P / 254)`` entries of its bank (round robin) with an old tag, which
      keeps stale tags from coming round again.

    Parameters
    ----------
    weight_bits : int
        Weight width: any width of the format, 2..16.
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
        ``BLOCK`` with ``n`` not in ``1..2**P``, or an unknown token kind. The write is dropped;
        ``i.ready`` stays low from then on.

    Latency, throughput and backpressure (``in_order``)
    ---------------------------------------------------
    A reset (or the decoder's ``clear``) costs nothing: epochs survive it, and a block it
    interrupted is stale by the next fill's epoch. A ``BLOCK`` is followed by ``ceil(2**P / 254)``
    scrub cycles (65 at P = 14, 0.4% of a block) with ``i.ready`` low.
    ``i`` accepts one token per cycle while the bank being filled is free (``i.ready`` low
    while both banks hold blocks not yet read out). The readout of a block starts the cycle after
    its ``END`` is accepted; its first weight is on ``o`` one cycle later (read latency), then
    one weight per cycle while ``o.ready``: sustained 1 weight/cycle, as long as a block's
    ``writes + 2`` tokens arrive within its ``n`` readout cycles. ``o`` backpressure holds the
    read port (``en`` low), so the output stalls cleanly without losing or repeating a weight.
    """

    def __init__(self, *, weight_bits, block_bits, in_order):
        check_weight_bits(weight_bits)
        check_block_bits(block_bits)
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

        P, WB, G = self._block_bits, self._weight_bits, TAG_BITS
        scrub_count = scrub_writes(P)
        entry = data.StructLayout({"value": signed(WB), "tag": G})
        # One write port (fill and scrub) and one read port (readout): a simple dual-port RAM,
        # as FPGA block RAMs provide.
        m.submodules.buffer = buffer = Memory(shape=entry, depth=2 << P, init=[])
        wp = buffer.write_port()
        rp = buffer.read_port()

        # Per bank: implicit value, size, `full` (filled, not yet completely read out), and the
        # fill epoch. Epochs and the scrub state survive reset and `clear`, so a new layer, even
        # after an interrupted block, needs no clearing pass. Written through Arrays; read
        # through `_Bank` (Muxes: an Array read becomes an `always @*` block in Verilog that
        # Icarus may never evaluate when nothing changes).
        implicit = _Bank(Signal(signed(WB), name=f"implicit{k}") for k in range(2))
        size     = _Bank(Signal(P + 1, name=f"size{k}") for k in range(2))
        full     = _Bank(Signal(name=f"full{k}") for k in range(2))
        epoch    = _Bank(Signal(G, name=f"epoch{k}", reset_less=True) for k in range(2))
        scrub_at = _Bank(Signal(P, name=f"scrub_at{k}", reset_less=True) for k in range(2))
        scrub_left = Signal(range(scrub_count + 1), reset_less=True)
        scrub_bank = Signal(reset_less=True)
        scrub_tag  = Signal(G, reset_less=True)
        error    = Signal()
        m.d.comb += self.error.eq(error)

        # Fill side. A BLOCK starts a new epoch for its bank and scrubs `scrub_count` entries
        # of the bank (tag = epoch - 1) before the block's writes: every entry is rewritten at
        # least every 2**G - 2 fills of its bank, so a stale tag never equals the epoch.
        fill_bank = Signal()
        tok = self.i.payload
        scrubbing = scrub_left != 0
        m.d.comb += self.i.ready.eq(~full[fill_bank] & ~error & ~scrubbing)
        with m.If(scrubbing):
            m.d.comb += [
                wp.addr.eq(Cat(scrub_at[scrub_bank], scrub_bank)),
                wp.data.value.eq(0),
                wp.data.tag.eq(scrub_tag),
                wp.en.eq(1),
            ]
            m.d.sync += [scrub_at.at(scrub_bank).eq(scrub_at[scrub_bank] + 1), scrub_left.eq(scrub_left - 1)]
        with m.If(self.i.valid & self.i.ready):
            with m.Switch(tok.kind):
                with m.Case(TokenKind.BLOCK):
                    with m.If((tok.position == 0) | (tok.position > (1 << P))):
                        m.d.sync += error.eq(1)
                    with m.Else():
                        m.d.sync += [
                            implicit.at(fill_bank).eq(tok.value),
                            size.at(fill_bank).eq(tok.position),
                            epoch.at(fill_bank).eq(epoch[fill_bank] + 1),
                            scrub_left.eq(scrub_count),
                            scrub_bank.eq(fill_bank),
                            scrub_tag.eq(epoch[fill_bank]),
                        ]
                with m.Case(TokenKind.MEMBER):
                    with m.If(tok.position >= size[fill_bank]):
                        m.d.sync += error.eq(1)
                    with m.Else():
                        m.d.comb += [
                            wp.addr.eq(Cat(tok.position[:P], fill_bank)),
                            wp.data.value.eq(tok.value),
                            wp.data.tag.eq(epoch[fill_bank]),
                            wp.en.eq(1),
                        ]
                with m.Case(TokenKind.END):
                    m.d.sync += [full.at(fill_bank).eq(1), fill_bank.eq(~fill_bank)]
                with m.Default():
                    m.d.sync += error.eq(1)

        # Readout side: the read port's output register is the pipeline stage in front of `o`;
        # it advances only when `o` is empty or transferring. An entry belongs to the block
        # when its tag is the bank's epoch; otherwise the slot holds the implicit value.
        read_bank = Signal()
        count     = Signal(P + 1)
        o_valid   = Signal()
        o_last    = Signal()
        o_default = Signal(signed(WB))
        o_epoch   = Signal(G)
        advance   = ~o_valid | self.o.ready
        issue     = advance & full[read_bank]
        last      = count == size[read_bank] - 1
        m.d.comb += [
            rp.addr.eq(Cat(count[:P], read_bank)),
            rp.en.eq(advance),
            self.o.valid.eq(o_valid),
            self.o.payload.value.eq(Mux(rp.data.tag == o_epoch, rp.data.value, o_default)),
            self.o.payload.last.eq(o_last),
        ]
        with m.If(advance):
            m.d.sync += o_valid.eq(issue)
        with m.If(issue):
            m.d.sync += [o_last.eq(last), o_default.eq(implicit[read_bank]), o_epoch.eq(epoch[read_bank])]
            with m.If(last):
                m.d.sync += [count.eq(0), full.at(read_bank).eq(0), read_bank.eq(~read_bank)]
            with m.Else():
                m.d.sync += count.eq(count + 1)

        return m


#: Width of the per-entry epoch tag of the block buffer.
TAG_BITS = 8


def scrub_writes(block_bits: int) -> int:
    """Entries a fill scrubs so each is rewritten within ``2**TAG_BITS - 2`` fills of its bank."""
    return -(-(1 << block_bits) // ((1 << TAG_BITS) - 2))


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
