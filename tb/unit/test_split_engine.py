"""Unit tests of the split-virtqueue engine (hdl/virtio_pci/virtqueue/split_engine.py) on
Amaranth's simulator, against a Python model of the requester port serving a host-memory
bytearray (random latency, back-pressure and error statuses), a queue-table model, and a device
function that fills writable buffers with a known byte pattern.  The driver side of the rings is
tb/host/virtqueue_driver.py.
"""
import random

import pytest

from virtio_pci.dma.layouts import DmaStatus
from virtio_pci.params import Feature, VirtioPciParams
from virtio_pci.virtio.common_cfg import QueueEventKind
from virtio_pci.virtqueue.queue_picker import QueuePicker
from virtio_pci.virtqueue.split_engine import SplitEngine
from tb.unit.helpers import Bench, StreamMonitor, drive
from tb.host.virtqueue_driver import (DESC_F_INDIRECT, DESC_F_NEXT, DESC_F_WRITE, SplitQueue,
                                 legacy_layout)

MEM = 1 << 20
FEAT_V1 = 1 << Feature.VERSION_1
FEAT_INDIRECT = 1 << Feature.RING_INDIRECT_DESC
FEAT_EVENT = 1 << Feature.RING_EVENT_IDX


class HostDma:
    """The requester port's far side: serves ``dma_req`` from ``mem`` one request at a time, with
    random idle cycles (``idle``) on every stream and random ready on the engine's streams.
    ``errors``: {(lo, hi): DmaStatus} for requests that touch [lo, hi).  ``log`` records
    ``(edge, 'R'|'W', addr, length, status)`` at the request's acceptance, and write completions
    are recorded in ``wdone_edges``."""

    def __init__(self, dut, mem, cycle, rng, idle=0.0):
        self.dut, self.mem, self.cycle, self.rng, self.idle = dut, mem, cycle, rng, idle
        self.errors = {}
        self.log = []
        self.wdone_edges = []
        self.w = len(dut.dma_wdata.payload.data)

    def _status(self, addr, n):
        for (lo, hi), st in self.errors.items():
            if addr < hi and addr + n > lo:
                return st
        return DmaStatus.OK

    async def _gap(self, ctx):
        while self.idle and self.rng.random() < self.idle:
            await ctx.tick()

    async def __call__(self, ctx):
        d = self.dut
        bpb = self.w // 8
        while True:
            ctx.set(d.dma_req.ready, 1)
            _, _, c, valid, p = await ctx.tick().sample(self.cycle, d.dma_req.valid, d.dma_req.payload)
            if not valid:
                continue
            ctx.set(d.dma_req.ready, 0)
            addr, n, write = p.addr, p.len_m1 + 1, p.write
            st = self._status(addr, n)
            self.log.append((c, "W" if write else "R", addr, n, st))
            nbeats = -(-n // bpb)
            if write:
                got = b""
                for _ in range(nbeats):
                    await self._gap(ctx)
                    ctx.set(d.dma_wdata.ready, 1)
                    while True:
                        _, _, v, b = await ctx.tick().sample(d.dma_wdata.valid, d.dma_wdata.payload)
                        if v:
                            break
                    ctx.set(d.dma_wdata.ready, 0)
                    got += b.data.to_bytes(bpb, "little")
                    assert b.last == (len(got) >= n), "dma_wdata: last on the wrong beat"
                if st == DmaStatus.OK:
                    assert addr + n <= len(self.mem), f"write outside host memory at {addr:#x}"
                    self.mem[addr:addr + n] = got[:n]
                await self._gap(ctx)
                await drive(ctx, d.dma_wdone, [st], self.cycle, accepted=self.wdone_edges)
            else:
                data = bytes(self.mem[addr:addr + n]) if st == DmaStatus.OK else bytes(n)
                data += bytes(nbeats * bpb - n)
                beats = [{"data": int.from_bytes(data[k * bpb:(k + 1) * bpb], "little"),
                          "last": int(k == nbeats - 1),
                          "status": st if k == nbeats - 1 else DmaStatus.OK}
                         for k in range(nbeats)]
                await drive(ctx, d.dma_rdata, beats, self.cycle, rng=self.rng, idle=self.idle)


class Device:
    """The device function: writes ``pattern`` bytes into every writable buffer (full beats, the
    last one partial; ``short``: stops after that many bytes of each buffer), reads the readable
    buffers' bytes.  ``stall``: extra idle probability on ``wr``; ``hold``: when set, no beat is
    offered (to keep a chain in progress)."""

    def __init__(self, dut, cycle, rng, *, idle=0.0, short=None):
        self.dut, self.cycle, self.rng, self.idle, self.short = dut, cycle, rng, idle, short
        self.segs = []
        self.read = []         # bytes of each readable segment
        self.written = []      # bytes given for each writable segment
        self.counter = 0
        self.hold = False
        self.w = len(dut.wr.payload.data)

    def pattern(self, n):
        out = bytes((self.counter + i) * 7 & 0xFF for i in range(n))
        self.counter += n
        return out

    async def __call__(self, ctx):
        d = self.dut
        bpb = self.w // 8
        while True:
            ctx.set(d.seg.ready, 1)
            _, _, v, s = await ctx.tick().sample(d.seg.valid, d.seg.payload)
            if not v:
                continue
            ctx.set(d.seg.ready, 0)
            self.segs.append(s)
            if s.write:
                n = s.len if self.short is None else min(s.len, self.short)
                data = self.pattern(n)
                self.written.append(data)
                nb = max(1, -(-n // bpb))
                beats = [{"data": int.from_bytes(data[k * bpb:(k + 1) * bpb].ljust(bpb, b"\0"), "little"),
                          "bytes": min(bpb, n - k * bpb) if n else 0, "last": int(k == nb - 1)}
                         for k in range(nb)]
                while self.hold:
                    await ctx.tick()
                await drive(ctx, d.wr, beats, self.cycle, rng=self.rng, idle=self.idle)
            elif s.len:
                got = b""
                ctx.set(d.rd.ready, 1)
                while True:
                    _, _, v, b = await ctx.tick().sample(d.rd.valid, d.rd.payload)
                    if v:
                        got += b.data.to_bytes(bpb, "little")
                        if b.last:
                            break
                ctx.set(d.rd.ready, 0)
                self.read.append(got[:s.len])


class EngineBench:
    """Engine + host memory + requester model + queue table model + device function.

    ``queue(q, size, ...)`` makes a SplitQueue in host memory and its queue-table row;
    ``enable(q)``, ``kick(q)`` drive qevent / doorbell; ``irqs`` and ``needs`` record the
    interrupt requests and needs_reset pulses (edge numbers)."""

    def __init__(self, name, *, nq=2, w=128, qmax=64, features=FEAT_V1, neg=FEAT_V1, seed=1,
                 idle=0.0, dev_idle=0.0, short=None, legacy=False, chunk=64):
        self.rng = random.Random(seed)
        offered = FEAT_V1 | FEAT_INDIRECT | FEAT_EVENT
        self.params = VirtioPciParams(num_queues=nq, data_width=w, queue_max_size=qmax,
                                      features=offered)
        self.dut = dut = SplitEngine(self.params, chunk_bytes=chunk)
        self.bench = b = Bench(dut, name)
        self.mem = bytearray(MEM)
        self.dma = HostDma(dut, self.mem, b.cycle, self.rng, idle)
        self.dev = Device(dut, b.cycle, self.rng, idle=dev_idle, short=short)
        self.irq = StreamMonitor(dut.irq, b.cycle, rng=self.rng, ready_prob=0.7, name="irq")
        self.qdone = StreamMonitor(dut.qreset_done, b.cycle, name="qreset_done")
        self.rows = {}
        self.queues = {}
        self.needs = []
        self.acks = []
        self.neg = neg
        self.legacy = legacy
        self.next_base = 0x1000
        for t in (self.dma, self.dev, self.irq, self.qdone, self._table, self._pulses):
            b.add(t, background=True)

    async def _table(self, ctx):
        d = self.dut
        ctx.set(d.driver_features, self.neg)
        ctx.set(d.legacy, int(self.legacy))
        ctx.set(d.driver_ok, int(not self.legacy))
        async for _, _, a in ctx.tick().sample(d.qrd_addr):
            row = self.rows.get(a)
            ctx.set(d.qrd_exists, int(row is not None))
            ctx.set(d.qrd_data, row or {"size": 0, "vector": 0xFFFF, "desc": 0, "driver": 0,
                                        "device": 0})

    async def _pulses(self, ctx):
        d = self.dut
        async for _, _, c, nr, ack in ctx.tick().sample(self.bench.cycle, d.needs_reset, d.reset_ack):
            if nr:
                self.needs.append(c)
            if ack:
                self.acks.append(c)

    def queue(self, q, size, *, event_idx=None, legacy_pfn=False, first_idx=0):
        base = self.next_base
        self.next_base += 0x10000
        layout = legacy_layout if legacy_pfn else None
        kw = {"layout": layout} if layout else {}
        sq = SplitQueue(self.mem, 0, size, start=base, first_idx=first_idx, event_idx=bool(
            self.neg & FEAT_EVENT) if event_idx is None else event_idx, **kw)
        self.queues[q] = sq
        self.rows[q] = {"size": size, "vector": q, "desc": sq.desc, "driver": sq.driver,
                        "device": sq.device}
        return sq

    async def event(self, ctx, q, kind):
        await drive(ctx, self.dut.qevent, [{"queue": q, "kind": kind}], self.bench.cycle)

    async def kick(self, ctx, q):
        await drive(ctx, self.dut.doorbell, [{"queue": q, "value": q, "wide": 0}], self.bench.cycle)

    async def wait(self, ctx, cond, limit=20000):
        for _ in range(limit):
            if cond():
                return
            await ctx.tick()
        raise AssertionError("condition not met in time")

    async def settle(self, ctx, n=200):
        for _ in range(n):
            await ctx.tick()

    def irq_queues(self):
        return [p.queue for _, p in self.irq.items]

    def writes_to(self, lo, hi):
        return [e for e in self.dma.log if e[1] == "W" and e[2] < hi and e[2] + e[3] > lo]


def _check_chain_data(eb, sq, got, written):
    """Each used chain: len = bytes written, the writable buffers hold the device's bytes."""
    k = 0
    for uid, ulen, datas in got:
        exp = b"".join(written[k:k + len(datas)])
        k += len(datas)
        assert ulen == len(exp), f"chain {uid}: used len {ulen}, device wrote {len(exp)} bytes"
        assert b"".join(datas)[:ulen] == exp, f"chain {uid}: buffer bytes differ from the device's"


# ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("w", [64, 128, 256])
def test_writable_buffers_used_ring_and_irq(w):
    """VQP-02, VQP-04, VQP-06, VQP-08: writable buffers of assorted lengths and alignments are
    filled with the device's bytes by DMA writes, each chain is returned with used len = bytes
    written, the used element is written before the used idx, and the interrupt request comes
    only after every ring write was completed on dma_wdone; ring addresses come from the queue
    table row."""
    eb = EngineBench(f"engine_basic_w{w}", w=w, idle=0.3, dev_idle=0.2, seed=w)
    lens = [1, 7, 16, 33, 64, 100, 255, 5, 2, 64]

    async def tb(ctx):
        sq = eb.queue(0, 16)
        await eb.event(ctx, 0, QueueEventKind.ENABLE)
        for n in lens:
            sq.add(inp=[n])
        sq.publish()
        await eb.kick(ctx, 0)
        got = []
        await eb.wait(ctx, lambda: (got.extend(sq.used()) or len(got) == len(lens)))
        await eb.settle(ctx)
        _check_chain_data(eb, sq, got, eb.dev.written)
        assert [g[0] for g in got] == list(range(len(lens)))
        # order on the requester: each used element write precedes the used idx write
        ring_w = [(c, a) for c, k, a, n, st in eb.dma.log if k == "W" and sq.device <= a < sq.device + 4 + 8 * 16]
        assert len(ring_w) == 2 * len(lens)
        for i in range(len(lens)):
            assert ring_w[2 * i][1] == sq.device + 4 + 8 * i and ring_w[2 * i + 1][1] == sq.device + 2
        # every irq request after the completion of the used idx write it announces
        assert len(eb.irq.items) == len(lens) and set(eb.irq_queues()) == {0}
        idx_writes = [k for k, e in enumerate(eb.dma.log) if e[1] == "W" and e[2] == sq.device + 2]
        wlist = [k for k, e in enumerate(eb.dma.log) if e[1] == "W"]
        for i, k in enumerate(idx_writes):
            done_edge = eb.dma.wdone_edges[wlist.index(k)]
            assert eb.irq.offered[i] > done_edge, "interrupt requested before its used idx write completed"
        assert not eb.needs
    eb.bench.add(tb)
    eb.bench.run(timeout=60000)


def test_mixed_chains_and_indirect():
    """VQP-02, VQP-03: readable then writable buffers in one chain (direct and through an
    indirect table with VIRTIO_F_INDIRECT_DESC negotiated): the device function receives the
    readable bytes, only writable buffers receive DMA writes."""
    eb = EngineBench("engine_mixed", neg=FEAT_V1 | FEAT_INDIRECT, idle=0.2, seed=5)

    async def tb(ctx):
        sq = eb.queue(0, 8)
        await eb.event(ctx, 0, QueueEventKind.ENABLE)
        outs = [bytes(range(i, i + 20 + 13 * i)) for i in range(4)]
        sq.add(out=[outs[0]], inp=[40])
        sq.add(out=[outs[1], b"xyz"], inp=[8, 24], indirect=True)
        sq.add(out=[outs[2]], inp=[], indirect=False)
        sq.add(inp=[3, 3, 3], indirect=True)
        sq.publish()
        await eb.kick(ctx, 0)
        got = []
        await eb.wait(ctx, lambda: (got.extend(sq.used()) or len(got) == 4))
        await eb.settle(ctx)
        assert eb.dev.read == [outs[0], outs[1], b"xyz", outs[2]]
        _check_chain_data(eb, sq, got, eb.dev.written)
        assert [g[1] for g in got] == [40, 32, 0, 9]
        for head, rbufs, wbufs in sq.log_posted:
            for a, n in rbufs:
                assert not eb.writes_to(a, a + n), "DMA write into a device-readable buffer"
        firsts = [s.first for s in eb.dev.segs]
        lasts = [s.last for s in eb.dev.segs]
        assert firsts == [1, 0, 1, 0, 0, 0, 1, 1, 0, 0] and lasts == [0, 1, 0, 0, 0, 1, 1, 0, 0, 1]
        assert not eb.needs
    eb.bench.add(tb)
    eb.bench.run(timeout=60000)


def _hostile(name, build, *, neg=FEAT_V1, expect_reads_only=True):
    """Run one malformed chain on queue 0 and a good one on queue 1: queue 0 sets needs_reset
    once, returns nothing and stops; queue 1 keeps working."""
    eb = EngineBench(f"engine_hostile_{name}", neg=neg, seed=hash(name) & 0xFFFF)

    async def tb(ctx):
        sq = eb.queue(0, 8)
        ok = eb.queue(1, 8)
        await eb.event(ctx, 0, QueueEventKind.ENABLE)
        await eb.event(ctx, 1, QueueEventKind.ENABLE)
        build(sq)
        sq.publish()
        await eb.kick(ctx, 0)
        await eb.wait(ctx, lambda: eb.needs, limit=5000)
        n_log = len(eb.dma.log)
        # queue 0 is stopped: more doorbells do nothing
        sq.add(inp=[8])
        sq.publish()
        await eb.kick(ctx, 0)
        ok.add(inp=[16])
        ok.publish()
        await eb.kick(ctx, 1)
        got = []
        await eb.wait(ctx, lambda: (got.extend(ok.used()) or len(got) == 1))
        await eb.settle(ctx)
        assert len(eb.needs) == 1
        assert sq.used_idx == 0 and not eb.writes_to(sq.device, sq.device + 6 + 64)
        assert all(e[2] >= ok.desc for e in eb.dma.log[n_log:]), "stopped queue still read"
        assert eb.irq_queues() == [1]
    eb.bench.add(tb)
    eb.bench.run(timeout=30000)


def _buf(sq, n=8):
    return sq.alloc.alloc(n)


def test_hostile_loop():
    """VQP-07: a descriptor loop (0 -> 1 -> 0) is caught by the chain-length bound."""
    _hostile("loop", lambda sq: sq.add_raw([(0, _buf(sq), 8, DESC_F_WRITE | DESC_F_NEXT, 1),
                                            (1, _buf(sq), 8, DESC_F_WRITE | DESC_F_NEXT, 0)]))


def test_hostile_next_out_of_range():
    """VQP-07: ``next`` beyond the queue size."""
    _hostile("next", lambda sq: sq.add_raw([(0, _buf(sq), 8, DESC_F_WRITE | DESC_F_NEXT, 8)]))


def test_hostile_head_and_avail_idx():
    """VQP-07, VQP-01: a head beyond the queue size; and (second case) an avail idx more than
    the queue size ahead of the device."""
    _hostile("head", lambda sq: sq.post_head(9))

    def far(sq):
        sq.added = 9          # publishes idx 9 on an 8-entry queue
    _hostile("far", far)


def test_hostile_long_chain_and_order():
    """VQP-07: a chain longer than the queue through an indirect table that loops, and a
    readable buffer after a writable one."""
    def long_indirect(sq):
        t = _buf(sq, 16 * 8)
        for j in range(8):
            sq.write_desc(j, _buf(sq), 4, DESC_F_WRITE | DESC_F_NEXT, (j + 1) % 8, table=t)
        sq.add_raw([(0, t, 16 * 8, DESC_F_INDIRECT, 0)])
    _hostile("long", long_indirect, neg=FEAT_V1 | FEAT_INDIRECT)
    _hostile("order", lambda sq: sq.add_raw([(0, _buf(sq), 8, DESC_F_WRITE | DESC_F_NEXT, 1),
                                             (1, _buf(sq), 8, DESC_F_NEXT * 0, 0)]))


def test_indirect_needs_the_feature():
    """VQP-03, VQP-07: INDIRECT when VIRTIO_F_INDIRECT_DESC was not negotiated is an error, as is
    an indirect table of a length that is not a multiple of 16, and INDIRECT with NEXT."""
    def ind(sq):
        t = _buf(sq, 16)
        sq.write_desc(0, _buf(sq), 4, DESC_F_WRITE, 0, table=t)
        sq.add_raw([(0, t, 16, DESC_F_INDIRECT, 0)])
    _hostile("nofeat", ind)
    _hostile("len", lambda sq: sq.add_raw([(0, _buf(sq), 20, DESC_F_INDIRECT, 0)]),
             neg=FEAT_V1 | FEAT_INDIRECT)
    _hostile("indnext", lambda sq: sq.add_raw([(0, _buf(sq), 16, DESC_F_INDIRECT | DESC_F_NEXT, 1),
                                               (1, _buf(sq), 8, DESC_F_WRITE, 0)]),
             neg=FEAT_V1 | FEAT_INDIRECT)


def test_dma_error_stops_queue():
    """VQP-07: a read that ends with an error status (UR on the descriptor table) stops the queue
    and sets needs_reset; nothing is returned."""
    def build(sq):
        sq.add(inp=[8])
    eb_errors = {}

    def run():
        eb = EngineBench("engine_dma_error", seed=3)

        async def tb(ctx):
            sq = eb.queue(0, 8)
            eb.dma.errors[(sq.desc, sq.desc + 16 * 8)] = DmaStatus.UR
            await eb.event(ctx, 0, QueueEventKind.ENABLE)
            sq.add(inp=[8])
            sq.publish()
            await eb.kick(ctx, 0)
            await eb.wait(ctx, lambda: eb.needs, limit=3000)
            await eb.settle(ctx)
            assert sq.used_idx == 0 and len(eb.needs) == 1 and not eb.irq.items
            eb_errors["ok"] = True
        eb.bench.add(tb)
        eb.bench.run(timeout=10000)
    run()
    assert eb_errors["ok"]


def test_no_interrupt_flag():
    """VQP-05: with VIRTQ_AVAIL_F_NO_INTERRUPT set no interrupt is requested; cleared again,
    every returned chain requests one."""
    eb = EngineBench("engine_no_interrupt", seed=9)

    async def tb(ctx):
        sq = eb.queue(0, 8)
        await eb.event(ctx, 0, QueueEventKind.ENABLE)
        sq.no_interrupt(True)
        for _ in range(3):
            sq.add(inp=[4])
        sq.publish()
        await eb.kick(ctx, 0)
        got = []
        await eb.wait(ctx, lambda: (got.extend(sq.used()) or len(got) == 3))
        await eb.settle(ctx)
        assert not eb.irq.items
        sq.no_interrupt(False)
        for _ in range(2):
            sq.add(inp=[4])
        sq.publish()
        await eb.kick(ctx, 0)
        await eb.wait(ctx, lambda: (got.extend(sq.used()) or len(got) == 5))
        await eb.settle(ctx)
        assert len(eb.irq.items) == 2
    eb.bench.add(tb)
    eb.bench.run(timeout=30000)


def test_event_idx():
    """VQP-05: with VIRTIO_F_EVENT_IDX the device interrupts only when the used idx passes
    used_event, and publishes avail_event (= its last_avail) before going idle, so the driver's
    vring_need_event decides the doorbells."""
    eb = EngineBench("engine_event_idx", neg=FEAT_V1 | FEAT_EVENT, seed=11)

    async def tb(ctx):
        sq = eb.queue(0, 8)
        await eb.event(ctx, 0, QueueEventKind.ENABLE)
        sq.auto_used_event = False
        sq.set_used_event(2)               # interrupt when chain #3 (used idx 2 -> 3) is used
        for _ in range(5):
            sq.add(inp=[4])
        assert sq.publish()
        await eb.kick(ctx, 0)
        got = []
        await eb.wait(ctx, lambda: (got.extend(sq.used()) or len(got) == 5))
        await eb.settle(ctx)
        assert len(eb.irq.items) == 1
        assert sq.avail_event == 5
        # the driver asks for the next one, posts it; the avail_event says a doorbell is due
        sq.set_used_event(5)
        sq.add(inp=[4])
        assert sq.publish()
        await eb.kick(ctx, 0)
        await eb.wait(ctx, lambda: (got.extend(sq.used()) or len(got) == 6))
        await eb.settle(ctx)
        assert len(eb.irq.items) == 2 and sq.avail_event == 6
    eb.bench.add(tb)
    eb.bench.run(timeout=30000)


def test_queue_reset_with_buffers_outstanding():
    """VQP-09: a queue reset while a chain is in progress (device function holding its bytes)
    and more buffers are posted: nothing is written to that queue's used ring after the reset,
    qreset_done follows once the engine let go, and re-enabled with fresh rings it starts from
    index 0."""
    eb = EngineBench("engine_queue_reset", seed=13)

    async def tb(ctx):
        sq = eb.queue(0, 8)
        await eb.event(ctx, 0, QueueEventKind.ENABLE)
        eb.dev.hold = True
        for _ in range(4):
            sq.add(inp=[32])
        sq.publish()
        await eb.kick(ctx, 0)
        await eb.wait(ctx, lambda: eb.dev.segs)
        await eb.event(ctx, 0, QueueEventKind.RESET)
        reset_edge = len(eb.dma.log)
        eb.dev.hold = False
        await eb.wait(ctx, lambda: eb.qdone.items)
        assert eb.qdone.items[0][1] == 0
        await eb.settle(ctx)
        assert not [e for e in eb.dma.log[reset_edge:] if e[2] in (sq.device + 2,)]
        assert sq.used_idx == 0 and not eb.irq.items
        # re-enable with fresh rings
        sq2 = eb.queue(0, 8)
        await eb.event(ctx, 0, QueueEventKind.ENABLE)
        sq2.add(inp=[16])
        sq2.publish()
        await eb.kick(ctx, 0)
        got = []
        await eb.wait(ctx, lambda: (got.extend(sq2.used()) or len(got) == 1))
        assert got[0][1] == 16 and sq2.used_idx == 1
        assert not eb.needs
    eb.bench.add(tb)
    eb.bench.run(timeout=30000)


def test_device_reset_with_buffers_outstanding():
    """VQP-09: a device reset (reset_req) in the middle of a chain: reset_ack comes once every
    write was sent, nothing is written after it, and the queue is forgotten (a doorbell before
    a new enable does nothing)."""
    eb = EngineBench("engine_device_reset", seed=17)

    async def tb(ctx):
        sq = eb.queue(0, 8)
        await eb.event(ctx, 0, QueueEventKind.ENABLE)
        eb.dev.hold = True
        for _ in range(3):
            sq.add(inp=[48])
        sq.publish()
        await eb.kick(ctx, 0)
        await eb.wait(ctx, lambda: eb.dev.segs)
        ctx.set(eb.dut.reset_req, 1)
        ctx.set(eb.dut.driver_ok, 0)
        eb.dev.hold = False
        await eb.wait(ctx, lambda: eb.acks)
        ctx.set(eb.dut.reset_req, 0)
        n = len(eb.dma.log)
        await eb.settle(ctx)
        ctx.set(eb.dut.driver_ok, 1)
        await eb.kick(ctx, 0)
        await eb.settle(ctx)
        assert len(eb.dma.log) == n, "DMA after the reset was acknowledged"
        assert sq.used_idx == 0 and not eb.irq.items and not eb.needs
        assert len(eb.acks) == 1
    eb.bench.add(tb)
    eb.bench.run(timeout=30000)


def test_legacy_layout_and_short_writes():
    """VQP-08, VQP-04: a legacy driver's queue (PFN layout: used ring on the next 4 KiB page,
    work before DRIVER_OK) is served from the table row; a device that writes fewer bytes than
    the buffer holds returns that many in used len."""
    eb = EngineBench("engine_legacy", legacy=True, short=10, seed=19)

    async def tb(ctx):
        sq = eb.queue(0, 16, legacy_pfn=True)
        assert sq.device % 4096 == 0 and sq.device > sq.driver
        await eb.event(ctx, 0, QueueEventKind.ENABLE)
        for n in (64, 5, 40):
            sq.add(inp=[n])
        sq.publish()
        await eb.kick(ctx, 0)
        got = []
        await eb.wait(ctx, lambda: (got.extend(sq.used()) or len(got) == 3))
        assert [g[1] for g in got] == [10, 5, 10]
        _check_chain_data(eb, sq, got, eb.dev.written)
    eb.bench.add(tb)
    eb.bench.run(timeout=30000)


def test_two_queues_round_robin():
    """VQP-08: two queues with their own rings are both served (round robin), each chain returned
    on its own queue's used ring with an interrupt for that queue."""
    eb = EngineBench("engine_two_queues", idle=0.2, seed=23)

    async def tb(ctx):
        qs = [eb.queue(0, 8), eb.queue(1, 4)]
        for q in (0, 1):
            await eb.event(ctx, q, QueueEventKind.ENABLE)
        for q, sq in enumerate(qs):
            for _ in range(6 - 2 * q):
                sq.add(inp=[12 + q])
            sq.publish()
            await eb.kick(ctx, q)
        got = [[], []]
        await eb.wait(ctx, lambda: ([g.extend(s.used()) for g, s in zip(got, qs)]
                                    and len(got[0]) == 6 and len(got[1]) == 4))
        await eb.settle(ctx)
        assert all(g[1] == 12 for g in got[0]) and all(g[1] == 13 for g in got[1])
        assert sorted(eb.irq_queues()) == [0] * 6 + [1] * 4
        order = eb.irq_queues()
        assert order[:4].count(1) >= 1, "queue 1 waited for queue 0 to drain (no round robin)"
    eb.bench.add(tb)
    eb.bench.run(timeout=60000)


def test_index_wraparound():
    """VQP-01: the free-running avail and used indices wrap past 65535 (the queue starts at
    65530 through ``qstart``): 24 chains on a 4-entry queue posted in rounds of up to 3, each
    returned with the right id in slot idx % size and used len; the device never reads a ring
    slot beyond the published avail idx."""
    eb = EngineBench("engine_wrap", qmax=4, seed=29, chunk=16)
    total = 24
    first = 65530

    async def tb(ctx):
        sq = eb.queue(0, 4, first_idx=first)
        sq.no_interrupt(True)
        await drive(ctx, eb.dut.qstart, [{"queue": 0, "idx": first}], eb.bench.cycle)
        await eb.event(ctx, 0, QueueEventKind.ENABLE)
        done = 0
        rnd = random.Random(5)
        while done < total:
            heads = [sq.add(inp=[1 + k]) for k in range(min(rnd.randint(1, 3), total - done))]
            n_log = len(eb.dma.log)
            sq.publish()
            await eb.kick(ctx, 0)
            await eb.wait(ctx, lambda: sq.used_idx == sq.avail_idx)
            await eb.settle(ctx, 30)
            got = sq.used()
            assert [(g[0], g[1]) for g in got] == [(h, 1 + k) for k, h in enumerate(heads)]
            ring = sq.driver + 4
            slots = {(e[2] - ring) // 2 for e in eb.dma.log[n_log:]
                     if e[1] == "R" and ring <= e[2] < ring + 8}
            assert slots <= {(i & 0xFFFF) % 4 for i in range(sq.avail_idx - len(heads),
                                                            sq.avail_idx)}, "ring read past idx"
            done += len(got)
        assert sq.used_idx == (first + total) & 0xFFFF
        assert not eb.needs
    eb.bench.add(tb)
    eb.bench.run(timeout=40000)


@pytest.mark.filterwarnings("ignore:.*created but never used")
def test_parameters_validated():
    """VQP-07: the engine refuses parameters it cannot serve, with clear messages."""
    with pytest.raises(ValueError, match="1..64 queues"):
        SplitEngine(VirtioPciParams(num_queues=65))
    with pytest.raises(ValueError, match="chunk_bytes must be a multiple of 16"):
        SplitEngine(VirtioPciParams(), chunk_bytes=20)
    with pytest.raises(ValueError, match="1..64 queues"):
        QueuePicker(0)
