"""cocotb 2.x bus-functional models for Amaranth ``lib.stream`` ports.

Amaranth names a stream port ``<name>__valid``, ``<name>__ready`` and ``<name>__payload``; a
struct payload is one flat vector with the first field in the low bits. ``layout`` below is that
struct (the ``amaranth.lib.data.StructLayout`` of ``hw/tokens.py``, or ``[(field, width), ...]``)
so items can be dicts of unsigned field values; without it, items are plain ints.

Timing: the models drive on the falling clock edge and sample in the ``ReadOnly`` phase that
follows, when all inputs are settled for the next rising edge. A transfer is counted when valid
and ready are both high then. This does not depend on how a simulator orders the rising-edge
callbacks against register updates, so the same models work on Verilator and Icarus.

Backpressure and stalls come from pause generators, as in cocotbext-axi: an iterator yielding
truthy values for the cycles in which the model pauses (source: valid low; sink: ready low).
"""

from collections import deque

import cocotb
from cocotb.triggers import ClockCycles, Event, FallingEdge, ReadOnly

__all__ = ["layout_fields", "pack", "unpack", "StreamSource", "StreamSink", "WatchdogTimeout", "watchdog",
           "random_pauses"]


def layout_fields(layout):
    """``[(field, width), ...]`` in bit order (first field in the low bits) of a ``StructLayout``;
    a list of pairs (or None) is returned as it is."""
    if layout is None or isinstance(layout, (list, tuple)):
        return layout
    return [(name, field.width) for name, field in sorted(layout, key=lambda item: item[1].offset)]


def pack(layout, item):
    """Flatten a dict ``item`` to an int by ``layout`` (first field in the low bits)."""
    if layout is None or isinstance(item, int):
        return int(item)
    value, offset = 0, 0
    for field, width in layout_fields(layout):
        field_value = int(item.get(field, 0))
        if not 0 <= field_value < (1 << width):
            raise ValueError(f"field {field!r} value {field_value} does not fit in {width} bits")
        value |= field_value << offset
        offset += width
    return value


def unpack(layout, value):
    """Inverse of :func:`pack`."""
    if layout is None:
        return value
    item, offset = {}, 0
    for field, width in layout_fields(layout):
        item[field] = (value >> offset) & ((1 << width) - 1)
        offset += width
    return item


class _StreamBase:
    def __init__(self, dut, name, clock, layout=None):
        self.valid   = getattr(dut, f"{name}__valid")
        self.ready   = getattr(dut, f"{name}__ready")
        self.payload = getattr(dut, f"{name}__payload")
        self.clock   = clock
        self.layout  = layout_fields(layout)
        self.queue   = deque()
        self._pause  = None
        self._idle   = Event()
        self._idle.set()
        self._task   = cocotb.start_soon(self._run())

    def set_pause_generator(self, generator=None):
        """Pause in the cycles where ``generator`` yields a truthy value; ``None`` disables."""
        self._pause = None if generator is None else iter(generator)

    def clear_pause_generator(self):
        self._pause = None

    def _paused(self):
        return self._pause is not None and bool(next(self._pause, False))

    def stop(self):
        self._task.cancel()


class StreamSource(_StreamBase):
    """Drives ``<name>__valid``/``__payload`` from a queue, honouring ``<name>__ready``."""

    def __init__(self, dut, name, clock, layout=None):
        super().__init__(dut, name, clock, layout)
        self.valid.value = 0

    def send_nowait(self, item):
        self.queue.append(item)
        self._idle.clear()

    async def send(self, item):
        """Queue ``item``; returns at once (use :meth:`wait` to wait for the transfer)."""
        self.send_nowait(item)

    async def wait(self):
        """Wait until every queued item has been transferred."""
        await self._idle.wait()

    def idle(self):
        return not self.queue

    async def _run(self):
        transferred = False
        while True:
            await FallingEdge(self.clock)
            if transferred:
                self.queue.popleft()
                if not self.queue:
                    self._idle.set()
            if self.queue and not self._paused():
                self.payload.value = pack(self.layout, self.queue[0])
                self.valid.value = 1
            else:
                self.valid.value = 0
            await ReadOnly()
            transferred = int(self.valid.value) == 1 and int(self.ready.value) == 1


class StreamSink(_StreamBase):
    """Drives ``<name>__ready``; collects transferred payloads into :attr:`queue`."""

    def __init__(self, dut, name, clock, layout=None):
        super().__init__(dut, name, clock, layout)
        self._have = Event()
        self.ready.value = 0

    async def recv(self):
        """The next transferred item (a dict when a layout is given)."""
        while not self.queue:
            self._have.clear()
            await self._have.wait()
        return self.queue.popleft()

    def empty(self):
        return not self.queue

    async def _run(self):
        while True:
            await FallingEdge(self.clock)
            self.ready.value = 0 if self._paused() else 1
            await ReadOnly()
            if int(self.valid.value) == 1 and int(self.ready.value) == 1:
                self.queue.append(unpack(self.layout, int(self.payload.value)))
                self._have.set()


class WatchdogTimeout(AssertionError):
    pass


async def _watchdog(clock, cycles, what):
    await ClockCycles(clock, cycles)
    raise WatchdogTimeout(f"{what}: no progress after {cycles} cycles")


def watchdog(clock, cycles, what="test"):
    """Start a task that fails the running test after ``cycles`` rising edges of ``clock``.
    Cancel it (``task.cancel()``) when done; cocotb also cancels it at the end of the test."""
    return cocotb.start_soon(_watchdog(clock, cycles, what))


def random_pauses(rng, rate):
    """Pause generator for :meth:`StreamSource.set_pause_generator` / ``StreamSink``: pause each
    cycle with probability ``rate`` (``rng`` a ``random.Random``)."""
    while True:
        yield rng.random() < rate
