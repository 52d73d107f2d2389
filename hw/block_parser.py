from contextlib import nullcontext

from amaranth.hdl import *
from amaranth.lib import enum, stream, wiring
from amaranth.lib.fifo import SyncFIFO
from amaranth.lib.wiring import In, Out

from sw_codec.format import (COUNT_BITS, COUNT_K_BITS, DISTANCE_WIDTH_BITS, LENGTH_BITS, MAX_CODE_LENGTH,
                              MAX_EXP_GOLOMB_PREFIX, MIN_BLOCK_BITS, NUM_TABLES_CHOICES, RICE_BIAS_BITS,
                              SYMBOL_BITS, TABLES_LOG2_BITS)

from .bit_reader import BitReader
from .huffman_decoder import CanonicalHuffmanDecoder
from .logic import or_all
from .params import check_block_bits, check_weight_bits
from .tokens import Mode, Slots, TokenKind, member_layout, word_layout


__all__ = ["ParserError", "RiceContext", "BlockParser"]


class ParserError(enum.Enum, shape=4):
    NONE            = 0
    #: A field needs more bits than the stream holds (after ``ended``).
    TRUNCATED       = 1
    #: A Huffman table is malformed, or does not fit this decoder (too many tables, too long).
    BAD_TABLE       = 2
    #: A bit pattern that is no code of the group's table (or the table is empty).
    BAD_CODE        = 3
    #: ``m > min(n, 2**b)``.
    TOO_MANY_VALUES = 4
    #: A group value above the ``b``-bit range, or equal to the implicit value.
    VALUE_RANGE     = 5
    #: A count below 1 or larger than the free slots minus one.
    COUNT_RANGE     = 6
    #: A distance width larger than ``bitlen(n - 1)``.
    WIDTH_RANGE     = 7
    #: A member index outside its domain (or, in ``repeat``, not increasing).
    INDEX_RANGE     = 8
    #: An Exp-Golomb prefix of more than 32 zeros.
    EG_TOO_LONG     = 9
    #: ``layer_block_bits`` outside 4..``block_bits``, or a block size 0 or above ``2**layer_block_bits``.
    BAD_BLOCK_BITS  = 10




def _times_const(value, factor):
    """``value * factor`` for a constant ``factor`` >= 1, by shifts and adds (one carry chain
    for factors with two set bits or of the form 2**j - 1): a multiplier block is slower."""
    if factor & (factor + 1) == 0 and factor > 1:             # 2**j - 1
        return (value << factor.bit_length()) - value
    terms = [value << j for j in range(factor.bit_length()) if factor >> j & 1]
    result = terms[0]
    for term in terms[1:]:
        result = result + term
    return result


def _bit_length(m, value, name):
    """``bitlen(value)`` as a combinational signal (a priority encoder)."""
    result = Signal(range(len(value) + 1), name=name)
    for i in range(len(value)):
        with m.If(value[i]):
            m.d.comb += result.eq(i + 1)
    return result


class RiceContext(wiring.Component):
    """The Rice shift and code table of a Huffman group, combinational, every test side by side.

    The hardware twin of ``sw_codec.huffman.rice_context(domain, count, bias, 2**tables_log2)``
    for ``1 <= count < domain <= 2**block_bits`` (the BlockParser's count range check holds
    that). No test waits for another's result:

    - ``k0 = floor(log2(domain / count))`` is the largest ``i`` with ``count << i <= domain``:
      the tests for ``i = 1..block_bits`` form a thermometer code, and ``k0`` is where it ends.
      ``k = max(0, k0 - bias)``.
    - The table at the capacity ``Tc = num_tables`` is
      ``t = #{u in 1..Tc-1 : Tc * domain >= (Tc + u) * (count << k0)}``, a thermometer code in
      ``u``. Each test is made for every ``i`` at once, ``((Tc + u) * count) << i <= Tc *
      domain`` (the product by shifts and adds), and the one at ``i = k0`` is kept: ``(P + 1)
      * (Tc - 1)`` comparators instead of a chain shift -> subtract -> compare. A layer with
      ``T = Tc / 2**s`` tables uses ``t >> s``, because its tests are those at ``u = j * 2**s``.

    Parameters
    ----------
    block_bits : int
        ``P``: counts and domains up to ``2**P``.
    num_tables : int
        ``Tc``, the largest number of tables (1, 2, 4 or 8).

    Members
    -------
    count : ``In(range(2**P + 1))``, domain : ``In(range(2**P + 1))``
    bias : ``In(4)``
        The layer's Rice bias.
    tables_log2 : ``In(range(log2(Tc) + 1))``
        ``log2`` of the layer's number of tables, at most ``log2(Tc)``.
    k : ``Out(range(P + 1))``, table : ``Out(range(Tc))``
        Combinational.
    """

    def __init__(self, *, block_bits, num_tables):
        if num_tables not in NUM_TABLES_CHOICES:
            raise ValueError(f"num_tables must be one of {NUM_TABLES_CHOICES}, not {num_tables!r}")
        self._block_bits = block_bits
        self._num_tables = num_tables
        self._tc_log2 = (num_tables - 1).bit_length()
        super().__init__({
            "count":       In(range(2 ** block_bits + 1)),
            "domain":      In(range(2 ** block_bits + 1)),
            "bias":        In(RICE_BIAS_BITS),
            "tables_log2": In(range(self._tc_log2 + 1)),
            "k":           Out(range(block_bits + 1)),
            "table":       Out(range(num_tables)),
        })

    def elaborate(self, platform):
        m = Module()
        P, Tc, tc_log2 = self._block_bits, self._num_tables, self._tc_log2
        c, D = self.count, self.domain

        ge = [C(1)] + [Signal(name=f"k0_test_{i}") for i in range(1, P + 1)] + [C(0)]
        m.d.comb += [ge[i].eq((c << i) <= D) for i in range(1, P + 1)]
        at_k0 = [ge[i] & ~ge[i + 1] for i in range(P + 1)]           # one-hot: i == k0
        k0 = Signal(range(P + 1))
        m.d.comb += [
            k0.eq(or_all(Mux(at_k0[i], i, 0) for i in range(1, P + 1))),
            self.k.eq(Mux(k0 > self.bias, k0 - self.bias, 0)),
        ]

        holds = [Signal(name=f"table_test_{u}") for u in range(1, Tc)]
        for u, test in enumerate(holds, start=1):
            times = _times_const(c, Tc + u)
            m.d.comb += test.eq(or_all(at_k0[i] & ((times << i) <= (D << tc_log2))
                                       for i in range(P + 1)))
        # The thermometer's length t: set bits of u where its last one is.
        last = [holds[j] & (~holds[j + 1] if j + 1 < len(holds) else 1)
                for j in range(len(holds))]
        table_cap = Signal(range(Tc))
        m.d.comb += [
            table_cap.eq(or_all(Mux(last[j], j + 1, 0) for j in range(len(holds)))),
            self.table.eq(table_cap >> (tc_log2 - self.tables_log2).as_unsigned()),
        ]
        return m


