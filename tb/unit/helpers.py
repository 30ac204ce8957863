"""Shared helpers of the unit tests: a bench around one component, stream drivers and monitors,
request TLP builders.

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
from cocotbext.pcie.core.tlp import Tlp, TlpType
from cocotbext.pcie.core.utils import PcieId

from tb.tlp_convert import tlp_to_dws, dws_to_beats

__all__ = ["Bench", "drive", "StreamMonitor", "Sampler", "beats_of", "mem_req", "cfg_req", "io_req",
           "msg_req", "cpl_tlp", "atomic_req", "payload_bits", "seeded"]

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
    """Beat payloads (dicts for ``ctx.set``) of one TLP given as DWs (tb.tlp_convert convention)."""
    return [{"data": d, "keep": k, "first": int(f), "last": int(l)}
            for d, k, f, l in dws_to_beats(dws, width)]


# ---- request TLPs, encoded by cocotbext-pcie (independent of the RTL's own layouts) ----------------

REQUESTER = PcieId(0, 0, 0)


def _common(t, tag, rid, tc, attr, ep):
    t.tag = tag
    t.requester_id = PcieId.from_int(rid)
    t.tc = tc
    t.attr = attr
    t.ep = ep


def _finish(t, td):
    dws = tlp_to_dws(t)
    if td:
        dws[0] |= 1 << 15
        dws.append(0xD16E57ED)       # the digest: its value is never checked by the endpoint
    return dws


def mem_req(addr, length=1, *, write=False, fbe=0xF, lbe=None, data=None, tag=0, rid=0x0008,
            tc=0, attr=0, td=False, ep=False, force64=False, locked=False):
    """MRd/MWr (or MRdLk) as DWs; 64-bit format when ``addr`` is above 4 GiB or ``force64``.
    ``length`` in DWs; ``data`` a list of payload DWs (default: a pattern)."""
    t = Tlp()
    is64 = force64 or addr >= 1 << 32
    if locked:
        t.fmt_type = TlpType.MEM_READ_LOCKED_64 if is64 else TlpType.MEM_READ_LOCKED
    elif write:
        t.fmt_type = TlpType.MEM_WRITE_64 if is64 else TlpType.MEM_WRITE
    else:
        t.fmt_type = TlpType.MEM_READ_64 if is64 else TlpType.MEM_READ
    _common(t, tag, rid, tc, attr, ep)
    t.address = addr & ~3
    t.first_be = fbe
    t.last_be = (0 if length == 1 else 0xF) if lbe is None else lbe
    if write:
        if data is None:
            data = [(0x1000_0001 * (i + 1) + addr) & 0xFFFF_FFFF for i in range(length)]
        t.data = b"".join(d.to_bytes(4, "little") for d in data)
    t.length = length & 0x3FF
    return _finish(t, td)


def cfg_req(reg, *, write=False, data=0, fbe=0xF, bus=1, dev=0, fn=0, type1=False, tag=0,
            rid=0x0000, tc=0, td=False, ep=False):
    """CfgRd0/CfgWr0 (or type 1) of DW register ``reg`` (0..1023)."""
    t = Tlp()
    t.fmt_type = {(False, False): TlpType.CFG_READ_0, (True, False): TlpType.CFG_WRITE_0,
                  (False, True): TlpType.CFG_READ_1, (True, True): TlpType.CFG_WRITE_1}[write, type1]
    _common(t, tag, rid, tc, 0, ep)
    t.dest_id = PcieId(bus, dev, fn)
    t.address = reg * 4
    t.first_be = fbe
    t.last_be = 0
    t.length = 1
    if write:
        t.data = data.to_bytes(4, "little")
    return _finish(t, td)


def io_req(addr, *, write=False, data=0, fbe=0xF, tag=0, rid=0x0008, td=False):
    t = Tlp()
    t.fmt_type = TlpType.IO_WRITE if write else TlpType.IO_READ
    _common(t, tag, rid, 0, 0, False)
    t.address = addr & ~3
    t.first_be = fbe
    t.length = 1
    if write:
        t.data = data.to_bytes(4, "little")
    return _finish(t, td)


def atomic_req(kind, addr, length, *, tag=0, rid=0x0008):
    t = Tlp()
    t.fmt_type = kind
    _common(t, tag, rid, 0, 0, False)
    t.address = addr
    t.first_be = 0xF
    t.last_be = 0xF if length > 1 else 0
    t.data = bytes(4 * length)
    t.length = length
    return _finish(t, False)


def msg_req(code, *, routing=0b100, data=None, tag=0, rid=0x0008):
    """Msg/MsgD (4-DW header; cocotbext-pcie cannot pack messages, so encoded here from PCIe
    Base 2.2.8: Fmt 001/011, Type 10rrr, DW1 = requester ID, tag, message code)."""
    fmt = 0b011 if data else 0b001
    dw0 = (fmt << 29) | ((0b10000 | routing) << 24) | (len(data) if data else 0)
    return [dw0, (rid << 16) | (tag << 8) | code, 0, 0] + list(data or [])


def cpl_tlp(*, data=None, tag=0, rid=0x0008, cid=0x0100, byte_count=4, status=0):
    t = Tlp()
    t.fmt_type = TlpType.CPL_DATA if data else TlpType.CPL
    t.requester_id = PcieId.from_int(rid)
    t.completer_id = PcieId.from_int(cid)
    t.tag = tag
    t.status = status
    t.byte_count = byte_count
    if data:
        t.data = b"".join(d.to_bytes(4, "little") for d in data)
        t.length = len(data)
    return tlp_to_dws(t)


def seeded(*key):
    """A ``random.Random`` seeded from the test's name and parameters (reproducible)."""
    return random.Random(":".join(str(k) for k in key))
