"""Interrupt delivery on the Amaranth simulator (irq/interrupts.py, irq/msix_table.py, VIRTIO 1.3
4.1.5.3/4.1.5.4, 4.1.4.5; PCI 3.0 6.8.2 MSI-X; PCIe 2.2.8.1 INTx messages).

Two benches:

* ``Harness``: the InterruptController with the real MsixTable and Isr around it, queue vectors
  in registers read with the one-cycle latency of the queue table, the chunk port sunk by a
  ``StreamMonitor`` (any back-pressure).  Every message on the chunk port is decoded (MSI-X
  write: 3-DW or 4-DW header, entry found by its unique data; Assert/Deassert_INTA).
* the whole ``VirtioPciEndpoint``, programmed with TLPs, for the latency from the back-end's
  ``irq`` request to the first beat of the MSI-X write on ``tx`` (DESIGN.md section 8: <= 4).

Timing model the checks use (the controller's docstring): an event accepted at edge ``e`` is
resolved at edge ``e + 1``; a message whose first chunk is first offered at edge ``o`` was decided
at edge ``o - 1`` and covers every event for its vector accepted at or before ``o - 2``.  A Mask
write accepted on the table bus at edge ``c`` is in force for decisions from edge ``c + 2`` (the
table writes the Mask word back at ``c + 1``); the bench follows the Mask bits by replaying the
table writes, since they are RAM words and no longer a vector of flip-flops.
"""
import pytest
from amaranth.hdl import Signal
from amaranth.lib.wiring import connect
from cocotbext.pcie.core.tlp import TlpType
from virtio_pci.config.capabilities import CapId, build_config_image
from virtio_pci.irq.interrupts import InterruptController
from virtio_pci.irq.msix_table import MsixTable
from virtio_pci.params import VirtioPciParams
from virtio_pci.tlp.layouts import FmtType, MsgCode
from virtio_pci.top import VirtioPciEndpoint
from virtio_pci.virtio.common_cfg import NO_VECTOR
from virtio_pci.virtio.isr import Isr

from tb.tlp.convert import beats_to_dws, dws_to_tlp

from tb.tlp.requests import cfg_req, mem_req

from .helpers import Bench, Sampler, StreamMonitor, beats_of, drive, seeded

RID = 0x3C28                  # requester ID the function captured (bus 0x3C, device 5)
MSG_LOCAL = 0x34              # Fmt 001 (4-DW, no data), Type 10100 (local)


def entry_addr(v):
    """Message address of table entry ``v``: 32-bit for even entries, 64-bit for odd ones."""
    lo = 0xFEE0_0000 + 0x40 * v
    return lo if v % 2 == 0 else (0x0000_0012_0000_0000 | lo)


def entry_data(v):
    return 0x5A00 + v


# ------------------------------------------------------------------------------- the harness
async def bus_access(ctx, bus, addr, *, write=False, be=0xF, data=0):
    """One register-bus access (DW ``addr``); returns the read data for reads."""
    ctx.set(bus.en, 1)
    ctx.set(bus.addr, addr)
    ctx.set(bus.write, int(write))
    ctx.set(bus.be, be)
    ctx.set(bus.wdata, data)
    while True:
        _, _, ready = await ctx.tick().sample(bus.ready)
        if ready:
            break
    ctx.set(bus.en, 0)
    return None if write else ctx.get(bus.rdata)


class Msg:
    """One message taken off the chunk port."""

    def __init__(self, offered, edges, dws, kind, vector=None, addr=None, four=None, code=None):
        self.offered = offered        # edge at which its first chunk was first offered
        self.edges = edges            # edges of its chunk transfers
        self.dws = dws
        self.kind = kind              # "msix" or "intx"
        self.vector = vector
        self.addr = addr
        self.four = four
        self.code = code

    def __repr__(self):
        if self.kind == "intx":
            return f"<{'Assert' if self.code == MsgCode.ASSERT_INTA else 'Deassert'}_INTA @{self.offered}>"
        return f"<MSI-X v{self.vector} @{self.offered}>"


