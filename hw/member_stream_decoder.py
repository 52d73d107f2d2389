from amaranth.hdl import *
from amaranth.lib import data, stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from sw_codec.format import MEMBER_STREAMS, MEMBER_WORD_BITS, SYMBOL_BITS, V2_MAX_CODE_LENGTH

from .huffman_table_builder import (L1_BITS, L2_INDEX_BITS, HuffmanTableBuilder, check_table_params,
                                    l1_entry_layout, l2_entry_layout, table_load_layout)
from .params import check_int_range


__all__ = ["MemberStreamDecoder", "section_word_layout", "field_layout", "distance_layout"]

#: A stream's bit buffer: after a pull it holds fewer than ``need + 16`` or ``extra + 16`` bits.
BUFFER_BITS = 2 * MEMBER_WORD_BITS - 1
#: Depth of the word queue in front of the ring (two words may be pulled in one cycle).
WORD_QUEUE_DEPTH = 4


def section_word_layout() -> data.StructLayout:
    """The member section's words: ``data`` (the first stream bit in bit 15) or, with ``end``,
    the end of the block's section (``data`` ignored)."""
    return data.StructLayout({"data": MEMBER_WORD_BITS, "end": 1})


def field_layout(num_tables: int, max_extra_bits: int) -> data.StructLayout:
    """The context of one member field: its ``table``, the Rice shift ``rice_k`` (the extra bits
    of a symbol below the escape), ``escape_bits`` (those of the escape symbol, ``bitlen(D - 1)``)
    and ``last`` on the block's last field."""
    return data.StructLayout({"table": range(num_tables), "rice_k": range(max_extra_bits + 1),
                              "escape_bits": range(max_extra_bits + 1), "last": 1})


def distance_layout(max_extra_bits: int) -> data.StructLayout:
    """One decoded field: ``distance`` = ``(symbol << rice_k) | extra``, or ``extra`` after the
    escape symbol; ``last`` on the block's last field."""
    return data.StructLayout({"distance": SYMBOL_BITS + max_extra_bits, "last": 1})


def _pick(m, values, index, name):
    """``values[index]`` as a comb signal (a case statement, not an ``Array`` read)."""
    out = Signal.like(values[0], name=name)
    with m.Switch(index):
        for i, v in enumerate(values):
            with m.Case(i):
                m.d.comb += out.eq(v)
    return out


