from amaranth.hdl import *
from amaranth.lib import data, enum, stream, wiring
from amaranth.lib.wiring import In, Out

from sw_codec.format import COUNT_BITS, NUM_TABLES_CHOICES, SYMBOL_BITS, V2_MAX_CODE_LENGTH


__all__ = ["TableItem", "table_load_layout", "l1_entry_layout", "l2_entry_layout", "L1_BITS", "L2_INDEX_BITS",
           "HuffmanTableBuilder", "check_table_params"]

#: Window bits that address a table's first level (each table has ``2**L1_BITS`` entries).
L1_BITS = 8
#: Window bits (its last ones) that address a table's second level. A code longer than
#: ``L1_BITS`` covers at most ``2**(max_code_len - L1_BITS - 1)`` window values and a table has at
#: most ``MAX_SYMBOLS`` codes, and canonical codes put the long ones last: the window values of a
#: complete table's long codes are the last ``<= 2**L2_INDEX_BITS`` of the code space, told apart
#: by their last ``L2_INDEX_BITS`` bits. The second level is then read at the same time as the
#: first, without waiting for it.
L2_INDEX_BITS = 8


class TableItem(enum.Enum, shape=2):
    """Kinds of the items of the table-load stream (``table_load_layout``)."""

    BEGIN  = 0   #: start table ``table``: ``value`` is its alphabet size - 1
    COUNT  = 1   #: the number of codes of the next length (1, 2, ... in order)
    SYMBOL = 2   #: the next symbol in canonical order (by length, then list order)
    END    = 3   #: the table is complete: fill the entries no code reached as invalid


def table_load_layout(num_tables: int) -> data.StructLayout:
    """One item of a table description: ``kind`` (:class:`TableItem`), ``table``, ``value``."""
    return data.StructLayout({"kind": TableItem, "table": range(num_tables), "value": COUNT_BITS})


def l1_entry_layout() -> data.StructLayout:
    """A first-level entry, addressed by ``(table, first L1_BITS window bits)``: a code of
    ``length`` bits (1..L1_BITS; 0: no code) for ``symbol``, ``escape`` when the symbol is the
    table's last (``num_symbols - 1``); or ``long``: the code is longer (see the second level)."""
    return data.StructLayout({"length": range(L1_BITS + 1), "symbol": SYMBOL_BITS, "escape": 1, "long": 1})


def l2_entry_layout(max_code_len: int) -> data.StructLayout:
    """A second-level entry, addressed by ``(table, last L2_INDEX_BITS window bits)``: the code's
    ``length`` minus ``L1_BITS`` (0: no code), ``symbol``, ``escape``."""
    return data.StructLayout({"length": range(max_code_len - L1_BITS + 1), "symbol": SYMBOL_BITS, "escape": 1})


def check_table_params(num_tables, max_code_len) -> None:
    """``ValueError`` naming the parameter unless the tables fit these units."""
    if num_tables not in NUM_TABLES_CHOICES[:3]:
        raise ValueError(f"num_tables must be one of {NUM_TABLES_CHOICES[:3]}, not {num_tables!r}")
    if not isinstance(max_code_len, int) or not L1_BITS < max_code_len <= V2_MAX_CODE_LENGTH:
        raise ValueError(f"max_code_len must be an integer in {L1_BITS + 1}..{V2_MAX_CODE_LENGTH}, "
                         f"not {max_code_len!r}")


