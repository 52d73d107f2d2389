# amaranth: UnusedElaboratable=no
"""BitReader in the Amaranth simulator, against sim.bitstream_model."""

import random

import pytest

from hw.bit_reader import BitReader
from sim.amaranth_tb import run as run_testbenches, stream_put
from sim.bitstream_model import BitReaderModel, bytes_to_words


WORD_BITS = [32, 64, 128]


def words_of(data, word_bits):
    words = bytes_to_words(data, word_bits)
    return [{"data": word, "last": n == len(words) - 1} for n, word in enumerate(words)]


def padded(data, word_bits):
    return bytes(data) + bytes(-len(data) % (word_bits // 8))


def run(dut, *testbenches, max_cycles=20_000):
    run_testbenches(dut, *testbenches, max_cycles=max_cycles)


class Done:
    """Set by a consumer when it has checked the whole stream."""
    def __init__(self):
        self.value = False


def make_producer(dut, data, rng, stall=0.0):
    async def producer(ctx):
        for word in words_of(data, dut.word_bits):
            while rng.random() < stall:
                await ctx.tick()
            await stream_put(ctx, dut.i, word)
    return producer


def make_consumer(dut, data, rng, done, *, align_rate=0.0, max_take=None):
    """Consume random amounts, checking window/count each cycle against the model."""
    model = BitReaderModel(padded(data, dut.word_bits))
    W = dut.window_bits
    max_take = W if max_take is None else max_take

    async def consumer(ctx):
        while True:
            count, window, ended, error = (ctx.get(dut.count), ctx.get(dut.window),
                                           ctx.get(dut.ended), ctx.get(dut.error))
            assert not error
            assert count <= min(W, model.remaining)
            assert window == model.window(count, W), \
                f"at bit {model.pos}: window {window:0{W}b}, expected {model.window(count, W):0{W}b}"
            if ended:
                assert count == min(W, model.remaining)
                if model.remaining == 0:
                    break
            take = rng.randint(0, min(count, max_take))
            align = rng.random() < align_rate
            ctx.set(dut.consume, take)
            ctx.set(dut.align, align)
            await ctx.tick()
            model.consume(take)
            if align:
                model.align()
        ctx.set(dut.consume, 0)
        ctx.set(dut.align, 0)
        done.value = True
    return consumer


@pytest.mark.parametrize("place_after_shift", [False, True])
@pytest.mark.parametrize("word_bits", WORD_BITS)
@pytest.mark.parametrize("seed", range(4))
def test_random_stream(word_bits, seed, place_after_shift):
    """Random bytes, random input stalls, random consume sizes and aligns: bit exact."""
    rng = random.Random(seed * 1000 + word_bits)
    data = rng.randbytes(rng.randint(1, 300))
    dut = BitReader(word_bits=word_bits, window_bits=rng.choice([8, 13, 32]),
                    place_after_shift=place_after_shift)
    done = Done()
    run(dut, make_producer(dut, data, rng, stall=0.4),
        make_consumer(dut, data, rng, done, align_rate=0.1))
    assert done.value, "consumer did not reach the end of the stream"


@pytest.mark.parametrize("word_bits", WORD_BITS)
def test_no_bubbles(word_bits):
    """With words arriving every cycle, taking the full window every cycle never starves."""
    rng = random.Random(word_bits)
    data = rng.randbytes(64 * word_bits // 8)
    dut = BitReader(word_bits=word_bits, window_bits=32)
    model = BitReaderModel(data)
    finished = []

    async def consumer(ctx):
        await ctx.tick().until(dut.count == 32)
        while model.remaining >= 32:
            assert ctx.get(dut.count) == 32, f"bubble at bit {model.pos}"
            assert ctx.get(dut.window) == model.peek(32)
            ctx.set(dut.consume, 32)
            await ctx.tick()
            model.consume(32)
        ctx.set(dut.consume, 0)
        finished.append(True)

    run(dut, make_producer(dut, data, rng), consumer)
    assert finished, "consumer did not finish"


@pytest.mark.parametrize("word_bits", WORD_BITS)
def test_align(word_bits):
    """align skips to the next byte boundary after consume, and is a no-op when aligned."""
    data = bytes(range(1, 1 + word_bits // 8))          # one word, so the producer finishes
    dut = BitReader(word_bits=word_bits, window_bits=16)

    async def consumer(ctx):
        await ctx.tick().until(dut.count == 16)
        assert ctx.get(dut.window) >> 8 == 0x01
        ctx.set(dut.consume, 3)
        ctx.set(dut.align, 1)
        await ctx.tick()
        assert ctx.get(dut.window) >> 8 == 0x02
        ctx.set(dut.consume, 0)            # already aligned: no-op
        await ctx.tick()
        assert ctx.get(dut.window) >> 8 == 0x02
        ctx.set(dut.consume, 8)            # consume a byte then align: no extra skip
        await ctx.tick()
        assert ctx.get(dut.window) >> 8 == 0x03
        ctx.set(dut.align, 0)
        ctx.set(dut.consume, 0)
        assert not ctx.get(dut.error)

    run(dut, make_producer(dut, data, random.Random(0)), consumer)


@pytest.mark.parametrize("place_after_shift", [False, True])
@pytest.mark.parametrize("word_bits", WORD_BITS)
@pytest.mark.parametrize("ended", [False, True], ids=["waiting", "truncated"])
def test_overrun_sets_error(word_bits, ended, place_after_shift):
    """consume > count sets the sticky error flag and consumes nothing, without hanging."""
    data = bytes([0xA5, 0x3C]) * (word_bits // 16)     # exactly one word
    dut = BitReader(word_bits=word_bits, window_bits=32, place_after_shift=place_after_shift)
    flagged = []

    async def producer(ctx):
        if ended:
            await make_producer(dut, data, random.Random(0))(ctx)
        # else: never send anything, count stays 0

    async def consumer(ctx):
        if ended:
            await ctx.tick().until(dut.ended)
            ctx.set(dut.consume, 24)
            await ctx.tick()
            ctx.set(dut.consume, 0)
        count, window = ctx.get(dut.count), ctx.get(dut.window)
        ctx.set(dut.consume, count + 1)     # more than available
        for _ in range(4):                  # bounded: must flag within a few cycles
            await ctx.tick()
            ctx.set(dut.consume, 0)
            if ctx.get(dut.error):
                break
        assert ctx.get(dut.error), "error not flagged"
        assert (ctx.get(dut.count), ctx.get(dut.window)) == (count, window), "bits were consumed"
        await ctx.tick()
        assert ctx.get(dut.error), "error is not sticky"
        flagged.append(True)

    run(dut, producer, consumer, max_cycles=200)
    assert flagged


@pytest.mark.parametrize("word_bits", WORD_BITS)
def test_clear_restarts(word_bits):
    """clear empties the reader and clears ended/error; the next stream reads from bit 0."""
    rng = random.Random(word_bits + 7)
    first, second = rng.randbytes(word_bits // 8 + 3), rng.randbytes(2 * word_bits // 8)
    dut = BitReader(word_bits=word_bits, window_bits=32)
    done = Done()

    async def producer(ctx):
        await make_producer(dut, first, rng)(ctx)
        await ctx.tick().until(dut.clear)
        await ctx.tick().until(~dut.clear)
        await make_producer(dut, second, rng, stall=0.3)(ctx)

    async def consumer(ctx):
        await make_consumer(dut, first, rng, Done())(ctx)
        ctx.set(dut.consume, ctx.get(dut.count) + 1)
        await ctx.tick()
        ctx.set(dut.consume, 0)
        assert ctx.get(dut.error) and ctx.get(dut.ended)
        ctx.set(dut.clear, 1)
        await ctx.tick().repeat(2)
        ctx.set(dut.clear, 0)
        assert (ctx.get(dut.count), ctx.get(dut.ended), ctx.get(dut.error)) == (0, 0, 0)
        await make_consumer(dut, second, rng, done)(ctx)

    run(dut, producer, consumer)
    assert done.value


@pytest.mark.parametrize("kwargs", [
    {"word_bits": 48},
    {"word_bits": 32, "window_bits": 33},
    {"word_bits": 32, "window_bits": 0},
])
def test_parameters_checked(kwargs):
    name = "window_bits" if "window_bits" in kwargs else "word_bits"
    with pytest.raises(ValueError, match=name):
        BitReader(**kwargs)


def check_view(ctx, dut, bits, pos):
    """Check the 44-bit `ahead` view (and that `count` agrees with it) against the stream `bits`
    read from `pos`; returns `count` and `window` (as a bit string)."""
    count = ctx.get(dut.count)
    window = format(ctx.get(dut.window), "032b")
    ahead, ahead_count = format(ctx.get(dut.ahead), "044b"), ctx.get(dut.ahead_count)
    assert count == min(32, ahead_count)
    assert ahead[:ahead_count] == bits[pos:pos + ahead_count]
    assert ahead[ahead_count:] == "0" * (44 - ahead_count)
    return count, window


@pytest.mark.parametrize("place_after_shift", [False, True])
@pytest.mark.parametrize("word_bits", WORD_BITS)
def test_parser_variant_bit_exact(word_bits, place_after_shift):
    """guard_overrun=False, align_alone=True (the BlockParser's reader, which also places words
    after the shift and looks 44 bits ahead): bit exact when the consumer never overruns and
    aligns only without consuming; `ahead` shows the same stream further on."""
    rng = random.Random(word_bits + 7)
    data = padded(bytes(rng.randrange(256) for _ in range(200)), word_bits)
    dut = BitReader(word_bits=word_bits, window_bits=32, guard_overrun=False, align_alone=True,
                    ahead_bits=44, place_after_shift=place_after_shift)
    got = []

    async def producer(ctx):
        await make_producer(dut, data, random.Random(1))(ctx)

    async def consumer(ctx):
        bits = "".join(format(x, "08b") for x in data)
        pos = 0
        while pos < len(bits):
            count, window = check_view(ctx, dut, bits, pos)
            if rng.random() < 0.1:
                ctx.set(dut.align, 1)
                ctx.set(dut.consume, 0)
                pos = (pos + 7) // 8 * 8
            else:
                take = rng.randint(0, min(count, 32))
                assert window[:take] == bits[pos:pos + take]
                ctx.set(dut.consume, take)
                pos += take
            await ctx.tick()
            ctx.set(dut.align, 0)
            ctx.set(dut.consume, 0)
            assert not ctx.get(dut.error)
        got.append(pos)

    run(dut, producer, consumer, max_cycles=5000)
    assert got


@pytest.mark.parametrize("guard_overrun", [False, True])
@pytest.mark.parametrize("word_bits", WORD_BITS)
def test_late_take_consumes_only_when_taken(word_bits, guard_overrun):
    """late_take=True (the BlockParser's reader): `consume` and `align` are offered every cycle
    with random values, and only cycles with `take` move the stream; with the guard, an
    offered overrun without `take` is no error."""
    rng = random.Random(word_bits + 11)
    data = padded(bytes(rng.randrange(256) for _ in range(200)), word_bits)
    dut = BitReader(word_bits=word_bits, window_bits=32, guard_overrun=guard_overrun,
                    ahead_bits=44, place_after_shift=True, late_take=True)
    got = []

    async def producer(ctx):
        await make_producer(dut, data, random.Random(1), stall=0.2)(ctx)

    async def consumer(ctx):
        bits = "".join(format(x, "08b") for x in data)
        pos = 0
        while pos < len(bits):
            count, window = check_view(ctx, dut, bits, pos)
            assert window[:count] == bits[pos:pos + count]
            align = rng.random() < 0.1
            take = rng.random() < 0.6
            amount = rng.randint(0, min(count, 32)) if take or not guard_overrun else rng.randint(0, 32)
            ctx.set(dut.align, align)
            ctx.set(dut.consume, amount)
            ctx.set(dut.take, take)
            if take:
                pos = (pos + 7) // 8 * 8 if align else pos + amount
            await ctx.tick()
            ctx.set(dut.take, 0)
            assert not ctx.get(dut.error)
        got.append(pos)

    run(dut, producer, consumer, max_cycles=5000)
    assert got


def test_late_take_overrun_sets_error():
    """With late_take and the guard, a taken overrun flags the sticky error and moves nothing."""
    dut = BitReader(word_bits=32, window_bits=32, late_take=True)
    flagged = []

    async def producer(ctx):
        await make_producer(dut, bytes([0xA5, 0x3C, 0x0F, 0xF0]), random.Random(0))(ctx)

    async def consumer(ctx):
        await ctx.tick().until(dut.ended)
        count, window = ctx.get(dut.count), ctx.get(dut.window)
        ctx.set(dut.consume, count + 1)
        await ctx.tick()
        assert not ctx.get(dut.error), "an overrun that is not taken is no error"
        ctx.set(dut.take, 1)
        await ctx.tick()
        ctx.set(dut.take, 0)
        assert ctx.get(dut.error), "error not flagged"
        assert (ctx.get(dut.count), ctx.get(dut.window)) == (count, window), "bits were consumed"
        flagged.append(True)

    run(dut, producer, consumer, max_cycles=200)
    assert flagged