class BlockParser(wiring.Component):
    """Block parser: a layer payload's bits in, member tokens out.

    The hardware twin of ``sw_codec.decoder.decode_block`` up to the ``DistanceAccumulator``: it
    reads the preamble (loading the Huffman tables into its ``CanonicalHuffmanDecoder``), then
    for every block size it receives on ``blocks``, the block's header and groups, and emits the
    ``BLOCK``, ``MEMBER``... ``END`` tokens that ``trace_layer(...)[1].members`` lists. It owns
    the ``BitReader`` that turns memory words into its bit window.

    The input is the payload without the block offset table: preamble, then the blocks back to
    back, each starting at a byte boundary. In ``raw`` mode it is just the weights, ``b`` bits
    each; blocks are then only a token framing.

    Parameters
    ----------
    weight_bits : int
        ``b``: any width of the format, 2..16.
    block_bits : int
        Largest block size exponent ``P`` supported, 4..16.
    word_bits : int
        Memory word width of the input stream: 32, 64 or 128.
    max_code_len, num_tables : int
        Huffman decoder capacity (see ``CanonicalHuffmanDecoder``); streams with longer codes or
        more tables are rejected with ``BAD_TABLE``.
    window_bits : int
        Bit window width, at least ``max_code_len + block_bits`` and ``weight_bits``. Default 32.

    Members
    -------
    i : ``In(stream.Signature(data.StructLayout({"data": word_bits, "last": 1})))``
        Memory words of the stream (see ``BitReader``); ``last`` on the final word.
    blocks : ``In(stream.Signature(range(2**block_bits + 1)))``
        The size ``n`` of each block, in order; one is taken when the previous block is done.
    o : ``Out(stream.Signature(member_layout(weight_bits, block_bits)))``
        Tokens; see ``hw.tokens``.
    mode : ``In(Mode)``, slots : ``In(Slots)``, layer_block_bits : ``In(5)``
        Layer configuration, static while a layer is parsed.
    clear : ``In(1)``
        Synchronous restart for a new layer: resets the parser, its tables and the bit reader.
        The preamble is parsed right after reset or ``clear``.
    error : ``Out(1)``, error_code : ``Out(ParserError)``
        Sticky. Errors are reported in stream order (the first one the software decoder would
        raise). On an error the parser stops: ``o.valid`` goes low at once (tokens not yet
        taken are dropped, the layer being lost anyway) and nothing more is consumed. No member
        at or after the failing field is emitted; the two fields after it may already have
        been consumed.

    Timing and backpressure
    -----------------------
    ``o`` comes from a 2-entry FIFO (registered ``ready`` towards the parser). Member fields are
    decoded at one per cycle in every mode while the FIFO has room and the bit reader has bits;
    the cycle a field is consumed depends only on its size (the Huffman code length plus extra
    bits), and a member passes two more stages (distance, then index check) before it is written
    to the FIFO. Block and group headers take a few cycles each: an Exp-Golomb code 2 when it
    fits the window (else 3 or more), and the value of m or of a count is used in the cycle that
    reads it; a group's value delta and count 4 cycles together (the count's code is scanned in
    the cycle after the delta's), then a Huffman group's table select 1 (with its Rice context,
    computed in that cycle) and 1 before its first field is decoded; each Huffman table of the
    preamble takes a header read per field plus 2 cycles (its loads reach the decoder through
    registers, and the FSM waits for the decoder's checks after the counts and after the
    symbols). Every consume amount is a register: a Huffman member's comes from the decoder, a
    repeat/distance member's is the group's ``width``, and a header state's is ``read_bits``,
    set when the FSM enters the state. The bit reader shifts by that amount (chosen by the state
    alone) whether or not it is taken; the gates (``count >= amount``, both registers, the
    state's condition, the member pipeline's room, ``error``) only decide at the end of the
    cycle whether the shifted or the unshifted buffer is kept (the reader's ``late_take``).
    Nothing is consumed while ``o`` is stalled.
    """

    def __init__(self, *, weight_bits, block_bits, word_bits=32, max_code_len=15, num_tables=4,
                 window_bits=32):
        check_weight_bits(weight_bits)
        check_block_bits(block_bits)
        if word_bits not in (32, 64, 128):
            raise ValueError(f"word_bits must be 32, 64 or 128, not {word_bits!r}")
        if not isinstance(max_code_len, int) or not 1 <= max_code_len <= MAX_CODE_LENGTH:
            raise ValueError(f"max_code_len must be an integer in 1..{MAX_CODE_LENGTH}, not {max_code_len!r}")
        if num_tables not in NUM_TABLES_CHOICES:
            raise ValueError(f"num_tables must be one of {NUM_TABLES_CHOICES}, not {num_tables!r}")
        if not isinstance(window_bits, int) or not (
                max(weight_bits, max_code_len + block_bits) <= window_bits <= word_bits):
            raise ValueError(f"window_bits must be in max(weight_bits, max_code_len + block_bits)"
                             f"..word_bits, not {window_bits!r}")
        self._weight_bits = weight_bits
        self._block_bits = block_bits
        self._word_bits = word_bits
        self._max_code_len = max_code_len
        self._num_tables = num_tables
        self._window_bits = window_bits

        super().__init__({
            "i":      In(stream.Signature(word_layout(word_bits))),
            "blocks": In(stream.Signature(range(2 ** block_bits + 1))),
            "o":      Out(stream.Signature(member_layout(weight_bits, block_bits))),
            "mode":             In(Mode),
            "slots":            In(Slots),
            "layer_block_bits": In(5),
            "clear":            In(1),
            "error":            Out(1),
            "error_code":       Out(ParserError),
        })

    @property
    def weight_bits(self):
        return self._weight_bits

    @property
    def block_bits(self):
        return self._block_bits

    @property
    def word_bits(self):
        return self._word_bits

    def elaborate(self, platform):
        top = Module()
        m = Module()
        # `clear` restarts everything: FSM, registers, tables and the reader's buffer.
        top.submodules.core = ResetInserter(self.clear)(m)

        b, P, W = self._weight_bits, self._block_bits, self._window_bits

        # The Huffman decoder looks one field further than the window: a field (code and extra
        # bits) plus the next code.
        ahead = max(W, 2 * self._max_code_len + P)
        m.submodules.reader = reader = BitReader(word_bits=self._word_bits, window_bits=W,
                                                 guard_overrun=False, align_alone=True,
                                                 ahead_bits=ahead, place_after_shift=True,
                                                 late_take=True)
        m.submodules.huffman = huffman = CanonicalHuffmanDecoder(
            max_code_len=self._max_code_len, num_tables=self._num_tables, window_bits=ahead,
            max_extra_bits=P)
        wiring.connect(m, wiring.flipped(self.i), reader.i)

        # Table loads reach the Huffman decoder one edge after the FSM reads their field: the
        # strobes and values are registers, so the table writes (every table's limits and
        # offsets, and the symbol memory's write port) start at a register instead of
        # behind the bit reader's count and the FSM. Loading is once per layer; the FSM waits a
        # cycle where it reads the decoder's load results (TABLE_COUNTS_WAIT, TABLE_SYMBOLS_WAIT).
        load = {name: Signal.like(getattr(huffman, name), name=name) for name in (
            "load_begin", "load_table", "load_num_symbols", "load_count_en", "load_count",
            "load_symbol_en", "load_symbol")}
        m.d.sync += [getattr(huffman, name).eq(sig) for name, sig in load.items()]

        window, count, ended = reader.window, reader.count, reader.ended
        align = Signal()
        error = Signal()
        member_gate = Signal()                   # MEMBERS may consume `member_bits`
        member_bits = Signal(range(W + 1))       # ... that many bits
        member_fits = Signal()                   # ... if the field is there
        # The reader's amount (`consume`, or `align` to the byte boundary) comes from registers
        # and the state; whether it is taken this cycle (`take`) is decided late, from the gates
        # below, and only selects between the reader's moved and unmoved buffer. Nothing is
        # consumed once an error is flagged (a pipeline stage may flag it in any state).
        m.d.comb += reader.clear.eq(self.clear)

        def peek(nbits):
            """The next `nbits` stream bits (an int or a signal <= W) as an unsigned value."""
            if isinstance(nbits, int):
                return window[W - nbits:]
            return window >> (W - nbits).as_unsigned()

        # --- Registers ---
        error_code = Signal(ParserError)
        count_k    = Signal(COUNT_K_BITS)
        rice_bias  = Signal(RICE_BIAS_BITS)
        tables_log2 = Signal(TABLES_LOG2_BITS)
        table_i    = Signal(range(8))
        lengths_left = Signal(LENGTH_BITS)
        symbols_left = Signal.like(huffman.load_total)

        n          = Signal(range(2 ** P + 1))    # block size
        free       = Signal(range(2 ** P + 1))    # slots no group of this block has claimed
        domain     = Signal(range(2 ** P + 1))    # D of the current group
        groups_left = Signal(range(2 ** P + 1))
        first_group = Signal()
        implicit   = Signal(signed(b))
        value      = Signal(signed(b))
        members    = Signal(range(2 ** P + 1))    # c of the current group
        prev_count = Signal(range(2 ** P + 1))    # c of the previous group in the block (or 0)
        members_left = Signal(range(2 ** P + 1))
        first_member = Signal()
        last_index = Signal(range(2 ** P + 1))
        width      = Signal(range(P + 1))         # member field width (repeat / distance)
        escape_bits = Signal(range(P + 1))

        # Exp-Golomb reader, a subroutine shared by the header fields: zeros, then value bits
        # (up to 32 + max_eg_k + 1 of them, over one or two cycles), then back to `eg_ret`.
        # Count order k_c = (bitlen(p) >> 1) + count_k, p < 2**P the previous count.
        max_eg_k = ((P + 1) >> 1) + (2 ** COUNT_K_BITS - 1)
        eg_value_bits = MAX_EXP_GOLOMB_PREFIX + max_eg_k + 1
        eg_k     = Signal(range(max_eg_k + 1))
        eg_zeros = Signal(range(MAX_EXP_GOLOMB_PREFIX + W + 1))
        eg_need  = Signal(range(eg_value_bits + 1))
        eg_acc   = Signal(eg_value_bits)          # y = x + 2**k once done
        eg_ret   = Signal(2)
        eg_leading = Signal(range(W + 1))         # EG_SCAN's view of the window
        eg_one   = Signal()
        eg_count = Signal(range(W + 1))
        eg_ended = Signal()
        eg_too_long = Signal()
        eg_whole = Signal()
        eg_whole_shift = Signal(range(W + 1))    # W - the code's length, when `eg_whole`
        RET_M, RET_DELTA, RET_COUNT = 0, 1, 2
        # A count's range check and value, prepared by EG_SCAN (see GOT_COUNT).
        cnt_even_min = Signal(signed(max_eg_k + P + 4))
        cnt_even_max = Signal.like(cnt_even_min)
        cnt_odd_min = Signal.like(cnt_even_min)
        cnt_odd_max = Signal.like(cnt_even_min)
        cnt_base_even = Signal(P + 1)
        cnt_base_odd = Signal(P + 1)
        # A value delta's range check, prepared by EG_SCAN (see GOT_DELTA).
        value_room = Signal(signed(b + 2))
        value_to_implicit = Signal(signed(b + 2))

        # --- Output register ---
        # Members leave through a two-stage pipeline after the field is consumed (S2: the
        # distance from the Huffman symbol, S3: the index range check and the emit), so that the
        # consume path holds only what the bit count needs. Other tokens (BLOCK, END, raw
        # members) are emitted by the FSM once the pipeline is empty, which keeps them in order.
        # The tokens go through a two-entry FIFO whose `w_rdy` is a register: the next stage's
        # `ready` (the accumulator's, deep logic) reaches no consume or emit decision.
        m.submodules.out_fifo = out_fifo = SyncFIFO(width=member_layout(b, P).size, depth=2)
        out = Signal(member_layout(b, P))
        m.d.comb += [
            out_fifo.w_data.eq(out),
            self.o.valid.eq(out_fifo.r_rdy & ~error),
            self.o.payload.eq(out_fifo.r_data),
            out_fifo.r_en.eq(self.o.ready),
            self.error.eq(error),
            self.error_code.eq(error_code),
        ]
        out_free = out_fifo.w_rdy

        s2_valid = Signal()
        s3_valid = Signal()
        pipe_empty = ~s2_valid & ~s3_valid
        advance = ~s3_valid | out_free            # the member pipeline moves
        can_emit = out_free & pipe_empty          # the FSM may emit a token

        def emit(kind, value=0, index=0, first=0, absolute=0):
            m.d.comb += [
                out_fifo.w_en.eq(1),
                out.kind.eq(kind),
                out.value.eq(value),
                out.index.eq(index),
                out.first.eq(first),
                out.absolute.eq(absolute),
            ]

        def fail(code):
            # Errors are reported in stream order: a member still in the pipeline may fail the
            # index check first. No state fails while consuming, so waiting loses nothing.
            with m.If(pipe_empty & ~error):
                m.d.sync += [error.eq(1), error_code.eq(code)]
                goto("ERROR")

        in_state = [None]                        # the state being described (for `read`)

        class state:
            """``m.State(name)`` that moves to ERROR once ``error`` is set (by stage 3)."""
            def __init__(self_, name):
                self_.name = name
                self_.ctx = m.State(name)

            def __enter__(self_):
                in_state[0] = self_.name
                return self_.ctx.__enter__()

            def __exit__(self_, *exc):
                with m.If(error):
                    goto("ERROR")
                in_state[0] = None
                return self_.ctx.__exit__(*exc)

        # The width of the field a header state reads is a register, `read_bits`, set when the
        # FSM enters the state (`goto`): the consume amount is then `read_bits` gated by
        # `count >= read_bits` (registers both) and by `read_now` (the state and its condition),
        # not a multiplexer over the states' widths.
        read_bits = Signal(range(W + 1))
        read_now = Signal()
        read_fits = Signal()
        m.d.comb += read_fits.eq(count >= read_bits)
        READ_BITS = {"COUNT_K": COUNT_K_BITS, "RICE_BIAS": RICE_BIAS_BITS,
                     "TABLES_LOG2": TABLES_LOG2_BITS, "TABLE_SYMBOLS": SYMBOL_BITS,
                     "TABLE_MAX_LEN": LENGTH_BITS, "TABLE_COUNT": COUNT_BITS,
                     "TABLE_SYMBOL": SYMBOL_BITS, "RAW_MEMBER": b, "IMPLICIT": b, "GROUP": b,
                     "WIDTH": DISTANCE_WIDTH_BITS}

        # Every transition goes through `goto`, so these flags always tell the state the FSM
        # is in as registers of their own (they choose the bit reader's amount, whose path to
        # the buffer should not start with a state decode).
        in_members = Signal()                    # MEMBERS: the reader takes `member_bits`
        in_align = Signal()                      # ALIGN, BLOCK_END: the reader aligns
        in_select = Signal()                     # GROUP_SELECT: the Huffman decoder's select

        def goto(name):
            """``m.next = name``, the width of the field that state reads, and the flags."""
            m.next = name
            if name in READ_BITS:
                m.d.sync += read_bits.eq(READ_BITS[name])
            m.d.sync += [in_members.eq(name == "MEMBERS"),
                         in_align.eq(name in ("ALIGN", "BLOCK_END")),
                         in_select.eq(name == "GROUP_SELECT")]

        def read(nbits=None, when=C(1), value=None):
            """`with read() as v:` runs its body when the state's field is there (and `when`),
            consuming it; fails TRUNCATED if the stream ended short. The field is READ_BITS of
            the state (which was entered with `goto`), or `nbits`, equal to `read_bits`, in the
            Exp-Golomb states; `v` is its value, or `value` (the same bits, shifted into place
            by an amount from a register of its own)."""
            if nbits is None:
                nbits = READ_BITS[in_state[0]]
            class _Read:
                def __enter__(self_):
                    m.d.comb += read_now.eq(when)
                    self_.outer = m.If(read_fits)
                    self_.outer.__enter__()
                    self_.inner = m.If(when)
                    self_.inner.__enter__()
                    return peek(nbits) if value is None else value

                def __exit__(self_, *exc):
                    self_.inner.__exit__(*exc)
                    self_.outer.__exit__(*exc)
                    with m.Elif(ended):
                        fail(ParserError.TRUNCATED)
            return _Read()

        def start_eg(k, ret):
            m.d.sync += [eg_k.eq(k), eg_ret.eq(ret), eg_zeros.eq(0)]
            goto("EG_SCAN")

        # Where the window's first one bit is (bits past `count` read as zero).
        eg_first_one = Signal(range(W + 1))
        for i in reversed(range(W)):             # the first one bit from the MSB wins
            with m.If(window[W - 1 - i]):
                m.d.comb += eg_first_one.eq(i)

        def eg_scan(k, zeros):
            """EG_SCAN's work, for a code with parameter `k` whose first `zeros` zeros are
            consumed (a register, or 0 from GOT_DELTA; `k` a register): the view of the window
            EG_ZEROS reads, and the count's range thresholds, in registers."""
            one = window != 0
            total = 2 * eg_first_one + k + 1
            # The usual case: the whole code (zeros, then as many value bits plus k) is in
            # this window, and is read in one go.
            whole = one & (zeros == 0) & (total <= W)
            m.d.sync += [
                eg_leading.eq(eg_first_one),
                eg_one.eq(one),
                eg_count.eq(count),
                eg_ended.eq(ended),
                eg_too_long.eq(zeros + Mux(one, eg_first_one, count) > MAX_EXP_GOLOMB_PREFIX),
                eg_whole.eq(whole),
                eg_whole_shift.eq(W - total),
                # What EG_ZEROS takes: the whole code, else the zeros before the one bit,
                # else every bit there is (all zeros).
                read_bits.eq(Mux(whole, total, Mux(one, eg_first_one, count))),
            ]
            # For a count (GOT_COUNT), from p, K and free, which the code does not change:
            # 1 <= c < free holds for y in [K + 2 - 2p, 2 free - 2p + K) if z is even and
            # in (2p + K - 1 - 2 free, 2p + K - 3] if z is odd, and c = base + y >> 1 or
            # base - y >> 1 (mod 2**(P + 1), exact when in range).
            K = Signal(max_eg_k + 1, name=f"eg_K_from_{k.name}")
            m.d.comb += K.eq(1 << k)
            m.d.sync += [
                cnt_even_min.eq(K + 2 - (prev_count << 1)),
                cnt_even_max.eq((free << 1) - (prev_count << 1) + K),
                cnt_odd_min.eq((prev_count << 1) + K - 1 - (free << 1)),
                cnt_odd_max.eq((prev_count << 1) + K - 3),
                cnt_base_even.eq(prev_count - (K >> 1)),
                cnt_base_odd.eq(prev_count + (K >> 1) - (k != 0)),
            ]

        # --- Datapath of the group header: domain, Rice context, widths ---
        n_bits = _bit_length(m, n - 1, "n_bits")                  # bitlen(n - 1)
        free_bits = _bit_length(m, free - 1, "free_bits")         # bitlen(free - 1)
        prev_count_len = _bit_length(m, prev_count, "prev_count_len")
        # The Rice parameter of the next count's code, k_c = count_k + bitlen(p) // 2, a cycle
        # behind `prev_count` (GROUP and GOT_DELTA, which use it, come at least two cycles
        # after the edge that sets `prev_count`).
        count_eg_k = Signal.like(eg_k)
        m.d.sync += count_eg_k.eq(count_k + (prev_count_len >> 1))
        # The Rice context of a Huffman group from registers, at once: GROUP_SELECT hands its k
        # and table straight to the Huffman decoder's select. (`keep`: without it the synthesis
        # merges the context's logic into the select's multiplexers, a larger netlist.)
        m.submodules.rice_context = rice_context = RiceContext(block_bits=P,
                                                               num_tables=self._num_tables)
        select_k = Signal(range(P + 1), attrs={"keep": 1})
        select_table = Signal(range(self._num_tables), attrs={"keep": 1})
        m.d.comb += [
            rice_context.count.eq(members),
            rice_context.domain.eq(domain),
            rice_context.bias.eq(rice_bias),
            rice_context.tables_log2.eq(tables_log2),
            select_k.eq(rice_context.k),
            select_table.eq(rice_context.table),
        ]

        # --- Member datapath: one field per cycle ---
        # Stage 1 (the MEMBERS state) only decides how many bits the field takes: in huffman
        # mode the code length plus the group's extra bits, decoded by the Huffman decoder a
        # cycle ahead (its outputs are registers).
        field_bits = Signal(range(W + 1))
        field_ready = Signal()                   # the window holds the whole field
        field_bad_code = Signal()
        take = Signal()                          # stage 1 consumes a member field
        m.d.comb += [
            huffman.window.eq(reader.ahead),
            huffman.window_count.eq(reader.ahead_count),
            huffman.ended.eq(ended),
            huffman.take.eq(take),
        ]
        # A full window holds any field (consume <= max_code_len + P <= W); before the stream
        # has ended, a short window waits for words. After the end, a valid code is taken
        # without comparing its size with `count` first: the comparison is registered with the
        # member (`s2_short`), which then fails TRUNCATED in stage 3, in stream order, instead of
        # being emitted (the bit reader refuses an overrun, so nothing is consumed). The
        # decoder's outputs are registers (the field's decode is made a cycle ahead), so the
        # consume path is registers -> bit reader shift.
        full = reader.full
        with m.If(self.mode == Mode.HUFFMAN):
            m.d.comb += [
                field_bits.eq(huffman.consume),
                field_ready.eq(huffman.valid & (full | ended)),
                field_bad_code.eq(huffman.invalid),
                member_bits.eq(huffman.consume),
                member_fits.eq(huffman.valid),
            ]
        with m.Else():
            m.d.comb += [
                field_bits.eq(width),
                field_ready.eq(count >= width),
                member_bits.eq(width),
                member_fits.eq(count >= width),
            ]

        # Stage 2: the field (the Huffman decoder's distance, or the raw field).
        s2_first = Signal()
        s2_short = Signal()
        s2_raw = Signal(P + SYMBOL_BITS)
        with m.If(take):
            m.d.sync += [s2_first.eq(first_member), s2_raw.eq(peek(width)),
                         s2_short.eq(count < field_bits)]
        s2_field = Signal(P + SYMBOL_BITS)
        m.d.comb += s2_field.eq(Mux(self.mode == Mode.HUFFMAN, huffman.distance, s2_raw))

        # Stage 3: the index, its range check, the emit.
        s3_first = Signal()
        s3_short = Signal()
        s3_field = Signal(P + SYMBOL_BITS)
        with m.If(advance):
            m.d.sync += [
                s2_valid.eq(take),
                s3_valid.eq(s2_valid),
                s3_first.eq(s2_first),
                s3_short.eq(s2_short),
                s3_field.eq(s2_field),
            ]
        index = Signal(P + SYMBOL_BITS + 1)
        index_ok = Signal()
        with m.If((self.mode == Mode.REPEAT) | s3_first):
            m.d.comb += index.eq(s3_field)
        with m.Else():
            m.d.comb += index.eq(last_index + s3_field + 1)
        m.d.comb += index_ok.eq((index < domain) &
                                (s3_first | (self.mode != Mode.REPEAT) | (index > last_index)))

        hi = 2 ** (b - 1) - 1

        # A range check made on the window's bits in EG_ZEROS (`got_m`, `got_count` with
        # `late`) fails one edge later, from registers: the FSM goes on as if it held, and the
        # check's comparators reach no state or width register. Nothing is lost: the state after
        # may consume a field, but no token written after it becomes visible (`o.valid` is low
        # once `error` is set), and no earlier field is still in the member pipeline.
        late_error = Signal()
        late_code = Signal(ParserError)
        m.d.sync += late_error.eq(0)

        def check(bad, code, late):
            """`with check(...):` runs its body if `bad` is false; with `late`, always, and
            `bad` fails `code` one edge later."""
            if late:
                m.d.sync += [late_error.eq(bad), late_code.eq(code)]
                return nullcontext()
            with m.If(bad):
                fail(code)
            return m.Else()

        def got_m(y, late=False):
            """GOT_M's work: y = (m - 1) + 1 = m, the block's number of values."""
            with check((y > n) | (y > 2 ** b), ParserError.TOO_MANY_VALUES, late):
                m.d.sync += [groups_left.eq(y - 1), first_group.eq(1), prev_count.eq(0)]
                goto("IMPLICIT")

        def got_count(y, late=False):
            """GOT_COUNT's work, from y, the count's Exp-Golomb code read as a number (`eg_acc`
            in GOT_COUNT, the window's bits in EG_ZEROS, `late`): the count, its range check, the
            group's domain and widths, and the next state. Waits in GOT_COUNT while the member
            pipeline still uses the previous group's domain."""
            # y = z + K, K = 2**k_c; z is the zigzag of r = c - p: 2r (r >= 0), -2r - 1
            # (r < 0). So c = p + (y - K) / 2 when z is even, p - (y - K + 1) / 2 when z is
            # odd, and 1 <= c < free is a range of y (see `eg_scan`): the range check is two
            # comparisons of y with thresholds in registers, and c a (P + 1)-bit add, side by
            # side.
            z_odd = y[0] ^ (eg_k == 0)
            half = y[1:]                                            # y >> 1
            c_bad = Mux(z_odd, (y > cnt_odd_max) | (y <= cnt_odd_min),
                        (y < cnt_even_min) | (y >= cnt_even_max))
            c = Signal(range(2 ** P + 1), name="count_value")
            m.d.comb += c.eq(Mux(z_odd, cnt_base_odd - half, cnt_base_even + half))
            # The group's field width (repeat) and escape width (huffman), bitlen(D - 1),
            # from the registers D comes from.
            domain_bits = Mux(self.slots == Slots.FREE, free_bits, n_bits)
            with m.If(pipe_empty):     # the member pipeline uses value/domain
                with check(c_bad, ParserError.COUNT_RANGE, late):
                    m.d.sync += [
                        prev_count.eq(c),
                        members.eq(c),
                        members_left.eq(c),
                        first_member.eq(1),
                        domain.eq(Mux(self.slots == Slots.FREE, free, n)),
                        width.eq(domain_bits),
                        escape_bits.eq(domain_bits),
                    ]
                    with m.If(self.mode == Mode.DISTANCE):
                        goto("WIDTH")
                    with m.Elif(self.mode == Mode.HUFFMAN):
                        goto("GROUP_SELECT")
                    with m.Else():
                        goto("MEMBERS")
            with m.Else():
                goto("GOT_COUNT")

        with m.FSM():
            with state("START"):
                with m.If((self.layer_block_bits < MIN_BLOCK_BITS) | (self.layer_block_bits > P)):
                    fail(ParserError.BAD_BLOCK_BITS)
                with m.Elif(self.mode == Mode.RAW):
                    goto("BLOCK_CMD")
                with m.Else():
                    goto("COUNT_K")

            # --- Preamble ---
            with state("COUNT_K"):
                with read() as v:
                    m.d.sync += count_k.eq(v)
                    with m.If(self.mode == Mode.HUFFMAN):
                        goto("RICE_BIAS")
                    with m.Else():
                        goto("ALIGN")

            with state("RICE_BIAS"):
                with read() as v:
                    m.d.sync += rice_bias.eq(v)
                    goto("TABLES_LOG2")

            with state("TABLES_LOG2"):
                with read() as v:
                    m.d.sync += [tables_log2.eq(v), table_i.eq(0)]
                    with m.If((1 << v) > self._num_tables):
                        fail(ParserError.BAD_TABLE)
                    with m.Else():
                        goto("TABLE_SYMBOLS")

            with state("TABLE_SYMBOLS"):
                with read() as v:
                    m.d.comb += [
                        load["load_begin"].eq(1),
                        load["load_table"].eq(table_i),
                        load["load_num_symbols"].eq(v + 1),
                    ]
                    goto("TABLE_MAX_LEN")

            with state("TABLE_MAX_LEN"):
                with read() as v:
                    m.d.sync += lengths_left.eq(v)
                    with m.If((v == 0) | (v > self._max_code_len)):
                        fail(ParserError.BAD_TABLE)
                    with m.Else():
                        goto("TABLE_COUNT")

            with state("TABLE_COUNT"):
                with read() as v:
                    m.d.comb += [load["load_count_en"].eq(1), load["load_count"].eq(v)]
                    m.d.sync += lengths_left.eq(lengths_left - 1)
                    with m.If(lengths_left == 1):
                        goto("TABLE_COUNTS_WAIT")

            with state("TABLE_COUNTS_WAIT"):
                # The last count reaches the decoder at this edge; its totals the edge after.
                goto("TABLE_COUNTS_DONE")

            with state("TABLE_COUNTS_DONE"):
                # Over-subscribed or more codes than symbols: stop before reading the symbols.
                m.d.sync += symbols_left.eq(huffman.load_total)
                with m.If(huffman.load_error):
                    fail(ParserError.BAD_TABLE)
                with m.Elif(huffman.load_total == 0):
                    goto("TABLE_DONE")
                with m.Else():
                    goto("TABLE_SYMBOL")

            with state("TABLE_SYMBOL"):
                with read() as v:
                    m.d.comb += [load["load_symbol_en"].eq(1), load["load_symbol"].eq(v)]
                    m.d.sync += symbols_left.eq(symbols_left - 1)
                    with m.If(symbols_left == 1):
                        goto("TABLE_SYMBOLS_WAIT")

            with state("TABLE_SYMBOLS_WAIT"):
                # As TABLE_COUNTS_WAIT: the last symbol's checks are valid from the next cycle.
                goto("TABLE_DONE")

            with state("TABLE_DONE"):
                with m.If(huffman.load_error | huffman.load_incomplete):
                    fail(ParserError.BAD_TABLE)
                with m.Elif(table_i == (1 << tables_log2) - 1):
                    goto("ALIGN")
                with m.Else():
                    m.d.sync += table_i.eq(table_i + 1)
                    goto("TABLE_SYMBOLS")

            with state("ALIGN"):
                m.d.comb += align.eq(1)
                goto("BLOCK_CMD")

            # --- Blocks ---
            with state("BLOCK_CMD"):
                m.d.comb += self.blocks.ready.eq(~error)
                with m.If(self.blocks.valid):
                    size = self.blocks.payload
                    m.d.sync += [n.eq(size), free.eq(size), last_index.eq(0)]
                    with m.If((size == 0) | (size > (1 << self.layer_block_bits))):
                        fail(ParserError.BAD_BLOCK_BITS)
                    with m.Elif(self.mode == Mode.RAW):
                        goto("RAW_BLOCK")
                    with m.Else():
                        start_eg(0, RET_M)

            # Raw: every weight is its own group of one, at its own position.
            with state("RAW_BLOCK"):
                with m.If(can_emit):
                    emit(TokenKind.BLOCK, 0, n)
                    goto("RAW_MEMBER")

            with state("RAW_MEMBER"):
                with read(when=can_emit) as v:
                    emit(TokenKind.MEMBER, v.as_signed(), last_index, first=1, absolute=1)
                    m.d.sync += last_index.eq(last_index + 1)
                    with m.If(last_index == n - 1):
                        goto("RAW_END")

            with state("RAW_END"):
                with m.If(can_emit):
                    emit(TokenKind.END)
                    goto("BLOCK_CMD")

            # Exp-Golomb subroutine. EG_SCAN registers where the first one bit of the window
            # is (and how many bits are valid); EG_ZEROS consumes the zeros from those
            # registers, so no priority encoder drives the bit reader's shift. GOT_DELTA does
            # EG_SCAN's work for the count's code itself (`eg_scan`), one cycle per group less.
            with state("EG_SCAN"):
                eg_scan(eg_k, eg_zeros)
                m.d.sync += [
                    # For a value delta (GOT_DELTA), from the previous value and the implicit.
                    value_room.eq(hi - value),
                    value_to_implicit.eq(implicit - value),
                ]
                goto("EG_ZEROS")

            def eg_return(y=None):
                """Back from the subroutine with y in `eg_acc`; or, with `y`, the code read whole
                from the window in EG_ZEROS: an m or a count is then used at once (GOT_M's or
                GOT_COUNT's work, its range check late; one cycle per block or group less). A
                value delta goes to GOT_DELTA, which scans the count's code behind it."""
                with m.Switch(eg_ret):
                    with m.Case(RET_M):
                        if y is None:
                            goto("GOT_M")
                        else:
                            got_m(y, late=True)
                    with m.Case(RET_DELTA):
                        goto("GOT_DELTA")
                    with m.Default():
                        if y is None:
                            goto("GOT_COUNT")
                        else:
                            got_count(y, late=True)

            with state("EG_ZEROS"):
                zeros = eg_zeros + eg_leading
                goto("EG_SCAN")
                with m.If(eg_whole):
                    # The leading zeros add nothing to the value: y is the code read as a number.
                    with read(read_bits, value=window >> eg_whole_shift) as v:
                        m.d.sync += eg_acc.eq(v)
                        eg_return(v)
                with m.Elif(eg_one):
                    with m.If(eg_too_long):
                        fail(ParserError.EG_TOO_LONG)
                    with m.Else():
                        m.d.comb += read_now.eq(1)       # the zeros: read_bits = eg_leading
                        need = zeros + eg_k + 1
                        m.d.sync += [
                            eg_need.eq(need),
                            read_bits.eq(Mux(need > W, W, need)),
                            eg_acc.eq(0),
                        ]
                        goto("EG_VALUE")
                with m.Elif(eg_count != 0):
                    with m.If(eg_too_long):
                        fail(ParserError.EG_TOO_LONG)
                    with m.Else():
                        m.d.comb += read_now.eq(1)       # all zeros: read_bits = eg_count
                        m.d.sync += eg_zeros.eq(eg_zeros + eg_count)
                with m.Elif(eg_ended):
                    fail(ParserError.TRUNCATED)

            with state("EG_VALUE"):
                # The bits read this cycle, at most a window's worth: read_bits = min(eg_need, W).
                with read(read_bits) as v:
                    rest = eg_need - read_bits
                    m.d.sync += [
                        eg_acc.eq((eg_acc << read_bits) | v),
                        eg_need.eq(rest),
                        read_bits.eq(Mux(rest > W, W, rest)),
                    ]
                    with m.If(eg_need == read_bits):
                        eg_return()

            with state("GOT_M"):
                # (EG_ZEROS does this itself for an m read whole.)
                got_m(eg_acc)

            with state("IMPLICIT"):
                with read(when=can_emit) as v:
                    m.d.sync += implicit.eq(v.as_signed())
                    emit(TokenKind.BLOCK, v.as_signed(), n)
                    with m.If(groups_left == 0):
                        goto("BLOCK_END")
                    with m.Else():
                        goto("GROUP")

            with state("GROUP"):
                with m.If(first_group):
                    with read() as v:
                        m.d.sync += value.eq(v.as_signed())
                        with m.If(v.as_signed() == implicit):
                            fail(ParserError.VALUE_RANGE)
                        with m.Else():
                            start_eg(count_eg_k, RET_COUNT)          # = count_k: p = 0
                with m.Else():
                    start_eg(0, RET_DELTA)

            with state("GOT_DELTA"):
                # eg_acc = (value - previous - 1) + 1
                # The count's code starts at the window: scan it now (EG_SCAN's work), in every
                # cycle of the state, so that neither the wait nor the range check gates it.
                m.d.sync += [eg_k.eq(count_eg_k), eg_ret.eq(RET_COUNT), eg_zeros.eq(0)]
                eg_scan(count_eg_k, C(0, eg_zeros.shape()))
                with m.If(pipe_empty):     # the member pipeline uses value/domain
                    new_value = (value + eg_acc[:b])[:b].as_signed()
                    # value + eg_acc > hi, or == implicit, against thresholds from EG_SCAN.
                    with m.If((eg_acc > value_room) | (eg_acc == value_to_implicit)):
                        fail(ParserError.VALUE_RANGE)
                    with m.Else():
                        m.d.sync += value.eq(new_value)
                        goto("EG_ZEROS")

            with state("GOT_COUNT"):
                # (EG_ZEROS does this itself for a count read whole.)
                got_count(eg_acc)

            with state("GROUP_SELECT"):
                # The Huffman decoder copies the group's table into its registers, with the Rice
                # context computed from c and D in this cycle (see `RiceContext`). (`select` is
                # the state's flag, a register: it steers the decode register. The table and the
                # Rice shift come from the context's comparators on registers, the escape width
                # from its register, in every state.)
                goto("MEMBERS")

            with state("WIDTH"):
                with read() as v:
                    m.d.sync += width.eq(v)
                    with m.If(v > n_bits):
                        fail(ParserError.WIDTH_RANGE)
                    with m.Else():
                        goto("MEMBERS")

            with state("MEMBERS"):
                # The consume path: the decoder's registered code length + extra bits -> reader,
                # gated only by registers (state, pipeline room, full window or ended, error).
                m.d.comb += member_gate.eq(advance & ~error &
                                           ((self.mode != Mode.HUFFMAN) | full | ended))
                with m.If(field_ready):
                    with m.If(advance & ~error):
                        m.d.comb += take.eq(1)
                        m.d.sync += [
                            first_member.eq(0),
                            members_left.eq(members_left - 1),
                        ]
                        with m.If(members_left == 1):
                            m.d.sync += [
                                free.eq(free - members),
                                groups_left.eq(groups_left - 1),
                                first_group.eq(0),
                            ]
                            with m.If(groups_left == 1):
                                goto("BLOCK_END")
                            with m.Else():
                                start_eg(0, RET_DELTA)      # the next group's value delta
                with m.Elif(field_bad_code):
                    fail(ParserError.BAD_CODE)
                with m.Elif(ended & (self.mode != Mode.HUFFMAN)):
                    # (A Huffman field not yet `known` after the end will be next cycle.)
                    fail(ParserError.TRUNCATED)

            with state("BLOCK_END"):
                # The block's padding: skip to the next byte, where the next block starts.
                with m.If(can_emit):
                    emit(TokenKind.END)
                    m.d.comb += align.eq(1)
                    goto("BLOCK_CMD")

            with m.State("ERROR"):
                pass

        # The reader: members take the field's size (the decoder's registered code length plus
        # extra bits, or the group's width), header states `read_bits`, the align states the
        # bits to the next byte boundary.
        m.d.comb += [
            huffman.select.eq(in_select),
            huffman.table.eq(select_table),
            huffman.rice_k.eq(select_k),
            huffman.escape_bits.eq(escape_bits),
            reader.consume.eq(Mux(in_members, member_bits, read_bits)),
            reader.align.eq(in_align),
            reader.take.eq(~error & ((read_now & read_fits) | (member_gate & member_fits) | align)),
        ]

        # Stage 3 (after the FSM: its error is the earlier one in the stream and wins).
        with m.If(s3_valid & ~error):
            with m.If(s3_short):
                m.d.sync += [error.eq(1), error_code.eq(ParserError.TRUNCATED)]
            with m.Elif(~index_ok):
                m.d.sync += [error.eq(1), error_code.eq(ParserError.INDEX_RANGE)]
            with m.Elif(out_free):
                emit(TokenKind.MEMBER, value, s3_field, first=s3_first,
                     absolute=self.mode == Mode.REPEAT)
                m.d.sync += last_index.eq(index)

        # A late range check (see `check`): the FSM's own failures in this cycle are later in
        # the stream, and the member pipeline was empty when the field was read.
        with m.If(late_error & ~error):
            m.d.sync += [error.eq(1), error_code.eq(late_code)]

        return top
