"""Simulation harness of the accelerator: :class:`hw.accelerator.Accelerator` plus a main-memory
model in HDL, so a layer runs at simulator speed with no Python in the cycle loop.

Why in HDL: a cocotb memory model that decides every cycle which lane gets a word puts Python
in every cycle of a run (one coroutine per stream), and a layer slice of 2**16 weights at 8
bits per cycle is 65 000 cycles. Here the testbench only loads the memories (one word per
cycle), sets the bandwidth and latency, pulses ``start`` and waits for ``finished``.

Memory model:

- Each cycle the memory earns ``bandwidth`` bits of credit (fixed point, ``FRAC`` fraction
  bits); at most ``bandwidth + word_bits`` are kept when nobody can use them.
- Lanes are offered a word in round-robin order (the lane after the last one served goes first
  in the next cycle); a lane gets one when the remaining credit covers ``word_bits``, it has words left,
  and its words requested but not yet taken by the decoder are fewer than ``depth`` (the
  prefetch buffer). Several lanes can get a word in one cycle, each at most one.
- A word requested in cycle ``t`` reaches the decoder in cycle ``t + latency + 1`` (the last
  cycle is the arrival register).
- Block sizes (the layer table) are available at once, as are the activations (preloaded
  through the accelerator's ``acts`` stream before ``start``).

Counters (cycles since ``start``, until ``finished``): ``cycles``, ``streaming`` (the PE array's
weight phase), ``words_read``, ``takes`` and ``mults`` (the array's event counts), ``first_take``
and ``last_take`` (cycle of the first and last weight/token any lane took). The outputs ``y`` are
written into a memory the testbench reads back through ``y_addr``/``y_data``.
"""

from amaranth.hdl import Array, Cat, Const, Module, Mux, Signal, signed
from amaranth.lib import wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from hw.accelerator import Accelerator

__all__ = ["AccelHarness", "FRAC"]

FRAC = 8        # fraction bits of the bandwidth (bits per cycle)


