from amaranth.hdl import *
from amaranth.lib import data, stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from sw_codec.format import MEMBER_STREAMS, MEMBER_WORD_BITS, SYMBOL_BITS, V2_MAX_CODE_LENGTH

from .huffman_table_builder import (L1_BITS, MAX_SUBTABLES, HuffmanTableBuilder, check_table_params,
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

    0. **pull**: if the stream holds fewer bits than its table's longest code, append a word;
       the table id and the next 8 bits of the stream address the first-level table
       (block RAM, ``HuffmanTableBuilder``).
    1. **code**: the entry gives the symbol and code length; a code longer than 8 bits reads the
       second-level table (block RAM) in a one-cycle bubble. Drop the code; if fewer bits than
       the extra bits are left, append a word.
    2. **extras**: take the extra bits.
    3. **distance**: form ``(symbol << rice_k) | extra`` (or the extra field after the escape).

    Words are used in the order the reference decoder pulls them: in one cycle stage 1's extra
    pull (field ``t``) takes the first word of the queue and stage 0's symbol pull (field
    ``t + 1``) the next. No comparator banks and no speculation: a pull depends only on its own
    stream, and the code's length is read from the table.

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
        Table descriptions for the ``HuffmanTableBuilder``; load while no field is in flight.
    o : ``Out(stream.Signature(distance_layout(max_extra_bits)))``
        One distance per field, ``last`` on the block's last.
    error : ``Out(1)``
        Sticky: no code matches the stream (an incomplete table), a section with words left after
        its block's last field, non-zero bits left in a stream after the block's last field, or
        a bad table description. From the cycle after, every ``ready`` and ``o.valid`` are low
        (the fields of up to three earlier fields still in the ring are dropped). A block's
        leftover bits are checked as each stream comes round after the block's last field entered,
        at the latest in the cycle its last distance is on ``o``.

    Latency and throughput
    ----------------------
    A field's distance is on ``o`` four cycles after the field is taken. The ring takes one
    field per cycle while ``fields`` and ``words`` are valid and ``o`` is ready, less one cycle
    per code longer than 8 bits, and two per block (after its last field, until its ``end`` item
    is taken). A field enters only in the cycle its stream's stage is first, so a cycle without
    a field costs four. The ring advances as a whole: it stalls when ``o`` holds a distance not
    taken, or when the word queue holds fewer words than the two pulls of a cycle may need.
    """

    def __init__(self, *, num_tables=4, max_code_len=V2_MAX_CODE_LENGTH, max_extra_bits=16):
        check_table_params(num_tables, max_code_len)
        check_int_range("max_extra_bits", max_extra_bits, 1, MEMBER_WORD_BITS)
        self._num_tables = num_tables
        self._max_code_len = max_code_len
        self._max_extra_bits = max_extra_bits
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
        L2 = L - L1_BITS                      # window bits past the first level's
        count = range(B + 1)

        # --- Tables: the builder writes both levels and each table's longest code length. ---
        m.submodules.builder = builder = HuffmanTableBuilder(num_tables=T, max_code_len=L)
        wiring.connect(m, wiring.flipped(self.tables), builder.load)
        m.submodules.l1 = l1 = Memory(shape=l1_entry_layout(), depth=T << L1_BITS, init=[])
        m.submodules.l2 = l2 = Memory(shape=l2_entry_layout(L), depth=(T * MAX_SUBTABLES) << L2, init=[])
        l1_wp, l1_rp = l1.write_port(), l1.read_port()
        l2_wp, l2_rp = l2.write_port(), l2.read_port()
        m.d.comb += [
            l1_wp.addr.eq(builder.l1_addr), l1_wp.data.eq(builder.l1_data), l1_wp.en.eq(builder.l1_en),
            l2_wp.addr.eq(builder.l2_addr), l2_wp.data.eq(builder.l2_data), l2_wp.en.eq(builder.l2_en),
        ]
        need = [Signal(range(L + 1), name=f"need_{t}") for t in range(T)]
        with m.If(builder.need_en):
            with m.Switch(builder.need_table):
                for t in range(T):
                    with m.Case(t):
                        m.d.sync += need[t].eq(builder.need_value)

        error = Signal()
        advance = Signal()                    # the whole ring moves one stage
        m.d.comb += self.error.eq(error)

        # --- The word queue: a shift register; q[0] is the next word. ---
        q = [Signal(section_word_layout(), name=f"q{i}") for i in range(D)]
        level = Signal(range(D + 1))
        pops = Signal(range(3))
        push = self.words.valid & self.words.ready
        m.d.comb += self.words.ready.eq((level < D) & ~error)
        after = level - pops
        for i in range(D):
            with m.If(i < after):
                with m.Switch(pops):
                    for p in range(3):
                        with m.Case(p):
                            if i + p < D:
                                m.d.sync += q[i].eq(q[i + p])
            with m.Else():
                m.d.sync += q[i].eq(self.words.payload)
        m.d.sync += level.eq(after + push)
        # The first two words (zero at and past the section's end); words on hand for pulls.
        at_end0 = q[0].end
        at_end1 = q[0].end | q[1].end
        w0 = Mux(at_end0, 0, q[0].data)
        w1 = Mux(at_end1, 0, q[1].data)
        have = Mux(level == 0, 0, Mux(at_end0 | (level >= 2), 2, 1))

        # --- Ring registers: the state arriving at each stage. ---
        def state(name, **extra):
            return Signal(data.StructLayout({"valid": 1, "buf": B, "cnt": count, **extra}), name=name)
        r0 = state("r0")
        r1 = state("r1", table=range(T), rice_k=range(P + 1), escape_bits=range(P + 1), last=1,
                   low=L2, dk=signed(7), de=signed(7))
        r2 = state("r2", symbol=SYMBOL_BITS, escape=1, rice_k=range(P + 1), extra_bits=range(P + 1), last=1)
        r3 = state("r3", symbol=SYMBOL_BITS, escape=1, rice_k=range(P + 1), extra=P, last=1)

        # Block boundaries: after a block's last field enters, no field enters until the section's
        # `end` item is taken (stage 2 of the last field); the next four streams to reach stage 0
        # are checked for leftover bits and emptied. A block's first field may use any stream.
        draining = Signal()
        check_left = Signal(range(MEMBER_STREAMS + 1))
        block_start = Signal(init=1)
        rot = Signal(range(MEMBER_STREAMS))           # which stream is at stage 0
        next_stream = Signal(range(MEMBER_STREAMS))   # the stream of the next field

        # ---- Stage 0: symbol pull, first-level address. ----
        ctx = self.fields.payload
        checking = check_left != 0
        cnt0 = Mux(checking, 0, r0.cnt)
        buf0 = r0.buf
        leftover = Signal()
        m.d.comb += leftover.eq(checking & ((r0.buf & ((C(1, B + 1) << r0.cnt) - 1)[:B]) != 0))
        enter = self.fields.valid & ~draining & ~error & (block_start | (rot == next_stream))
        need0 = _pick(m, need, ctx.table, "need0")
        pull_a = Signal()
        m.d.comb += pull_a.eq(enter & (cnt0 < need0))
        pull_x = Signal()                              # stage 1's extra pull (the older field)
        # The window's first L bits after the pull, zero past the stream's bits: the stream's own
        # bits, OR the pulled word shifted by cnt0. Both candidate words are shifted ahead, so
        # that stage 1's pull decision only selects.
        keep = (Cat(C(0, L), buf0) >> cnt0)[:L]
        sh0 = (w0[WB - L:] >> cnt0)[:L]
        sh1 = (w1[WB - L:] >> cnt0)[:L]
        window = Signal(L)
        m.d.comb += window.eq(keep | Mux(pull_a, Mux(pull_x, sh1, sh0), 0))
        word_a = Mux(pull_x, w1, w0)
        buf1 = Mux(pull_a, Cat(word_a, buf0[:B - WB]), buf0)
        cnt1 = Signal(count)
        m.d.comb += cnt1.eq(cnt0 + Mux(pull_a, WB, 0))
        m.d.comb += [l1_rp.addr.eq(Cat(window[L2:], ctx.table)), l1_rp.en.eq(advance)]
        m.d.comb += self.fields.ready.eq(enter & advance)
        with m.If(advance):
            m.d.sync += [
                r1.valid.eq(enter), r1.buf.eq(buf1), r1.cnt.eq(cnt1),
                r1.table.eq(ctx.table), r1.rice_k.eq(ctx.rice_k), r1.escape_bits.eq(ctx.escape_bits),
                r1.last.eq(ctx.last), r1.low.eq(window[:L2]),
                r1.dk.eq(cnt1 - ctx.rice_k), r1.de.eq(cnt1 - ctx.escape_bits),
                rot.eq(rot + 1),
            ]
            with m.If(enter):
                m.d.sync += [next_stream.eq(rot + 1), block_start.eq(0)]
                with m.If(ctx.last):
                    m.d.sync += [draining.eq(1), check_left.eq(MEMBER_STREAMS)]
            with m.If(checking & ~(enter & ctx.last)):
                m.d.sync += check_left.eq(check_left - 1)

        # ---- Stage 1: the code from the table (second level in a bubble), the extra pull. ----
        e1, e2 = l1_rp.data, l2_rp.data
        l2_done = Signal()                             # e2 holds r1's second-level entry
        long_wait = r1.valid & e1.long & ~l2_done
        symbol = Mux(l2_done, e2.symbol, e1.symbol)
        escape = Mux(l2_done, e2.escape, e1.escape)
        length = Signal(range(L + 1))
        m.d.comb += length.eq(Mux(r1.valid, Mux(l2_done, e2.length + L1_BITS, e1.length), 0))
        no_code = r1.valid & Mux(l2_done, e2.length == 0, ~e1.long & (e1.length == 0))
        m.d.comb += pull_x.eq(r1.valid & ~long_wait & ~no_code & (length > Mux(escape, r1.de, r1.dk)))
        extra_bits = Mux(r1.valid, Mux(escape, r1.escape_bits, r1.rice_k), 0)
        cnt_code = Signal(count)
        m.d.comb += cnt_code.eq(r1.cnt - length)
        buf2 = Mux(pull_x, Cat(w0, r1.buf[:B - WB]), r1.buf)
        m.d.comb += [l2_rp.addr.eq(Cat(r1.low, e1.symbol, r1.table)), l2_rp.en.eq(~l2_done)]
        with m.If(long_wait & ~error):
            m.d.sync += l2_done.eq(1)
        with m.If(advance):
            m.d.sync += [
                l2_done.eq(0),
                r2.valid.eq(r1.valid), r2.buf.eq(buf2), r2.cnt.eq(cnt_code + Mux(pull_x, WB, 0)),
                r2.symbol.eq(symbol), r2.escape.eq(escape), r2.rice_k.eq(r1.rice_k),
                r2.extra_bits.eq(extra_bits), r2.last.eq(r1.last),
            ]

        # ---- Stage 2: the extra bits. The block's `end` item leaves the queue here. ----
        at = Signal(count)                             # the stream's bits after the extras
        m.d.comb += at.eq(r2.cnt - r2.extra_bits)
        extra = (r2.buf >> at)[:P] & Cat(*(r2.extra_bits > i for i in range(P)))
        block_end = r2.valid & r2.last
        words_left = block_end & (level != 0) & ~at_end0
        with m.If(advance):
            m.d.sync += [
                r3.valid.eq(r2.valid), r3.buf.eq(r2.buf), r3.cnt.eq(at), r3.symbol.eq(r2.symbol),
                r3.escape.eq(r2.escape), r3.rice_k.eq(r2.rice_k), r3.extra.eq(extra), r3.last.eq(r2.last),
            ]
            with m.If(block_end):
                m.d.sync += [draining.eq(0), block_start.eq(1)]

        # ---- Stage 3: the distance; the stream goes back to stage 0. ----
        o_valid = Signal()
        o_payload = Signal(distance_layout(P))
        m.d.comb += [self.o.valid.eq(o_valid & ~error), self.o.payload.eq(o_payload)]
        with m.If(self.o.ready):
            m.d.sync += o_valid.eq(0)
        with m.If(advance):
            m.d.sync += [r0.buf.eq(r3.buf), r0.cnt.eq(r3.cnt)]
            with m.If(r3.valid):
                m.d.sync += [
                    o_valid.eq(1),
                    o_payload.distance.eq(Mux(r3.escape, r3.extra, (r3.symbol << r3.rice_k) | r3.extra)),
                    o_payload.last.eq(r3.last),
                ]

        # ---- Ring control. ----
        needed = pull_a + r1.valid                     # words this cycle's pulls may take
        m.d.comb += advance.eq(~error & ~long_wait & (have >= needed) & ~(block_end & (level == 0))
                               & (~r3.valid | ~o_valid | self.o.ready))
        with m.If(advance & block_end):
            m.d.comb += pops.eq(1)                     # the `end` item (no pulls in this cycle)
        with m.Elif(advance & ~at_end0):
            m.d.comb += pops.eq(Mux(pull_a & pull_x & q[1].end, 1, pull_a + pull_x))
        with m.If(no_code | leftover | words_left | builder.error):
            m.d.sync += error.eq(1)
        return m
