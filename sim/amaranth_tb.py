"""Helpers shared by the Amaranth-simulator tests of the ``hw/`` stages.

``stream_put``/``stream_get`` move one item over a ``lib.stream`` port; :func:`run` runs
testbenches to completion under a cycle watchdog, so a stage that stops making progress fails
its test instead of hanging it. :func:`pe_array_layer` runs one layer through a ``PEArray``.
"""

from amaranth.hdl import ClockDomain, Module
from amaranth.sim import Simulator

__all__ = ["stream_put", "stream_get", "run", "pe_array_layer"]


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


async def pe_array_layer(ctx, dut, W, x, block_bits, queues, payload, rng, stall):
    """One layer ``y = W x`` through a ``hw.pe_array.PEArray``: load the activations ``x``, set
    the layer parameters, start, then feed lane ``i`` the items of ``queues[i]`` (popped as
    taken; ``payload(item)`` gives the port's field dict), each lane and ``y`` stalling with
    probability ``stall`` per cycle. Checks each row comes out once and every item is taken.
    Returns ``(y, cycles, multiplies)``; cycles count from ``start`` to ``done``."""
    from hw.pe_array import layer_config

    rows, k = W.shape
    for j, a in enumerate(x):
        ctx.set(dut.acts.payload, {"value": int(a), "last": int(j == k - 1)})
        ctx.set(dut.acts.valid, 1)
        await ctx.tick()
    ctx.set(dut.acts.valid, 0)
    for name, value in layer_config(rows, k, block_bits, dut.n_lanes).items():
        ctx.set(getattr(dut, name), value)
    ctx.set(dut.start, 1)
    await ctx.tick()
    ctx.set(dut.start, 0)
    ports = [getattr(dut, f"weights_{i}") for i in range(dut.n_lanes)]
    ys, cycles, mults = {}, 0, 0
    while True:
        for port, q in zip(ports, queues):
            if q and rng.random() >= stall:
                ctx.set(port.payload, payload(q[0]))
                ctx.set(port.valid, 1)
            else:
                ctx.set(port.valid, 0)
        ctx.set(dut.y.ready, int(rng.random() >= stall))
        taken = [ctx.get(port.valid) and ctx.get(port.ready) for port in ports]
        mults += bin(ctx.get(dut.mults)).count("1")
        if ctx.get(dut.y.valid) and ctx.get(dut.y.ready):
            p = ctx.get(dut.y.payload)
            assert p.row not in ys
            ys[p.row] = p.value
        await ctx.tick()
        cycles += 1
        for q, t in zip(queues, taken):
            if t:
                q.pop(0)
        if ctx.get(dut.done):
            break
        assert cycles < 20 * W.size + 1000, "no progress"
    assert not any(queues), "items left over"
    return [ys[r] for r in range(rows)], cycles, mults