class AccelHarness(wiring.Component):
    def __init__(self, *, lanes, max_words=1 << 13, max_blocks=64, max_latency=64, **accel_params):
        if lanes & (lanes - 1):
            raise ValueError("the harness's rotating priority needs a power-of-two lane count")
        self.accel = Accelerator(lanes=lanes, **accel_params)
        p = self.accel.params
        self.p = dict(p, lanes=lanes, max_words=max_words, max_blocks=max_blocks, max_latency=max_latency)
        wb = p["word_bits"]
        members = {
            "load_we": In(1), "load_sel": In(2), "load_lane": In(range(lanes)),
            "load_addr": In(range(max_words)), "load_data": In(max(wb, 32)),
            "bandwidth": In(16 + FRAC), "latency": In(range(1, max_latency + 1)),
            "depth": In(range(1 << 10)),
            "y_addr": In(range(p["max_rows"])), "y_data": Out(signed(p["acc_bits"])),
            "finished": Out(1), "error": Out(1),
            "cycles": Out(32), "streaming": Out(32), "words_read": Out(32), "takes": Out(32),
            "mults": Out(32), "first_take": Out(32), "last_take": Out(32), "y_count": Out(32),
        }
        am = self.accel.signature.members
        for name in ("acts", "mode", "slots", "layer_block_bits", "rows", "k", "step_rows", "step_cols",
                     "stride_rows", "stride_cols", "start"):
            members[name] = am[name]
        super().__init__(members)

    def elaborate(self, platform):
        m = Module()
        p = self.p
        N, W = p["lanes"], p["word_bits"]
        m.submodules.accel = acc = self.accel
        wiring.connect(m, wiring.flipped(self.acts), acc.acts)
        for name in ("mode", "slots", "layer_block_bits", "rows", "k", "step_rows", "step_cols",
                     "stride_rows", "stride_cols", "start"):
            m.d.comb += getattr(acc, name).eq(getattr(self, name))
        m.d.comb += self.error.eq(acc.error)

        # Outputs into a memory, read back by the testbench.
        m.submodules.ymem = ymem = Memory(shape=signed(p["acc_bits"]), depth=p["max_rows"], init=[])
        ywp, yrp = ymem.write_port(), ymem.read_port(domain="comb")
        m.d.comb += [acc.y.ready.eq(1), ywp.en.eq(acc.y.valid), ywp.addr.eq(acc.y.payload.row),
                     ywp.data.eq(acc.y.payload.value), yrp.addr.eq(self.y_addr), self.y_data.eq(yrp.data)]
        with m.If(acc.y.valid):
            m.d.sync += self.y_count.eq(self.y_count + 1)

        # Per lane: words, block sizes, counts; the memory's request/arrival state.
        credit = Signal(18 + FRAC)
        rr = Signal(range(N))
        eligible, grants = [], []
        lanes = []
        for i in range(N):
            wmem = Memory(shape=W, depth=p["max_words"], init=[])
            bmem = Memory(shape=range((1 << p["block_bits"]) + 1), depth=p["max_blocks"], init=[])
            m.submodules[f"wmem_{i}"], m.submodules[f"bmem_{i}"] = wmem, bmem
            wwp, wrp = wmem.write_port(), wmem.read_port(domain="comb")
            bwp, brp = bmem.write_port(), bmem.read_port(domain="comb")
            n_words, n_blocks = Signal(range(p["max_words"] + 1), name=f"n_words_{i}"), \
                Signal(range(p["max_blocks"] + 1), name=f"n_blocks_{i}")
            here = self.load_we & (self.load_lane == i)
            m.d.comb += [wwp.addr.eq(self.load_addr), wwp.data.eq(self.load_data), wwp.en.eq(here & (self.load_sel == 0)),
                         bwp.addr.eq(self.load_addr), bwp.data.eq(self.load_data), bwp.en.eq(here & (self.load_sel == 1))]
            with m.If(here & (self.load_sel == 2)):
                m.d.sync += n_words.eq(self.load_data)
            with m.If(here & (self.load_sel == 3)):
                m.d.sync += n_blocks.eq(self.load_data)

            issued, arrived, consumed = (Signal(range(p["max_words"] + 1), name=f"{s}_{i}")
                                         for s in ("issued", "arrived", "consumed"))
            bcons = Signal(range(p["max_blocks"] + 1), name=f"bcons_{i}")
            delay = Signal(p["max_latency"] + 1, name=f"delay_{i}")
            grant = Signal(name=f"grant_{i}")
            words, blocks = getattr(acc, f"words_{i}"), getattr(acc, f"blocks_{i}")
            m.d.comb += [
                wrp.addr.eq(consumed), words.payload.data.eq(wrp.data),
                words.payload.last.eq(consumed == n_words - 1), words.valid.eq(consumed < arrived),
                brp.addr.eq(bcons), blocks.payload.eq(brp.data), blocks.valid.eq(bcons < n_blocks),
            ]
            el = Signal(name=f"eligible_{i}")
            m.d.comb += el.eq((issued < n_words) & ((issued - consumed) < self.depth))
            eligible.append(el)
            grants.append(grant)
            m.d.sync += delay.eq(Cat(grant, delay[:-1]))
            arrive = Cat(grant, delay).bit_select(self.latency, 1)
            m.d.sync += [issued.eq(issued + grant), arrived.eq(arrived + arrive),
                         consumed.eq(consumed + (words.valid & words.ready)),
                         bcons.eq(bcons + (blocks.valid & blocks.ready))]
            lanes.append((issued, arrived, consumed, bcons, delay))

        # Rotating priority: position j of the order is lane (rr + j) % N; a lane is granted when
        # eligible and the credit left after the grants before it covers a word.
        el_arr = Array(eligible)
        rot_grant = []
        spent = Const(0, 8)
        cap = Signal(credit.shape())
        m.d.comb += cap.eq(Mux(credit + self.bandwidth > self.bandwidth + (W << FRAC),
                               self.bandwidth + (W << FRAC), credit + self.bandwidth))
        for j in range(N):
            g = Signal(name=f"rot_grant_{j}")
            m.d.comb += g.eq(el_arr[(rr + j)[:max(1, (N - 1).bit_length())] if N > 1 else 0] &
                             (cap >= ((spent + 1) * W << FRAC)))
            rot_grant.append(g)
            spent = spent + g
        for j in range(N):              # the lane after the last one served goes first next
            with m.If(rot_grant[j]):
                m.d.sync += rr.eq(rr + j + 1)
        rg_arr = Array(rot_grant)
        for i in range(N):
            m.d.comb += grants[i].eq(rg_arr[(i - rr)[:max(1, (N - 1).bit_length())] if N > 1 else 0])
        n_granted = Signal(range(N + 1))
        m.d.comb += n_granted.eq(sum(grants))

        # Run control and counters.
        running = Signal()
        cycles = Signal(32)
        m.d.comb += [self.cycles.eq(cycles), self.finished.eq(~running & ~self.start)]
        anytake = acc.taken.any()
        with m.If(running):
            m.d.sync += [credit.eq(cap - (n_granted * W << FRAC)), cycles.eq(cycles + 1),
                         self.streaming.eq(self.streaming + acc.streaming),
                         self.words_read.eq(self.words_read + n_granted),
                         self.takes.eq(self.takes + sum(acc.taken)),
                         self.mults.eq(self.mults + sum(acc.mults))]
            with m.If(anytake):
                m.d.sync += self.last_take.eq(cycles)
                with m.If(self.takes == 0):
                    m.d.sync += self.first_take.eq(cycles)
            with m.If(acc.done | acc.error | (cycles == (1 << 31))):
                m.d.sync += running.eq(0)
        with m.Else():
            for g in grants:
                m.d.comb += g.eq(0)
        with m.If(self.start):
            m.d.sync += [running.eq(1), credit.eq(0), cycles.eq(0), self.streaming.eq(0), self.words_read.eq(0),
                         self.takes.eq(0), self.mults.eq(0), self.y_count.eq(0), self.first_take.eq(0), self.last_take.eq(0)]
            for issued, arrived, consumed, bcons, delay in lanes:
                m.d.sync += [issued.eq(0), arrived.eq(0), consumed.eq(0), bcons.eq(0), delay.eq(0)]
        return m
