"""Proofs of ``hw.free_slot_scanner.FreeSlotScanner`` at small block sizes.

Every input is free (any token, any ``valid``/``ready`` pattern, either slot counting, held
static) unless a proof says otherwise; reset stays low after the initial state.

- ``protocol``: ``o`` keeps ``valid`` and its payload until ``ready`` takes it.
- ``inside``: every ``MEMBER`` on ``o`` lies inside its block (``position < n`` of the last
  ``BLOCK`` that left ``o``; none before the first ``BLOCK``): no write outside the block,
  whatever the input. (That a ``BLOCK``'s ``n`` is in ``1..2**P`` is the input check's, tested in
  simulation: as a property of ``o`` it is not inductive without invariants on every stage.)
- ``sticky``: ``error`` never falls.
- ``liveness``: with ``o`` always ready, a token offered at ``i`` is taken in the cycle it is
  offered or ``error`` rises, and each token taken in cycle ``t`` is on ``o`` in cycle
  ``t + latency`` (until an error): a well-formed group of ``c`` members offered back to back is
  out within ``c + latency`` cycles, and nothing waits forever.
- ``broken-protocol`` (expected to fail): the same ``protocol`` property on a variant whose
  ``o.valid`` falls when ``error`` rises (as if the error flushed the output register).
- ``broken-liveness`` (expected to fail): ``liveness`` claiming one cycle less of latency; shows
  that its assumptions leave real behaviour to check.
"""

from amaranth.hdl import Assert, Assume, Const, Module, Mux, Signal
from amaranth.lib import wiring

from hw.free_slot_scanner import FreeSlotScanner, tree_digits
from hw.tokens import TokenKind

from ..formal import Proof, no_reset, past, sticky, stream_held

__all__ = ["proofs"]

UNIT = "FreeSlotScanner"
WEIGHT_BITS = 2


def _harness(block_bits, *, masked_valid=False):
    """The scanner with free inputs and static ``slots``: ``(m, dut, o, inputs)``; ``o`` is the
    output stream the properties watch (with ``masked_valid``, a broken copy)."""
    m = Module()
    m.submodules.dut = dut = FreeSlotScanner(weight_bits=WEIGHT_BITS, block_bits=block_bits)
    no_reset(m)
    started = past(m, Const(1), name="started")
    slots_was = past(m, dut.slots, name="slots_was")
    m.d.comb += Assume(~started | (dut.slots == slots_was))
    o = dut.o
    if masked_valid:
        o = _Masked(dut, m).o
    inputs = [dut.i.valid, dut.i.payload.as_value(), dut.slots, o.ready]
    return m, dut, o, inputs


class _Masked:
    """A broken output: ``valid`` masked by ``error``."""

    def __init__(self, dut, m):
        self.o = wiring.Signature({"valid": wiring.Out(1), "ready": wiring.In(1),
                                   "payload": wiring.Out(dut.o.payload.shape())}).create(path=("masked",))
        m.d.comb += [self.o.valid.eq(dut.o.valid & ~dut.error), self.o.payload.eq(dut.o.payload),
                     dut.o.ready.eq(self.o.ready)]


def protocol(block_bits, masked_valid=False):
    m, dut, o, inputs = _harness(block_bits, masked_valid=masked_valid)
    stream_held(m, o, "o")
    return m, inputs


def inside(block_bits):
    m, dut, o, inputs = _harness(block_bits)
    n_seen = Signal(block_bits + 1)     # n of the last BLOCK taken from `o` (0 before any)
    with m.If(o.valid & o.ready & (o.payload.kind == TokenKind.BLOCK)):
        m.d.sync += n_seen.eq(o.payload.position)
    member = o.valid & (o.payload.kind == TokenKind.MEMBER)
    block = o.valid & (o.payload.kind == TokenKind.BLOCK)
    m.d.comb += [
        Assert(~member | (o.payload.position < n_seen), "MEMBER inside its block"),
        # the invariant that makes the property inductive: the unit's guard compares with the
        # n this observer saw, or with that of the BLOCK waiting on `o`
        Assert(dut.n_block == Mux(block, o.payload.position, n_seen), "the guard's n is the block's"),
    ]
    return m, inputs


def sticky_error(block_bits):
    m, dut, o, inputs = _harness(block_bits)
    sticky(m, dut.error)
    return m, inputs


def liveness(block_bits, claimed_latency=None):
    m, dut, o, inputs = _harness(block_bits)
    latency = dut.latency if claimed_latency is None else claimed_latency
    m.d.comb += Assume(o.ready)
    offered = past(m, dut.i.valid & ~dut.i.ready & ~dut.error, name="refused")
    m.d.comb += Assert(~offered | dut.error, "an offered token is taken or flagged at once")
    # `taken` delayed by `latency` cycles: exactly when the token is on `o`
    delay = [dut.i.valid & dut.i.ready]
    for k in range(latency):
        delay.append(past(m, delay[-1], name=f"taken_{k + 1}"))
    m.d.comb += Assert(dut.error | (o.valid == delay[-1]), "each token is on o latency cycles after")
    return m, inputs


def proofs(block_bits=6):
    """The proofs at ``2**block_bits`` slots (P = 6: five tree levels, memories of 2 to 16 rows)."""
    latency = 2 * len(tree_digits(block_bits))              # FreeSlotScanner.latency
    depth = latency + 4         # the basecase sees a token cross the unit
    p = block_bits
    return [
        Proof(UNIT, "protocol", lambda: protocol(p), depth, "o: valid held with a stable payload until ready"),
        Proof(UNIT, "inside", lambda: inside(p), depth, "no MEMBER outside its block on o"),
        Proof(UNIT, "sticky", lambda: sticky_error(p), depth, "error never falls"),
        Proof(UNIT, "liveness", lambda: liveness(p), 2 * latency + 2,
              "o always ready: every offered token taken or flagged at once, on o latency cycles later"),
        Proof(UNIT, "broken-protocol", lambda: protocol(p, masked_valid=True), depth,
              "o.valid masked by error: must fail", expect="fail"),
        Proof(UNIT, "broken-liveness", lambda: liveness(p, latency - 1), 2 * latency + 2,
              "a latency one cycle short: must fail (the harness is not vacuous)", expect="fail"),
    ]
