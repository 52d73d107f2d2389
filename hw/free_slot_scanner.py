from amaranth.hdl import *
from amaranth.hdl import signed
from amaranth.lib import data, stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from .logic import or_all
from .params import check_block_bits, check_int_range, check_weight_bits
from .tokens import TokenKind, member_layout, write_layout


__all__ = ["FreeSlotScanner", "tree_digits"]

def tree_digits(block_bits, inner_bits=1, bottom_bits=2):
    """Bits of the child index at each level of the tree, top first: the bottom level takes
    ``bottom_bits`` (its rows are the claim bits of ``2**bottom_bits`` slots), the levels above
    it ``inner_bits`` each, the top the remainder. (The twin, ``sw_codec.free_slots``, builds
    the same tree.)"""
    above = block_bits - bottom_bits
    inner = [inner_bits] * (above // inner_bits)
    if above % inner_bits:
        inner.insert(0, above % inner_bits)
    return inner + [bottom_bits]


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
    the leaves of a tree (:func:`tree_digits`: by default binary levels over bottom rows of the
    claim bits of 4 slots). Each level is one pipeline stage. An inner node's row holds
    ``below[c]``, the free slots in its children ``0..c-1`` (``c >= 1``), and a ``touched`` bit
    per child; the top row is in registers, every other level's rows in a :class:`Memory`. A
    stage subtracts each ``below`` from the rank (the sign picks the child, the difference is the
    rank in it), writes the row back with the claim counted (``below`` above the child less one,
    the child touched), and reads the child's row, which enters a register as the token moves on
    (so no logic follows a block RAM's output); the row written at that edge by the token ahead is
    forwarded, and the read port is transparent for the one written at the read. With ``all``
    counting, and for ``BLOCK`` and ``END`` (whose ``n`` rides in the slot field), the child is
    the digit; the bottom checks that an ``all`` slot is free.

    A block starts with no clearing pass: a child its parent has not ``touched`` in this block
    reads as all free, whatever its row holds, so ``BLOCK`` resets only the top row (as it passes
    the top stage, in order with the members).

    Parameters
    ----------
    weight_bits : int
        Weight width ``b``, 2..16.
    block_bits : int
        ``P``, the largest block holds ``2**P`` weights; 4..16.
    inner_bits : int
        A node above the bottom has ``2**inner_bits`` children (1..3; the top takes the
        remainder). Default 1: one compare per level.
    bottom_bits : int
        A bottom row holds the claim bits of ``2**bottom_bits`` slots (1..3). Default 2.

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
    (no restart cycles). A token taken in cycle ``t`` is on ``o`` in cycle ``t + latency``
    (``latency = 2 * levels``: the top stage's register, two per level below it, the output
    register). ``o`` is a register; the pipeline advances in every cycle where ``o`` is empty or
    taken (``i.ready`` is that, no error, and a token that passes the input checks), so
    backpressure on ``o`` stalls ``i`` without loss. A bad token at ``i`` is flagged in the
    cycle it is offered (``error`` is up in the next); for a duplicate ``all`` slot taken in
    cycle ``t``, ``error`` is up in cycle ``t + latency`` (without stalls), in place of its write.

    Attributes
    ----------
    n_block : ``Signal(block_bits + 1)``
        The size of the block whose tokens leave through ``o`` (read by the formal proofs).
    """

    def __init__(self, *, weight_bits, block_bits, inner_bits=1, bottom_bits=2):
        check_weight_bits(weight_bits)
        check_block_bits(block_bits)
        check_int_range("inner_bits", inner_bits, 1, 3)
        check_int_range("bottom_bits", bottom_bits, 1, 3)
        self._weight_bits = weight_bits
        self._block_bits = block_bits
        self._digits = tree_digits(block_bits, inner_bits, bottom_bits)
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
        self.n_block = Signal(block_bits + 1, name="n_block")
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
        """Cycles from a token taken at ``i`` to that token on ``o`` (the registers it passes)."""
        return 2 * self.levels

    def _stage_layout(self):
        # `slot`: for a MEMBER at level k, Cat(rank within its node, node); for a BLOCK, Cat(slot,
        # hi) is n; `fresh`: the node's row is all free (its parent had not touched it).
        return data.StructLayout({"valid": 1, "kind": TokenKind, "value": signed(self._weight_bits),
                                  "slot": self._block_bits, "hi": 1, "fresh": 1})

    def _node(self, k, slot):
        """The row index at level ``k`` of a member's ``slot`` field."""
        return slot[self._block_bits - sum(self._digits[:k]):]

    def elaborate(self, platform):
        m = Module()
        P, L = self._block_bits, self.levels
        layout = self._stage_layout()
        refused = Signal()                                  # a bad token at `i`
        dropping = Signal()                                 # a bad slot at the bottom
        error = refused | dropping
        advance = Signal()
        out = Signal(layout, name="out")                    # the output register
        m.d.comb += [
            advance.eq(~out.valid | self.o.ready),
            self.error.eq(error),
            self.o.valid.eq(out.valid),
            self.o.payload.kind.eq(out.kind),
            self.o.payload.value.eq(out.value),
            self.o.payload.position.eq(Cat(out.slot, out.hi)),
        ]
        c = Signal(layout, name="c0")                       # the token at the top level
        self._input_stage(m, c, advance, error, refused)
        top_layout, top_init = self._rows[0]
        row = Signal(top_layout, init=top_init, name="top")
        new_row = Signal(top_layout, name="new_row0")
        for k in range(L):
            # Level k: the token in `c`, with its node's row in `row`, takes its child.
            nxt = Signal(layout, name=f"to{k + 1}" if k + 1 < L else "bottom")
            claim, bad = self._level(m, k, c, row, new_row, nxt)
            if k == 0:
                with m.If(advance & c.valid & (c.kind == TokenKind.BLOCK)):
                    m.d.sync += row.eq(top_layout.const(top_init))
                with m.If(advance & claim):
                    m.d.sync += row.eq(new_row)
            else:
                m.d.comb += [wp.addr.eq(self._node(k, c.slot)), wp.data.eq(new_row),
                             wp.en.eq(advance & claim)]
            if k + 1 == L:
                break
            # Level k + 1: its row is read as the token enters `b`, and registered in `row` as the
            # token moves on to `c` (so the block RAM's clock-to-output ends at a register). A
            # write to that row at that edge (by the token ahead) is forwarded; a row the parent
            # had not touched is all free.
            row_layout, row_init = self._rows[k + 1]
            mem = Memory(shape=row_layout, depth=1 << sum(self._digits[:k + 1]), init=[])
            m.submodules[f"level{k + 1}"] = mem
            wp = mem.write_port()
            rp = mem.read_port(transparent_for=(wp,))
            b = Signal(layout, name=f"b{k + 1}")
            c_next = Signal(layout, name=f"c{k + 1}")
            read = Signal(row_layout, name=f"read{k + 1}")          # the row as read
            ahead = Signal(row_layout, name=f"ahead{k + 1}")        # the write it missed
            hit = Signal(name=f"hit{k + 1}")
            row_next = Signal(row_layout, name=f"row{k + 1}")
            new_row = Signal(row_layout, name=f"new_row{k + 1}")
            m.d.comb += [rp.addr.eq(self._node(k + 1, nxt.slot)), rp.en.eq(advance)]
            with m.If(advance):
                m.d.sync += [b.eq(nxt), c_next.eq(b), read.eq(rp.data), ahead.eq(new_row),
                             hit.eq(wp.en & (wp.addr == self._node(k + 1, b.slot)))]
            with m.If(c_next.fresh):
                m.d.comb += row_next.eq(row_layout.const(row_init) if k + 2 < L else 0)
            with m.Elif(hit):
                m.d.comb += row_next.eq(ahead)
            with m.Else():
                m.d.comb += row_next.eq(read)
            c, row = c_next, row_next
        # The output register takes the bottom's token unless it is bad or a bad slot was found
        # before (`dropping`); tokens taken before a bad one at `i` still come out.
        n_block = self.n_block
        # position >= n, split so that only a short compare follows the slot's select
        bottom = self._digits[-1]
        node, child = Cat(c.slot[bottom:], c.hi), nxt.slot[:bottom]
        node_n, child_n = n_block[bottom:], n_block[:bottom]
        outside = (nxt.kind == TokenKind.MEMBER) & (
            (node > node_n) | ((node == node_n) & (child >= child_n)))
        with m.If(advance):
            m.d.sync += out.eq(nxt)
            with m.If(dropping | bad | outside):
                m.d.sync += out.valid.eq(0)
            with m.If(nxt.valid & (bad | outside)):
                m.d.sync += dropping.eq(1)
            with m.If(nxt.valid & (nxt.kind == TokenKind.BLOCK) & ~dropping):
                m.d.sync += n_block.eq(Cat(nxt.slot, nxt.hi))
        return m

    def _input_stage(self, m, s0, advance, error, refused):
        """Checks at ``i``, the member's rank, the block and group counters; fills ``s0``.

        Every check compares ``i.index`` with a register (no adder before a compare): a group's
        next distance must be below ``slack``, the indices its domain has left after the
        previous member."""
        P = self._block_bits
        tok, free = self.i.payload, self.slots
        in_block = Signal()
        open_group = Signal()                       # a member of this block opened a group
        n = Signal(P + 1)
        left = Signal(P + 1)                        # free slots of the block now
        limit = Signal(P + 1)                       # the group's domain size (free: at its start)
        prev = Signal(P + 1)                        # the group's previous index
        slack = Signal(P + 1)                       # limit - prev - 1
        earlier = Signal(P + 1)                     # the group's members so far
        rank_prev = Signal(P + 1)                   # the previous member's rank (free counting)

        d = tok.index
        first_limit = Mux(free, left, n)
        index = Mux(tok.absolute | tok.first, d, prev + 1 + d)
        rank = Signal(P + 1)
        with m.If(~free | tok.first):
            m.d.comb += rank.eq(index)
        with m.Elif(tok.absolute):
            m.d.comb += rank.eq(d - earlier)
        with m.Else():
            m.d.comb += rank.eq(rank_prev + d)
        outside = Mux(tok.first, d >= first_limit,
                      Mux(tok.absolute, (d >= limit) | (d <= prev), d >= slack))
        bad = Signal()
        with m.Switch(tok.kind):
            with m.Case(TokenKind.BLOCK):
                m.d.comb += bad.eq(in_block | (d == 0) | (d > (1 << P)))
            with m.Case(TokenKind.END):
                m.d.comb += bad.eq(~in_block)
            with m.Case(TokenKind.MEMBER):
                m.d.comb += bad.eq(~in_block | (~open_group & ~tok.first) | outside)
            with m.Default():
                m.d.comb += bad.eq(1)
        m.d.comb += self.i.ready.eq(advance & ~error & ~bad)
        take = self.i.valid & self.i.ready
        with m.If(self.i.valid & bad):
            m.d.sync += refused.eq(1)
        # The counters follow every token offered while the unit can take one, bad or not (a bad
        # one stops the input for good), so the checks do not drive their enables.
        offered = self.i.valid & advance & ~error

        with m.If(advance):
            m.d.sync += [
                s0.valid.eq(take),
                s0.kind.eq(tok.kind),
                s0.value.eq(tok.value),
                s0.fresh.eq(0),
                Cat(s0.slot, s0.hi).eq(Mux(tok.kind == TokenKind.BLOCK, d, rank)),
            ]
        with m.If(offered):
            with m.Switch(tok.kind):
                with m.Case(TokenKind.BLOCK):
                    m.d.sync += [in_block.eq(1), open_group.eq(0), n.eq(d), left.eq(d)]
                with m.Case(TokenKind.END):
                    m.d.sync += in_block.eq(0)
                with m.Case(TokenKind.MEMBER):
                    m.d.sync += [open_group.eq(1), left.eq(left - 1), prev.eq(index),
                                 rank_prev.eq(rank)]
                    # slack - d - 1 and limit - d - 1 are each one adder: x + ~d.
                    with m.If(tok.first):
                        m.d.sync += [limit.eq(first_limit), earlier.eq(1),
                                     slack.eq(first_limit + ~d)]
                    with m.Else():
                        m.d.sync += [earlier.eq(earlier + 1),
                                     slack.eq(Mux(tok.absolute, limit, slack) + ~d)]

    def _level(self, m, k, s, row, new_row, nxt):
        """Level ``k`` of the descent: the token in ``s``, its node's row in ``row``, picks its
        child; ``new_row`` is the row with the claim counted, ``nxt`` the token for level
        ``k + 1`` (the output register's at the bottom). Returns ``(claim, bad)``: the row is to
        be written; the bottom's slot was taken already (``all`` counting)."""
        P, L, digit = self._block_bits, self.levels, self._digits[k]
        layout, init = self._rows[k]
        child_bits = P - sum(self._digits[:k + 1])           # rank bits below the child digit
        fanout = 1 << digit
        rank, node = s.slot[:child_bits + digit], s.slot[child_bits + digit:]
        claim = s.valid & (s.kind == TokenKind.MEMBER)
        # A member under `free` counting searches; a member under `all` counting, and `BLOCK`
        # and `END` (whose `slot` field carries n), take the digit: their field passes unchanged.
        search = self.slots & (s.kind == TokenKind.MEMBER)
        child = Signal(digit, name=f"child{k}")
        bad = C(0)
        m.d.comb += nxt.eq(s)
        if k < L - 1:
            # Inner level: below[c] (c = 1 .. fanout-1) rises with c, so `rank >= below[c]` is a
            # thermometer code; the child is its last one.
            # One subtractor per boundary gives both the compare (its sign) and the rank in the
            # child; the counts' decrements run beside them, so a level is one carry chain and
            # a multiplexer.
            ge = Signal(fanout, name=f"ge{k}")
            diff = [None] + [Signal(signed(child_bits + digit + 1), name=f"diff{k}_{c}")
                             for c in range(1, fanout)]
            m.d.comb += ge[0].eq(1)
            for c in range(1, fanout):
                m.d.comb += [
                    diff[c].eq(rank - row.below[c - 1]),
                    ge[c].eq(Mux(search, diff[c] >= 0, rank[child_bits:] >= c)),
                    new_row.below[c - 1].eq(Mux(ge[c], row.below[c - 1], row.below[c - 1] - 1)),
                ]
            last = [ge[c] & (~ge[c + 1] if c + 1 < fanout else 1) for c in range(fanout)]
            # The rank in the child: less the free slots before it (searching); the digit's
            # removal is the truncation to `child_bits`.
            lower = Signal(child_bits, name=f"lower{k}")
            with m.If(search & (child != 0)):
                m.d.comb += lower.eq(or_all(Mux(last[c], diff[c], 0) for c in range(1, fanout)))
            with m.Else():
                m.d.comb += lower.eq(rank)
            m.d.comb += [
                child.eq(sum(ge[c] for c in range(1, fanout))),
                new_row.touched.eq(row.touched | Cat(last)),
                nxt.fresh.eq(~(row.touched & Cat(last)).any()),
            ]
        else:
            # Bottom: the child is the rank-th free slot of the row (searching) or the digit.
            with m.If(search):
                for c in range(fanout):
                    zeros_before = sum(~row[j] for j in range(c)) if c else C(0, 1)
                    with m.If(~row[c] & (zeros_before == rank)):
                        m.d.comb += child.eq(c)
            with m.Else():
                m.d.comb += child.eq(rank)
            bad = claim & row.bit_select(child, 1)
            m.d.comb += new_row.eq(row | (1 << child))
            lower = C(0, 0)
        m.d.comb += nxt.slot.eq(Cat(lower, child, node))
        return claim, bad
