"""Helpers shared by the Amaranth-simulator tests of the ``hw/`` stages.

``stream_put``/``stream_get`` move one item over a ``lib.stream`` port; :func:`run` runs
testbenches to completion under a cycle watchdog, so a stage that stops making progress fails
its test instead of hanging it.
"""

from amaranth.hdl import ClockDomain, Module
from amaranth.sim import Simulator

__all__ = ["stream_put", "stream_get", "run"]


async def stream_put(ctx, stream, payload):
    """Offer ``payload`` (a field dict, or the packed bits as an int) until ``stream`` takes it."""
    ctx.set(stream.valid, 1)
    ctx.set(stream.payload.as_value() if isinstance(payload, int) else stream.payload, payload)
    await ctx.tick().until(stream.ready)
    ctx.set(stream.valid, 0)


async def stream_get(ctx, stream):
    """Take the next item from ``stream``."""
    ctx.set(stream.ready, 1)
    payload, = await ctx.tick().sample(stream.payload).until(stream.valid)
    ctx.set(stream.ready, 0)
    return payload


def run(dut, *testbenches, max_cycles=50_000, add_domain=False):
    """Run testbenches to completion; a watchdog fails the test after ``max_cycles``.

    ``add_domain`` wraps ``dut`` in a module with a ``sync`` domain, for components that may
    have no clocked logic of their own (a pass-through).
    """
    async def watchdog(ctx):
        for _ in range(max_cycles):     # not tick().repeat(): an abandoned async generator
            await ctx.tick()            # warns when collected, and PYTHONWARNINGS=error fails
        raise AssertionError(f"watchdog: testbenches still running after {max_cycles} cycles")

    top = dut
    if add_domain:
        top = Module()
        top.submodules.dut = dut
        top.domains.sync = ClockDomain()
    sim = Simulator(top)
    sim.add_clock(1e-6)
    for testbench in testbenches:
        sim.add_testbench(testbench)
    sim.add_testbench(watchdog, background=True)
    sim.run()
