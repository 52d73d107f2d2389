from amaranth.hdl import *
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from .tokens import word_layout


__all__ = ["BitReader"]


class BitReader(wiring.Component):
    """Bit reader: turns a stream of memory words into a peek/consume bit window.

    The bitstream is stored in memory as bytes. A memory word holds bytes at increasing addresses
    in increasing significance (byte 0 is ``data[0:8]``, little-endian), and each byte is read
    MSB first: bit 7 of byte 0 is the first bit of the stream. Every byte of every accepted word is
    part of the stream, so padding in the last word is visible to the consumer (the format must
    know its own length).

    The consumer looks at the next ``window_bits`` bits of the stream and, in the same cycle, says
    how many of them it takes. Up to ``window_bits`` bits can be taken every cycle without bubbles
    as long as the memory delivers one word per cycle whenever asked.

    Parameters
    ----------
    word_bits : int
        Width of a memory word: 32, 64 or 128.
    window_bits : int
        Width of the peek window, ``1 <= window_bits <= word_bits`` (one word per cycle must be able
        to refill what the consumer can take per cycle). Default 32.
    guard_overrun : bool
        Default True: an overrun (``consume > count``) consumes nothing. False takes the
        comparison off the consume-to-buffer path for a consumer that never relies on it (the
        ``BlockParser`` stops at the error it reports itself): ``error`` is still set, but the
        buffer is then undefined until ``clear``.
    align_alone : bool
        Default False. True promises that ``align`` is only raised with ``consume == 0``: the
        alignment then needs no adder on the consume path (``align`` with ``consume != 0`` is
        undefined).
    place_after_shift : bool
        Default False: an accepted word is merged into the buffer first, then the buffer shifts
        by the consume amount (the consume amount drives one shifter, the word's placement
        depends only on registers). True shifts the buffer and places the word at
        ``level - consume`` side by side, for a consumer whose consume amount is a register:
        the path from ``level`` to the buffer is then one shifter instead of two in a row.
    ahead_bits : int
        Width of ``ahead``, ``window_bits <= ahead_bits <= 2 * window_bits + word_bits`` (the
        buffer). Default ``window_bits``.
    late_take : bool
        Default False. True adds the ``take`` input: the reader then consumes ``consume`` bits (or
        aligns, with ``align``) only in cycles where ``take`` is high. ``consume`` and ``align``
        drive the shifters and should come from registers; ``take`` may arrive late in the cycle,
        because it only chooses between the buffer moved by the take and the buffer left in
        place (both computed without it). ``align`` then skips to the next byte boundary
        *instead of* consuming (``consume`` is ignored).

    Members
    -------
    i : ``In(stream.Signature(data.StructLayout({"data": word_bits, "last": 1})))``
        Memory words. ``last`` marks the final word of the stream.
    window : ``Out(window_bits)``
        The next ``window_bits`` bits of the stream, first stream bit in ``window[-1]`` (MSB).
        Bits beyond ``count`` read as zero.
    count : ``Out(range(window_bits + 1))``
        Number of valid bits in ``window``, from the MSB down. Equals ``window_bits`` unless the
        reader is waiting for words or the stream has ended.
    full : ``Out(1)``
        ``count == window_bits``, as a register of its own.
    ahead : ``Out(ahead_bits)``, ahead_count : ``Out(range(ahead_bits + 1))``
        The same from a wider view of the buffer (``window`` is its top ``window_bits``): for a
        consumer that decodes fields past the next one speculatively. Bits beyond
        ``ahead_count`` read as zero. Consuming is still limited to ``window_bits`` per cycle.
    ended : ``Out(1)``
        The word with ``last`` has been accepted; ``count`` will not grow any more.
    consume : ``In(range(window_bits + 1))``
        Number of bits taken this cycle; must be ``<= count``. With ``late_take``: the number
        taken if ``take`` is high.
    take : ``In(1)``, only with ``late_take``
        The consumer takes ``consume`` bits (or aligns, with ``align``) at this clock edge.
    align : ``In(1)``
        Skip to the next byte boundary of the stream, applied *after* ``consume`` in the same
        cycle (a no-op when already aligned). Never runs out of bits, because the reader only
        holds whole bytes.
    error : ``Out(1)``
        Sticky: set when ``consume > count``. That cycle nothing is consumed and ``align`` is
        ignored. Cleared only by ``clear`` or reset.
    clear : ``In(1)``
        Restart for a new stream: empties the buffer and clears ``ended`` and ``error`` on the next
        clock edge. ``i.ready`` is low while ``clear`` is high, so no word is lost. After ``ended``
        the reader accepts no words until ``clear`` (or reset).

    Latency and backpressure
    ------------------------
    A word accepted at a clock edge is visible in ``window``/``count`` right after that edge
    (one cycle, registered). ``window``, ``count``, ``full``, ``ahead``, ``ahead_count``,
    ``ended``, ``error`` are registered outputs.
    ``i.ready`` depends only on internal state and ``clear``, never on ``consume``: it is high when
    the buffer (``2 * window_bits + word_bits`` bits) has room for a whole word, i.e. while at most
    ``2 * window_bits`` bits are buffered. That margin keeps ``count == window_bits`` when the
    consumer takes ``window_bits`` every cycle and words arrive without stalls.
    """

    def __init__(self, *, word_bits, window_bits=32, guard_overrun=True, align_alone=False,
                 ahead_bits=None, place_after_shift=False, late_take=False):
        if word_bits not in (32, 64, 128):
            raise ValueError(f"word_bits must be 32, 64 or 128, not {word_bits!r}")
        if not isinstance(window_bits, int) or not 1 <= window_bits <= word_bits:
            raise ValueError(f"window_bits must be an integer in 1..word_bits ({word_bits}), "
                             f"not {window_bits!r}")
        self._word_bits = word_bits
        self._window_bits = window_bits
        self._guard_overrun = bool(guard_overrun)
        self._align_alone = bool(align_alone)
        self._buffer_bits = 2 * window_bits + word_bits
        if ahead_bits is None:
            ahead_bits = window_bits
        if not isinstance(ahead_bits, int) or not window_bits <= ahead_bits <= self._buffer_bits:
            raise ValueError(f"ahead_bits must be an integer in window_bits..{self._buffer_bits}, "
                             f"not {ahead_bits!r}")
        self._ahead_bits = ahead_bits
        self._place_after_shift = bool(place_after_shift)
        self._late_take = bool(late_take)

        super().__init__({
            "i":       In(stream.Signature(word_layout(word_bits))),
            "window":  Out(window_bits),
            "count":   Out(range(window_bits + 1)),
            "full":    Out(1),
            "ahead":   Out(ahead_bits),
            "ahead_count": Out(range(ahead_bits + 1)),
            "ended":   Out(1),
            "consume": In(range(window_bits + 1)),
            "align":   In(1),
            "error":   Out(1),
            "clear":   In(1),
            **({"take": In(1)} if self._late_take else {}),
        })

    @property
    def word_bits(self):
        return self._word_bits

    @property
    def window_bits(self):
        return self._window_bits

    def elaborate(self, platform):
        m = Module()

        W, Wd, B, A = self._window_bits, self._word_bits, self._buffer_bits, self._ahead_bits

        # Buffered bits are MSB-aligned in `buffer`: the first unread stream bit is buffer[-1],
        # `level` bits are valid, and everything below them is zero.
        buffer = Signal(B)
        level  = Signal(range(B + 1))
        ended  = Signal()
        error  = Signal()

        # `count`, `ahead_count` and `full` are min(level, ...) kept in registers of their own, so
        # that a consumer's `count >= n` test starts at a flip-flop, not behind a comparison.
        count = Signal(range(W + 1))
        ahead_count = Signal(range(A + 1))
        full = Signal()
        m.d.comb += [
            self.window.eq(buffer[B - W:]),
            self.count.eq(count),
            self.full.eq(full),
            self.ahead.eq(buffer[B - A:]),
            self.ahead_count.eq(ahead_count),
            self.ended.eq(ended),
            self.error.eq(error),
            self.i.ready.eq((level <= B - Wd) & ~ended & ~self.clear),
        ]

        # Consume, then optionally skip to a byte boundary. The buffer always holds whole bytes
        # of the stream minus what was consumed, so the bits left to the next boundary are
        # exactly (level - consume) mod 8.
        overrun = Signal()
        shift   = Signal(range(W + 8))
        if self._late_take:
            # `align` replaces the consume amount: (level - 0) mod 8, never past `count`.
            m.d.comb += [
                shift.eq(Mux(self.align, level[:3], self.consume)),
                overrun.eq(self.take & ~self.align & (self.consume > self.count)),
            ]
        else:
            m.d.comb += overrun.eq(self.consume > self.count)
            if self._align_alone:
                m.d.comb += shift.eq(self.consume | Mux(self.align, level[:3], 0))
            else:
                with m.If(self.align):
                    m.d.comb += shift.eq(self.consume + (level[:3] - self.consume[:3])[:3])
                with m.Else():
                    m.d.comb += shift.eq(self.consume)

        # Bytes of the word in stream order: byte 0 in the most significant position.
        word_msb_first = Cat(*(self.i.payload.data.word_select(k, 8)
                               for k in reversed(range(Wd // 8))))
        accept = Signal()
        m.d.comb += accept.eq(self.i.valid & self.i.ready)
        filled = Signal(range(B + 1))
        m.d.comb += filled.eq(level + Mux(accept, Wd, 0))
        word = Cat(C(0, B - Wd), word_msb_first)
        # The incoming word right after the buffered bits, before any shift: its place depends
        # only on registers.
        merged = Signal(B)
        m.d.comb += merged.eq(buffer | Mux(accept, word >> level, 0))
        if self._late_take:
            # Both outcomes are computed from `consume`/`align` and registers; the late `take`
            # (and the overrun guard beside it) only selects one of them.
            go = Signal()
            m.d.comb += go.eq(self.take & ~overrun if self._guard_overrun else self.take)
            # `keep`: else Yosys shares the word's two placement shifters behind a multiplexer
            # of their amounts, which puts `take` in front of a shifter again.
            moved = Signal(B, attrs={"keep": 1})
            if self._place_after_shift:
                word_at = Signal(range(B + 1))
                m.d.comb += [
                    word_at.eq(level - shift),
                    moved.eq((buffer << shift)[:B] | Mux(accept, word >> word_at, 0)),
                ]
            else:
                m.d.comb += moved.eq((merged << shift)[:B])
            merged.attrs["keep"] = 1
            moved_level = Signal.like(level)
            m.d.comb += moved_level.eq(filled - shift)
            shifted = Mux(go, moved, merged)
            kept = Mux(go, moved_level, filled)
            def clamped(limit):
                """min(kept, limit), the late `take` at the last multiplexer."""
                return Mux(go, Mux(moved_level >= limit, limit, moved_level),
                           Mux(filled >= limit, limit, filled))

            def reaches(limit):
                return Mux(go, moved_level >= limit, filled >= limit)
        elif not self._place_after_shift:
            # The consume amount drives nothing but one shifter.
            # On an overrun nothing is consumed (the comparison runs beside the shifter).
            if self._guard_overrun:
                shifted = Mux(overrun, merged, (merged << shift)[:B])
                kept = Mux(overrun, filled, filled - shift)
            else:
                shifted = (merged << shift)[:B]
                kept = filled - shift
        else:
            # The buffer is shifted and the word placed at `level - shift` side by side: two
            # shifters in parallel instead of one behind the other (for a consumer whose consume
            # amount is a register, the subtraction is then off its critical path).
            taken = Signal.like(shift)
            m.d.comb += taken.eq(Mux(overrun, 0, shift) if self._guard_overrun else shift)
            word_at = Signal(range(B + 1))
            m.d.comb += word_at.eq(level - taken)
            shifted = (buffer << taken)[:B] | Mux(accept, word >> word_at, 0)
            kept = filled - taken

        with m.If(self.clear):
            m.d.sync += [
                buffer.eq(0),
                level.eq(0),
                count.eq(0),
                ahead_count.eq(0),
                full.eq(0),
                ended.eq(0),
                error.eq(0),
            ]
        with m.Else():
            kept_level = Signal.like(level)
            m.d.comb += kept_level.eq(kept)
            if not self._late_take:
                def clamped(limit):
                    return Mux(kept_level >= limit, limit, kept_level)

                def reaches(limit):
                    return kept_level >= limit
            m.d.sync += [
                buffer.eq(shifted),
                level.eq(kept_level),
                count.eq(clamped(W)),
                ahead_count.eq(clamped(A)),
                full.eq(reaches(W)),
            ]
            with m.If(accept & self.i.payload.last):
                m.d.sync += ended.eq(1)
            with m.If(overrun):
                m.d.sync += error.eq(1)

        return m