class Harness:
    def __init__(self, name, p=None, *, rng=None, ready_prob=1.0):
        self.p = p = p or VirtioPciParams(msix_vectors=6, num_queues=4)
        self.n = p.msix_vectors
        self.irqc = irqc = InterruptController(p)
        self.msix = msix = MsixTable(p, max(10, (4 * self.n - 1).bit_length()))
        self.isr = isr = Isr()
        self.b = b = Bench(irqc, name)
        top = b.top
        top.submodules.msix = msix
        top.submodules.isr = isr
        self.qvec = [Signal(16, init=NO_VECTOR, name=f"qvec{i}") for i in range(p.num_queues)]
        vr = Signal(16, init=NO_VECTOR)
        with top.Switch(irqc.vrd_addr):
            for i, q in enumerate(self.qvec):
                with top.Case(i):
                    top.d.sync += vr.eq(q)
            with top.Default():
                top.d.sync += vr.eq(NO_VECTOR)
        for i in range(2):
            connect(top, irqc.mask_rd[i], msix.mask_rd[i])
        connect(top, msix.mask_wr, irqc.mask_wr)
        top.d.comb += [
            irqc.vrd_vector.eq(vr),
            msix.lookup_vector.eq(irqc.lookup_vector),
            irqc.lookup_addr.eq(msix.lookup_addr),
            irqc.lookup_data.eq(msix.lookup_data),
            irqc.pba_addr.eq(msix.pba_addr),
            msix.pba_data.eq(irqc.pba_data),
            msix.pba_ready.eq(irqc.pba_ready),
            isr.set_queue.eq(irqc.set_isr_queue),
            isr.set_config.eq(irqc.set_isr_config),
            isr.clear.eq(irqc.clear),
            irqc.isr.eq(isr.isr),
        ]
        self.mon = StreamMonitor(irqc.chunk, b.cycle, rng=rng, ready_prob=ready_prob, name="chunk")
        b.add(self.mon, background=True)
        self.state = Sampler(b.cycle, irqc.msix_enable, irqc.fmask, irqc.bme,
                             irqc.config_vector, irqc.pending_any, *self.qvec)
        b.add(self.state, background=True)
        t = msix.table
        # the Mask bits are RAM words now: the bench replays the table writes to know them
        self.table_log = Sampler(b.cycle, t.en, t.write, t.addr, t.be, t.wdata)
        b.add(self.table_log, background=True)
        self.accepted = []            # (edge, payload dict) of every accepted request

    # -- stimulus ---------------------------------------------------------------------------
    async def setup(self, ctx, *, unmask=True, msix=True, entries=None):
        """Program every table entry (or those in ``entries``; address/data per
        ``entry_addr``/``entry_data``), unmask them (or leave them masked), enable MSI-X and Bus
        Master, requester ID."""
        irqc = self.irqc
        ctx.set(irqc.requester_id, RID)
        ctx.set(irqc.bme, 1)
        ctx.set(irqc.msix_enable, int(msix))
        ctx.set(irqc.config_vector, NO_VECTOR)
        for v in range(self.n) if entries is None else entries:
            a = entry_addr(v)
            await self.table_write(ctx, v, 0, a & 0xFFFF_FFFF)
            await self.table_write(ctx, v, 1, a >> 32)
            await self.table_write(ctx, v, 2, entry_data(v))
            if unmask:
                await self.mask(ctx, v, False)

    async def table_write(self, ctx, v, dw, value, be=0xF):
        await bus_access(ctx, self.msix.table, 4 * v + dw, write=True, data=value, be=be)

    async def mask(self, ctx, v, masked):
        await self.table_write(ctx, v, 3, int(masked))

    async def pba(self, ctx, word=0):
        return await bus_access(ctx, self.msix.pba, word)

    async def pba_all(self, ctx):
        """The whole Pending Bit Array as one integer (every 32-bit word read)."""
        out = 0
        for k in range((self.n + 31) // 32):
            out |= await self.pba(ctx, k) << (32 * k)
        return out

    async def isr_read(self, ctx):
        return await bus_access(ctx, self.isr.bus, 0, be=0x1)

    async def fire(self, ctx, *events, rng=None, idle=0.0):
        """Send requests (``("q", n)`` or ``("c",)``) back to back on ``req``."""
        payloads = [{"queue": e[1], "config": 0} if e[0] == "q" else {"queue": 0, "config": 1}
                    for e in events]
        edges = []
        await drive(ctx, self.irqc.req, payloads, self.b.cycle, rng=rng, idle=idle, accepted=edges)
        self.accepted += list(zip(edges, payloads))
        return edges

    async def ticks(self, ctx, n):
        for _ in range(n):
            await ctx.tick()

    async def drain(self, ctx, quiet=12, limit=3000):
        """Wait until the chunk port and the pending bits have been idle for ``quiet`` cycles."""
        still = 0
        for _ in range(limit):
            busy = ctx.get(self.irqc.chunk.valid) or ctx.get(self.irqc.pending_any)
            still = 0 if busy else still + 1
            if still >= quiet:
                return
            await ctx.tick()
        raise AssertionError("chunk port never went quiet")

    # -- decoding ----------------------------------------------------------------------------
    def messages(self):
        out = []
        cur = []
        for (edge, p), offered in zip(self.mon.items, self.mon.offered):
            dws = [int(p.dw[i]) for i in range(int(p.n))]
            if not cur:
                assert p.first, f"chunk at edge {edge}: a message must start with first=1"
                cur = [(edge, offered, dws)]
            else:
                assert not p.first, f"chunk at edge {edge}: first=1 inside a message"
                cur.append((edge, offered, dws))
            if p.last:
                out.append(self._decode(cur))
                cur = []
        return out

    def _decode(self, chunks):
        dws = [d for _, _, c in chunks for d in c]
        edges = [e for e, _, _ in chunks]
        offered = chunks[0][1]
        fmt_type = dws[0] >> 24
        if fmt_type == MSG_LOCAL:
            assert len(dws) == 4 and dws[0] & 0x3FF == 0, f"INTx message {dws}"
            assert dws[1] >> 16 == RID, f"INTx requester ID {dws[1] >> 16:#06x}"
            assert dws[2] == dws[3] == 0
            return Msg(offered, edges, dws, "intx", code=dws[1] & 0xFF)
        assert dws[0] & 0x00FF_FFFF == 1, f"MWr DW0 {dws[0]:#010x}: length 1, TC/attr/TD/EP 0"
        assert dws[1] == (RID << 16) | 0x0F, f"MWr DW1 {dws[1]:#010x}: requester, BEs 0/F"
        if fmt_type == FmtType.MWR32:
            assert len(dws) == 4 and len(chunks) == 1, f"3-DW MWr in {len(chunks)} chunks: {dws}"
            addr, data, four = dws[2], dws[3], False
        else:
            assert fmt_type == FmtType.MWR64, f"unexpected TLP {dws}"
            assert len(dws) == 5, f"4-DW MWr of {len(dws)} DWs"
            assert dws[2] != 0, "4-DW header with a zero upper address (must be 3-DW)"
            addr, data, four = (dws[2] << 32) | dws[3], dws[4], True
        v = data - 0x5A00
        assert 0 <= v < self.n and entry_addr(v) == addr, \
            f"MSI-X write of {data:#x} to {addr:#x} matches no table entry"
        return Msg(offered, edges, dws, "msix", vector=v, addr=addr, four=four)

    async def stream_events(self, ctx, queues, cfg_at=None):
        """One used-buffer request per cycle for ``queues`` (a ``config_event`` as well at index
        ``cfg_at``); the request port must never stall.  Returns the edge of each acceptance."""
        req = self.irqc.req
        accepted = []
        ctx.set(req.valid, 1)
        for i, q in enumerate(queues):
            p = {"queue": q, "config": 0}
            ctx.set(req.payload, p)
            ctx.set(self.irqc.config_event, int(i == cfg_at))
            _, _, c, ready = await ctx.tick().sample(self.b.cycle, req.ready)
            assert ready, "req stalled"
            accepted.append(c)
            self.accepted.append((c, p))
        ctx.set(req.valid, 0)
        ctx.set(self.irqc.config_event, 0)
        return accepted

    def msix_msgs(self):
        return [m for m in self.messages() if m.kind == "msix"]

    def intx(self):
        return [m for m in self.messages() if m.kind == "intx"]

    def at(self, edge):
        """State sampled at ``edge``: dict."""
        row = self.state.rows[edge - self.state.rows[0][0]]
        assert row[0] == edge
        _, en, fm, bme, cfgv, pend, *qv = row
        return {"msix_enable": en, "fmask": fm, "bme": bme, "masked": self.masked_at(edge),
                "config_vector": cfgv, "pending_any": pend, "qvec": qv}

    def masked_at(self, edge):
        """Mask bits (an integer, bit v = vector v) as seen at ``edge``: every Mask write
        accepted on the table bus before ``edge - 1`` applied to the reset value (all masked): the
        table writes the Mask word back at the edge after the bus write."""
        mask = (1 << self.n) - 1
        for c, en, wr, addr, be, wdata in self.table_log.rows:
            if c >= edge - 1:
                break
            if en and wr and addr % 4 == 3 and be & 1 and addr // 4 < self.n:
                v = addr // 4
                mask = (mask | (1 << v)) if wdata & 1 else (mask & ~(1 << v))
        return mask

    def event_vectors(self):
        """(accept edge, vector) per accepted request, NO_VECTOR/out-of-range ones left out:
        queue vectors are read at the accept edge, the config vector one edge later."""
        out = []
        for e, p in self.accepted:
            if p["config"]:
                v = self.at(e + 1)["config_vector"]
            else:
                qv = self.at(e)["qvec"]
                v = qv[p["queue"]] if p["queue"] < len(qv) else NO_VECTOR
            if v < self.n and self.at(e + 1)["msix_enable"]:
                out.append((e, v))
        return out

    def check_coalescing(self, events=None, *, drained=True):
        """Per vector: (1) every message was deliverable when decided (MSI-X enabled, Function
        Mask clear, Bus Master on, vector unmasked); (2) no redundant message: between two
        messages for a vector there is an event the second one covers that the first did not;
        (3) with ``drained``: every event is covered by a later message."""
        events = self.event_vectors() if events is None else events
        msgs = self.msix_msgs()
        for m in msgs:
            s = self.at(m.offered - 1)
            assert s["msix_enable"] and not s["fmask"] and s["bme"], \
                f"{m} decided while not deliverable: {s}"
            assert not s["masked"] >> m.vector & 1, f"{m} decided while vector {m.vector} masked"
        for v in range(self.n):
            ev = sorted(e for e, vv in events if vv == v)
            ms = [m.offered for m in msgs if m.vector == v]
            prev = None
            for o in ms:
                covered = [e for e in ev if e <= o - 2 and (prev is None or e > prev - 2)]
                assert covered, (f"vector {v}: message offered at {o} covers no new event "
                                 f"(events {ev}, messages {ms})")
                prev = o
            if drained:
                late = [e for e in ev if not ms or e > ms[-1] - 2]
                assert not late, f"vector {v}: events {late} never signalled (messages {ms})"


def run(h, main, timeout=20000):
    h.b.add(main)
    h.b.run(timeout=timeout)


# ------------------------------------------------------------------------------- tests
def test_latency_and_headers():
    """An event for an unmasked vector: first chunk exactly 2 cycles after the request was
    accepted; 3-DW MWr (one chunk) for a 32-bit message address, 4-DW MWr (header chunk + data
    chunk, back to back) when the upper address is non-zero; requester ID, length 1, BEs 0/F,
    address and data from the table entry; nothing else on the port."""
    h = Harness("irq_latency")

    async def main(ctx):
        await h.setup(ctx)
        ctx.set(h.qvec[0], 0)
        ctx.set(h.qvec[1], 1)
        ctx.set(h.irqc.config_vector, 3)
        await ctx.tick()
        for ev, v in ((("q", 0), 0), (("q", 1), 1), (("c",), 3), (("q", 0), 0)):
            n = len(h.mon.items)
            (e,) = await h.fire(ctx, ev)
            await h.ticks(ctx, 8)
            new = h.mon.items[n:]
            assert new, f"{ev}: no chunk"
            assert new[0][0] - e == 2, f"{ev}: first chunk {new[0][0] - e} cycles after the request"
            m = h.messages()[-1]
            assert m.kind == "msix" and m.vector == v
            assert m.four == (v % 2 == 1)
            if m.four:
                assert len(new) == 2 and new[1][0] == new[0][0] + 1, "4-DW MWr: data chunk not next"
            else:
                assert len(new) == 1
        # a configuration change from common_cfg (config_event): same latency
        n = len(h.mon.items)
        ctx.set(h.irqc.config_event, 1)
        _, _, e = await ctx.tick().sample(h.b.cycle)
        ctx.set(h.irqc.config_event, 0)
        await h.ticks(ctx, 8)
        new = h.mon.items[n:]
        assert new and new[0][0] - e == 2, f"config_event: first chunk {new[:1]} after edge {e}"
        assert h.messages()[-1].vector == 3
        assert len(h.msix_msgs()) == 5 and not h.intx()

    run(h, main)


def test_pending_unmask_exactly_once():
    """MSX-D1 at the controller: events for a masked vector send nothing and set its pending bit
    (PBA), repeated events coalesce; unmasking sends exactly one message and clears the bit.
    Same for the Function Mask (two vectors pending, one message each when cleared) and for Bus
    Master Enable.  With MSI-X disabled nothing is pending and no MSI-X write leaves."""
    h = Harness("irq_pending")

    async def main(ctx):
        await h.setup(ctx)
        for q in range(4):
            ctx.set(h.qvec[q], q)
        await h.mask(ctx, 2, True)
        await h.fire(ctx, ("q", 2), ("q", 2))
        await h.ticks(ctx, 5)
        await h.fire(ctx, ("q", 2))
        await h.ticks(ctx, 20)
        assert h.msix_msgs() == [], "message for a masked vector"
        assert await h.pba(ctx) == 0b100, "PBA after events on masked vector 2"
        await h.mask(ctx, 2, False)
        await h.ticks(ctx, 20)
        assert [m.vector for m in h.msix_msgs()] == [2], f"after unmask: {h.msix_msgs()}"
        assert await h.pba(ctx) == 0
        # Function Mask
        ctx.set(h.irqc.fmask, 1)
        await h.fire(ctx, ("q", 0), ("q", 3), ("q", 0), ("q", 3))
        await h.ticks(ctx, 20)
        assert len(h.msix_msgs()) == 1 and await h.pba(ctx) == 0b1001
        ctx.set(h.irqc.fmask, 0)
        await h.ticks(ctx, 20)
        assert sorted(m.vector for m in h.msix_msgs()[1:]) == [0, 3]
        assert await h.pba(ctx) == 0
        # Bus Master Enable
        ctx.set(h.irqc.bme, 0)
        await h.fire(ctx, ("q", 1), ("c",), ("q", 1))
        await h.ticks(ctx, 20)
        assert len(h.msix_msgs()) == 3 and await h.pba(ctx) == 0b10
        ctx.set(h.irqc.bme, 1)
        await h.ticks(ctx, 20)
        assert [m.vector for m in h.msix_msgs()[3:]] == [1]
        # MSI-X disabled: vectors ignored, nothing pending
        ctx.set(h.irqc.msix_enable, 0)
        await h.fire(ctx, ("q", 1), ("q", 2))
        await h.ticks(ctx, 20)
        assert len(h.msix_msgs()) == 4 and await h.pba(ctx) == 0
        h.check_coalescing()

    run(h, main)


@pytest.mark.parametrize("offset", range(-3, 5))
def test_unmask_meets_event(offset):
    """A pending vector is unmasked in the same cycle (give or take a few) as a new event for it
    arrives: the pending message and the event coalesce or follow each other, but no message is
    sent that covers no new event, and the event is signalled."""
    h = Harness(f"irq_unmask_race_{offset + 3}")

    async def main(ctx):
        await h.setup(ctx)
        ctx.set(h.qvec[0], 0)
        await h.mask(ctx, 0, True)
        await h.fire(ctx, ("q", 0))
        await h.ticks(ctx, 5)

        async def unmask():
            await h.mask(ctx, 0, False)
        if offset < 0:
            await h.fire(ctx, ("q", 0))
            await h.ticks(ctx, -offset - 1)
            await unmask()
        else:
            await unmask()
            await h.ticks(ctx, offset)
            await h.fire(ctx, ("q", 0))
        await h.drain(ctx)
        assert 1 <= len(h.msix_msgs()) <= 2
        h.check_coalescing()

    run(h, main)


@pytest.mark.parametrize("ready_prob", [0.0, 0.3])
def test_backpressure_never_loses_events(ready_prob):
    """Back-to-back events on every vector while the chunk port is stalled (completely, then
    randomly): nothing lost (each vector signalled after its last event), repeats coalesce
    (one pending bit per vector), at most one message per vector per new event, and the
    request port never stalls."""
    rng = seeded("irq-bp", ready_prob)
    h = Harness(f"irq_bp_{ready_prob}", rng=rng, ready_prob=ready_prob)
    n_ev = 60

    async def main(ctx):
        await h.setup(ctx)
        for q in range(4):
            ctx.set(h.qvec[q], q)
        ctx.set(h.irqc.config_vector, 5)
        evs = [("q", rng.randrange(4)) if rng.random() < 0.8 else ("c",) for _ in range(n_ev)]
        edges = await h.fire(ctx, *evs)
        assert edges == list(range(edges[0], edges[0] + n_ev)), "req stalled"
        if ready_prob == 0.0:
            await h.ticks(ctx, 10)
            # nothing can leave: every vector that had an event is pending, one bit each
            want = 0
            for _, v in h.event_vectors():
                want |= 1 << v
            sent_first = {m.vector for m in h.msix_msgs()}
            assert len(h.mon.items) == 0
            assert (await h.pba_all(ctx) | (1 << next(iter(sent_first), 0))) & want == want
            h.mon.ready_prob = 1.0
        else:
            h.mon.ready_prob = 1.0
        await h.drain(ctx)
        assert await h.pba_all(ctx) == 0 and not ctx.get(h.irqc.pending_any)
        h.check_coalescing()

    run(h, main)


def test_sustained_stream_starves_nobody():
    """One queue's events arrive every cycle for a long time while the transmitter is randomly
    stalled; a single event for another vector and a configuration change (``config_event``,
    from common_cfg) arriving in the middle are signalled within a bounded time, not only after
    the stream stops."""
    rng = seeded("irq-starve")
    h = Harness("irq_starve", rng=rng, ready_prob=0.5)
    n_ev = 300
    q1_at, cfg_at = 30, 40

    async def main(ctx):
        await h.setup(ctx)
        ctx.set(h.qvec[0], 0)
        ctx.set(h.qvec[1], 1)
        ctx.set(h.irqc.config_vector, 2)
        await ctx.tick()
        accepted = await h.stream_events(ctx, [1 if i == q1_at else 0 for i in range(n_ev)],
                                         cfg_at)
        msgs = h.msix_msgs()
        v1 = [m.offered for m in msgs if m.vector == 1]
        v2 = [m.offered for m in msgs if m.vector == 2]
        assert v1 and v1[0] - accepted[q1_at] <= 40, \
            f"vector 1 starved: event at {accepted[q1_at]}, messages {v1}"
        assert v2 and v2[0] - accepted[cfg_at] <= 40, \
            f"configuration change starved: event at {accepted[cfg_at]}, messages {v2}"
        await h.drain(ctx)

    run(h, main)


def test_intx_sequencing():
    """ISR-03..05 at the controller, MSI-X disabled: an event sets its ISR bit and then sends
    Assert_INTA (after the bit is set); more events send nothing more; the read that clears the
    ISR sends Deassert_INTA; Interrupt Disable deasserts and blocks Assert while the ISR stays set,
    clearing it asserts again; enabling MSI-X deasserts.  Messages alternate, Assert first."""
    h = Harness("irq_intx")

    async def main(ctx):
        await h.setup(ctx, msix=False)
        ctx.set(h.qvec[0], 0)            # vectors are ignored with MSI-X disabled
        ctx.set(h.irqc.config_vector, 1)
        (e,) = await h.fire(ctx, ("q", 0))
        await h.ticks(ctx, 6)
        (m,) = h.intx()
        assert m.code == MsgCode.ASSERT_INTA
        assert ctx.get(h.isr.isr) == 0b01
        assert m.offered >= e + 2, "Assert_INTA before the ISR bit was set"
        await h.fire(ctx, ("c",), ("q", 0))
        await h.ticks(ctx, 6)
        assert len(h.intx()) == 1, "a second Assert while asserted"
        assert await h.isr_read(ctx) & 0xFF == 0b11, "ISR-D2: both causes"
        await h.ticks(ctx, 6)
        assert [x.code for x in h.intx()] == [MsgCode.ASSERT_INTA, MsgCode.DEASSERT_INTA]
        # Interrupt Disable
        await h.fire(ctx, ("q", 1))
        await h.ticks(ctx, 6)
        ctx.set(h.irqc.intx_disable, 1)
        await h.ticks(ctx, 6)
        codes = [x.code for x in h.intx()]
        assert codes[-2:] == [MsgCode.ASSERT_INTA, MsgCode.DEASSERT_INTA]
        await h.fire(ctx, ("q", 2), ("c",))
        await h.ticks(ctx, 10)
        assert len(h.intx()) == 4, "Assert while Interrupt Disable is set"
        assert ctx.get(h.isr.isr) == 0b11
        ctx.set(h.irqc.intx_disable, 0)
        await h.ticks(ctx, 6)
        assert h.intx()[-1].code == MsgCode.ASSERT_INTA
        # MSI-X enable deasserts
        ctx.set(h.irqc.msix_enable, 1)
        await h.ticks(ctx, 6)
        assert h.intx()[-1].code == MsgCode.DEASSERT_INTA and len(h.intx()) == 6
        assert h.msix_msgs() == []

    run(h, main)


def test_intx_random_with_backpressure():
    """Random events, ISR reads, Interrupt Disable and MSI-X Enable toggles with the chunk port
    randomly stalled: INTx messages strictly alternate starting with Assert, an Assert is only
    decided while it is wanted (ISR non-zero, Interrupt Disable clear, MSI-X off), and once
    quiet the line's last message matches what is wanted."""
    rng = seeded("irq-intx-rand")
    h = Harness("irq_intx_rand", rng=rng, ready_prob=0.4)
    want_rows = Sampler(h.b.cycle, h.irqc.msix_enable, h.irqc.intx_disable, h.isr.isr)
    h.b.add(want_rows, background=True)

    async def main(ctx):
        await h.setup(ctx, msix=False)
        for q in range(4):
            ctx.set(h.qvec[q], q)
        for _ in range(150):
            r = rng.random()
            if r < 0.45:
                await h.fire(ctx, ("q", rng.randrange(4)) if rng.random() < 0.7 else ("c",))
            elif r < 0.65:
                await h.isr_read(ctx)
            elif r < 0.8:
                ctx.set(h.irqc.intx_disable, int(rng.random() < 0.4))
            elif r < 0.87:
                ctx.set(h.irqc.msix_enable, int(rng.random() < 0.3))
            await h.ticks(ctx, rng.randrange(4))
        h.mon.ready_prob = 1.0
        await h.ticks(ctx, 20)
        msgs = h.intx()
        assert len(msgs) > 20, f"only {len(msgs)} INTx messages"
        base = want_rows.rows[0][0]

        def wanted(edge):
            _, en, dis, isr = want_rows.rows[edge - base]
            return bool(isr) and not dis and not en
        for i, m in enumerate(msgs):
            want = MsgCode.ASSERT_INTA if i % 2 == 0 else MsgCode.DEASSERT_INTA
            assert m.code == want, f"message {i} {m}: INTx messages must alternate"
            assert wanted(m.offered - 1) == (m.code == MsgCode.ASSERT_INTA), \
                f"{m} decided against the wanted state"
        want_now = (bool(ctx.get(h.isr.isr)) and not ctx.get(h.irqc.intx_disable)
                    and not ctx.get(h.irqc.msix_enable))
        assert (msgs[-1].code == MsgCode.ASSERT_INTA) == want_now

    run(h, main, timeout=40000)


def random_mix(h, rng, steps=250, min_msgs=50):
    """Random queue and configuration events, Mask toggles through the table, Function Mask, Bus
    Master Enable and MSI-X Enable toggles, queue vectors remapped while requests are in flight
    (NO_VECTOR too); then everything unmasked and drained, and the coalescing rules checked."""
    async def main(ctx):
        await h.setup(ctx)
        n = h.n
        for q in range(4):
            ctx.set(h.qvec[q], rng.randrange(n))
        ctx.set(h.irqc.config_vector, rng.randrange(n))
        for _ in range(steps):
            r = rng.random()
            if r < 0.5:
                k = rng.randint(1, 4)
                evs = [("q", rng.randrange(5)) if rng.random() < 0.85 else ("c",) for _ in range(k)]
                await h.fire(ctx, *evs)
            elif r < 0.65:
                await h.mask(ctx, rng.randrange(n), rng.random() < 0.5)
            elif r < 0.72:
                ctx.set(h.irqc.fmask, int(rng.random() < 0.3))
            elif r < 0.78:
                ctx.set(h.irqc.bme, int(rng.random() < 0.7))
            elif r < 0.82:
                ctx.set(h.irqc.msix_enable, int(rng.random() < 0.8))
            elif r < 0.92:
                ctx.set(h.qvec[rng.randrange(4)], rng.choice([*range(n), NO_VECTOR]))
            else:
                ctx.set(h.irqc.config_vector, rng.choice([*range(n), NO_VECTOR]))
            await h.ticks(ctx, rng.randrange(3))
        ctx.set(h.irqc.fmask, 0)
        ctx.set(h.irqc.bme, 1)
        ctx.set(h.irqc.msix_enable, 1)
        for v in range(n):
            await h.mask(ctx, v, False)
        h.mon.ready_prob = 1.0
        await h.drain(ctx)
        assert len(h.msix_msgs()) > min_msgs
        h.check_coalescing()
    return main


def test_random_masking_remapping_backpressure():
    """Random mix with random chunk back-pressure: queue and configuration events, per-vector
    mask toggles through the table, Function Mask, Bus Master Enable and MSI-X Enable toggles,
    queue vectors remapped while requests are in flight (NO_VECTOR too).  Every message was
    deliverable when decided, none is redundant, and after everything is unmasked each event
    has been signalled on the vector it resolved to."""
    rng = seeded("irq-rand")
    h = Harness("irq_rand", rng=rng, ready_prob=0.5)
    run(h, random_mix(h, rng), timeout=60000)


# ------------------------------------------------------------------------------- several words
# Pending and Mask bits are kept as 32-bit RAM words with a summary bit per word: these benches
# have pending vectors in several words.
WORDS_P = VirtioPciParams(msix_vectors=96, num_queues=4)


async def fire_on(h, ctx, v, queue=0):
    """One request on ``queue`` after pointing that queue at vector ``v``."""
    ctx.set(h.qvec[queue], v)
    await ctx.tick()
    return await h.fire(ctx, ("q", queue))


def test_words_pba_and_unmask():
    """96 vectors (three PBA words): events for masked vectors in every word (word boundaries
    31/32, 63/64, the last vector) set exactly their PBA bits, read word by word through the PBA
    region, and their Mask bits read back through the table; Vector Control bits 31:1 read 0.
    Unmasking them (Function Mask held while the per-vector masks are cleared, then released)
    sends each exactly once and clears the PBA; an event for an unmasked vector meanwhile is
    signalled too."""
    h = Harness("irq_words_pba", WORDS_P)
    vs = [0, 3, 31, 32, 40, 63, 64, 95]

    async def main(ctx):
        await h.setup(ctx, unmask=False)
        for v in range(h.n):
            if v not in vs:
                await h.mask(ctx, v, False)
        for v in vs:
            await fire_on(h, ctx, v)
        await h.ticks(ctx, 10)
        assert h.msix_msgs() == [], "message for a masked vector"
        want = sum(1 << v for v in vs)
        for k in range(3):
            got = await h.pba(ctx, k)
            assert got == (want >> (32 * k)) & 0xFFFF_FFFF, f"PBA word {k}: {got:#010x}"
        assert await h.pba(ctx, 3) == 0, "PBA past its end"
        for v in (0, 1, 31, 32, 33, 95):
            got = await bus_access(ctx, h.msix.table, 4 * v + 3)
            assert got == int(v in vs), f"vector {v} Vector Control reads {got:#x}"
        ctx.set(h.irqc.fmask, 1)
        for v in vs:
            await h.mask(ctx, v, False)
        await fire_on(h, ctx, 50)
        await h.ticks(ctx, 10)
        assert h.msix_msgs() == [] and await h.pba_all(ctx) == want | (1 << 50)
        ctx.set(h.irqc.fmask, 0)
        await h.drain(ctx)
        sent = [m.vector for m in h.msix_msgs()]
        assert sorted(sent) == sorted(vs + [50]), f"sent {sent}"
        assert await h.pba_all(ctx) == 0
        h.check_coalescing()

    run(h, main)


def test_words_round_robin():
    """Pending vectors are served a word at a time, every pending unmasked vector of the word in
    one visit (lowest first), and the words round robin starting after the word visited last:
    after vector 40 (word 1), vectors pending in words 0, 1 and 2 leave as word 2, word 0,
    word 1."""
    h = Harness("irq_words_rr", WORDS_P)

    async def main(ctx):
        await h.setup(ctx)
        for batch in ([40], [33, 90, 5, 70, 2]):
            ctx.set(h.irqc.fmask, 1)
            for v in batch:
                await fire_on(h, ctx, v)
            await h.ticks(ctx, 4)
            ctx.set(h.irqc.fmask, 0)
            await h.drain(ctx)
        assert [m.vector for m in h.msix_msgs()] == [40, 70, 90, 2, 5, 33]
        h.check_coalescing()

    run(h, main)


def test_words_fairness_sustained():
    """Fairness across words: vector 33 (word 1) gets an event every cycle for a long time with
    a randomly stalled transmitter; single events for vectors in words 0, 1 and 2 and a
    configuration change (vector 95) arriving in the middle are each signalled within a bounded
    time."""
    rng = seeded("irq-words-starve")
    h = Harness("irq_words_starve", WORDS_P, rng=rng, ready_prob=0.5)
    n_ev = 300
    others = {30: (1, 2), 35: (2, 70), 50: (3, 34)}     # request index: (queue, vector)
    cfg_at = 40

    async def main(ctx):
        await h.setup(ctx)
        ctx.set(h.qvec[0], 33)
        ctx.set(h.irqc.config_vector, 95)
        for q, v in others.values():
            ctx.set(h.qvec[q], v)
        await ctx.tick()
        accepted = await h.stream_events(
            ctx, [others[i][0] if i in others else 0 for i in range(n_ev)], cfg_at)
        msgs = h.msix_msgs()
        for i, (q, v) in [*others.items(), (cfg_at, (None, 95))]:
            got = [m.offered for m in msgs if m.vector == v and m.offered > accepted[i]]
            assert got and got[0] - accepted[i] <= 40, \
                f"vector {v} starved: event at {accepted[i]}, messages {got[:3]}"
        assert len([m for m in msgs if m.vector == 33]) > 20, "the streaming vector starved"
        await h.drain(ctx)

    run(h, main)


@pytest.mark.parametrize("seed", range(2))
def test_words_random(seed):
    """The random mix of ``test_random_masking_remapping_backpressure`` over 96 vectors (three
    words): every message deliverable when decided, none redundant, every event signalled."""
    rng = seeded("irq-words-rand", seed)
    h = Harness(f"irq_words_rand{seed}", WORDS_P, rng=rng, ready_prob=0.5)
    run(h, random_mix(h, rng, steps=400, min_msgs=40), timeout=80000)


def test_2048_vectors():
    """The largest table (2048 vectors, 64 PBA words) elaborates and works: a few entries across
    the table, first ones in words 0, 1, 31 and 63; masked ones pending in their PBA words, sent
    on unmask; unmasked ones sent 2 cycles after the request; a reset clears every word."""
    p = VirtioPciParams(msix_vectors=2048, num_queues=4)
    h = Harness("irq_2048", p)
    vs = [0, 31, 32, 1000, 2016, 2047]

    async def main(ctx):
        await h.setup(ctx, entries=vs, unmask=False)
        for v in (0, 1000):
            await h.mask(ctx, v, False)
        for v in vs:
            n = len(h.mon.items)
            (e,) = await fire_on(h, ctx, v)
            await h.ticks(ctx, 6)
            if v in (0, 1000):
                assert h.mon.items[n:] and h.mon.items[n][0] - e == 2, f"vector {v}: latency"
        assert [m.vector for m in h.msix_msgs()] == [0, 1000]
        pend = [31, 32, 2016, 2047]
        assert await h.pba_all(ctx) == sum(1 << v for v in pend)
        for v in (31, 2047):
            await h.mask(ctx, v, False)
        await h.ticks(ctx, 20)
        assert [m.vector for m in h.msix_msgs()[2:]] == [31, 2047]
        assert await h.pba_all(ctx) == (1 << 32) | (1 << 2016)
        ctx.set(h.irqc.clear, 1)
        _, _, reset_at = await ctx.tick().sample(h.b.cycle)
        ctx.set(h.irqc.clear, 0)
        assert await h.pba_all(ctx) == 0
        await h.mask(ctx, 32, False)
        await h.ticks(ctx, 20)
        assert len(h.msix_msgs()) == 4, "a vector sent after the reset cleared its pending bit"
        await fire_on(h, ctx, 2016)
        await h.mask(ctx, 2016, False)
        await h.ticks(ctx, 20)
        assert [m.vector for m in h.msix_msgs()[4:]] == [2016]
        # the events the reset dropped need no message
        h.check_coalescing([(e, v) for e, v in h.event_vectors()
                            if e > reset_at or v in (0, 1000, 31, 2047)])

    run(h, main, timeout=40000)


def test_virtio_reset_clears_pending():
    """STS-05/MSX-07 at the controller: a virtio reset (``clear``) drops pending bits and the
    ISR, so unmasking afterwards sends nothing; INTx deasserts."""
    h = Harness("irq_clear")

    async def main(ctx):
        await h.setup(ctx)
        ctx.set(h.qvec[0], 0)
        await h.mask(ctx, 0, True)
        await h.fire(ctx, ("q", 0))
        await h.ticks(ctx, 4)
        assert await h.pba(ctx) == 1
        ctx.set(h.irqc.clear, 1)
        await ctx.tick()
        ctx.set(h.irqc.clear, 0)
        assert await h.pba(ctx) == 0
        await h.mask(ctx, 0, False)
        await h.ticks(ctx, 20)
        assert h.msix_msgs() == []
        # INTx: asserted, then the reset deasserts
        ctx.set(h.irqc.msix_enable, 0)
        await h.fire(ctx, ("q", 1))
        await h.ticks(ctx, 6)
        ctx.set(h.irqc.clear, 1)
        await ctx.tick()
        ctx.set(h.irqc.clear, 0)
        await h.ticks(ctx, 6)
        assert [m.code for m in h.intx()] == [MsgCode.ASSERT_INTA, MsgCode.DEASSERT_INTA]

    run(h, main)


# ------------------------------------------------------------------------------- whole endpoint
BUS, DEV = 0x3C, 0x05
CID = (BUS << 8) | (DEV << 3)
BAR = 0xE000_0000


class EndpointBench:
    """The whole endpoint on a bench, programmed with TLPs as a driver would: BAR, Memory Space
    and Bus Master, MSI-X enabled, table entries 0 (32-bit address) and 1 (64-bit address)
    unmasked, queue 0 -> vector 0, config -> vector 1, queue 0 enabled, DRIVER_OK."""
    ENTRIES = {0: (0xFEE0_1000, 0x0000_0077), 1: (0x0000_0009_FEE0_2000, 0x0000_0078)}

    def __init__(self, name, width):
        self.p = p = VirtioPciParams(data_width=width)
        self.width = width
        img = build_config_image(p)
        caps = {c.cap_id: c.offset for c in img.caps}
        self.msix_cap, self.pcie_cap = caps[CapId.MSIX], caps[CapId.PCIE]
        self.dut = dut = VirtioPciEndpoint(p)
        self.b = Bench(dut, name)
        self.tx = StreamMonitor(dut.tx, self.b.cycle, name="tx")
        self.b.add(self.tx, background=True)

    def tlps(self):
        """[(edge of the first beat, cocotbext Tlp)] of every complete TLP on tx."""
        out, cur = [], []
        for c, q in self.tx.items:
            cur = [(c, q)] if q.first else cur + [(c, q)]
            if q.last:
                beats = [(x.data, x.keep, x.first, x.last) for _, x in cur]
                out.append((cur[0][0], dws_to_tlp(beats_to_dws(beats, self.width))))
        return out

    async def send(self, ctx, reqs):
        beats = [bt for t in reqs for bt in beats_of(t, self.width)]
        await drive(ctx, self.dut.rx, beats, self.b.cycle)

    async def wait_tlps(self, ctx, n, limit=500):
        for _ in range(limit):
            if len(self.tlps()) >= n:
                return self.tlps()
            await ctx.tick()
        raise AssertionError(f"{len(self.tlps())} TLPs on tx, expected {n}")

    async def setup(self, ctx):
        p, dut = self.p, self.dut
        ctx.set(dut.qevent.ready, 1)
        ctx.set(dut.doorbell.ready, 1)
        lo = 4 + p.mem_bar
        tbl = BAR + p.regions["msix_table"].offset
        common = BAR + p.regions["common"].offset
        reqs = [cfg_req(lo, write=True, data=BAR, bus=BUS, dev=DEV, tag=1),
                cfg_req(lo + 1, write=True, data=0, bus=BUS, dev=DEV, tag=2),
                cfg_req(1, write=True, data=0x0006, fbe=0x3, bus=BUS, dev=DEV, tag=3),
                cfg_req(self.msix_cap // 4, write=True, data=1 << 31, fbe=0x8, bus=BUS, dev=DEV,
                        tag=4)]
        for v, (a, d) in self.ENTRIES.items():
            reqs.append(mem_req(tbl + 16 * v, 4, write=True, data=[a & 0xFFFF_FFFF, a >> 32, d, 0]))
        reqs += [mem_req(common + 0x18, write=True, fbe=0xC, data=[0 << 16]),   # queue 0 vector 0
                 mem_req(common + 0x1C, write=True, fbe=0x3, data=[1]),         # queue_enable
                 mem_req(common + 0x10, write=True, fbe=0x3, data=[1]),         # config vector 1
                 mem_req(common + 0x14, write=True, fbe=0x1, data=[0x07]),      # DRIVER_OK
                 cfg_req(0, bus=BUS, dev=DEV, tag=5)]
        n = len(self.tlps())
        await self.send(ctx, reqs)
        await self.wait_tlps(ctx, n + 5)
        for _ in range(4):
            await ctx.tick()

    def check_msix(self, t, v):
        a, d = self.ENTRIES[v]
        assert t.fmt_type == (TlpType.MEM_WRITE_64 if a >> 32 else TlpType.MEM_WRITE), t
        assert t.address == a and t.length == 1 and t.first_be == 0xF and t.last_be == 0, t
        assert int.from_bytes(t.get_data(), "little") == d
        assert int(t.requester_id) == CID and t.check()


@pytest.mark.parametrize("width", [64, 128, 256])
def test_endpoint_irq_to_tx_latency(width):
    """DESIGN.md section 8: from the back-end's ``irq`` request accepted at cycle 0 to the first
    beat of the MSI-X write on ``tx`` (target <= 4): exactly 3 cycles for a queue event on a
    vector with a 32-bit address (3-DW MWr) and for a configuration event on a vector with a
    64-bit address (4-DW MWr64), except 4 for the MWr64 at W=256, whose 5 DWs leave as one beat
    once the data chunk has followed the header chunk; the TLPs decode (cocotbext-pcie) to the
    table entries' address and data with the function's requester ID."""
    ep = EndpointBench(f"ep_irq_latency_{width}", width)

    async def main(ctx):
        await ep.setup(ctx)
        n = len(ep.tlps())
        for k, (payload, v) in enumerate((({"queue": 0, "config": 0}, 0),
                                          ({"queue": 0, "config": 1}, 1))):
            acc = []
            await drive(ctx, ep.dut.irq, [payload], ep.b.cycle, accepted=acc)
            edge, t = (await ep.wait_tlps(ctx, n + k + 1))[n + k]
            # at W=256 a 4-DW MWr (5 DWs) leaves as one beat, once its data chunk is in
            want = 4 if (width == 256 and ep.ENTRIES[v][0] >> 32) else 3
            assert edge - acc[0] == want, \
                f"irq -> MSI-X MWr first beat: {edge - acc[0]} cycles, expected {want}"
            ep.check_msix(t, v)

    ep.b.add(main)
    ep.b.run(timeout=5000)


@pytest.mark.parametrize("offset", range(-2, 6))
def test_endpoint_flr_during_msix_write(offset):
    """DESIGN.md section 5: a Function Level Reset that lands while a 4-DW MSI-X write is on its
    way (swept cycle by cycle around it, W=64 so the write spans three beats) leaves every TLP on
    tx whole, and after the device is programmed again an interrupt request sends its MSI-X
    write: the interrupt path is never left holding half a TLP."""
    ep = EndpointBench(f"ep_flr_msix_{offset + 2}", 64)
    dut = ep.dut
    flr = cfg_req(ep.pcie_cap // 4 + 2, write=True, data=1 << 15, fbe=0x3, bus=BUS, dev=DEV,
                  tag=9)
    flr_seen = Sampler(ep.b.cycle, dut.flr)
    ep.b.add(flr_seen, background=True)
    when = {}

    async def main(ctx):
        await ep.setup(ctx)
        n = len(ep.tlps())
        # the FLR's CfgWr (two beats at W=64) and a config event (vector 1: 64-bit address)
        when["fire"] = ctx.get(ep.b.cycle) + 2 + offset
        await ep.send(ctx, [flr])
        for _ in range(60):
            await ctx.tick()
        assert sum(r[1] for r in flr_seen.rows) == 1, "no FLR"
        assert ep.tx.items[-1][1].last, "tx stopped inside a TLP"
        tl = ep.tlps()
        kinds = [t.fmt_type for _, t in tl[n:]]
        assert TlpType.CPL in kinds, f"no completion for the FLR write: {kinds}"
        for _, t in tl[n:]:
            if t.fmt_type == TlpType.MEM_WRITE_64:
                ep.check_msix(t, 1)
        await ep.setup(ctx)
        m = len(ep.tlps())
        await drive(ctx, dut.irq, [{"queue": 0, "config": 0}], ep.b.cycle)
        _, t = (await ep.wait_tlps(ctx, m + 1, limit=50))[m]
        ep.check_msix(t, 0)

    async def fire(ctx):
        while "fire" not in when or ctx.get(ep.b.cycle) < when["fire"]:
            await ctx.tick()
        await drive(ctx, dut.irq, [{"queue": 0, "config": 1}], ep.b.cycle)

    ep.b.add(main)
    ep.b.add(fire)
    ep.b.run(timeout=5000)
