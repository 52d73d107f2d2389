"""Decoder v2's header unit: block format 2's header section, read off the member loop."""

from amaranth.hdl import *
from amaranth.lib import data, enum, stream, wiring
from amaranth.lib.wiring import In, Out

from sw_codec.format import COUNT_K_BITS, MEMBER_WORD_BITS, NUM_TABLES_CHOICES, RICE_BIAS_BITS

from .block_parser import RiceContext
from .logic import or_all
from .params import check_block_bits, check_weight_bits


__all__ = ["HeaderFieldReader", "BlockHeaderReader", "FieldKind", "start_layout", "group_layout",
           "field_value_bits", "max_count_order"]


def max_count_order(block_bits):
    """The largest Exp-Golomb order of a count field, ``(bitlen(p) >> 1) + count_k`` with the
    previous count ``p < 2**P`` and ``count_k`` of ``COUNT_K_BITS`` bits."""
    return (block_bits >> 1) + (1 << COUNT_K_BITS) - 1


def field_value_bits(weight_bits, block_bits):
    """``Y``: every well-formed header field's value (``m``, a value delta plus one, a count's
    ``z + 2**k_c``) is below ``2**Y``, and any field at or above it is out of its range (a count's
    ``z >= 2**(P + 1)`` moves the count by ``2**P`` or more). ``Y <= 32``, so a prefix the unit
    rejects (``Y`` zeros or more) is never one the format's limit (32) lets through as valid."""
    return max(block_bits + 1, max_count_order(block_bits), weight_bits) + 1


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


