from amaranth.hdl import *
from amaranth.lib import data, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from sw_codec.format import COUNT_BITS, MAX_CODE_LENGTH, MAX_SYMBOLS, NUM_TABLES_CHOICES, SYMBOL_BITS

from .logic import or_all


__all__ = ["CanonicalHuffmanDecoder"]


class CanonicalHuffmanDecoder(wiring.Component):
    """Canonical Huffman decoder: one symbol plus its extra bits per cycle, from a bit window.

    The hardware twin of ``sw_codec.huffman.CanonicalHuffmanDecoder``. It holds up to
    ``num_tables`` canonical codes, each as ``count[1..L]`` and ``symbols[]`` in canonical order
    (puff.c's two tables). Tables are written through the load port while the BlockParser reads
    them from the layer preamble. Decoding compares the first ``l`` window bits with every
    length's ``first(l) + count(l)`` in parallel (puff.c's loop, unrolled) and takes the
    shortest length that matches. The per-length limits and index offsets are registers; the
    symbols of all tables are a memory (``num_tables * 64`` entries of 6 bits: one block RAM or
    LUT RAM on an FPGA), read at the taken field's index in the take cycle.

    The decode of the field at the current stream position is held in registers (``known``,
    ``valid``, ``consume``...), so a consumer's per-cycle loop (consume -> bit reader shift) holds
    no comparator. To keep one field per cycle, the decoder also decodes speculatively at every
    offset a field can end at (``1 .. max_code_len + max_extra_bits``), from a window that
    reaches that far; when the consumer takes the field, the decode at offset ``consume`` becomes
    the next field's. The serial-decode feedback is then: window -> comparators at each offset
    -> a multiplexer by the registered ``consume``. This costs one comparator bank per offset.

    Parameters
    ----------
    max_code_len : int
        Longest code length held, 1..15. Default 15.
    num_tables : int
        Number of tables held: 1, 2, 4 or 8. Default 4.
    max_extra_bits : int
        Longest extra field (Rice shift ``k`` or escape width), 1..16: the block bits ``P``.
        Default 16.
    window_bits : int
        Width of the decode window: at least ``2 * max_code_len + max_extra_bits`` (a field, then
        the next code). Default that minimum.

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
    select : ``In(1)``
        Strobe: at the clock edge, take ``table``, ``rice_k`` and ``escape_bits`` as the group's
        parameters. The selected table's decode data (length limits, index offsets, the escape
        symbol's code) is copied into registers, so the comparators see registers, not a
        multiplexer over the tables. Select after the table is loaded (a load is complete two
        cycles after its last symbol strobe). Clears ``known``.
    table : ``In(range(num_tables))``, rice_k : ``In(range(max_extra_bits + 1))``,
    escape_bits : ``In(range(max_extra_bits + 1))``
        The group's table, Rice shift and escape width ``bitlen(D - 1)``.
    window : ``In(window_bits)``
        The next stream bits, first bit in the MSB; bits past ``window_count`` must read as zero.
    window_count : ``In(range(window_bits + 1))``
        Number of valid bits in ``window``.
    ended : ``In(1)``
        The stream has no bits past ``window_count``: a decode from zero-padding is final (the
        consumer checks ``consume`` against what it has).
    known : ``Out(1)``
        Registered: ``valid``/``invalid``/``consume``/``escape`` describe the field at the current
        position. Set one edge after ``select`` (or after a take whose next field was decoded from
        too few bits) once ``window`` holds ``max_code_len`` valid bits or ``ended``.
    valid : ``Out(1)``
        ``known`` and a code matches the window (its bits may extend past the valid bits of the
        window: the consumer compares ``consume`` with what it has).
    invalid : ``Out(1)``
        ``known`` and no code matches (or the table has no codes).
    consume : ``Out(range(window_bits + 1))``
        Code length plus extra bits (0 with no match). A register.
    escape : ``Out(1)``
        The code is the escape symbol's (found by comparing the window with its code, without
        looking the symbol up).
    take : ``In(1)``
        Strobe, only while ``valid``: the consumer takes the field (``consume`` bits) at this
        clock edge. The next field's decode, made at offset ``consume`` of this ``window``, is
        ``known`` after the edge if all its ``max_code_len`` bits were in ``window_count`` (or
        ``ended``), else one cycle later. The decoder keeps what ``distance`` needs in registers.
    distance : ``Out(6 + max_extra_bits)``
        ``(symbol << rice_k) | extra``, or the extra field itself after the escape symbol, of the
        field last taken: valid from the cycle after ``take`` until the next ``take``.

    Latency
    -------
    The first field of a group is ``known`` two edges after ``select``; then one field per
    cycle while the window reaches ``consume + max_code_len`` bits past the current position.
    ``distance`` follows each ``take`` by one edge. Loads take effect at the next clock edge (the
    escape code one edge later); the group parameters at the edge of ``select``.
    """

    def __init__(self, *, max_code_len=15, num_tables=4, window_bits=None, max_extra_bits=16):
        if not isinstance(max_code_len, int) or not 1 <= max_code_len <= MAX_CODE_LENGTH:
            raise ValueError(f"max_code_len must be an integer in 1..{MAX_CODE_LENGTH}, not {max_code_len!r}")
        if num_tables not in NUM_TABLES_CHOICES:
            raise ValueError(f"num_tables must be one of {NUM_TABLES_CHOICES}, not {num_tables!r}")
        if not isinstance(max_extra_bits, int) or not 1 <= max_extra_bits <= 16:
            raise ValueError(f"max_extra_bits must be an integer in 1..16, not {max_extra_bits!r}")
        if window_bits is None:
            window_bits = 2 * max_code_len + max_extra_bits
        if not isinstance(window_bits, int) or window_bits < 2 * max_code_len + max_extra_bits:
            raise ValueError(f"window_bits must be at least 2 * max_code_len + max_extra_bits "
                             f"({2 * max_code_len + max_extra_bits}), not {window_bits!r}")
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
            "load_total":       Out(range(MAX_CODE_LENGTH * (2 ** COUNT_BITS - 1) + 1)),
            "load_error":       Out(1),
            "load_incomplete":  Out(1),

            "select":      In(1),
            "table":       In(range(num_tables)),
            "rice_k":      In(range(max_extra_bits + 1)),
            "escape_bits": In(range(max_extra_bits + 1)),
            "window":      In(window_bits),
            "window_count": In(range(window_bits + 1)),
            "ended":       In(1),
            "known":       Out(1),
            "valid":       Out(1),
            "invalid":     Out(1),
            "consume":     Out(range(window_bits + 1)),
            "escape":      Out(1),
            "take":        In(1),
            "distance":    Out(SYMBOL_BITS + max_extra_bits),
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

        L, T, W, P = self._max_code_len, self._num_tables, self._window_bits, self._max_extra_bits
        lengths = range(1, L + 1)

        # Per table and length, fixed when the counts are loaded: the limit first(l) + count(l)
        # left-aligned to L bits (L + 1 wide: a complete length reaches 2**L), 0 for lengths the
        # table does not have; and the symbol index offset base(l) - first(l) mod 64, so that a
        # code of length l is symbol number code + offset. Per table, the escape symbol's code,
        # left-aligned, and the mask of its length (mask 0 and `esc_valid` 0 when it has none).
        def per_table(name, shape, n):
            return Array(Array(Signal(shape, name=f"{name}_{t}_{i}") for i in range(n))
                         for t in range(T))
        limit   = per_table("limit", L + 1, L + 1)
        offset  = per_table("offset", SYMBOL_BITS, L + 1)
        # The symbols of all tables in canonical order, table t at addresses 64 t ..: a memory
        # (one block RAM or LUT RAM on an FPGA), written while a table loads, read in the take
        # cycle at the taken field's index (its read register is stage 2's symbol).
        m.submodules.symbols = symbols = Memory(shape=SYMBOL_BITS, depth=T * MAX_SYMBOLS, init=[])
        symbol_wp = symbols.write_port()
        symbol_rp = symbols.read_port()
        esc_code  = Array(Signal(L, name=f"esc_code_{t}") for t in range(T))
        esc_mask  = Array(Signal(L, name=f"esc_mask_{t}") for t in range(T))
        esc_valid = Array(Signal(name=f"esc_valid_{t}") for t in range(T))
        esc_len   = Array(Signal(range(L + 1), name=f"esc_len_{t}") for t in range(T))

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
        # The table being loaded, per length: its symbol positions [base, end) and first - base,
        # to find the escape symbol's code from its position; the escape's length (one-hot) and
        # position once it is loaded.
        ld_base = [Signal.like(ld_total, name=f"ld_base_{l}") for l in range(L + 1)]
        ld_end  = [Signal.like(ld_total, name=f"ld_end_{l}") for l in range(L + 1)]
        ld_fmb  = [Signal(L, name=f"ld_fmb_{l}") for l in range(L + 1)]
        ld_esc_len = Signal(L + 1)
        ld_esc_pos = Signal(SYMBOL_BITS)

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
                ld_len.eq(1),
                ld_first.eq(0),
                ld_total.eq(0),
                ld_count1.eq(0),
                ld_left.eq(1),
                ld_sym.eq(0),
                ld_seen.eq(0),
                ld_bad.eq(0),
                ld_esc_len.eq(0),
            ]
            for l in lengths:
                m.d.sync += [limit[self.load_table][l].eq(0), ld_base[l].eq(0), ld_end[l].eq(0)]
        with m.Elif(self.load_count_en):
            c = self.load_count
            new_total = ld_total + c
            new_left = (ld_left << 1) - c
            for l in lengths:
                with m.If(ld_len == l):
                    m.d.sync += [
                        limit[ld_table][l].eq((ld_first + c) << (L - l)),
                        offset[ld_table][l].eq(ld_total - ld_first),
                        ld_base[l].eq(ld_total),
                        ld_end[l].eq(new_total),
                        ld_fmb[l].eq(ld_first - ld_total),
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
            m.d.comb += [
                symbol_wp.addr.eq(Cat(ld_sym[:SYMBOL_BITS], ld_table)),
                symbol_wp.data.eq(s),
                symbol_wp.en.eq(ld_sym < MAX_SYMBOLS),
            ]
            with m.If((s == ld_nsym - 1) & (ld_sym < MAX_SYMBOLS)):
                m.d.sync += [
                    ld_esc_pos.eq(ld_sym),
                    ld_esc_len.eq(Cat(0, *((ld_base[l] <= ld_sym) & (ld_sym < ld_end[l])
                                           for l in lengths))),
                ]
            m.d.sync += [
                ld_sym.eq(ld_sym + 1),
                ld_seen.bit_select(s, 1).eq(1),
            ]
            with m.If(ld_seen.bit_select(s, 1) | (s >= ld_nsym) | (ld_sym >= ld_total)):
                m.d.sync += ld_bad.eq(1)

        # The escape's code follows its position one edge later (off the strobe's path).
        esc_code_next = Signal(L)
        esc_mask_next = Signal(L)
        esc_len_next = Signal(range(L + 1))
        for l in lengths:
            with m.If(ld_esc_len[l]):
                m.d.comb += [
                    esc_code_next.eq((ld_fmb[l] + ld_esc_pos)[:l] << (L - l)),
                    esc_mask_next.eq(((1 << l) - 1) << (L - l)),
                    esc_len_next.eq(l),
                ]
        m.d.sync += [
            esc_code[ld_table].eq(esc_code_next),
            esc_mask[ld_table].eq(esc_mask_next),
            esc_valid[ld_table].eq(ld_esc_len != 0),
            esc_len[ld_table].eq(esc_len_next),
        ]

        # --- Group parameters: the selected table's decode data in registers. ---
        cur_table = Signal(range(T))
        # Per length l, the first l window bits are a code of length <= l iff they are below
        # first(l) + count(l) (l + 1 bits wide: a complete length reaches 2**l).
        cur_limit = [Signal(l + 1, name=f"cur_limit_{l}") for l in range(L + 1)]
        cur_offset = [Signal(SYMBOL_BITS, name=f"cur_offset_{l}") for l in range(L + 1)]
        cur_esc_code = Signal(L)
        cur_esc_mask = Signal(L)
        cur_esc_valid = Signal()
        cur_rice_k = Signal.like(self.rice_k)
        cur_escape_bits = Signal.like(self.escape_bits)
        # Code length plus extra bits, per length for a Rice code, and for the escape.
        cur_consume_k = [Signal(range(W + 1), name=f"cur_consume_k_{l}") for l in range(L + 1)]
        cur_consume_esc = Signal(range(W + 1))
        with m.If(self.select):
            t = self.table
            m.d.sync += [
                cur_table.eq(t),
                cur_esc_code.eq(esc_code[t]),
                cur_esc_mask.eq(esc_mask[t]),
                cur_esc_valid.eq(esc_valid[t]),
                cur_rice_k.eq(self.rice_k),
                cur_escape_bits.eq(self.escape_bits),
                cur_consume_esc.eq(esc_len[t] + self.escape_bits),
            ]
            for l in lengths:
                m.d.sync += [
                    cur_limit[l].eq(limit[t][l][L - l:]),
                    cur_offset[l].eq(offset[t][l]),
                    cur_consume_k[l].eq(l + self.rice_k),
                ]

        # --- Decode at every offset a field can end at: per length, a comparator; the
        # shortest match wins. For a valid table the limits never decrease with l (up to its
        # longest length; 0 beyond) once left-aligned, so the matches form a run from the code
        # length up: one-hot = first of the run. The escape is found by comparing the window
        # with its code; it is a code of the table, so its one-hot length is right too.
        field = data.StructLayout({
            "hit":     L,                  # one-hot code length (bit l - 1: length l)
            "escape":  1,
            "match":   1,
            "consume": range(W + 1),       # code length + extra bits, 0 with no match
        })
        max_consume = L + P
        offsets = range(max_consume + 1)
        decodes = [Signal(field, name=f"decode_at_{o}") for o in offsets]
        ready_at = Signal(max_consume + 1)   # the decode at offset o saw all of its bits
        for o in offsets:
            top = self.window[W - o - L:W - o]
            below = Signal(L + 1, name=f"below_{o}")
            m.d.comb += below.eq(Cat(0, *(top[L - l:] < cur_limit[l] for l in lengths)))
            hit = Cat(*(below[l] & ~below[l - 1] for l in lengths))
            escape = cur_esc_valid & (((top ^ cur_esc_code) & cur_esc_mask) == 0)
            consume_k = or_all(Mux(hit[l - 1], cur_consume_k[l], 0) for l in lengths)
            m.d.comb += [
                decodes[o].hit.eq(hit),
                decodes[o].escape.eq(escape),
                decodes[o].match.eq(below != 0),
                decodes[o].consume.eq(Mux(escape, cur_consume_esc, consume_k)),
                ready_at[o].eq(self.ended | (self.window_count >= o + L)),
            ]

        # --- The field at the current position, in registers. ---
        cur = Signal(field)
        known = Signal()
        with m.If(self.select):
            m.d.sync += known.eq(0)
        with m.Elif(self.take & known):
            # The next field starts `consume` bits on.
            m.d.sync += [
                cur.eq(Array(d.as_value() for d in decodes)[cur.consume]),
                known.eq(ready_at.bit_select(cur.consume, 1)),
            ]
        with m.Elif(~known):
            m.d.sync += [cur.eq(decodes[0]), known.eq(ready_at[0])]
        m.d.comb += [
            self.known.eq(known),
            self.valid.eq(known & cur.match),
            self.invalid.eq(known & ~cur.match),
            self.escape.eq(cur.escape),
            self.consume.eq(cur.consume),
        ]

        # What stage 2 needs, selected by the registered one-hot length: the symbol index
        # (code + offset) and the P bits after the code (the extra field's).
        index_1 = or_all(Mux(cur.hit[l - 1], (self.window[W - l:] + cur_offset[l])[:SYMBOL_BITS], 0)
                      for l in lengths)
        rest_1 = or_all(Mux(cur.hit[l - 1], self.window[W - l - P:W - l], 0) for l in lengths)

        # --- Stage 2: the symbol and the distance of the field taken. ---
        s2_escape = Signal()
        s2_rest = Signal(P)
        s2_shift = Signal(range(P + 1))           # P - extra bits
        m.d.comb += [
            symbol_rp.addr.eq(Cat(index_1, cur_table)),
            symbol_rp.en.eq(self.take),
        ]
        with m.If(self.take):
            m.d.sync += [
                s2_escape.eq(cur.escape),
                s2_rest.eq(rest_1),
                s2_shift.eq(Mux(cur.escape, P - cur_escape_bits, P - cur_rice_k)),
            ]
        m.d.comb += [
            # (symbol << k) | extra = (symbol : rest) >> (P - k); the escape has no symbol part.
            self.distance.eq(Cat(s2_rest, Mux(s2_escape, 0, symbol_rp.data)) >> s2_shift),
        ]

        return m
