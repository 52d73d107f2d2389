from amaranth.hdl import *
from amaranth.lib import data, stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from sw_codec.free_slots import tree_digits

from .params import check_block_bits, check_weight_bits
from .tokens import TokenKind, member_layout, write_layout


__all__ = ["FreeSlotScanner"]


class FreeSlotScanner(wiring.Component):
    """Free-slot unit of decoder v2: turns each group's distances (or indices) into in-block
    positions, one member per cycle whatever the group sizes, by a pipelined descent through a
    tree of free counts.

    Software twin: ``sw_codec.free_slots.FreeSlotScanner`` (the mapping is that of
    ``sw_codec.distance.DistanceAccumulator``; the token contract is the
    :class:`~hw.distance_accumulator.DistanceAccumulator`'s). A member's *index* in its group's
    domain is given directly (``absolute``) or as a distance, ``index = previous + distance + 1``
    with ``previous = -1`` on ``first``. With ``free`` counting the domain is the slots no
    earlier group of the block claimed; with ``all``, every slot (the index is the position).

    How: every member claims its slot at once, so with ``free`` counting the ``j``-th member of a
    group is the ``(index - (j - 1))``-th slot still free (its group's earlier members all lie
    before it): a *rank* on the live claims, nothing kept per group. The block's ``2**P`` slots are
    the leaves of a tree (``sw_codec.free_slots.tree_digits``: a top node of ``2**t`` children,
    ``t`` in 1..3, then levels of 8 children; the bottom level's children are slots). Each level
    is one pipeline stage: its rows (``{below, touched}`` for inner levels, ``below[c]`` the free
    slots in children ``0..c-1``; 8 claim bits at the bottom) are in a :class:`Memory` with a
    synchronous, transparent read port (the top row in registers). A stage compares the rank with
    its row's ``below`` (side by side), takes the child, writes the row back with the claim
    counted, and reads the child's row for the next stage. With ``all`` counting the child is the
    position's digit, and the bottom checks that the slot is free.

    A block starts with no clearing pass: a child its parent has not ``touched`` in this block
    reads as all free, whatever its row holds, so ``BLOCK`` resets only the top row (as it passes
    the top stage, in order with the members).

    Parameters
    ----------
    weight_bits : int
        Weight width ``b``, 2..16.
    block_bits : int
        ``P``, the largest block holds ``2**P`` weights; 4..16. The tree has ``ceil(P / 3)``
        levels.

    Members
    -------
    i : ``In(stream.Signature(member_layout(weight_bits, block_bits)))``
        ``BLOCK`` (``value`` implicit, ``index`` block size ``n``), ``MEMBER``s, ``END``.
    o : ``Out(stream.Signature(write_layout(weight_bits, block_bits)))``
        ``BLOCK`` and ``END`` pass through (``BLOCK``: ``position`` = ``n``); each ``MEMBER``
        becomes ``(value, position)``.
    slots : ``In(1)``
        Slot counting, 0 = ``all``, 1 = ``free``. Static: change it only with no token in flight.
    error : ``Out(1)``
        Sticky, cleared only by reset. Set at ``i`` (the token is not taken) on framing errors
        (``MEMBER`` or ``END`` outside a block, ``BLOCK`` inside one, ``n`` not in ``1..2**P``, a
        block's first member without ``first``), an index outside its group's domain (``free``:
        past the slots earlier groups left, which also catches more members than slots; ``all``:
        ``>= n``) and indices of a group that do not increase. Set at the last stage (the member
        is not emitted) when with ``all`` counting a slot is claimed twice, and, as a guard that
        never fires on a consistent tree, when a position is not below ``n``. Once set, ``i.ready``
        stays low and no token enters ``o``; a token already on ``o`` stays until taken.

    Latency, throughput and backpressure
    ------------------------------------
    One token per cycle, sustained, in both countings and across group and block boundaries
    (no restart cycles). A token taken at a clock edge is on ``o`` ``levels + 1`` edges later.
    ``o`` is a register; the pipeline advances in every cycle where ``o`` is empty or taken
    (``i.ready`` is that, and no error, and a token that passes the input checks), so
    backpressure on ``o`` stalls ``i`` without loss. A bad token at ``i`` is flagged in the
    cycle it is offered; a duplicate ``all`` slot ``levels`` cycles after it was taken.
    """

    def __init__(self, *, weight_bits, block_bits):
        check_weight_bits(weight_bits)
        check_block_bits(block_bits)
        self._weight_bits = weight_bits
        self._block_bits = block_bits
        self._digits = tree_digits(block_bits)
        # Per level: the row layout and its all-free value (inner levels), and its memory.
        self._rows = []
        for k, digit in enumerate(self._digits[:-1]):
            child_bits = block_bits - sum(self._digits[:k + 1])
            fanout = 1 << digit
            width = ((fanout - 1) << child_bits).bit_length()
            layout = data.StructLayout({"below": data.ArrayLayout(width, fanout - 1),
                                        "touched": fanout})
            init = {"below": [c << child_bits for c in range(1, fanout)], "touched": 0}
            self._rows.append((layout, init))
        self._rows.append((unsigned(1 << self._digits[-1]), 0))
        super().__init__({
            "i":     In(stream.Signature(member_layout(weight_bits, block_bits))),
            "o":     Out(stream.Signature(write_layout(weight_bits, block_bits))),
            "slots": In(1),
            "error": Out(1),
        })

    @property
    def weight_bits(self):
        return self._weight_bits

    @property
    def block_bits(self):
        return self._block_bits

    @property
    def levels(self):
        """Levels of the tree, and pipeline stages between ``i`` and the output register."""
        return len(self._digits)

    @property
    def latency(self):
        """Clock edges from a token taken at ``i`` to that token on ``o`` (without stalls)."""
        return self.levels + 1

    def _stage_layout(self):
        # `slot`: for a MEMBER at level k, Cat(rank within its node, node); for a BLOCK, Cat(slot,
        # hi) is n; `fresh`: the node's row is all free (its parent had not touched it).
        return data.StructLayout({"valid": 1, "kind": TokenKind, "value": signed(self._weight_bits),
                                  "slot": self._block_bits, "hi": 1, "fresh": 1})

    def elaborate(self, platform):
        m = Module()
        P, L = self._block_bits, self.levels
        stages = [Signal(self._stage_layout(), name=f"s{k}") for k in range(L + 1)]
        out = stages[L]                                     # the output register
        error = Signal()
        advance = Signal()
        m.d.comb += [
            advance.eq(~out.valid | self.o.ready),
            self.error.eq(error),
            self.o.valid.eq(out.valid),
            self.o.payload.kind.eq(out.kind),
            self.o.payload.value.eq(out.value),
            self.o.payload.position.eq(Cat(out.slot, out.hi)),
        ]
        self._input_stage(m, stages[0], advance, error)

        ports = [None]
        for k in range(1, L):
            mem = Memory(shape=self._rows[k][0], depth=1 << sum(self._digits[:k]), init=[])
            m.submodules[f"level{k}"] = mem
            wp = mem.write_port()
            ports.append((mem.read_port(transparent_for=(wp,)), wp))
        for k in range(L):
            nxt = Signal(self._stage_layout(), name=f"to{k + 1}" if k + 1 < L else "bottom")
            bad = self._level(m, k, stages[k], nxt, ports[k], ports[k + 1] if k + 1 < L else None,
                              advance)
            if k + 1 < L:
                with m.If(advance):
                    m.d.sync += stages[k + 1].eq(nxt)
        # The output register takes the bottom's token unless it is bad or an error is up.
        n_block = Signal(P + 1)                             # n of the block on `o`
        outside = (nxt.kind == TokenKind.MEMBER) & (nxt.slot >= n_block)
        with m.If(advance):
            m.d.sync += out.eq(nxt)
            with m.If(error | bad | outside):
                m.d.sync += out.valid.eq(0)
            with m.If(nxt.valid & (bad | outside)):
                m.d.sync += error.eq(1)
            with m.If(nxt.valid & (nxt.kind == TokenKind.BLOCK)):
                m.d.sync += n_block.eq(Cat(nxt.slot, nxt.hi))
        return m

    def _input_stage(self, m, s0, advance, error):
        """Checks at ``i``, the index and its rank, the block and group counters; fills ``s0``."""
        P = self._block_bits
        tok, free = self.i.payload, self.slots
        in_block = Signal()
        open_group = Signal()                       # a member of this block opened a group
        n = Signal(P + 1)
        left = Signal(P + 1)                        # free slots of the block now
        domain = Signal(P + 1)                      # free slots when the group started
        prev = Signal(P + 1)                        # the group's previous index
        earlier = Signal(P + 1)                     # the group's members so far

        index = Signal(P + 2)
        m.d.comb += index.eq(Mux(tok.absolute | tok.first, tok.index, prev + 1 + tok.index))
        limit = Mux(free, Mux(tok.first, left, domain), n)
        rank = Mux(free, index - Mux(tok.first, 0, earlier), index)
        bad = Signal()
        with m.Switch(tok.kind):
            with m.Case(TokenKind.BLOCK):
                m.d.comb += bad.eq(in_block | (tok.index == 0) | (tok.index > (1 << P)))
            with m.Case(TokenKind.END):
                m.d.comb += bad.eq(~in_block)
            with m.Case(TokenKind.MEMBER):
                m.d.comb += bad.eq(~in_block | (~open_group & ~tok.first) | (index >= limit)
                                   | (~tok.first & (index <= prev)))
            with m.Default():
                m.d.comb += bad.eq(1)
        m.d.comb += self.i.ready.eq(advance & ~error & ~bad)
        take = self.i.valid & self.i.ready
        with m.If(self.i.valid & bad & ~error):
            m.d.sync += error.eq(1)

        with m.If(advance):
            m.d.sync += [
                s0.valid.eq(take),
                s0.kind.eq(tok.kind),
                s0.value.eq(tok.value),
                s0.fresh.eq(0),
                Cat(s0.slot, s0.hi).eq(Mux(tok.kind == TokenKind.BLOCK, tok.index, rank)),
            ]
        with m.If(take):
            with m.Switch(tok.kind):
                with m.Case(TokenKind.BLOCK):
                    m.d.sync += [in_block.eq(1), open_group.eq(0), n.eq(tok.index),
                                 left.eq(tok.index)]
                with m.Case(TokenKind.END):
                    m.d.sync += in_block.eq(0)
                with m.Case(TokenKind.MEMBER):
                    m.d.sync += [open_group.eq(1), left.eq(left - 1), prev.eq(index)]
                    with m.If(tok.first):
                        m.d.sync += [domain.eq(left), earlier.eq(1)]
                    with m.Else():
                        m.d.sync += earlier.eq(earlier + 1)

    def _level(self, m, k, s, nxt, port, next_port, advance):
        """Level ``k`` of the descent: the token in ``s`` picks its child, the row is written back
        with the claim, the child's row is read; ``nxt`` is the token for level ``k + 1`` (for the
        output register at the bottom). Returns the bottom's duplicate-slot flag (else 0)."""
        P, L, digit = self._block_bits, self.levels, self._digits[k]
        layout, init = self._rows[k]
        child_bits = P - sum(self._digits[:k + 1])           # rank bits below the child digit
        fanout = 1 << digit
        rank, node = s.slot[:child_bits + digit], s.slot[child_bits + digit:]
        claim = s.valid & (s.kind == TokenKind.MEMBER)

        if k == 0:
            row_in = Signal(layout, init=init, name="top")
            row = row_in
        else:
            row = Signal(layout, name=f"row{k}")
            with m.If(s.fresh):
                m.d.comb += row.eq(layout.const(init) if k < L - 1 else 0)
            with m.Else():
                m.d.comb += row.eq(port[0].data)
        child = Signal(digit, name=f"child{k}")
        new_row = Signal(layout, name=f"new_row{k}")
        bad = C(0)
        m.d.comb += nxt.eq(s)
        if k < L - 1:
            # Inner level: below[c] (c = 1 .. fanout-1) rises with c, so `rank >= below[c]` is a
            # thermometer code and the child is the number of its ones.
            ge = Cat(rank >= row.below[c - 1] for c in range(1, fanout))
            with m.If(self.slots):
                m.d.comb += child.eq(sum(ge[c] for c in range(fanout - 1)))
            with m.Else():
                m.d.comb += child.eq(rank[child_bits:])
            base = Signal.like(row.below[0], name=f"base{k}")
            with m.Switch(child):
                for c in range(1, fanout):
                    with m.Case(c):
                        m.d.comb += base.eq(row.below[c - 1])
            m.d.comb += [
                new_row.touched.eq(row.touched | (1 << child)),
                nxt.fresh.eq(~row.touched.bit_select(child, 1)),
            ]
            for c in range(1, fanout):
                m.d.comb += new_row.below[c - 1].eq(row.below[c - 1] - (child < c))
            lower = Mux(self.slots, rank - base, rank)[:child_bits]
        else:
            # Bottom: the child is the rank-th free slot of the byte (free) or the digit (all).
            with m.If(self.slots):
                for c in range(fanout):
                    zeros_before = sum(~row[j] for j in range(c)) if c else C(0, 1)
                    with m.If(~row[c] & (zeros_before == rank)):
                        m.d.comb += child.eq(c)
            with m.Else():
                m.d.comb += child.eq(rank)
            bad = s.valid & (s.kind == TokenKind.MEMBER) & row.bit_select(child, 1)
            m.d.comb += new_row.eq(row | (1 << child))
            lower = C(0, 0)
        with m.If(s.kind == TokenKind.MEMBER):
            m.d.comb += nxt.slot.eq(Cat(lower, child, node))

        if k == 0:
            with m.If(advance & s.valid & (s.kind == TokenKind.BLOCK)):
                m.d.sync += row_in.eq(layout.const(init))
            with m.If(advance & claim):
                m.d.sync += row_in.eq(new_row)
        else:
            rp, wp = port
            m.d.comb += [
                wp.addr.eq(node),
                wp.data.eq(new_row),
                wp.en.eq(advance & claim),
                rp.en.eq(advance),
            ]
        if next_port is not None:
            m.d.comb += next_port[0].addr.eq(Cat(child, node))
        return bad