class HeaderFieldReader(wiring.Component):
    """Reads one header field at a time from a block's 16-bit words, one bit per cycle.

    A field is requested with ``go`` (one cycle, while ``busy`` is low; ``kind`` and ``k`` are
    taken then): an Exp-Golomb code of order ``k`` (``y = x + 2**k``: the prefix zeros, the one,
    ``prefix + k`` more bits), ``k`` plain bits (``y`` the bits), or the padding (the bits left in
    the current word, which must be zero; ``y`` undefined). The cycle after the field's last bit
    ``done`` is high for one cycle with ``y`` valid. A bit costs one cycle; a word is taken in
    the cycle its first bit is used (no bubble). ``begin`` (one cycle, outside a field) starts a
    block: no bits held, ``length`` words allowed.

    Parameters
    ----------
    value_bits : int
        ``Y``: ``y`` is below ``2**Y``; a field that reaches ``2**Y`` is an error.
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
    busy : ``Out(1)``, done : ``Out(1)``, y : ``Out(Y)``
    error : ``Out(1)``
        Sticky: a field needs a word past ``length``, a prefix of ``Y`` zeros, a value of
        ``2**Y`` or more, non-zero padding. Once set no word is taken and ``done`` stays low.
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
            "busy":   Out(1),
            "done":   Out(1),
            "y":      Out(value_bits),
            "error":  Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        Y, W = self._value_bits, MEMBER_WORD_BITS

        shift = Signal(W)                        # the current word's unread bits, at the top
        left = Signal(range(W + 1))              # how many
        taken = Signal.like(self.length)         # words taken in this block
        length = Signal.like(self.length)
        zeros = Signal(range(Y + 1))             # prefix zeros so far
        rest = Signal(range(Y + (1 << len(self.k))))  # bits of y still to read
        order = Signal.like(self.k)              # the Exp-Golomb order, taken at `go`

        # The next bit: from the current word, else the first bit of an offered word.
        need = Signal()                          # the state consumes a bit this cycle if there is one
        has_word = Signal()
        bit = Signal()
        got = Signal()                           # a bit is consumed this cycle
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

        m.d.sync += self.done.eq(0)
        with m.FSM():
            with m.State("IDLE"):
                with m.If(self.go):
                    m.d.sync += [zeros.eq(0), order.eq(self.k)]
                    with m.Switch(self.kind):
                        with m.Case(FieldKind.EXP_GOLOMB):
                            m.next = "PREFIX"
                        with m.Case(FieldKind.FIXED):
                            m.d.sync += [self.y.eq(0), rest.eq(self.k)]
                            m.next = "SUFFIX"
                        with m.Case(FieldKind.PADDING):
                            m.next = "PADDING"
            with m.State("PREFIX"):
                m.d.comb += [self.busy.eq(1), need.eq(1)]
                with m.If(overrun):
                    m.next = "ERROR"
                with m.Elif(got & ~bit):
                    m.d.sync += zeros.eq(zeros + 1)
                    with m.If(zeros == Y - 1):
                        m.next = "ERROR"
                with m.Elif(got):
                    m.d.sync += [self.y.eq(1), rest.eq(zeros + order)]
                    with m.If((zeros == 0) & (order == 0)):
                        m.d.sync += self.done.eq(1)
                        m.next = "IDLE"
                    with m.Else():
                        m.next = "SUFFIX"
            with m.State("SUFFIX"):
                m.d.comb += [self.busy.eq(1), need.eq(1)]
                with m.If(overrun | (got & self.y[-1])):
                    m.next = "ERROR"
                with m.Elif(got):
                    m.d.sync += [self.y.eq(Cat(bit, self.y[:-1])), rest.eq(rest - 1)]
                    with m.If(rest == 1):
                        m.d.sync += self.done.eq(1)
                        m.next = "IDLE"
            with m.State("PADDING"):
                # The word's unread bits sit at the top of `shift`, zeros below them.
                m.d.comb += self.busy.eq(1)
                with m.If(shift != 0):
                    m.next = "ERROR"
                with m.Else():
                    m.d.sync += [left.eq(0), self.done.eq(1)]
                    m.next = "IDLE"
            with m.State("ERROR"):
                m.d.comb += [self.busy.eq(1), self.error.eq(1)]
        return m


class BlockHeaderReader(wiring.Component):
    """The header unit of decoder v2: reads each block's header section (block format 2) and
    gives the member path one token per group.

    Software twin: ``sw_codec.decoder.read_block_header``. For each block it takes a ``start``
    token (``n``, length in words), then the header section's words from ``words`` (exactly
    ``H`` words, the section's length; the words after it are the member section's and are not
    taken), and gives on ``o`` a ``block`` token (implicit value, ``m``, ``n``) and the
    ``m - 1`` group tokens (value, count, domain size, Rice table and shift, escape bits),
    ``last`` on the block's final token (emitted only once the padding is checked).

    Fields are read one bit per cycle (:class:`HeaderFieldReader`), with a few cycles per field
    to check it and one per group to compute the Rice context (``hw.block_parser.RiceContext``)
    and the escape width. ``o`` is a register held until taken; the unit waits while it is
    full (backpressure stops the unit, nothing is lost), and waits for words without limit.

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
        The layer's parameters from the preamble; static while a block is read.
    error : ``Out(1)``
        Sticky until reset: ``n`` not in ``1..2**P``, ``m`` above ``min(n, 2**b)``, a value above
        the ``b``-bit range or equal to the implicit value, a count below 1 or above the free
        slots minus one, a group whose table has no codes, an Exp-Golomb prefix or value past
        what any valid field has (:func:`field_value_bits`), the section running past the
        block's length, non-zero padding. Once set nothing more is taken and no token is given
        (a token already on ``o`` stays until taken; it is one from before the bad field).
    """

    def __init__(self, *, weight_bits, block_bits, num_tables):
        check_weight_bits(weight_bits)
        check_block_bits(block_bits)
        if num_tables not in NUM_TABLES_CHOICES:
            raise ValueError(f"num_tables must be one of {NUM_TABLES_CHOICES}, not {num_tables!r}")
        self.weight_bits, self.block_bits, self.num_tables = weight_bits, block_bits, num_tables
        self._value_bits = field_value_bits(weight_bits, block_bits)
        self._order_bits = max(max_count_order(block_bits), weight_bits).bit_length()
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
        b, P, Y = self.weight_bits, self.block_bits, self._value_bits
        wide = signed(Y + 2)                 # values, counts and their sums before the range checks

        m.submodules.reader = reader = HeaderFieldReader(
            value_bits=Y, order_bits=self._order_bits, length_bits=len(self.start.payload.length))
        m.submodules.rice = rice = RiceContext(block_bits=P, num_tables=self.num_tables)
        wiring.connect(m, wiring.flipped(self.words), reader.words)

        n = Signal(range((1 << P) + 1))
        free = Signal.like(n)                # slots no earlier group claimed
        groups_left = Signal.like(n)         # groups still to read
        implicit = Signal(signed(b))
        value = Signal(signed(b))
        first = Signal()                     # the next value field is the block's first
        prev = Signal(range(1 << P))         # the previous group's count (0 before the first)
        z = Signal(Y)
        count = Signal(wide)
        token = Signal.like(self.o.payload)
        error = Signal()
        m.d.comb += self.error.eq(error | reader.error)

        # The count field's order, from the previous count; the value and count candidates.
        prev_bits = Signal(range(P + 1))
        m.d.comb += prev_bits.eq(or_all(Mux(prev[i] & ~(prev >> (i + 1)).any(), i + 1, 0) for i in range(P)))
        k_c = Signal(range(max_count_order(P) + 1))
        m.d.comb += k_c.eq((prev_bits >> 1) + self.count_k)
        next_value = Signal(wide)
        m.d.comb += next_value.eq(Mux(first, reader.y[:b].as_signed(), value + reader.y))
        residual = Signal(wide)
        m.d.comb += residual.eq(Mux(z[0], -(z >> 1) - 1, z >> 1))
        domain = Signal.like(n)
        m.d.comb += domain.eq(Mux(self.slots, free, n))
        escape_bits = Signal(range(P + 1))
        m.d.comb += escape_bits.eq(or_all(Mux((domain - 1)[i] & ~((domain - 1) >> (i + 1)).any(), i + 1, 0)
                                          for i in range(P)))
        m.d.comb += [rice.count.eq(count[:P + 1]), rice.domain.eq(domain), rice.bias.eq(self.rice_bias),
                     rice.tables_log2.eq(self.tables_log2)]

        def read(kind, k=0):
            m.d.comb += [reader.go.eq(1), reader.kind.eq(kind), reader.k.eq(k)]

        m.d.comb += self.o.payload.eq(token)
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
            with m.State("M"):                       # m, then the implicit value
                with m.If(reader.done):
                    with m.If((reader.y > n) | (reader.y > (1 << b))):
                        m.next = "ERROR"
                    with m.Else():
                        m.d.sync += [token.count.eq(reader.y), groups_left.eq(reader.y - 1)]
                        read(FieldKind.FIXED, b)
                        m.next = "IMPLICIT"
            with m.State("IMPLICIT"):
                with m.If(reader.done):
                    m.d.sync += [implicit.eq(reader.y[:b]), token.block.eq(1), token.value.eq(reader.y[:b]),
                                 token.domain.eq(n), token.table.eq(0), token.shift.eq(0),
                                 token.escape_bits.eq(0), token.last.eq(groups_left == 0)]
                    with m.If(groups_left == 0):
                        read(FieldKind.PADDING)
                        m.next = "PADDING"
                    with m.Else():
                        m.next = "EMIT"
            with m.State("EMIT"):
                m.d.comb += self.o.valid.eq(1)
                with m.If(self.o.ready):
                    with m.If(token.last):
                        m.next = "IDLE"
                    with m.Else():
                        with m.If(first):
                            read(FieldKind.FIXED, b)
                        with m.Else():
                            read(FieldKind.EXP_GOLOMB, 0)
                        m.next = "VALUE"
            with m.State("VALUE"):
                with m.If(reader.done):
                    with m.If((next_value > (1 << (b - 1)) - 1) | (next_value == implicit)):
                        m.next = "ERROR"
                    with m.Else():
                        m.d.sync += [value.eq(next_value), first.eq(0)]
                        read(FieldKind.EXP_GOLOMB, k_c)
                        m.next = "COUNT"
            with m.State("COUNT"):
                with m.If(reader.done):
                    m.d.sync += z.eq(reader.y - (1 << k_c))
                    m.next = "CHECK"
            with m.State("CHECK"):
                m.d.sync += count.eq(prev + residual)
                with m.If((prev + residual < 1) | (prev + residual > free - 1)):
                    m.next = "ERROR"
                with m.Else():
                    m.next = "CONTEXT"
            with m.State("CONTEXT"):                 # the Rice context of (count, domain)
                with m.If(self.table_empty.bit_select(rice.table, 1)):
                    m.next = "ERROR"
                with m.Else():
                    m.d.sync += [token.block.eq(0), token.value.eq(value), token.count.eq(count),
                                 token.domain.eq(domain), token.table.eq(rice.table),
                                 token.shift.eq(rice.k), token.escape_bits.eq(escape_bits),
                                 token.last.eq(groups_left == 1),
                                 free.eq(free - count), prev.eq(count), groups_left.eq(groups_left - 1)]
                    with m.If(groups_left == 1):
                        read(FieldKind.PADDING)
                        m.next = "PADDING"
                    with m.Else():
                        m.next = "EMIT"
            with m.State("PADDING"):
                with m.If(reader.done):
                    m.next = "EMIT"
            with m.State("ERROR"):
                m.d.comb += error.eq(1)
        return m