class MemberStreamDecoder(wiring.Component):
    """The member-stream decoder of block format 2: a ring of four pipeline stages.

    Software twin: ``sw_codec.member_streams.decode_member_streams`` with canonical-code
    lookups. A block's member fields are dealt round-robin into ``MEMBER_STREAMS`` (4) bit
    streams; each stream's state (a bit buffer of at most 31 bits and its count) sits in one
    stage and moves to the next stage every cycle, so the stream of field ``t`` is back at the
    first stage when field ``t + 4`` enters. The stages of a field:

    0. **lookup**: pull a word if the stream holds fewer bits than its table's longest code, and
       look the window (its first 11 bits) up in the tables in block RAM: the first level by
       ``(table, first 8 bits)``, the second level by ``(table, last 8 bits)``
       (``HuffmanTableBuilder``). In the word order, the pull of field ``t`` follows the extra
       pull of field ``t - 2``, decided in the same cycle at stage 2, so the pulled word is the
       queue's first or second: the window is formed with both (from registers) and that
       decision only selects the address. One lookup per field, one copy of the tables.
    1. **entries**: register the entries (a block RAM's output goes straight into flip-flops).
    2. **code**: the entry gives the symbol and length (the second level's for a long code); drop
       the code; if fewer bits than the extra bits are left, pull the queue's first word (the
       extra pull of field ``t`` comes after the symbol pull of field ``t + 1``, the format's
       order, which is why it is decided only here).
    3. **extras**: take the extra bits; the stream goes back to stage 0.

    and after the ring, ``(symbol << rice_k) | extra`` (or the extra field after the escape).

    Words are used in the order the reference decoder pulls them: in one cycle stage 2's extra
    pull (field ``t - 2``) takes the first word of the queue and stage 0's symbol pull (field
    ``t``) the next. No comparator banks and no speculation on codes: a pull depends only on its
    own stream and the one decision of the field two ahead, and the code's length is read from
    the table. Because of that order, a block's fields enter back to back: while the field that
    entered last is not its block's last, the ring waits (does not advance) until the next field
    is offered.

    Parameters
    ----------
    num_tables : int
        Tables held: 1, 2 or 4.
    max_code_len : int
        Longest code, 9..11 (``V2_MAX_CODE_LENGTH``).
    max_extra_bits : int
        Longest extra field (Rice shift or escape width), 1..16: the block bits ``P``.

    Members
    -------
    words : ``In(stream.Signature(section_word_layout()))``
        Each block's member section: its words in order, then one ``end`` item. The decoder pulls
        zero words past the section's last word on its own (the format's rule), so the source
        needs to know nothing but the section's size. A block without fields has no section
        and no ``end`` item.
    fields : ``In(stream.Signature(field_layout(num_tables, max_extra_bits)))``
        One context per member field, in block order; ``last`` on each block's last field.
    tables : ``In(stream.Signature(table_load_layout(num_tables)))``
        Table descriptions for the ``HuffmanTableBuilder``; load while no field is in flight (no
        field enters while the builder writes entries).
    o : ``Out(stream.Signature(distance_layout(max_extra_bits)))``
        One distance per field, ``last`` on the block's last.
    error : ``Out(1)``
        Sticky: no code matches the stream (an incomplete table), a section with words left after
        its block's last field, non-zero bits left in a stream after the block's last field, or
        a bad table description. From the cycle after, every ``ready`` (``tables`` too) and
        ``o.valid`` are low (the distances of up to four earlier fields still in the pipeline
        are dropped, and ``o.valid`` may fall before its distance was taken). Words left are
        flagged once the block's last field is at stage 3, whether or not its ``end`` item has
        come. A block's leftover bits are checked as each stream comes round to stage 0 after the
        block's last field entered: at the latest one cycle after its last distance is on ``o``.

    Attributes
    ----------
    in_flight : ``Signal(range(7))``
        Fields taken from ``fields`` whose distance has not left ``o``: those in stages 1 to 4,
        the output register and the skid register (read by the formal proofs).

    Latency and throughput
    ----------------------
    A field's distance is on ``o`` five cycles after the field is taken, plus the cycles the ring
    stalls meanwhile (below). The ring takes one field per cycle while ``fields`` and ``words`` are valid and ``o`` is ready, less three
    cycles per block (after its last field, until its ``end`` item is taken); codes of any
    length cost the same. The ring advances as a whole: it stalls while the skid register behind
    ``o`` holds a distance (``o`` was not taken when a new one came), while a block's next field
    is not offered (after a field that is not its block's last), or when the word queue
    (``WORD_QUEUE_DEPTH`` words) holds fewer words than the pulls of a cycle may need (one for a
    field at stage 2, one more whenever a field is offered), until the section's ``end`` item is
    in it. A block's first field may enter in any cycle.
    """

    def __init__(self, *, num_tables=4, max_code_len=V2_MAX_CODE_LENGTH, max_extra_bits=16):
        check_table_params(num_tables, max_code_len)
        check_int_range("max_extra_bits", max_extra_bits, 1, MEMBER_WORD_BITS)
        self._num_tables = num_tables
        self._max_code_len = max_code_len
        self._max_extra_bits = max_extra_bits
        self.in_flight = Signal(range(7), name="in_flight")
        super().__init__({
            "words":  In(stream.Signature(section_word_layout())),
            "fields": In(stream.Signature(field_layout(num_tables, max_extra_bits))),
            "tables": In(stream.Signature(table_load_layout(num_tables))),
            "o":      Out(stream.Signature(distance_layout(max_extra_bits))),
            "error":  Out(1),
        })

    @property
    def num_tables(self):
        return self._num_tables

    @property
    def max_code_len(self):
        return self._max_code_len

    @property
    def max_extra_bits(self):
        return self._max_extra_bits

    def elaborate(self, platform):
        m = Module()
        T, L, P = self._num_tables, self._max_code_len, self._max_extra_bits
        WB, B, D = MEMBER_WORD_BITS, BUFFER_BITS, WORD_QUEUE_DEPTH
        SUB = L - L1_BITS                      # window bits below the first level's
        count = range(B + 1)

        # --- Tables: the builder writes both levels and each table's longest code length. ---
        m.submodules.builder = builder = HuffmanTableBuilder(num_tables=T, max_code_len=L)
        error = Signal()
        m.d.comb += self.error.eq(error)
        # No table item is taken once the error is up (like every input; what the builder then
        # does with the item offered no longer matters).
        m.d.comb += [builder.load.valid.eq(self.tables.valid),
                     builder.load.payload.eq(self.tables.payload),
                     self.tables.ready.eq(builder.load.ready & ~error)]
        advance = Signal()                     # the whole ring moves one stage
        # The builder's writes, a cycle later: while one is pending the read ports take its address
        # (a write and a read at one address share one block RAM port, so no collision logic
        # between two ports), selected by a register.
        wr = Signal(data.StructLayout({
            "l1_addr": len(builder.l1_addr), "l1_data": l1_entry_layout(), "l1_en": 1,
            "l2_addr": len(builder.l2_addr), "l2_data": l2_entry_layout(L), "l2_en": 1}), name="wr")
        m.d.sync += [wr.l1_addr.eq(builder.l1_addr), wr.l1_data.eq(builder.l1_data), wr.l1_en.eq(builder.l1_en),
                     wr.l2_addr.eq(builder.l2_addr), wr.l2_data.eq(builder.l2_data), wr.l2_en.eq(builder.l2_en)]
        writing = wr.l1_en | wr.l2_en
        m.submodules.l1 = l1 = Memory(shape=l1_entry_layout(), depth=T << L1_BITS, init=[])
        m.submodules.l2 = l2 = Memory(shape=l2_entry_layout(L), depth=T << L2_INDEX_BITS, init=[])
        l1_wp, l2_wp = l1.write_port(), l2.write_port()
        l1_rp, l2_rp = l1.read_port(), l2.read_port()
        m.d.comb += [
            l1_rp.addr.eq(l1_wp.addr), l2_rp.addr.eq(l2_wp.addr),
            l1_wp.data.eq(wr.l1_data), l1_wp.en.eq(wr.l1_en),
            l2_wp.data.eq(wr.l2_data), l2_wp.en.eq(wr.l2_en),
            l1_rp.en.eq(advance), l2_rp.en.eq(advance),
        ]
        need = [Signal(range(L + 1), name=f"need_{t}") for t in range(T)]
        with m.If(builder.need_en):
            with m.Switch(builder.need_table):
                for t in range(T):
                    with m.Case(t):
                        m.d.sync += need[t].eq(builder.need_value)

        pull_x = Signal()                      # stage 2's extra pull (see the ring's stages)

        # --- The word queue: a shift register, q[0] the next word, zero past the last word. The
        # section's `end` item enters as a zero word and stops the queue (`ended`) until it leaves
        # at the block's end: pulls past the section's words read zeros and leave it there. ---
        q = [Signal(MEMBER_WORD_BITS, name=f"q{i}") for i in range(D)]
        level = Signal(range(D + 1))
        ended = Signal()
        # Words the pulls of this cycle take, with and without stage 2's extra pull (`pull_x`,
        # decided late: it only selects between the two next states).
        pops_x, pops_no_x = Signal(range(3)), Signal(range(3))
        push = self.words.valid & self.words.ready
        m.d.comb += self.words.ready.eq((level < D) & ~ended & ~error)
        # Each entry's next value for each number of pops, from registers; the late pull decisions
        # only select among them.
        taken = push & ~self.words.payload.end
        for i in range(D):
            nexts = []
            for p in range(3):
                nxt = Signal(MEMBER_WORD_BITS, name=f"q{i}_pop{p}")
                m.d.comb += nxt.eq(Mux(i + p < level, q[i + p] if i + p < D else 0,
                                       Mux((level - p == i) & taken, self.words.payload.data, 0)))
                nexts.append(nxt)
            by_x = []
            for x, pops in ((0, pops_no_x), (1, pops_x)):
                nxt = Signal(MEMBER_WORD_BITS, name=f"q{i}_next_x{x}", attrs={"keep": 1})
                m.d.comb += nxt.eq(Mux(pops == 2, nexts[2], Mux(pops == 1, nexts[1], nexts[0])))
                by_x.append(nxt)
            m.d.sync += q[i].eq(Mux(pull_x, by_x[1], by_x[0]))
        with m.If(push & self.words.payload.end):
            m.d.sync += ended.eq(1)
        m.d.sync += level.eq(Mux(pull_x, level - pops_x, level - pops_no_x) + taken)

        # --- Ring registers: what arrives at each stage. ---
        def state(name, **fields):
            return Signal(data.StructLayout({"valid": 1, "buf": B, "cnt": count, **fields}), name=name)
        ctx_fields = {"rice_k": range(P + 1), "escape_bits": range(P + 1), "last": 1}
        r0 = state("r0", cnt_w=count, keep=L, short=T)
        r1 = state("r1", dk=signed(7), de=signed(7), **ctx_fields)
        r2 = state("r2", tk=L + 1, te=L + 1, l1=l1_entry_layout(), l2=l2_entry_layout(L), **ctx_fields)
        r3 = state("r3", symbol=SYMBOL_BITS, escape=1, extra_bits=range(P + 1), **ctx_fields)
        r4 = Signal(data.StructLayout({"valid": 1, "symbol": SYMBOL_BITS, "escape": 1, "extra": P,
                                       **ctx_fields}), name="r4")

        # Block boundaries: after a block's last field enters, no field enters until the section's
        # `end` item leaves the queue (when that field is at stage 3); the next four streams to
        # reach stage 0 are checked for leftover bits and emptied. A block's first field may use
        # any stream; the next ones follow round the ring.
        draining = Signal()
        check_left = Signal(range(MEMBER_STREAMS + 1))
        block_start = Signal(init=1)
        rot = Signal(range(MEMBER_STREAMS))           # which stream is at stage 0
        next_stream = Signal(range(MEMBER_STREAMS))   # the stream of the next field

        # Stage 2 decides the extra pull of field t - 2 from registered table entries; it comes
        # before the symbol pull of field t at stage 0 in the word order, so that decision
        # (`pull_x`, declared with the queue) picks the word of stage 0's pull (q[0] or q[1]) in
        # the same cycle.

        # ---- Stage 0: the symbol pull and the table lookup. ----
        # The pulled word is q[pull_x]; the window with each candidate word is formed from
        # registers, and pull_x only selects the address (one lookup, one copy of the tables).
        ctx = self.fields.payload
        checking = Signal()                            # check_left != 0, as a register
        # r0.cnt_w, r0.keep, r0.short: the stream's count, first bits and pull test per table, as
        # stage 3 left them, or those of an empty stream when it is checked (`checking_next`).
        cnt0 = r0.cnt_w
        checking_next = Signal()                       # checking's next value (when advancing)
        leftover = Signal()
        m.d.comb += leftover.eq(checking & (r0.buf & Cat(*(r0.cnt > i for i in range(B)))).any())
        enter = self.fields.valid & ~draining & ~error & ~writing & (block_start | (rot == next_stream))
        # r0.short: per table, the stream holds fewer bits than its longest code (from stage 3);
        # an emptied stream holds fewer than any table's but an empty one's.
        short = r0.short
        # The window assumes the offered field enters (if it does not, stage 1 holds no field and
        # its entries go unused), which keeps the enter conditions off the address path.
        would_pull = _pick(m, list(short), ctx.table, "short0")
        pull_a = Signal()
        m.d.comb += pull_a.eq(enter & would_pull)
        cnt1 = Signal(count)
        m.d.comb += cnt1.eq(cnt0 + Mux(pull_a, WB, 0))
        # The window's first L bits after the pull, zero past the stream's bits: the stream's own
        # bits (from stage 3), OR the pulled word's first bits shifted by cnt0.
        keep = r0.keep
        windows = []
        for x in range(2):
            # (kept as wires, so that the pull decision only selects between them)
            win = Signal(L, name=f"window_x{x}", attrs={"keep": 1})
            # (a pull leaves fewer than L <= 11 bits in the stream: cnt0's low 4 bits shift)
            m.d.comb += win.eq(keep | Mux(would_pull, (q[x][WB - L:] >> cnt0[:4])[:L], 0))
            windows.append(win)
        # Each memory's address: the builder's while it writes, else the window; both choices
        # made before the late pull decision selects.
        for addr, wr_addr, part in ((l1_wp.addr, wr.l1_addr, slice(SUB, L)),
                                    (l2_wp.addr, wr.l2_addr, slice(0, L2_INDEX_BITS))):
            choices = []
            for x in range(2):
                choice = Signal.like(addr, name=f"addr_x{x}", attrs={"keep": 1})
                m.d.comb += choice.eq(Mux(writing, wr_addr, Cat(windows[x][part], ctx.table)))
                choices.append(choice)
            m.d.comb += addr.eq(Mux(pull_x, choices[1], choices[0]))
        m.d.comb += self.fields.ready.eq(enter & advance)
        m.d.comb += checking_next.eq((enter & ctx.last) | (checking & (check_left != 1)))
        word0 = Mux(pull_x, q[1], q[0])
        with m.If(advance):
            m.d.sync += [
                r1.valid.eq(enter), r1.buf.eq(Mux(pull_a, Cat(word0, r0.buf[:B - WB]), r0.buf)),
                r1.cnt.eq(cnt1),
                r1.rice_k.eq(ctx.rice_k), r1.escape_bits.eq(ctx.escape_bits), r1.last.eq(ctx.last),
                r1.dk.eq(cnt1 - ctx.rice_k), r1.de.eq(cnt1 - ctx.escape_bits),
                rot.eq(rot + 1),
            ]
            with m.If(enter):
                m.d.sync += [next_stream.eq(rot + 1), block_start.eq(0)]
                with m.If(ctx.last):
                    m.d.sync += [draining.eq(1), check_left.eq(MEMBER_STREAMS), checking.eq(1)]
            with m.If(checking & ~(enter & ctx.last)):
                m.d.sync += [check_left.eq(check_left - 1), checking.eq(check_left != 1)]

        # ---- Stage 1: the table entries registered (a block RAM's output feeds only flip-flops);
        # the extra-pull thresholds. ----
        with m.If(advance):
            m.d.sync += [
                r2.valid.eq(r1.valid), r2.buf.eq(r1.buf), r2.cnt.eq(r1.cnt),
                # bit l: a code of l bits leaves fewer bits than the extra bits (k or escape)
                r2.tk.eq(Cat(*(r1.dk < l for l in range(L + 1)))),
                r2.te.eq(Cat(*(r1.de < l for l in range(L + 1)))),
                r2.rice_k.eq(r1.rice_k), r2.escape_bits.eq(r1.escape_bits), r2.last.eq(r1.last),
                r2.l1.eq(l1_rp.data), r2.l2.eq(l2_rp.data),
            ]

        # ---- Stage 2: the code; drop it; the extra pull (the queue's first word). ----
        e1, e2 = r2.l1, r2.l2
        length = Signal(range(L + 1))
        symbol, escape = Signal(SYMBOL_BITS), Signal()
        pull_bit = Mux(e1.long, Mux(e2.escape, r2.te, r2.tk)[L1_BITS:].bit_select(e2.length, 1),
                       Mux(e1.escape, r2.te, r2.tk)[:L1_BITS + 1].bit_select(e1.length, 1))
        m.d.comb += [length.eq(Mux(r2.valid, Mux(e1.long, e2.length + L1_BITS, e1.length), 0)),
                     symbol.eq(Mux(e1.long, e2.symbol, e1.symbol)),
                     escape.eq(Mux(e1.long, e2.escape, e1.escape))]
        no_code = r2.valid & (length == 0)
        m.d.comb += pull_x.eq(r2.valid & pull_bit & (length != 0))
        cnt_code = Signal(count)
        m.d.comb += cnt_code.eq(r2.cnt - length)
        with m.If(advance):
            m.d.sync += [
                r3.valid.eq(r2.valid), r3.buf.eq(Mux(pull_x, Cat(q[0], r2.buf[:B - WB]), r2.buf)),
                r3.cnt.eq(cnt_code + Mux(pull_x, WB, 0)), r3.symbol.eq(symbol), r3.escape.eq(escape),
                r3.extra_bits.eq(Mux(r2.valid, Mux(escape, r2.escape_bits, r2.rice_k), 0)),
                r3.rice_k.eq(r2.rice_k), r3.escape_bits.eq(r2.escape_bits), r3.last.eq(r2.last),
            ]

        # ---- Stage 3: the extra bits; the stream goes back to stage 0. The block's `end` item
        # leaves the queue here. ----
        at = Signal(count)                             # the stream's bits after the extras
        m.d.comb += at.eq(r3.cnt - r3.extra_bits)
        # One shifter gives the extra bits and the stream's next L bits (zero past its bits): the
        # window of its next field, if that field pulls no word.
        shifted = (Cat(C(0, L), r3.buf) >> at)[:L + P]
        extra = shifted[L:] & Cat(*(r3.extra_bits > i for i in range(P)))
        block_end = r3.valid & r3.last
        # Every word of the block has been pulled: a word in the queue is one too many (checked
        # whether or not the `end` item has come, which a full queue would keep out).
        words_left = block_end & (level != 0)
        with m.If(advance):
            m.d.sync += [
                r0.buf.eq(r3.buf), r0.cnt.eq(at), r0.cnt_w.eq(Mux(checking_next, 0, at)),
                r0.keep.eq(Mux(checking_next, 0, shifted[:L])),
                r0.short.eq(Mux(checking_next, Cat(*(n != 0 for n in need)), Cat(*(at < n for n in need)))),
                r4.valid.eq(r3.valid), r4.symbol.eq(r3.symbol), r4.escape.eq(r3.escape), r4.extra.eq(extra),
                r4.rice_k.eq(r3.rice_k), r4.last.eq(r3.last),
            ]
            with m.If(block_end):
                m.d.sync += [draining.eq(0), block_start.eq(1), ended.eq(0)]

        # ---- Stage 4 (out of the ring): the distance, into `o` or, when `o` is not taken, into a
        # skid register; the ring stalls while the skid register is full. ----
        o_valid, skid_valid = Signal(), Signal()
        o_payload, skid = Signal(distance_layout(P)), Signal(distance_layout(P))
        distance = Signal(distance_layout(P))
        m.d.comb += [
            distance.distance.eq(Mux(r4.escape, r4.extra, (r4.symbol << r4.rice_k) | r4.extra)),
            distance.last.eq(r4.last),
            self.o.valid.eq(o_valid & ~error), self.o.payload.eq(o_payload),
        ]
        new = advance & r4.valid
        m.d.comb += self.in_flight.eq(r1.valid + r2.valid + r3.valid + r4.valid + o_valid + skid_valid)
        with m.If(~o_valid | self.o.ready):
            m.d.sync += [o_valid.eq(skid_valid | new), o_payload.eq(Mux(skid_valid, skid, distance)),
                         skid_valid.eq(skid_valid & new), skid.eq(distance)]
        with m.Elif(new):
            m.d.sync += [skid_valid.eq(1), skid.eq(distance)]

        # ---- Ring control: move when every word the pulls of a cycle may take is in the queue
        # (counting a pull at stage 0 whenever a field is offered and one at stage 2 whenever it
        # holds a field, so that the table lookup's compare stays off this path). ----
        needed = Signal(range(3))
        m.d.comb += needed.eq(r2.valid + self.fields.valid)
        words_ok = ended | (level >= needed)
        # A block's next field must enter in the cycle after the field before it: the extra pull
        # of field t (stage 2) comes after the symbol pull of field t + 1 in the word order, so
        # the ring waits at stage 1 for the next field (or the block's last field).
        waiting = r1.valid & ~r1.last & ~self.fields.valid
        m.d.comb += advance.eq(~error & words_ok & ~(block_end & ~ended) & ~skid_valid & ~waiting)
        real = Signal(range(3))                         # words pulls may take (not zeros)
        m.d.comb += real.eq(Mux(level >= 2, 2, level))
        with m.If(advance & ~block_end):
            m.d.comb += [pops_x.eq(Mux(pull_a + 1 > real, real, pull_a + 1)),
                         pops_no_x.eq(Mux(pull_a > real, real, pull_a))]
        with m.If(no_code | leftover | words_left | builder.error):
            m.d.sync += error.eq(1)
        return m
