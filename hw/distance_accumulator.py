from functools import cached_property

from amaranth.hdl import *
from amaranth.lib import data, stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from .logic import or_all
from .params import check_block_bits, check_weight_bits
from .tokens import TokenKind, member_layout, write_layout


__all__ = ["DistanceAccumulator"]


class DistanceAccumulator(wiring.Component):
    """Distance accumulator: turns each group's distances (or indices) into in-block positions.

    Software twin: ``sw_codec.distance.DistanceAccumulator``. A member's *index* into its group's
    domain is given directly (``absolute``) or as a distance from the previous member of its
    group, ``index = previous + distance + 1`` with ``previous = -1`` on ``first``. The domain is
    chosen by ``slots``:

    - ``all`` (0): every slot of the block; the position is the index.
    - ``free`` (1): the slots no *earlier group* of the block claimed, in position order; the
      position is the index-th such slot (from 0). Slots taken by earlier members of the current
      group still count as free for it: the domain only shrinks at the next ``first``.

    Both modes keep an occupancy bitmap of the block in a :class:`lib.memory.Memory` of
    ``2**block_bits / scan_bits`` words of ``scan_bits`` claim bits. Each word also carries an
    *epoch* (the block number modulo ``2**epoch_bits``); a word whose epoch is not the current
    block's reads as empty, so a new block starts with no clearing pass. To keep stale words from
    aliasing when the epoch wraps, each ``END`` zeroes one word (round robin, on the otherwise
    idle write port), and ``2**epoch_bits >= words`` guarantees every word is zeroed before its
    epoch comes round again.

    In ``all`` mode each member is a read-modify-write of its word (a transparent read port
    forwards the previous member's write), which detects two groups claiming one slot. In
    ``free`` mode a member goes through three stages (four with ``register_word``, below). Stage
    A finds its word without reading the bitmap: registers hold, for each word ``w``, the free
    slots in the words before it as the current group sees them (the slots below ``n`` that no
    earlier group claimed), and A compares the member's index with all of them at once: its word
    is the last whose count is at most the index. The member is accepted and that word is read
    (sync read port), however far from the previous member it lies. A second set of counts loses
    one above each accepted member's word and becomes the next group's at its ``first`` member.
    Each bitmap word also holds, for each of its bytes, the free slots in the bytes before it
    (written with its claims, one slot claimed = a decrement of the counts above its byte), so
    stage B counts nothing: it compares ``rank`` with them and picks the byte holding the
    ``rank``-th free slot; stage C selects the slot inside that byte (registered between them,
    so the select is two short paths), and keeps the group's claims in that word pending; when
    the group moves to another word they are written back. A slot at or past ``n`` is flagged
    when it reaches ``b`` (``o.valid`` masked), so the select never feeds a handshake. At a
    group's ``first`` member the previous group's pending claims are written back that cycle,
    once B is empty and C places that group's last member (its slot included in the write) or is
    empty; if C's member opens a new word while claims are pending (two writes), the restart
    waits one more cycle.

    Parameters
    ----------
    weight_bits : int
        Weight width ``b``: any width of the format, 2..16.
    block_bits : int
        ``P``, the largest block holds ``2**P`` weights; 4..16.
    scan_bits : int
        Bitmap word width ``W``: in ``free`` mode the slots one select examines, and the
        granularity of the free counts (a power of two, 8..1024; default 256). Capped at
        ``2**P``. Stage A keeps ``2 * 2**P / W`` counts of ``P + 1`` bits in registers and
        compares ``2**P / W`` of them with each member's index.
    register_word : bool or None
        Put a member's word, as read, in registers (stage R, which also forwards a write made
        in the cycle it takes the word), so that no select starts at the block RAM's output
        (a block RAM without output register, whose clock-to-output is a large part of the
        cycle): in ``free`` mode B's ``W / 8 - 1`` compares follow R; in ``all``
        mode a member passes A and R like a ``free`` one, and leaving R for ``b`` it claims
        its slot, its duplicate test (a ``W``-to-1 select) registered into ``b``. Two more
        cycles of latency in ``all`` mode, one in ``free`` mode and one more cycle per
        group there (a group's first member waits until R is empty too). Default: on from
        128-slot words.

    Members
    -------
    i : ``In(stream.Signature(member_layout(weight_bits, block_bits)))``
        ``BLOCK`` (``value`` implicit, ``index`` block size ``n``), ``MEMBER``s, ``END``.
    o : ``Out(stream.Signature(write_layout(weight_bits, block_bits)))``
        ``BLOCK`` and ``END`` pass through (``BLOCK``: ``position`` = ``n``); each ``MEMBER``
        becomes ``(value, position)``.
    slots : ``In(1)``
        Slot counting, 0 = ``all``, 1 = ``free``. Static: change it only between layers, with
        no token in flight.
    error : ``Out(1)``
        Sticky, cleared only by reset. Set when a member lands outside the block (``position
        >= n``, or in ``free`` mode an index past the block's free slots), when indices of a
        group do not increase, when in ``all`` mode a slot is claimed twice in a block, and on
        malformed framing (``MEMBER`` outside a block, ``BLOCK`` inside one, ``n`` not in
        ``1..2**P``). The offending token is not emitted; once ``error`` is up, ``i.ready`` and
        ``o.valid`` stay low. The error is flagged within a bounded number of cycles (see
        below), so the stage never hangs; in the cycle an ``all``-mode duplicate is found, ``i``
        may still take one token (the stages do not wait for that check).

    Attributes
    ----------
    bitmap : :class:`lib.memory.Memory`
        The occupancy bitmap, ``2**P / W`` entries of ``{claims: W, below, epoch}``, for
        inspection in simulation: ``claims`` has a bit per slot, ``below`` the free slots before
        each byte of the word after the first (``bitlen(W)`` bits each).

    Latency, throughput and backpressure
    ------------------------------------
    The epoch survives reset. A reset (or the decoder's ``clear``) between blocks costs one
    cycle; one that interrupts a block zeroes the bitmap once (``words`` cycles, ``i.ready``
    low), since that block's claims carry the current epoch. ``o`` is a register: a token
    accepted at a clock edge is on ``o`` right after it (one cycle; a ``free`` member three, as
    it passes stages B and C; with stage R an ``all`` member three, a ``free``
    member four). ``i.ready`` is high when the token at ``i`` can be placed this cycle
    and the next stage (``b``, or A for a ``free`` member and with ``register_word`` for any
    member) is empty or being emptied; ``BLOCK`` and ``END`` wait until A, R, B and C are empty. Backpressure on ``o`` stalls ``i`` without
    loss.

    - ``all``: one token per cycle, sustained.
    - ``free``: one member per cycle wherever its slot lies, and one cycle at each group's
      first member (except the first group of a block) to let the previous group's last
      member reach C (two when that member lies in another word than the group's previous
      member: only with several words; one more with stage R). A block of ``c`` members in
      ``m`` distinct values costs at most ``c + 2 * m`` cycles, ``c + 3 * m`` with stage R
      (plus ``BLOCK``, ``END``). An error is flagged at most 5 cycles after the token reaches
      ``i`` (a bad member is flagged once the members before it have left A, R, B and C).
    """

    def __init__(self, *, weight_bits, block_bits, scan_bits=256, register_word=None):
        check_weight_bits(weight_bits)
        check_block_bits(block_bits)
        if (not isinstance(scan_bits, int) or not 8 <= scan_bits <= 1024
                or scan_bits & (scan_bits - 1)):
            raise ValueError(f"scan_bits must be a power of two in 8..1024, not {scan_bits!r}")
        self._weight_bits = weight_bits
        self._block_bits = block_bits
        self._word_bits = min(scan_bits, 1 << block_bits)
        self._words = (1 << block_bits) // self._word_bits
        self._epoch_bits = self._words.bit_length()
        if register_word is None:
            register_word = self._word_bits >= 128
        self._register_word = bool(register_word)

        W, CW = self._word_bits, self._word_bits.bit_length()
        GB = min(8, W)                          # slots per byte
        NB = W // GB                            # bytes per word
        # `below`: for bytes k = 1 .. NB - 1 of the word, the free slots (zero claim bits) in
        # bytes 0 .. k - 1, CW bits each, kept beside the claims and written with them, so that
        # stage B does not count them (BW bits; one unused bit if the word is one byte). A word
        # with no claims has `all_free_below`.
        BW = max(1, (NB - 1) * CW)
        self._entry = data.StructLayout({"claims": W, "below": BW, "epoch": self._epoch_bits})
        self._all_free_below = sum((GB * k) << ((k - 1) * CW) for k in range(1, NB))

        super().__init__({
            "i":     In(stream.Signature(member_layout(weight_bits, block_bits))),
            "o":     Out(stream.Signature(write_layout(weight_bits, block_bits))),
            "slots": In(1),
            "error": Out(1),
        })

    @cached_property
    def bitmap(self):
        """The occupancy bitmap (made on first use: by ``elaborate``, or by a test inspecting it)."""
        empty = {"claims": 0, "below": self._all_free_below, "epoch": 0}
        return Memory(shape=self._entry, depth=self._words, init=[empty] * self._words)

    @property
    def weight_bits(self):
        return self._weight_bits

    @property
    def block_bits(self):
        return self._block_bits

    @property
    def scan_bits(self):
        """Effective bitmap word width, ``min(scan_bits, 2**block_bits)``."""
        return self._word_bits

    @property
    def register_word(self):
        """Whether a member's word passes a register (stage R) before anything selects from it."""
        return self._register_word

    def elaborate(self, platform):
        m = Module()

        P, W, NW, G = self._block_bits, self._word_bits, self._words, self._epoch_bits
        WB = W.bit_length() - 1                 # position = Cat(bit in word, word index)
        CW = W.bit_length()                     # width of a word's free count (0..W)

        GB = min(8, W)                          # slots per byte
        NB = W // GB                            # bytes per word
        BW = self.bitmap.shape["below"].width
        all_free_below = C(self._all_free_below, BW)
        m.submodules.bitmap = bitmap = self.bitmap
        wp = bitmap.write_port()
        rp = bitmap.read_port(transparent_for=(wp,))

        free_mode = self.slots
        tok = self.i.payload

        # Block state.
        size     = Signal(P + 1)                # n
        # The epoch and the scrub pointer survive reset (and `clear`): the bitmap words carry
        # epochs, so restarting the count would make old claims current again.
        epoch    = Signal(G, reset_less=True)
        in_block = Signal()
        open_block = Signal(reset_less=True)    # a BLOCK was taken and its END not yet
        scrub    = Signal(range(NW), reset_less=True)   # next word zeroed at END
        error    = Signal()
        # Group state.
        prev     = Signal(P + 1)                # index of the group's previous member
        # Free mode, stage A (at `i`): the search. For words w = 1 .. NW, `free_before[w]` holds
        # the free slots below `n` in words 0 .. w - 1 as the current group sees them (claims of
        # earlier groups only; `free_before[NW]`: all of the block's), and `placed_before[w]` the
        # same less every member accepted so far, kept by a decrement of the entries above a
        # member's word as A accepts it. At a group's first member `placed_before` is copied into
        # `free_before`; `fresh`: they already agree (a block's first group: no copy).
        free_before   = [None] + [Signal(P + 1, name=f"free_before{w}") for w in range(1, NW + 1)]
        placed_before = [None] + [Signal(P + 1, name=f"placed_before{w}") for w in range(1, NW + 1)]
        fresh     = Signal()
        # Free mode, stage B: a member accepted by A, as the `rank`-th free slot of word `word`
        # (read from the bitmap the cycle A accepted it).
        a_valid   = Signal()
        a_value   = Signal(self._weight_bits)
        a_word    = Signal(range(NW))
        a_rank    = Signal(range(W))
        # Stage R (with `register_word`; `all` members too): the member with its word as read,
        # in registers, so that B's compares (and the `all`-mode duplicate test) start from a
        # register instead of the block RAM's output. Without it, R is A's member and the read
        # port's output (B compares those).
        if self._register_word:
            r_valid  = Signal()
            r_value  = Signal(self._weight_bits)
            r_word   = Signal(range(NW))
            r_rank   = Signal(range(W))
            r_claims = Signal(W)
            r_below  = Signal(BW)
            r_stale  = Signal()
        else:
            r_valid, r_value, r_word, r_rank = a_valid, a_value, a_word, a_rank
        # Free mode, stage C: the member with its byte of the word found (stage B compares
        # `a_rank` with the word's `below` and picks the byte holding that free slot); C
        # selects the slot inside the byte, checks it against `n` and claims it.
        c_valid   = Signal()
        c_value   = Signal(self._weight_bits)
        c_word    = Signal(range(NW))
        c_cur     = Signal(W)                   # the word's claims as read
        c_below   = Signal(BW)                  # ... and its `below`
        c_byte    = Signal(range(max(2, W // GB)))
        c_bits    = Signal(GB)                  # the byte's free slots
        c_rank    = Signal(range(GB))
        # The current group's claims in word `pend_word`: `pend_claims` is that word as the
        # bitmap will hold it (earlier groups' claims and the group's), written back when the
        # group leaves the word (until then B and C see the group's own slots as free).
        pend_any    = Signal()
        pend_word   = Signal(range(NW))
        pend_claims = Signal(W)
        pend_below  = Signal(BW)                # `below` of `pend_claims`
        # Output register. `b_bad`: a free member placed past `n` (flagged, never emitted).
        b_valid   = Signal()
        b_bad     = Signal()
        b_dup     = Signal()                    # with stage R: an `all` member's slot was taken
        b         = Signal(write_layout(self._weight_bits, P))

        m.d.comb += self.error.eq(error)

        # After a reset that interrupted a block, zero the bitmap once (`words` cycles, input
        # blocked): that block's claims carry the current epoch, and the blocks it cut short did
        # not scrub their word. After a reset between blocks nothing needs clearing.
        clearing   = Signal(init=1)
        clear_addr = Signal(range(NW))

        # The word on the read port, as claims of this block.
        stale = Signal()                        # the word is from an earlier block: all free
        cur = Signal(W)
        m.d.comb += [
            stale.eq(rp.data.epoch != epoch),
            cur.eq(Mux(stale, 0, rp.data.claims)),
        ]
        if not self._register_word:
            r_claims, r_below, r_stale = rp.data.claims, rp.data.below, stale
        r_cur = Mux(r_stale, 0, r_claims) if self._register_word else cur

        # The member's index in its domain.
        idx = Signal(P + 2)
        with m.If(tok.absolute):
            m.d.comb += idx.eq(tok.index)
        with m.Elif(tok.first):
            m.d.comb += idx.eq(tok.index)
        with m.Else():
            m.d.comb += idx.eq(prev + 1 + tok.index)
        not_increasing = ~tok.first & (idx <= prev)

        # Stage A: the member's word is the last w whose `free_before[w]` is at most its index
        # (the counts never decrease with w, so `idx >= free_before[w]` is a thermometer code):
        # NW compares side by side, no loop over words. At a group's `first`, `placed_before`
        # counts every member accepted so far, so the search uses it while it is copied; the
        # previous group's pending claims (with its last member's slot, if that member leaves
        # C this cycle) are written back then. B must be empty: its member's slot is not known.
        restart = tok.first & ~fresh
        restart_wait = Signal()
        restart_flush = Signal()
        before_w = [C(0, P + 1)] + [Signal(P + 1, name=f"search_before{w}") for w in range(1, NW + 1)]
        for w in range(1, NW + 1):
            m.d.comb += before_w[w].eq(Mux(restart, placed_before[w], free_before[w]))
        ge = [C(1, 1)] + [Signal(name=f"search_ge{w}") for w in range(1, NW + 1)]
        for w in range(1, NW + 1):
            m.d.comb += ge[w].eq(idx >= before_w[w])
        found = ~ge[NW]                         # else the index is past the block's free slots
        sel = [Signal(name=f"search_sel{w}") for w in range(NW)]
        for w in range(NW):
            m.d.comb += sel[w].eq(ge[w] & ~ge[w + 1])
        target = Signal(range(NW))
        before = Signal(P + 1)                  # free slots in the words before the target
        m.d.comb += [
            target.eq(or_all(Mux(sel[w], w, 0) for w in range(1, NW)) if NW > 1 else 0),
            before.eq(or_all(Mux(sel[w], before_w[w], 0) for w in range(1, NW)) if NW > 1 else 0),
        ]

        # Stage B: the byte holding the `r_rank`-th free slot, from the word's stored `below`.
        # (The epoch test goes beside the compares: a stale word is all free.)
        m.submodules.byte_select = byte_select = _ByteSelect(W, GB)
        m.d.comb += [
            byte_select.bits.eq(~r_claims),
            byte_select.below.eq(r_below),
            byte_select.all_ones.eq(r_stale),
            byte_select.rank.eq(r_rank),
        ]

        def claim_one(below, byte):
            """`below` of a word after one more slot of its byte `byte` is claimed."""
            if NB == 1:
                return below
            return Cat(*((below[(k - 1) * CW:k * CW] - (byte < k))[:CW] for k in range(1, NB)))

        def claim_slot(cur_claims, below, stale, bit):
            """Claims and `below` of a word as read (`cur_claims`: a stale word already reads
            as empty) after its slot `bit` is claimed."""
            return (cur_claims | (C(1, W) << bit),
                    claim_one(Mux(stale, all_free_below, below),
                              bit[(GB - 1).bit_length():] if NB > 1 else 0))
        # Stage C: the slot inside the byte.
        m.submodules.bit_select = bit_select = _BitSelect(GB)
        m.d.comb += [bit_select.bits.eq(c_bits), bit_select.rank.eq(c_rank)]
        hit_bit = Signal(WB)
        m.d.comb += hit_bit.eq(Cat(bit_select.pos, c_byte) if W > GB else bit_select.pos)
        hit = Signal(W)
        m.d.comb += hit.eq(C(1, W) << hit_bit)
        free_pos = Signal(P + 1)
        m.d.comb += free_pos.eq(Cat(hit_bit, c_word) if NW > 1 else hit_bit)
        # At a restart the previous group's claims are written back: the pending ones, or, if
        # its last member leaves C this cycle, those with that member's slot added (C never
        # writes back in that cycle: a restart waits while C moves to a new word with claims
        # pending).
        c_same = pend_any & (pend_word == c_word)
        flush_any = Signal()
        flush_word = Signal(range(NW))
        flush_claims = Signal(W)
        flush_below = Signal(BW)
        m.d.comb += [
            flush_any.eq(c_valid | pend_any),
            flush_word.eq(Mux(c_valid, c_word, pend_word)),
            flush_claims.eq(Mux(c_valid, Mux(c_same, pend_claims, c_cur) | hit, pend_claims)),
            flush_below.eq(Mux(c_valid, claim_one(Mux(c_same, pend_below, c_below), c_byte),
                               pend_below)),
        ]

        # Output register: o.valid is masked the cycle a duplicate is found (`all` mode: the
        # read port holds the word of the member in `b`).
        b_bit = b.position[:WB]
        b_word = b.position[WB:P]
        b_member = b_valid & (b.kind == TokenKind.MEMBER)
        if self._register_word:                 # checked from R's registers, into `b_dup`
            duplicate = b_member & ~free_mode & b_dup
        else:
            duplicate = b_member & ~free_mode & cur.bit_select(b_bit, 1)
        # `b` empties when `o.ready`, whatever its checks say: a duplicate or a slot past `n`
        # sets `error`, which stops every stage from the next cycle on, so the stages need not
        # wait for the checks (the W-to-1 duplicate select stays off their enables and off the
        # bitmap write; only `o.valid` and `error` see it). A duplicate's write changes no claim;
        # its `below` is off by one, but the block is dead: a reset clears the bitmap.
        b_leaves = b_valid & ~error & self.o.ready
        b_free = ~b_valid | self.o.ready
        m.d.comb += restart_wait.eq(a_valid | r_valid | (c_valid & ~(b_free & (c_same | ~pend_any))))
        load_b = Signal()
        m.d.comb += [
            self.o.valid.eq(b_valid & ~error & ~duplicate & ~b_bad),
            self.o.payload.eq(b),
        ]
        with m.If(duplicate | (b_valid & b_bad)):
            m.d.sync += error.eq(1)

        # Stage C empties into `b` this cycle, B into C, A into R (with `register_word`; else
        # A's member is B's); A may take a member.
        c_move = Signal()
        c_free = ~c_valid | c_move
        r_move = Signal()                       # B's member moves to C
        a_move = Signal()                       # A's member moves on (to R, or to C)
        a_free = ~a_valid | a_move
        a_take = Signal()                       # A accepts a member this cycle

        # Read port: `free` reads the target word whenever A is free (if the member is not
        # accepted, nothing uses the word; so the search's checks are not on the address) and
        # re-reads the word of A's member while it waits; `all` reads a member's word as it is accepted and holds
        # it while the member waits in `b` (and reads freely while `b` is empty, so the port's
        # output register is never left undefined in a 4-state simulator).
        # With stage R an `all` member takes the same path as a `free` one as far as R (A reads
        # its word, R holds it), then goes from R to `b`.
        if self._register_word:
            m.d.comb += [
                rp.addr.eq(Mux(a_free, Mux(free_mode, target, idx[WB:P]), a_word)),
                rp.en.eq(1),
            ]
        else:
            m.d.comb += [
                rp.addr.eq(Mux(free_mode, Mux(a_free, target, a_word), idx[WB:P])),
                rp.en.eq(free_mode | ~b_valid),
            ]

        # Free slots before each word: `min(n, w * W)` at BLOCK; `placed_before` loses one above
        # the word of each member A accepts (`~ge[w]`: the word is below w); a restart copies it
        # into `free_before` (the value before the restart's own member).
        counts_init = Signal()
        copy_placed = Signal()
        for w in range(1, NW + 1):
            with m.If(counts_init):
                at_block = Mux(tok.index >= w * W, w * W, tok.index)
                m.d.sync += [free_before[w].eq(at_block), placed_before[w].eq(at_block)]
            with m.Else():
                with m.If(copy_placed):
                    m.d.sync += free_before[w].eq(placed_before[w])
                with m.If(a_take & ~ge[w]):
                    m.d.sync += placed_before[w].eq(placed_before[w] - 1)

        def write_back(word=pend_word, claims=pend_claims, below=pend_below):
            """Write `claims` and `below` to bitmap word `word` with the current epoch (default:
            the group's pending claims)."""
            m.d.comb += [
                wp.addr.eq(word),
                wp.data.claims.eq(claims),
                wp.data.below.eq(below),
                wp.data.epoch.eq(epoch),
                wp.en.eq(1),
            ]

        def emit(kind, value, position):
            m.d.comb += [self.i.ready.eq(b_free), load_b.eq(b_free)]
            with m.If(b_free):
                m.d.sync += [
                    b_bad.eq(0),
                    b_dup.eq(0),
                    b.kind.eq(kind),
                    b.value.eq(value),
                    b.position.eq(position),
                ]

        # A restart's write-back and copy (`free` mode) do not wait for the member's checks (an
        # index past the free slots then fails with the block dead anyway), so that no index
        # arithmetic is in front of the write port. A is empty here (`restart_wait`).
        restart_go = (self.i.valid & ~error & ~clearing & (tok.kind == TokenKind.MEMBER) &
                      in_block & free_mode & restart & ~restart_wait)
        with m.If(restart_go):
            m.d.comb += copy_placed.eq(1)
            with m.If(flush_any):
                write_back(flush_word, flush_claims, flush_below)
                m.d.comb += restart_flush.eq(1)

        with m.If(self.i.valid & ~error & ~clearing):
            with m.Switch(tok.kind):
                with m.Case(TokenKind.BLOCK):
                    with m.If(in_block | (tok.index == 0) | (tok.index > (1 << P))):
                        m.d.sync += error.eq(1)
                    with m.Elif(~a_valid & ~r_valid & ~c_valid):
                        emit(TokenKind.BLOCK, tok.value, tok.index)
                        with m.If(b_free):
                            m.d.comb += counts_init.eq(1)
                            m.d.sync += [
                                size.eq(tok.index),
                                epoch.eq(epoch + 1),
                                in_block.eq(1),
                                open_block.eq(1),
                                fresh.eq(1),
                                pend_any.eq(0),
                            ]
                with m.Case(TokenKind.END):
                    with m.If(~in_block):
                        m.d.sync += error.eq(1)
                    with m.Elif(~a_valid & ~r_valid & ~c_valid):
                        emit(TokenKind.END, 0, 0)
                        with m.If(b_free):
                            m.d.sync += [in_block.eq(0), open_block.eq(0)]
                with m.Case(TokenKind.MEMBER):
                    with m.If(~in_block | not_increasing | (~free_mode & (idx >= size))):
                        with m.If(~a_valid & ~r_valid & ~c_valid):  # the members before it go first
                            m.d.sync += error.eq(1)
                    with m.Elif(~free_mode):
                        if self._register_word:
                            with m.If(a_free):
                                m.d.comb += [self.i.ready.eq(1), a_take.eq(1)]
                                m.d.sync += [
                                    a_value.eq(tok.value),
                                    a_word.eq(idx[WB:P] if NW > 1 else 0),
                                    a_rank.eq(idx[:WB]),        # the slot in the word
                                    prev.eq(idx),
                                ]
                        else:
                            emit(TokenKind.MEMBER, tok.value, idx)
                            m.d.comb += rp.en.eq(b_free)
                            with m.If(b_free):
                                m.d.sync += prev.eq(idx)
                    with m.Elif(restart & restart_wait):
                        pass                    # the previous group's members are in B or C
                    with m.Else():
                        with m.If(~found):
                            with m.If(~a_valid & ~r_valid & ~c_valid):  # the members before it go first
                                m.d.sync += error.eq(1)
                        with m.Elif(a_free):
                            m.d.comb += [self.i.ready.eq(1), a_take.eq(1)]
                            m.d.sync += [
                                a_value.eq(tok.value),
                                a_word.eq(target),
                                a_rank.eq(idx - before),
                                fresh.eq(0),
                                prev.eq(idx),
                            ]
                with m.Default():
                    m.d.sync += error.eq(1)

        # Stage C: place the member in its word, move it to `b` (a slot past `n` is flagged
        # there, so the select is not on the handshake).
        with m.If(c_valid & ~error & b_free):
            m.d.comb += [c_move.eq(1), load_b.eq(1)]
            m.d.sync += [
                b.kind.eq(TokenKind.MEMBER),
                b.value.eq(c_value),
                b.position.eq(free_pos),
                b_bad.eq(free_pos >= size),
                b_dup.eq(0),
            ]
            with m.If(c_same):
                m.d.sync += [
                    pend_claims.eq(pend_claims | hit),
                    pend_below.eq(claim_one(pend_below, c_byte)),
                ]
            with m.Else():
                with m.If(pend_any):
                    write_back()
                m.d.sync += [
                    pend_any.eq(1),
                    pend_word.eq(c_word),
                    pend_claims.eq(c_cur | hit),
                    pend_below.eq(claim_one(c_below, c_byte)),
                ]
        with m.If(restart_flush):
            m.d.sync += pend_any.eq(0)      # written back by the restart (C's slot included)

        # Stage R: the word as read, into registers. The read port forwards only a write of the
        # cycle it reads in; the one write that can reach R's word later, in the cycle R takes
        # it, is an `all` member's leaving R for `b` (below), forwarded here. Otherwise no write
        # reaches R's word while its member waits: in `free` mode a group's members lie in
        # non-decreasing words, so C's write-back (of an earlier word of the group) never does,
        # and a restart waits until R is empty.
        if self._register_word:
            r_free = ~r_valid | r_move
            r_bit = r_rank[:WB]
            r_all_write = Signal()              # an `all` member leaves R, claiming its slot
            r_new_claims = Signal(W)
            r_new_below = Signal(BW)
            new_claims, new_below = claim_slot(r_cur, r_below, r_stale, r_bit)
            m.d.comb += [r_new_claims.eq(new_claims), r_new_below.eq(new_below)]
            forward = r_all_write & (r_word == a_word)
            with m.If(a_valid & ~error & r_free):
                m.d.comb += a_move.eq(1)
                m.d.sync += [
                    r_value.eq(a_value),
                    r_word.eq(a_word),
                    r_rank.eq(a_rank),
                    r_claims.eq(Mux(forward, r_new_claims, rp.data.claims)),
                    r_below.eq(Mux(forward, r_new_below, rp.data.below)),
                    r_stale.eq(~forward & stale),
                ]
            with m.If(a_move):
                m.d.sync += r_valid.eq(1)
            with m.Elif(r_move):
                m.d.sync += r_valid.eq(0)

            # `all` mode: from R to `b`, claiming the slot as it goes (a duplicate's write
            # changes no claim; its `below` is off by one, but the block is dead, see `b`).
            with m.If(r_valid & ~error & ~free_mode & b_free):
                m.d.comb += [r_move.eq(1), load_b.eq(1), r_all_write.eq(1)]
                m.d.sync += [
                    b.kind.eq(TokenKind.MEMBER),
                    b.value.eq(r_value),
                    b.position.eq(Cat(r_bit, r_word) if NW > 1 else r_bit),
                    b_bad.eq(0),
                    b_dup.eq(r_cur.bit_select(r_bit, 1)),
                ]
                write_back(r_word, r_new_claims, r_new_below)
        else:
            m.d.comb += a_move.eq(r_move)

        # Stage B: the byte of the member's slot, to C.
        with m.If(r_valid & ~error & free_mode & c_free):
            m.d.comb += r_move.eq(1)
            m.d.sync += [
                c_value.eq(r_value),
                c_word.eq(r_word),
                c_cur.eq(r_cur),
                c_below.eq(Mux(r_stale, all_free_below, r_below)),
                c_byte.eq(byte_select.byte),
                c_bits.eq(byte_select.byte_bits),
                c_rank.eq(byte_select.byte_rank),
            ]

        with m.If(a_take):
            m.d.sync += a_valid.eq(1)
        with m.Elif(a_move):
            m.d.sync += a_valid.eq(0)

        with m.If(r_move & free_mode):          # (an `all` member goes from R to `b`)
            m.d.sync += c_valid.eq(1)
        with m.Elif(c_move):
            m.d.sync += c_valid.eq(0)

        with m.If(load_b):
            m.d.sync += b_valid.eq(1)
        with m.Elif(self.o.ready):
            m.d.sync += b_valid.eq(0)

        with m.If(clearing & ~open_block):
            m.d.sync += clearing.eq(0)
        with m.Elif(clearing):
            m.d.comb += [
                wp.addr.eq(clear_addr),
                wp.data.claims.eq(0),
                wp.data.below.eq(all_free_below),
                wp.data.epoch.eq(0),
                wp.en.eq(1),
            ]
            m.d.sync += clear_addr.eq(clear_addr + 1)
            with m.If(clear_addr == NW - 1):
                m.d.sync += [clearing.eq(0), open_block.eq(0)]

        # Writes from the output register: an `all` member claims its slot; END zeroes one word.
        # (With stage R an `all` member claims its slot as it leaves R, above.)
        if not self._register_word:
            with m.If(b_leaves & (b.kind == TokenKind.MEMBER) & ~free_mode):
                write_back(b_word, *claim_slot(cur, rp.data.below, stale, b_bit))
        with m.If(b_leaves & (b.kind == TokenKind.END)):
            write_back(scrub, 0, all_free_below)
            m.d.sync += scrub.eq(scrub + 1)

        return m



class _ByteSelect(Elaboratable):
    """First half of the select: ``bits`` in groups ("bytes") of ``group`` bits, with ``below``
    the number of ones in the groups before group ``k``, for ``k = 1 .. width / group - 1``
    (``bitlen(width)`` bits each; given, not counted here: the caller keeps them beside the
    bits). ``byte`` is the group holding the ``rank``-th one (from 0), ``byte_bits`` its bits
    and ``byte_rank`` the rank inside it (meaningful if ``rank`` < the number of ones).
    ``all_ones`` reads ``bits`` as all ones (and ``below`` accordingly); it is applied beside
    the compares with ``rank``, not in front of them."""

    def __init__(self, width, group):
        self.width = width
        self.group = group
        self.bits      = Signal(width)
        self.below     = Signal(max(1, (width // group - 1) * width.bit_length()))
        self.all_ones  = Signal()
        self.rank      = Signal(range(width))
        self.byte      = Signal(range(max(2, width // group)))
        self.byte_bits = Signal(group)
        self.byte_rank = Signal(range(group))

    def elaborate(self, platform):
        m = Module()
        W, G = self.width, self.group
        K = W // G
        CW = W.bit_length()
        read = [self.bits[k * G:(k + 1) * G] for k in range(K)]
        groups = [Mux(self.all_ones, C(2 ** G - 1, G), read[k]) for k in range(K)]
        # Ones below group k: stored, or k * G if all ones.
        below = [C(0, CW)] + [Mux(self.all_ones, G * k, self.below[(k - 1) * CW:k * CW])
                              for k in range(1, K)]
        # rank >= below[k] is a thermometer code; the group is its last one.
        ge = [C(1, 1)] + [Mux(self.all_ones, self.rank >= G * k,
                              self.rank >= self.below[(k - 1) * CW:k * CW]) for k in range(1, K)] \
            + [C(0, 1)]
        sel = [Signal(name=f"sel{k}") for k in range(K)]
        for k in range(K):
            m.d.comb += sel[k].eq(ge[k] & ~ge[k + 1])
        rank_bits = max(1, (G - 1).bit_length())
        m.d.comb += [
            self.byte.eq(or_all(Mux(sel[k], k, 0) for k in range(K))),
            self.byte_bits.eq(or_all(Mux(sel[k], groups[k], 0) for k in range(K))),
            self.byte_rank.eq(or_all(Mux(sel[k], (self.rank - below[k])[:rank_bits], 0)
                                     for k in range(K))),
        ]
        return m


class _BitSelect(Elaboratable):
    """Second half of the select: ``pos`` is the position of the ``rank``-th one of ``bits``."""

    def __init__(self, width):
        self.width = width
        self.bits  = Signal(width)
        self.rank  = Signal(range(width))
        self.pos   = Signal(range(width))

    def elaborate(self, platform):
        m = Module()
        G = self.width
        hits = [self.bits[j] & (sum(self.bits[:j], C(0, 1)) == self.rank) for j in range(G)]
        m.d.comb += self.pos.eq(or_all(Mux(hits[j], j, 0) for j in range(1, G)))
        return m
