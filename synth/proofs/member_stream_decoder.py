"""Proofs of ``hw.member_stream_decoder.MemberStreamDecoder`` at the synthesized parameters.

The decoder holds ``TABLES`` tables of codes up to ``MAX_CODE_LEN`` bits and extra fields up to
``MAX_EXTRA_BITS`` bits (``make synth``'s: 4, 11, 12; the proofs take seconds there, as at the
smallest parameters, since the table memories are cut). Every input is free (any item on ``words``, ``fields`` and ``tables``,
any ``valid``/``ready`` pattern) unless a proof says otherwise; reset stays low after the
initial state.

**The table memories are abstracted**: Yosys's ``cutpoint`` replaces the block RAMs (both
levels) by a value the solver picks in every cycle, so each lookup may
return any entry (any length, symbol, ``escape``, ``long``), whatever was loaded. The proofs
hold for every table content, including ones no table description produces; without the cut a
run from reset could not load a table within the depth, and every field would end in an error.
The table builder itself stays (its ``error`` feeds the decoder's).

- ``protocol``: ``o`` keeps ``valid`` and its payload until ``ready``, or until ``error`` is
  up (the documented contract: from then on ``o.valid`` is low and the distances in flight are
  dropped).
- ``silent``: in every cycle ``error`` is up, ``words.ready``, ``fields.ready``,
  ``tables.ready`` and ``o.valid`` are low: no input is taken and no distance is given after
  the error.
- ``sticky``: ``error`` never falls.
- ``liveness``: with ``words`` and ``fields`` always valid (any payload) and ``o`` always ready,
  every field taken in cycle ``t`` has its distance taken from ``o`` by cycle ``t + LIVENESS``,
  or ``error`` is up by then. ``LIVENESS`` comes from the documented latency: 5 cycles, and each
  of the 4 moves of the ring after the field entered may wait up to 2 cycles for the word queue
  to hold the up to 2 words a cycle may need (it gains one word a cycle, or its ``end`` item):
  ``5 + 4 * 2``. It holds from any state, so nothing waits forever.
- ``liveness-from-reset`` (a bounded model check, not a proof): the same with the bound
  ``LIVENESS_FROM_RESET``, no counterexample within ``RESET_DEPTH`` cycles from reset: what
  the stalls cost in practice at these parameters.
- ``strict-protocol`` (expected to fail): the stream rule without the error exemption: ``o.valid``
  falls when ``error`` rises, as documented.
- ``broken-protocol`` (expected to fail): ``protocol`` on a copy of ``o`` whose payload changes
  in the second cycle of a stall.
- ``broken-silent`` (expected to fail): ``silent`` on a copy of the ports whose ``fields.ready``
  ignores ``error`` (as ``tables.ready`` did before the proof found it).
- ``broken-sticky`` (expected to fail): ``sticky`` on an error flag that clears while ``o`` is
  ready.
- ``broken-liveness`` (expected to fail): ``liveness`` claiming the stall-free latency, 5
  cycles: the first field after reset (or after a block's end, when the queue is empty) waits
  for its word.
"""

from amaranth.hdl import Assert, Assume, Module, Mux, Signal
from amaranth.lib import wiring

from hw.member_stream_decoder import MemberStreamDecoder

from ..formal import Proof, no_reset, past, sticky, stream_held

__all__ = ["proofs"]

UNIT = "MemberStreamDecoder"
TABLES = 4
MAX_CODE_LEN = 11
MAX_EXTRA_BITS = 12
#: The documented latency (cycles from taking a field to its distance on ``o``, no stall).
LATENCY = 5
#: Words a cycle of the ring may need (one for a field at stage 2, one for a field offered).
WORDS_PER_CYCLE = 2
#: The liveness bound: the latency and up to ``WORDS_PER_CYCLE`` cycles of waiting for words at
#: each of the 4 moves of the ring after the field entered.
LIVENESS = LATENCY + 4 * WORDS_PER_CYCLE
#: The bound checked from reset (``liveness-from-reset``), and that check's depth: the smallest
#: bound the check accepts at these parameters.
LIVENESS_FROM_RESET = LATENCY + 1
RESET_DEPTH = 30
#: Yosys commands after ``prep``: the table memories' read data become free in every cycle.
CUT_TABLES = ("cutpoint top.dut/t:$mem_v2",)


def _harness():
    """The decoder with free inputs: ``(m, dut, inputs)``."""
    m = Module()
    m.submodules.dut = dut = MemberStreamDecoder(num_tables=TABLES, max_code_len=MAX_CODE_LEN,
                                                 max_extra_bits=MAX_EXTRA_BITS)
    no_reset(m)
    inputs = [dut.words.valid, dut.words.payload.as_value(), dut.fields.valid, dut.fields.payload.as_value(),
              dut.tables.valid, dut.tables.payload.as_value(), dut.o.ready]
    return m, dut, inputs


