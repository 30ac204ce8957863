"""Shared helpers of the unit tests: a bench around one component, stream drivers and monitors.
Requests are built by ``tb.tlp.requests`` (the testbench's one request builder).

Timing convention of every helper: values are *sampled at the clock edge* with
``ctx.tick().sample(...)`` (the value just before the edge), and every record carries the number of
that edge (``Bench.cycle``, a free-running counter in the bench), so testbenches that run in
parallel agree on cycle numbers without depending on their scheduling order.

Waveforms: set ``UNIT_WAVES=1`` and every bench writes ``build/unit_waves/<name>.vcd`` (GTKWave).
"""
import inspect
import os
import random
import re

from amaranth.hdl import Module, Signal
from amaranth.sim import Simulator
from tb.tlp.convert import dws_to_beats

__all__ = ["Bench", "drive", "StreamMonitor", "Sampler", "beats_of", "payload_bits", "seeded"]

CLOCK_PERIOD = 1e-8


class Bench:
    """One component under test on the Amaranth simulator, with a cycle counter.

    ``cycle`` counts clock edges; sampled at an edge it gives the number of that edge (0 for the
    first).  ``run()`` runs until every foreground testbench has returned, and fails if that takes
    more than ``timeout`` cycles.
    """

    def __init__(self, dut, name="bench"):
        self.dut = dut
        self.name = re.sub(r"[^A-Za-z0-9_.-]+", "_", name)
        self.top = Module()
        self.top.submodules.dut = dut
        self.cycle = Signal(32, name="cycle")
        self.top.d.sync += self.cycle.eq(self.cycle + 1)
        self._fg = []
        self._bg = []

    def add(self, testbench, background=False):
        """Add an async testbench function, or an object whose ``__call__`` is one."""
        fn = testbench if inspect.iscoroutinefunction(testbench) else testbench.__call__
        (self._bg if background else self._fg).append(fn)
        return testbench

    def run(self, timeout=20000):
        sim = Simulator(self.top)
        sim.add_clock(CLOCK_PERIOD)
        for tb in self._fg:
            sim.add_testbench(tb)
        for tb in self._bg:
            sim.add_testbench(tb, background=True)

        async def watchdog(ctx):
            for _ in range(timeout):
                await ctx.tick()
            raise AssertionError(f"{self.name}: testbenches still running after {timeout} cycles")
        sim.add_testbench(watchdog, background=True)

        if os.environ.get("UNIT_WAVES"):
            os.makedirs("build/unit_waves", exist_ok=True)
            with sim.write_vcd(f"build/unit_waves/{self.name}.vcd"):
                sim.run()
        else:
            sim.run()


async def drive(ctx, stream, payloads, cycle, *, rng=None, idle=0.0, accepted=None):
    """Offer ``payloads`` on ``stream`` in order, obeying the stream rules (payload held while
    ``valid & ~ready``).  Before each payload, idle cycles are inserted while ``rng.random() <
    idle``.  The edge number of each transfer is appended to ``accepted``."""
    for p in payloads:
        while rng is not None and idle and rng.random() < idle:
            ctx.set(stream.valid, 0)
            await ctx.tick()
        ctx.set(stream.payload, p)
        ctx.set(stream.valid, 1)
        while True:
            _, _, ready, c = await ctx.tick().sample(stream.ready, cycle)
            if ready:
                break
        if accepted is not None:
            accepted.append(c)
    ctx.set(stream.valid, 0)


def payload_bits(value):
    """Integer of a sampled payload (``data.Const``, an enum member or plain int)."""
    if hasattr(value, "as_bits"):
        return value.as_bits()
    return int(getattr(value, "value", value))


class StreamMonitor:
    """Background testbench for the sink side of a stream.

    Every cycle it drives ``ready`` (1, or 1 with probability ``ready_prob`` from ``rng``), records
    each transfer as ``(edge, payload)`` in ``items`` and checks the stream rules: once ``valid`` is
    high and not accepted, ``valid`` stays high and the payload does not change until the transfer.
    ``offered`` holds, per transfer, the edge at which that payload was first seen valid.
    """

    def __init__(self, stream, cycle, *, rng=None, ready_prob=1.0, name="stream"):
        self.stream = stream
        self.cycle = cycle
        self.rng = rng
        self.ready_prob = ready_prob
        self.name = name
        self.items = []
        self.offered = []              # per transfer: edge at which that payload first showed valid

    async def __call__(self, ctx):
        s = self.stream
        held = None
        since = None
        while True:
            if self.rng is None or self.ready_prob >= 1.0:
                r = 1
            else:
                r = int(self.rng.random() < self.ready_prob)
            ctx.set(s.ready, r)
            _, _, c, valid, payload = await ctx.tick().sample(self.cycle, s.valid, s.payload)
            bits = payload_bits(payload)
            if held is not None:
                assert valid, f"{self.name}: valid dropped at edge {c} before the transfer"
                assert bits == held, (f"{self.name}: payload changed under valid & ~ready at edge "
                                      f"{c}: {held:#x} -> {bits:#x}")
            held = bits if (valid and not r) else None
            since = (c if since is None else since) if valid else None
            if valid and r:
                self.items.append((c, payload))
                self.offered.append(since)
                since = None


class Sampler:
    """Background testbench recording ``(edge, *values)`` of some signals at every edge."""

    def __init__(self, cycle, *signals):
        self.cycle = cycle
        self.signals = signals
        self.rows = []

    async def __call__(self, ctx):
        async for _, _, c, *vals in ctx.tick().sample(self.cycle, *self.signals):
            self.rows.append((c, *vals))


def beats_of(dws, width):
    """Beat payloads (dicts for ``ctx.set``) of one TLP given as DWs (tb.tlp.convert convention)."""
    return [{"data": d, "keep": k, "first": int(f), "last": int(l)}
            for d, k, f, l in dws_to_beats(dws, width)]


def seeded(*key):
    """A ``random.Random`` seeded from the test's name and parameters (reproducible)."""
    return random.Random(":".join(str(k) for k in key))
