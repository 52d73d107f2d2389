"""Decoder v2's header unit: block format 2's header section, read off the member loop."""

from amaranth.hdl import *
from amaranth.lib import data, enum, stream, wiring
from amaranth.lib.wiring import In, Out

from sw_codec.format import COUNT_K_BITS, MEMBER_WORD_BITS, NUM_TABLES_CHOICES, RICE_BIAS_BITS

from .logic import or_all
from .params import check_block_bits, check_weight_bits


__all__ = ["HeaderFieldReader", "GroupContext", "BlockHeaderReader", "FieldKind", "start_layout",
           "group_layout", "checked_layout", "field_value_bits", "max_count_order"]


def max_count_order(block_bits):
    """The largest Exp-Golomb order of a count field, ``(bitlen(p) >> 1) + count_k`` with the
    previous count ``p < 2**P`` and ``count_k`` of ``COUNT_K_BITS`` bits."""
    return (block_bits >> 1) + (1 << COUNT_K_BITS) - 1


def field_value_bits(weight_bits, block_bits):
    """``X``: every well-formed header field's value (``m - 1``, a value delta, a count's zigzag
    residual ``z``) is below ``2**X``: ``m <= 2**P``, a delta below ``2**b``, ``z < 2**(P + 1)``
    (a larger ``z`` moves the count by ``2**P`` or more). The field reader holds ``X + 1`` bits
    and rejects values of ``2**(X + 1)`` or more (and prefixes of ``X + 1`` zeros, which give
    such values); ``X + 1 <= 32``, the format's prefix limit."""
    return max(block_bits + 1, weight_bits)


class FieldKind(enum.Enum, shape=2):
    """What :class:`HeaderFieldReader` reads: an Exp-Golomb code of order ``k``, ``k`` plain bits,
    or the padding up to the next word."""

    EXP_GOLOMB = 0
    FIXED      = 1
    PADDING    = 2


def start_layout(block_bits):
    """A block's start: its size ``n`` (1..2**P) and its length in 16-bit words (as the block length
    table gives it, saturated by the caller at the field's maximum; a header section is never
    that long)."""
    return data.StructLayout({"n": range((1 << block_bits) + 1), "length": block_bits + 4})


def group_layout(weight_bits, block_bits, num_tables):
    """The header unit's token. A block gives one ``block`` token (``value`` the implicit value,
    ``count`` the number of values ``m``, ``domain`` the block size ``n``), then one token per
    group in header order: its value, count, domain size ``D``, Rice table and shift, escape bits
    ``bitlen(D - 1)``. ``last`` marks the block's last token."""
    P = block_bits
    return data.StructLayout({
        "block":       1,
        "value":       signed(weight_bits),
        "count":       range((1 << P) + 1),
        "domain":      range((1 << P) + 1),
        "table":       range(num_tables),
        "shift":       range(P + 1),
        "escape_bits": range(P + 1),
        "last":        1,
    })


def checked_layout(weight_bits, block_bits):
    """A checked header entry, from the parser to :class:`GroupContext`: :func:`group_layout`
    without the Rice context."""
    return data.StructLayout({
        "block":  1,
        "value":  signed(weight_bits),
        "count":  range((1 << block_bits) + 1),
        "domain": range((1 << block_bits) + 1),
        "last":   1,
    })


