from amaranth.hdl import *
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out


__all__ = ["CanonicalHuffmanDecoder"]


#: Field widths of a stored table (docs/FORMAT.md, "Huffman table"); same as sw_codec.huffman.
MAX_SYMBOLS = 64
SYMBOL_BITS = 6
COUNT_BITS = 7


class CanonicalHuffmanDecoder(wiring.Component):
    """Canonical Huffman decoder: one symbol plus its extra bits per cycle, from a bit window.

    The hardware twin of ``sw_codec.huffman.CanonicalHuffmanDecoder``. It holds up to
    ``num_tables`` canonical codes, each as ``count[1..L]`` and ``symbols[]`` in canonical order
    (puff.c's two tables). Tables are written through the load port while the BlockParser reads
    them from the layer preamble. Decoding compares the first ``l`` window bits with every
    length's ``first(l) + count(l)`` in parallel (puff.c's loop, unrolled) and takes the
    shortest length that matches.

    Parameters
    ----------
    max_code_len : int
        Longest code length held, 1..15. Default 15.
    num_tables : int
        Number of tables held: 1, 2, 4 or 8. Default 4.
    window_bits : int
        Width of the decode window. Must hold the longest code plus the longest extra field:
        ``max_code_len + max_extra_bits <= window_bits``. Default 32.
    max_extra_bits : int
        Longest extra field (Rice shift ``k`` or escape width), 1..16: the block bits ``P``.
        Default 16.

    Members
    -------
    load_begin : ``In(1)``
        Strobe: start loading table ``load_table`` with alphabet size ``load_num_symbols``
        (1..64). Clears its counts and the validation state.
    load_table : ``In(range(num_tables))``
    load_num_symbols : ``In(range(65))``
    load_count_en : ``In(1)``, load_count : ``In(7)``
        Strobe: ``count`` of the next code length (1, 2, ... in order).
    load_symbol_en : ``In(1)``, load_symbol : ``In(6)``
        Strobe: the next symbol in canonical order.
    load_total : ``Out(11)``
        Sum of the counts loaded so far (the number of symbols to load).
    load_error : ``Out(1)``
        The table being loaded is bad so far: over-subscribed, more codes than symbols, a
        symbol listed twice or ``>= num_symbols``. Valid the cycle after a strobe.
    load_incomplete : ``Out(1)``
        The counts loaded so far leave code space unused, and the code is neither empty nor a
        single length-1 code. Meaningful once all counts are loaded.
    window : ``In(window_bits)``
        The next stream bits, first bit in the MSB.
    table : ``In(range(num_tables))``, rice_k : ``In(range(max_extra_bits + 1))``,
    escape_bits : ``In(range(max_extra_bits + 1))``
        The group's table, Rice shift and escape width ``bitlen(D - 1)``.
    valid : ``Out(1)``
        A code matches the window (its bits may extend past the valid bits of the window:
        the consumer compares ``consume`` with what it has).
    invalid : ``Out(1)``
        No code matches (or the table has no codes). ``~valid``.
    consume : ``Out(range(window_bits + 1))``
        Code length plus extra bits.
    distance : ``Out(6 + max_extra_bits)``
        ``(symbol << rice_k) | extra``, or the extra field itself after the escape symbol.
    escape : ``Out(1)``
        The symbol was the escape symbol (for statistics).

    Latency
    -------
    Decoding is combinational (window to outputs in the same cycle), so a consumer takes one
    symbol per cycle. Loads take effect at the next clock edge.
    """

    def __init__(self, *, max_code_len=15, num_tables=4, window_bits=32, max_extra_bits=16):
        if not isinstance(max_code_len, int) or not 1 <= max_code_len <= 15:
            raise ValueError(f"max_code_len must be an integer in 1..15, not {max_code_len!r}")
        if num_tables not in (1, 2, 4, 8):
            raise ValueError(f"num_tables must be 1, 2, 4 or 8, not {num_tables!r}")
        if not isinstance(max_extra_bits, int) or not 1 <= max_extra_bits <= 16:
            raise ValueError(f"max_extra_bits must be an integer in 1..16, not {max_extra_bits!r}")
        if not isinstance(window_bits, int) or window_bits < max_code_len + max_extra_bits:
            raise ValueError(f"window_bits must be at least max_code_len + max_extra_bits "
                             f"({max_code_len + max_extra_bits}), not {window_bits!r}")
        self._max_code_len = max_code_len
        self._num_tables = num_tables
        self._window_bits = window_bits
        self._max_extra_bits = max_extra_bits

        super().__init__({
            "load_begin":       In(1),
            "load_table":       In(range(num_tables)),
            "load_num_symbols": In(range(MAX_SYMBOLS + 1)),
            "load_count_en":    In(1),
            "load_count":       In(COUNT_BITS),
            "load_symbol_en":   In(1),
            "load_symbol":      In(SYMBOL_BITS),
            "load_total":       Out(range(15 * (2 ** COUNT_BITS - 1) + 1)),
            "load_error":       Out(1),
            "load_incomplete":  Out(1),

            "window":      In(window_bits),
            "table":       In(range(num_tables)),
            "rice_k":      In(range(max_extra_bits + 1)),
            "escape_bits": In(range(max_extra_bits + 1)),
            "valid":       Out(1),
            "invalid":     Out(1),
            "consume":     Out(range(window_bits + 1)),
            "distance":    Out(SYMBOL_BITS + max_extra_bits),
            "escape":      Out(1),
        })

    @property
    def max_code_len(self):
        return self._max_code_len

    @property
    def num_tables(self):
        return self._num_tables

    @property
    def window_bits(self):
        return self._window_bits

    @property
    def max_extra_bits(self):
        return self._max_extra_bits

    def elaborate(self, platform):
        m = Module()

        L, T, W = self._max_code_len, self._num_tables, self._window_bits
        lengths = range(1, L + 1)

        # Per table and length: count(l), first(l) (the first code of length l) and base(l)
        # (index of its first symbol in `symbols`), all fixed when the counts are loaded.
        def per_table(name, shape, n):
            return Array(Array(Signal(shape, name=f"{name}_{t}_{i}") for i in range(n))
                         for t in range(T))
        count   = per_table("count", COUNT_BITS, L + 1)
        first   = per_table("first", L + 1, L + 1)
        base    = per_table("base", SYMBOL_BITS + 1, L + 1)
        symbols = per_table("symbol", SYMBOL_BITS, MAX_SYMBOLS)
        num_symbols = Array(Signal(range(MAX_SYMBOLS + 1), name=f"num_symbols_{t}")
                            for t in range(T))

        # --- Load and validate (puff.c's construct(): left = 2 * left - count per length). ---
        ld_table  = Signal(range(T))
        ld_nsym   = Signal(range(MAX_SYMBOLS + 1))
        ld_len    = Signal(range(L + 2))
        ld_first  = Signal(L + 2)
        ld_total  = Signal.like(self.load_total)
        ld_count1 = Signal(COUNT_BITS)
        ld_left   = Signal(signed(L + 3))     # code space left, in units of the current length
        ld_sym    = Signal(range(MAX_SYMBOLS + 1))
        ld_seen   = Signal(MAX_SYMBOLS)
        ld_bad    = Signal()

        m.d.comb += [
            self.load_total.eq(ld_total),
            self.load_error.eq(ld_bad),
            self.load_incomplete.eq((ld_left > 0) &
                                    ~((ld_total == 0) | ((ld_total == 1) & (ld_count1 == 1)))),
        ]

        with m.If(self.load_begin):
            m.d.sync += [
                ld_table.eq(self.load_table),
                ld_nsym.eq(self.load_num_symbols),
                num_symbols[self.load_table].eq(self.load_num_symbols),
                ld_len.eq(1),
                ld_first.eq(0),
                ld_total.eq(0),
                ld_count1.eq(0),
                ld_left.eq(1),
                ld_sym.eq(0),
                ld_seen.eq(0),
                ld_bad.eq(0),
            ]
            for l in lengths:
                m.d.sync += count[self.load_table][l].eq(0)
        with m.Elif(self.load_count_en):
            c = self.load_count
            new_total = ld_total + c
            new_left = (ld_left << 1) - c
            with m.If(ld_len <= L):
                m.d.sync += [
                    count[ld_table][ld_len].eq(c),
                    first[ld_table][ld_len].eq(ld_first),
                    base[ld_table][ld_len].eq(ld_total),
                ]
            # Once negative, the code is over-subscribed for good: keep `left` from growing back.
            with m.If(ld_left >= 0):
                m.d.sync += ld_left.eq(new_left)
            m.d.sync += [
                ld_len.eq(ld_len + 1),
                ld_first.eq((ld_first + c) << 1),
                ld_total.eq(new_total),
            ]
            with m.If(ld_len == 1):
                m.d.sync += ld_count1.eq(c)
            with m.If((new_left < 0) | (new_total > ld_nsym) | (ld_len > L)):
                m.d.sync += ld_bad.eq(1)
        with m.Elif(self.load_symbol_en):
            s = self.load_symbol
            with m.If(ld_sym < MAX_SYMBOLS):
                m.d.sync += symbols[ld_table][ld_sym[:SYMBOL_BITS]].eq(s)
            m.d.sync += [
                ld_sym.eq(ld_sym + 1),
                ld_seen.bit_select(s, 1).eq(1),
            ]
            with m.If(ld_seen.bit_select(s, 1) | (s >= ld_nsym) | (ld_sym >= ld_total)):
                m.d.sync += ld_bad.eq(1)

        # --- Decode: per-length comparators, the shortest match wins. ---
        t = self.table
        length = Signal(range(L + 1))
        index  = Signal(SYMBOL_BITS + 1)
        for l in reversed(lengths):             # later statements win: shortest length last
            code = self.window[W - l:]
            # puff.c tests code < first + count; code >= first also holds for a valid code when
            # no shorter length matched, and keeps stale lengths above the table's own L out.
            with m.If((code >= first[t][l]) & (code - first[t][l] < count[t][l])):
                m.d.comb += [
                    length.eq(l),
                    index.eq(base[t][l] + (code - first[t][l])),
                ]

        symbol = Signal(SYMBOL_BITS)
        extra_bits = Signal(range(self._max_extra_bits + 1))
        extra = Signal(self._max_extra_bits)
        rest = Signal(W)
        m.d.comb += [
            self.valid.eq(length != 0),
            self.invalid.eq(length == 0),
            symbol.eq(symbols[t][index[:SYMBOL_BITS]]),
            self.escape.eq(symbol == num_symbols[t] - 1),
            extra_bits.eq(Mux(self.escape, self.escape_bits, self.rice_k)),
            rest.eq(self.window << length),
            extra.eq(rest >> (W - extra_bits).as_unsigned()),
            self.consume.eq(length + extra_bits),
            self.distance.eq(Mux(self.escape, extra, (symbol << self.rice_k) | extra)),
        ]

        return m