class HuffmanTableBuilder(wiring.Component):
    """Builds the two-level lookup tables of canonical Huffman codes from their description.

    Software twin: the canonical codes of ``sw_codec.huffman.HuffmanTable.codes()``. A table is
    loaded as ``BEGIN`` (alphabet size - 1), one ``COUNT`` per code length ``1 .. max_length``,
    the symbols in canonical order, ``END``: the fields of a stored table. Codes are assigned as
    puff.c does (consecutive within a length, in list order). Each code, left-aligned to a window
    of ``W = max_code_len`` bits, covers a run of window values ``v``; the builder writes the runs
    in order, one entry per cycle to each level:

    - a code of ``l <= L1_BITS`` bits fills first-level entries ``v >> (W - L1_BITS)``
      (``2**(L1_BITS - l)`` of them);
    - a longer code marks its prefix's first-level entry ``long`` and fills second-level entries
      ``v mod 2**L2_INDEX_BITS`` (``2**(W - l)`` of them).

    ``END`` checks that the code fills the code space (or is one code of one bit, or none: the
    format's rule), marks every first-level entry past the last code as no code (so the unused
    half of a one-bit code decodes as an error) and writes the table's longest code length (its
    number of counts) to ``need``.

    Parameters
    ----------
    num_tables : int
        1, 2 or 4 tables.
    max_code_len : int
        Longest code, ``L1_BITS + 1 .. V2_MAX_CODE_LENGTH`` (9..11).

    Members
    -------
    load : ``In(stream.Signature(table_load_layout(num_tables)))``
        Table items. ``ready`` is low while runs are written (up to ``2**(L1_BITS - 1)`` cycles for
        a one-bit code) and for one cycle per code length a symbol skips; a table of ``n`` codes
        loads in at most ``2 * 2**L1_BITS + n + max_code_len + 3`` cycles.
    l1_addr, l1_data, l1_en : ``Out``
        First-level write port: address ``table * 2**L1_BITS + index``, ``l1_entry_layout()``.
    l2_addr, l2_data, l2_en : ``Out``
        Second-level write port: address ``table * 2**L2_INDEX_BITS + index``,
        ``l2_entry_layout(max_code_len)``.
    need_table, need_value, need_en : ``Out``
        At ``END``: table ``need_table``'s longest code length is ``need_value``.
    busy : ``Out(1)``
        Entries are being written (``l1_en | l2_en``).
    error : ``Out(1)``
        Sticky: a count past ``max_code_len``, more symbols than counted codes, an
        over-subscribed code (its runs would pass the table's end; they are not written) or an
        incomplete one.
    """

    def __init__(self, *, num_tables=4, max_code_len=V2_MAX_CODE_LENGTH):
        check_table_params(num_tables, max_code_len)
        self._num_tables = num_tables
        self._max_code_len = max_code_len
        super().__init__({
            "load":       In(stream.Signature(table_load_layout(num_tables))),
            "l1_addr":    Out(range(num_tables << L1_BITS)),
            "l1_data":    Out(l1_entry_layout()),
            "l1_en":      Out(1),
            "l2_addr":    Out(range(num_tables << L2_INDEX_BITS)),
            "l2_data":    Out(l2_entry_layout(max_code_len)),
            "l2_en":      Out(1),
            "need_table": Out(range(num_tables)),
            "need_value": Out(range(max_code_len + 1)),
            "need_en":    Out(1),
            "busy":       Out(1),
            "error":      Out(1),
        })

    @property
    def num_tables(self):
        return self._num_tables

    @property
    def max_code_len(self):
        return self._max_code_len

    def elaborate(self, platform):
        m = Module()
        L = W = self._max_code_len
        SUB = W - L1_BITS                             # window bits below the first level's

        table     = Signal(range(self._num_tables))
        last_sym  = Signal(SYMBOL_BITS)               # num_symbols - 1: the escape symbol
        nlen      = Signal(range(L + 1))              # counts loaded (the longest length)
        counts    = [Signal(COUNT_BITS, name=f"count_{l + 1}") for l in range(L)]
        cur_len   = Signal(range(L + 1))              # length of the codes being assigned
        remaining = Signal(COUNT_BITS)                # codes of cur_len still to come
        pos       = Signal(W + 1)                     # next code, left-aligned to W bits
        error     = Signal()

        # The run writers: one entry per cycle into each level, from `ptr` up to `stop`.
        l1_ptr, l1_stop = Signal(L1_BITS + 1), Signal(L1_BITS + 1)
        l1_entry = Signal(l1_entry_layout())
        l2_ptr, l2_stop = Signal(L2_INDEX_BITS), Signal(L2_INDEX_BITS)
        l2_entry = Signal(l2_entry_layout(L))
        l1_busy, l2_busy = l1_ptr != l1_stop, l2_ptr != l2_stop
        m.d.comb += [
            self.error.eq(error),
            self.l1_addr.eq(Cat(l1_ptr[:L1_BITS], table)),
            self.l1_data.eq(l1_entry),
            self.l1_en.eq(l1_busy),
            self.l2_addr.eq(Cat(l2_ptr, table)),
            self.l2_data.eq(l2_entry),
            self.l2_en.eq(l2_busy),
            self.busy.eq(l1_busy | l2_busy),
        ]
        with m.If(l1_busy):
            m.d.sync += l1_ptr.eq(l1_ptr + 1)
        with m.If(l2_busy):
            m.d.sync += l2_ptr.eq(l2_ptr + 1)

        item = self.load.payload
        idle = ~l1_busy & ~l2_busy
        # A symbol when the current length has no codes left: step to the next length first.
        next_count = Signal(COUNT_BITS)
        with m.Switch(cur_len):
            for l in range(L):
                with m.Case(l):
                    m.d.comb += next_count.eq(counts[l])
        skip = self.load.valid & (item.kind == TableItem.SYMBOL) & (remaining == 0) & (cur_len < nlen)
        with m.If(idle & skip):
            m.d.sync += [cur_len.eq(cur_len + 1), remaining.eq(next_count)]
        m.d.comb += self.load.ready.eq(idle & ~skip)

        span = Signal(W + 1)                          # window values a code of cur_len bits covers
        with m.Switch(cur_len):
            for l in range(1, L + 1):
                with m.Case(l):
                    m.d.comb += span.eq(1 << (W - l))
        end = Signal(W + 2)
        m.d.comb += end.eq(pos + span)
        with m.If(self.load.valid & self.load.ready):
            with m.Switch(item.kind):
                with m.Case(TableItem.BEGIN):
                    m.d.sync += [table.eq(item.table), last_sym.eq(item.value), nlen.eq(0), cur_len.eq(0),
                                 remaining.eq(0), pos.eq(0)]
                with m.Case(TableItem.COUNT):
                    with m.If(nlen == L):
                        m.d.sync += error.eq(1)
                    with m.Else():
                        with m.Switch(nlen):
                            for l in range(L):
                                with m.Case(l):
                                    m.d.sync += counts[l].eq(item.value)
                        m.d.sync += nlen.eq(nlen + 1)
                with m.Case(TableItem.SYMBOL):
                    symbol = item.value[:SYMBOL_BITS]
                    escape = symbol == last_sym
                    with m.If((remaining == 0) | (end > (1 << W))):
                        m.d.sync += error.eq(1)       # more symbols than codes, or over-subscribed
                    with m.Else():
                        m.d.sync += [pos.eq(end), remaining.eq(remaining - 1)]
                        with m.If(cur_len <= L1_BITS):
                            m.d.sync += [l1_ptr.eq(pos >> SUB), l1_stop.eq(end >> SUB),
                                         l1_entry.eq(Cat(cur_len[:4], symbol, escape, C(0, 1)))]
                        with m.Else():
                            with m.If(pos[:SUB] == 0):  # a new long prefix
                                m.d.sync += [l1_ptr.eq(pos >> SUB), l1_stop.eq((pos >> SUB) + 1),
                                             l1_entry.eq(Cat(C(0, 4 + SYMBOL_BITS + 1), C(1, 1)))]
                            # The length - L1_BITS of a long code (9..11): its last bits.
                            m.d.sync += [l2_ptr.eq(pos[:L2_INDEX_BITS]), l2_stop.eq(end[:L2_INDEX_BITS]),
                                         l2_entry.eq(Cat(cur_len[:len(l2_entry.length)], symbol, escape))]
                with m.Case(TableItem.END):
                    # A code must fill the code space, but for one code of one bit or none (the
                    # format's rule); then no code for the rest of the first level.
                    complete = ((pos == (1 << W)) | (pos == 0) |
                                ((pos == (1 << (W - 1))) & (nlen != 0) & (counts[0] == 1)))
                    with m.If(~complete):
                        m.d.sync += error.eq(1)
                    m.d.sync += [l1_ptr.eq(pos >> SUB), l1_stop.eq(1 << L1_BITS), l1_entry.eq(0)]
                    m.d.comb += [self.need_table.eq(table), self.need_value.eq(nlen), self.need_en.eq(1)]
        return m