class HeaderFieldReader(wiring.Component):
    """Reads one header field at a time from a block's 16-bit words, one bit per cycle.

    A field is requested with ``go`` (``kind`` and ``k`` are taken then) when ``busy`` is low: an
    Exp-Golomb code of order ``k`` (the prefix zeros, a one, ``prefix + k`` more bits; ``x =
    y - 2**k`` for ``y`` the one and the bits after it), ``k`` plain bits (``x`` the bits), or
    the padding (the bits left in the current word, which must be zero). ``done`` rises the
    cycle after the field's last bit and stays, with ``x``, until the next ``go``. A bit costs
    one cycle; a word is taken in the cycle its first bit is used (no bubble). ``begin`` (with
    a ``go`` or while not ``busy``) starts a block: no bits held, ``length`` words allowed.

    The Exp-Golomb value is accumulated without ``y``'s width: the ``prefix + 1`` leading bits
    of ``y`` (``y_hi >= 1``) are shifted in, decremented once, then the ``k`` low bits, which
    gives ``(y_hi - 1) * 2**k + y_lo = y - 2**k``.

    Parameters
    ----------
    value_bits : int
        ``X + 1``: ``x`` is below ``2**(X + 1)``; a field that reaches that is an error.
    order_bits : int
        Width of ``k``.
    length_bits : int
        Width of ``length``.

    Members
    -------
    words : ``In(stream.Signature(16))``
        The block's words, first bit the MSB; a word is taken only when a field needs its bits.
    begin : ``In(1)``, length : ``In(length_bits)``
    go : ``In(1)``, kind : ``In(FieldKind)``, k : ``In(order_bits)``
    halt : ``In(1)``
        Take no word (set on any error of the unit).
    busy : ``Out(1)``, done : ``Out(1)``, x : ``Out(value_bits)``
    error : ``Out(1)``
        Sticky: a field needs a word past ``length``, a prefix of ``value_bits`` zeros, a value
        of ``2**value_bits`` or more, non-zero padding. Once set no word is taken.
    """

    def __init__(self, *, value_bits, order_bits, length_bits):
        self._value_bits = value_bits
        super().__init__({
            "words":  In(stream.Signature(MEMBER_WORD_BITS)),
            "begin":  In(1),
            "length": In(length_bits),
            "go":     In(1),
            "kind":   In(FieldKind),
            "k":      In(order_bits),
            "halt":   In(1),
            "busy":   Out(1),
            "done":   Out(1),
            "x":      Out(value_bits),
            "error":  Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        V, W = self._value_bits, MEMBER_WORD_BITS

        shift = Signal(W)                        # the current word's unread bits, at the top
        left = Signal(range(W + 1))              # how many
        taken = Signal.like(self.length)         # words taken in this block
        length = Signal.like(self.length)
        high = Signal(range(V + 1))              # prefix zeros so far, then y_hi's bits still to read
        low = Signal.like(self.k)                # y's low bits still to read (the order)

        # The next bit: from the current word, else the first bit of an offered word.
        need = Signal()                          # the state consumes a bit this cycle if there is one
        has_word = Signal()
        bit = Signal()
        got = Signal()
        overrun = Signal()
        m.d.comb += [
            has_word.eq(left != 0),
            bit.eq(Mux(has_word, shift[-1], self.words.payload[-1])),
            got.eq(need & (has_word | (self.words.valid & (taken != length)))),
            overrun.eq(need & ~has_word & (taken == length)),
            self.words.ready.eq(need & ~has_word & (taken != length)),
        ]
        with m.If(got):
            with m.If(has_word):
                m.d.sync += [shift.eq(shift << 1), left.eq(left - 1)]
            with m.Else():
                m.d.sync += [shift.eq(self.words.payload << 1), left.eq(W - 1), taken.eq(taken + 1)]
        with m.If(self.begin):
            m.d.sync += [left.eq(0), taken.eq(0), length.eq(self.length)]

        shifted = Cat(bit, self.x)               # x * 2 + bit, one bit wider

        def accept():
            with m.If(self.go):
                m.d.sync += [high.eq(0), low.eq(self.k), self.x.eq(0)]
                with m.Switch(self.kind):
                    with m.Case(FieldKind.EXP_GOLOMB):
                        m.next = "PREFIX"
                    with m.Case(FieldKind.FIXED):
                        m.next = "SUFFIX"
                    with m.Case(FieldKind.PADDING):
                        m.next = "PADDING"

        with m.FSM():
            with m.State("IDLE"):
                accept()
            with m.State("PREFIX"):
                m.d.comb += [self.busy.eq(1), need.eq(~self.halt)]
                with m.If(overrun):
                    m.next = "ERROR"
                with m.Elif(got & ~bit):
                    m.d.sync += high.eq(high + 1)
                    with m.If(high == V - 1):
                        m.next = "ERROR"
                with m.Elif(got):
                    # y_hi is 1 so far; with no prefix it is complete, and x starts at y_hi - 1 = 0.
                    m.d.sync += self.x.eq(high != 0)
                    with m.If((high == 0) & (low == 0)):
                        m.next = "DONE"
                    with m.Else():
                        m.next = "SUFFIX"
            with m.State("SUFFIX"):
                m.d.comb += [self.busy.eq(1), need.eq(~self.halt)]
                with m.If(overrun | (got & self.x[-1])):
                    m.next = "ERROR"
                with m.Elif(got):
                    with m.If(high != 0):
                        m.d.sync += [self.x.eq(shifted - (high == 1)), high.eq(high - 1)]
                        with m.If((high == 1) & (low == 0)):
                            m.next = "DONE"
                    with m.Else():
                        m.d.sync += [self.x.eq(shifted), low.eq(low - 1)]
                        with m.If(low == 1):
                            m.next = "DONE"
            with m.State("PADDING"):
                # The word's unread bits sit at the top of `shift`, zeros below them.
                m.d.comb += self.busy.eq(1)
                with m.If(shift != 0):
                    m.next = "ERROR"
                with m.Else():
                    m.d.sync += left.eq(0)
                    m.next = "DONE"
            with m.State("DONE"):
                m.d.comb += self.done.eq(1)
                accept()
            with m.State("ERROR"):
                m.d.comb += [self.busy.eq(1), self.error.eq(1)]
        return m


def bit_length(value, width):
    """``bitlen(value)`` of an unsigned value of ``width`` bits, as an AND-OR priority encoder."""
    return or_all(Mux(value[i] & ~(value >> (i + 1)).any(), i + 1, 0) for i in range(width))


class GroupContext(wiring.Component):
    """A checked group's Rice context and escape width, a few cycles per group, one adder wide.

    Software twin: ``sw_codec.huffman.rice_context`` (as :class:`~hw.block_parser.RiceContext`,
    which does it in one cycle with ``(P + 1) * Tc`` comparators). For ``1 <= c < D <= 2**P``:
    ``k0' = bitlen(D) - bitlen(c)``, ``x = c << k0'``, halved (and ``k0 = k0' - 1``) if above
    ``D``, so ``x <= D < 2x``; the table at ``Tc`` tables is ``floor(Tc * (D - x) / x)``
    (``#{u in 1..Tc-1 : Tc * D >= (Tc + u) * x}``, as ``D - x < x``), ``log2(Tc)`` steps of a
    restoring division; a layer of ``T = Tc / 2**s`` tables uses it ``>> s``. The shift is
    ``max(0, k0 - rice_bias)``, the escape width ``bitlen(D - 1)``. A ``block`` entry passes.

    Latency and backpressure: ``i`` is taken when the unit is idle or while its token leaves
    ``o``; a group's token is on ``o`` ``4 + log2(Tc)`` cycles later (a block's 1), held until
    taken. So a group occupies the unit ``4 + log2(Tc)`` cycles when ``o`` is ready.

    Members
    -------
    i : ``In(stream.Signature(checked_layout(b, P)))``
    o : ``Out(stream.Signature(group_layout(b, P, Tc)))``
    rice_bias : ``In(4)``, tables_log2 : ``In(range(log2(Tc) + 1))``, table_empty : ``In(Tc)``
    error : ``Out(1)``
        Sticky: a group whose table has no codes (its token is not given). Nothing is taken after.
    """

    def __init__(self, *, weight_bits, block_bits, num_tables):
        self._block_bits, self._num_tables = block_bits, num_tables
        super().__init__({
            "i":           In(stream.Signature(checked_layout(weight_bits, block_bits))),
            "o":           Out(stream.Signature(group_layout(weight_bits, block_bits, num_tables))),
            "rice_bias":   In(RICE_BIAS_BITS),
            "tables_log2": In(range((num_tables - 1).bit_length() + 1)),
            "table_empty": In(num_tables),
            "error":       Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        P, tc_log2 = self._block_bits, (self._num_tables - 1).bit_length()

        token = Signal.like(self.o.payload)      # the entry as taken, completed in place
        c, D = token.count, token.domain
        k0 = Signal(range(P + 1))
        x = Signal(P + 1)
        rest = Signal(P + 2)                     # D - x, then the division's remainders
        table = Signal(max(tc_log2, 1))
        steps = Signal(range(tc_log2 + 1))
        m.d.comb += self.o.payload.eq(token)

        # An entry is taken when the unit is idle or its token leaves; its bit lengths at once.
        take = Signal()
        m.d.comb += take.eq(self.i.valid & self.i.ready)
        with m.If(take):
            new = self.i.payload
            m.d.sync += [token.eq(0), token.block.eq(new.block), token.value.eq(new.value), token.count.eq(new.count),
                         token.domain.eq(new.domain), token.last.eq(new.last),
                         k0.eq(bit_length(new.domain, P + 1) - bit_length(new.count, P + 1)),
                         token.escape_bits.eq(Mux(new.block, 0, bit_length(new.domain - 1, P)))]

        def next_after_take():
            with m.If(self.i.payload.block):
                m.next = "EMIT"
            with m.Else():
                m.next = "SHIFT"

        with m.FSM():
            with m.State("IDLE"):
                m.d.comb += self.i.ready.eq(1)
                with m.If(self.i.valid):
                    next_after_take()
            with m.State("SHIFT"):
                m.d.sync += x.eq(c << k0)
                m.next = "FIT"
            with m.State("FIT"):
                with m.If(x > D):
                    m.d.sync += [x.eq(x >> 1), k0.eq(k0 - 1), rest.eq(D - (x >> 1))]
                with m.Else():
                    m.d.sync += rest.eq(D - x)
                m.d.sync += [table.eq(0), steps.eq(tc_log2)]
                m.next = "DIVIDE"
            with m.State("DIVIDE"):
                with m.If(steps != 0):
                    twice = rest << 1
                    fits = twice >= x
                    m.d.sync += [rest.eq(Mux(fits, twice - x, twice)), table.eq(Cat(fits, table)),
                                 steps.eq(steps - 1)]
                with m.Else():
                    layer_table = (table >> (tc_log2 - self.tables_log2).as_unsigned())[:max(tc_log2, 1)]
                    m.d.sync += [token.table.eq(layer_table),
                                 token.shift.eq(Mux(k0 > self.rice_bias, k0 - self.rice_bias, 0))]
                    with m.If(self.table_empty.bit_select(layer_table, 1)):
                        m.next = "ERROR"
                    with m.Else():
                        m.next = "EMIT"
            with m.State("EMIT"):
                m.d.comb += [self.o.valid.eq(1), self.i.ready.eq(self.o.ready)]
                with m.If(self.o.ready):
                    with m.If(self.i.valid):
                        next_after_take()
                    with m.Else():
                        m.next = "IDLE"
            with m.State("ERROR"):
                m.d.comb += self.error.eq(1)
        return m


class BlockHeaderReader(wiring.Component):
    """The header unit of decoder v2: reads each block's header section (block format 2) and
    gives the member path one token per group.

    Software twin: ``sw_codec.decoder.read_block_header``. For each block it takes a ``start``
    (``n``, the block's length in words), then the header section's words from ``words``
    (exactly ``H``, the section's length: the member section's words after them are not
    taken), and gives on ``o`` a ``block`` token (implicit value, ``m``, ``n``) and the ``m - 1``
    group tokens (value, count, domain size, Rice table and shift, escape bits); ``last`` marks
    the block's final token, given only once the padding is checked.

    Three parts overlap: a :class:`HeaderFieldReader` reads the fields one bit per cycle; the
    parser checks each (in the cycles the reader spends on the next field) and hands a checked
    group to a one-entry register; a :class:`GroupContext` computes its Rice context and escape
    width and holds it on ``o``. A field of ``L`` bits costs ``L + 1`` cycles; a group, the longer
    of its two fields' ``(L_value + 1) + (L_count + 1)`` and the context unit's ``4 + log2(Tc)``.
    Backpressure on ``o`` stops the context unit, then the parser, then the reader; nothing is
    lost. The unit waits for words and starts without limit.

    Parameters
    ----------
    weight_bits : int
        ``b``, 2..16.
    block_bits : int
        ``P``, blocks of up to ``2**P`` weights.
    num_tables : int
        ``Tc``, the most Huffman tables a layer may have (1, 2, 4 or 8).

    Members
    -------
    start : ``In(stream.Signature(start_layout(P)))``
    words : ``In(stream.Signature(16))``
    o : ``Out(stream.Signature(group_layout(b, P, Tc)))``
    count_k : ``In(4)``, rice_bias : ``In(4)``, tables_log2 : ``In(range(log2(Tc) + 1))``,
    slots : ``In(1)`` (0 ``all``, 1 ``free``), table_empty : ``In(Tc)`` (bit ``t``: table ``t``
    has no codes)
        The layer's parameters (from its preamble), inputs; static while a layer is read.
    error : ``Out(1)``
        Sticky until reset: ``n`` not in ``1..2**P``, ``m`` above ``min(n, 2**b)``, a value above
        the ``b``-bit range or equal to the implicit value, a count below 1 or above the free
        slots minus one, a group whose table has no codes, an Exp-Golomb prefix or value past
        what any valid field has (:func:`field_value_bits`), the section running past the
        block's length, non-zero padding. Once set, no start or word is taken and no token
        enters ``o`` (one already there, from before the bad field, stays until taken).
    """

    def __init__(self, *, weight_bits, block_bits, num_tables):
        check_weight_bits(weight_bits)
        check_block_bits(block_bits)
        if num_tables not in NUM_TABLES_CHOICES:
            raise ValueError(f"num_tables must be one of {NUM_TABLES_CHOICES}, not {num_tables!r}")
        self.weight_bits, self.block_bits, self.num_tables = weight_bits, block_bits, num_tables
        super().__init__({
            "start":       In(stream.Signature(start_layout(block_bits))),
            "words":       In(stream.Signature(MEMBER_WORD_BITS)),
            "o":           Out(stream.Signature(group_layout(weight_bits, block_bits, num_tables))),
            "count_k":     In(COUNT_K_BITS),
            "rice_bias":   In(RICE_BIAS_BITS),
            "tables_log2": In(range((num_tables - 1).bit_length() + 1)),
            "slots":       In(1),
            "table_empty": In(num_tables),
            "error":       Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        b, P = self.weight_bits, self.block_bits
        V = field_value_bits(b, P) + 1

        m.submodules.reader = reader = HeaderFieldReader(
            value_bits=V, order_bits=max(max_count_order(P), b).bit_length(),
            length_bits=len(self.start.payload.length))
        m.submodules.context = context = GroupContext(weight_bits=b, block_bits=P, num_tables=self.num_tables)
        wiring.connect(m, wiring.flipped(self.words), reader.words)
        wiring.connect(m, context.o, wiring.flipped(self.o))
        m.d.comb += [context.rice_bias.eq(self.rice_bias), context.tables_log2.eq(self.tables_log2),
                     context.table_empty.eq(self.table_empty)]

        parse_error = Signal()
        m.d.comb += [self.error.eq(parse_error | reader.error | context.error), reader.halt.eq(self.error)]

        n = Signal(range((1 << P) + 1))
        free = Signal.like(n)                    # slots no earlier group claimed
        groups_left = Signal.like(n)             # groups still to check
        implicit = Signal(signed(b))
        value = Signal(signed(b))
        first = Signal()                         # the next value field is the block's first
        prev = Signal(range(1 << P))             # the previous group's count (0 before the first)
        count = Signal(signed(V + 2))
        # The one-entry register to the context unit; `hold`: the block's last, until its padding.
        entry = Signal.like(context.i.payload)
        entry_valid, hold = Signal(), Signal()
        m.d.comb += [context.i.payload.eq(entry), context.i.valid.eq(entry_valid & ~hold & ~self.error)]
        with m.If(context.i.valid & context.i.ready):
            m.d.sync += entry_valid.eq(0)

        k_c = Signal(range(max_count_order(P) + 1))
        m.d.comb += k_c.eq((bit_length(prev, P) >> 1) + self.count_k)
        next_value = Signal(signed(V + 2))
        m.d.comb += next_value.eq(Mux(first, reader.x[:b].as_signed(), value + reader.x + 1))
        half = reader.x >> 1
        residual = Signal(signed(V + 1))         # zigzag: z even -> z / 2, odd -> -(z >> 1) - 1
        m.d.comb += residual.eq(Mux(reader.x[0], ~Cat(half, C(0, 2)).as_signed(), half))

        def read(kind, k=0):
            m.d.comb += [reader.go.eq(1), reader.kind.eq(kind), reader.k.eq(k)]

        with m.FSM():
            with m.State("IDLE"):
                m.d.comb += self.start.ready.eq(~self.error)
                with m.If(self.start.valid & ~self.error):
                    n_in = self.start.payload.n
                    m.d.sync += [n.eq(n_in), free.eq(n_in), prev.eq(0), first.eq(1)]
                    with m.If((n_in == 0) | (n_in > (1 << P))):
                        m.next = "ERROR"
                    with m.Else():
                        m.d.comb += [reader.begin.eq(1), reader.length.eq(self.start.payload.length)]
                        read(FieldKind.EXP_GOLOMB, 0)
                        m.next = "M"
            with m.State("M"):                           # m - 1
                with m.If(reader.done):
                    with m.If((reader.x >= n) | (reader.x >= (1 << b))):
                        m.next = "ERROR"
                    with m.Else():
                        m.d.sync += groups_left.eq(reader.x)
                        read(FieldKind.FIXED, b)
                        m.next = "IMPLICIT"
            with m.State("IMPLICIT"):
                with m.If(reader.done & ~entry_valid):
                    m.d.sync += [implicit.eq(reader.x[:b]), entry_valid.eq(1), hold.eq(groups_left == 0),
                                 entry.block.eq(1), entry.value.eq(reader.x[:b]), entry.count.eq(groups_left + 1),
                                 entry.domain.eq(n), entry.last.eq(groups_left == 0)]
                    with m.If(groups_left == 0):
                        read(FieldKind.PADDING)
                        m.next = "PADDING"
                    with m.Else():
                        read(FieldKind.FIXED, b)
                        m.next = "VALUE"
            with m.State("VALUE"):
                with m.If(reader.done):
                    with m.If((next_value > (1 << (b - 1)) - 1) | (next_value == implicit)):
                        m.next = "ERROR"
                    with m.Else():
                        m.d.sync += [value.eq(next_value), first.eq(0)]
                        read(FieldKind.EXP_GOLOMB, k_c)
                        m.next = "COUNT"
            with m.State("COUNT"):                       # the count; the next field is read meanwhile
                with m.If(reader.done):
                    m.d.sync += count.eq(prev + residual)
                    with m.If(groups_left == 1):
                        read(FieldKind.PADDING)
                    with m.Else():
                        read(FieldKind.EXP_GOLOMB, 0)
                    m.next = "CHECK"
            with m.State("CHECK"):
                with m.If((count < 1) | (count >= free)):
                    m.next = "ERROR"
                with m.Elif(~entry_valid):
                    m.d.sync += [entry_valid.eq(1), hold.eq(groups_left == 1),
                                 entry.block.eq(0), entry.value.eq(value), entry.count.eq(count),
                                 entry.domain.eq(Mux(self.slots, free, n)), entry.last.eq(groups_left == 1),
                                 free.eq(free - count), prev.eq(count), groups_left.eq(groups_left - 1)]
                    with m.If(groups_left == 1):
                        m.next = "PADDING"
                    with m.Else():
                        m.next = "VALUE"
            with m.State("PADDING"):
                with m.If(reader.done):
                    m.d.sync += hold.eq(0)
                    m.next = "IDLE"
            with m.State("ERROR"):
                m.d.comb += parse_error.eq(1)
        return m