def _copy_of_o(m, dut, name):
    """A stream the harness drives: ``o``'s signature, ready passed back to ``dut.o``."""
    o = wiring.Signature({"valid": wiring.Out(1), "ready": wiring.In(1),
                          "payload": wiring.Out(dut.o.payload.shape())}).create(path=(name,))
    m.d.comb += dut.o.ready.eq(o.ready)
    return o


def protocol(*, strict=False, changing=False):
    m, dut, inputs = _harness()
    o = dut.o
    if changing:
        # broken: the payload's distance is one more from the second cycle of a stall on
        o = _copy_of_o(m, dut, "changing")
        inputs[-1] = o.ready
        stalled = past(m, o.valid & ~o.ready, name="stalled_before")
        m.d.comb += [o.valid.eq(dut.o.valid), o.payload.eq(dut.o.payload),
                     o.payload.distance.eq(dut.o.payload.distance + stalled)]
    stream_held(m, o, "o", unless=None if strict else dut.error)
    return m, inputs


def silent(*, leaky=False):
    m, dut, inputs = _harness()
    fields_ready = dut.fields.ready | (dut.error if leaky else 0)
    m.d.comb += Assert(~dut.error | ~(dut.words.ready | fields_ready | dut.tables.ready | dut.o.valid),
                       "after the error: no ready, no o.valid")
    return m, inputs


def sticky_error(*, clearing=False):
    m, dut, inputs = _harness()
    flag = dut.error
    if clearing:
        flag = Signal(name="clearing_error")
        m.d.comb += flag.eq(dut.error & ~dut.o.ready)
    sticky(m, flag)
    return m, inputs


def liveness(bound=LIVENESS):
    """A field watched from the cycle it is taken (the solver picks which): its distance is taken
    from ``o`` within ``bound`` cycles, or ``error`` is up."""
    m, dut, inputs = _harness()
    m.d.comb += [Assume(dut.words.valid), Assume(dut.fields.valid), Assume(dut.o.ready)]
    watch = Signal(name="watch")                 # free: watch the field taken in this cycle
    inputs.append(watch)
    watching = Signal(name="watching")
    ahead = Signal(range(8), name="ahead")        # fields before the watched one still in flight
    age = Signal(range(bound + 2), name="age")    # cycles since the watched field was taken
    taken = dut.fields.valid & dut.fields.ready
    out = dut.o.valid & dut.o.ready
    with m.If(dut.error):
        m.d.sync += watching.eq(0)
    with m.Elif(watching):
        m.d.sync += age.eq(Mux(age > bound, age, age + 1))
        with m.If(out):
            with m.If(ahead == 0):
                m.d.sync += watching.eq(0)
            with m.Else():
                m.d.sync += ahead.eq(ahead - 1)
    with m.Elif(watch & taken):
        m.d.sync += [watching.eq(1), ahead.eq(dut.in_flight - out), age.eq(1)]
    m.d.comb += [
        Assert(~watching | dut.error | (age < bound) | (out & (ahead == 0)),
               "a field's distance is taken within the bound"),
        # the invariant that ties the observer to the unit: the watched field is in flight
        Assert(~watching | dut.error | (ahead < dut.in_flight), "the watched field is in flight"),
    ]
    return m, inputs


def proofs():
    depth = 8
    live_depth = LIVENESS + 3                    # the basecase sees a field cross the unit
    cut = {"script": CUT_TABLES}
    return [
        Proof(UNIT, "protocol", lambda: protocol(), depth,
              "o: valid held with a stable payload until ready, or until error", **cut),
        Proof(UNIT, "silent", lambda: silent(), depth,
              "while error: words/fields/tables not ready, o not valid", **cut),
        Proof(UNIT, "sticky", lambda: sticky_error(), depth, "error never falls", **cut),
        Proof(UNIT, "liveness", lambda: liveness(), live_depth,
              f"inputs valid, o ready: a field's distance out within {LIVENESS} cycles or error", **cut),
        Proof(UNIT, "liveness-from-reset", lambda: liveness(LIVENESS_FROM_RESET), RESET_DEPTH,
              f"the same with {LIVENESS_FROM_RESET} cycles, {RESET_DEPTH} cycles from reset (bmc: "
              "not a proof)", mode="bmc", **cut),
        Proof(UNIT, "strict-protocol", lambda: protocol(strict=True), depth,
              "the stream rule without the error exemption: must fail (o.valid falls on error)",
              expect="fail", **cut),
        Proof(UNIT, "broken-protocol", lambda: protocol(changing=True), depth,
              "a payload that changes during a stall: must fail", expect="fail", **cut),
        Proof(UNIT, "broken-silent", lambda: silent(leaky=True), depth,
              "fields.ready ignoring error: must fail", expect="fail", **cut),
        Proof(UNIT, "broken-sticky", lambda: sticky_error(clearing=True), depth,
              "an error flag that clears: must fail", expect="fail", **cut),
        Proof(UNIT, "broken-liveness", lambda: liveness(LATENCY), live_depth,
              f"the stall-free latency, {LATENCY} cycles: must fail (the harness is not vacuous)",
              expect="fail", **cut),
    ]
