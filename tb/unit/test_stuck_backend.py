"""No stuck back-end wedges the function (DESIGN.md section 4; tlp/dispatcher.py, top.py), on the
whole endpoint on Amaranth's simulator with a short ``backend_timeout`` (T = 64 cycles).

A back-end that never takes a doorbell, an external device-config back-end that never takes or
never answers a request, and a legacy access waiting for a ``reset_ack`` that never comes: the
waiting request is given up after T cycles (a read completes with data 0, a write is dropped,
``err_backend_timeout`` pulses, DEVICE_NEEDS_RESET is set), later requests to the same port are
given up at once, configuration requests behind them are answered in a bounded, exact number of
cycles, and an FLR recovers the function.  Cycle counts are exact (the simulation is
deterministic); the derivations are in the docstring of tlp/dispatcher.py and the README.
"""
from cocotbext.pcie.core.tlp import CplStatus

from virtio_pci.params import VirtioPciParams

from tb.tlp.requests import cfg_req, io_req, mem_req

from .helpers import Sampler, StreamMonitor, seeded
from .test_endpoint_sim import BAR, BUS, DEV, Endpoint, run
from .test_power_states import PmHost

T = 64
IO_BASE = 0xC000


async def _respond(ctx, dut, value):
    """The external device-config back-end answers ``value`` on ``dcfg_resp`` (held until taken)."""
    ctx.set(dut.dcfg_resp.payload, value)
    ctx.set(dut.dcfg_resp.valid, 1)
    while True:
        _, _, r = await ctx.tick().sample(dut.dcfg_resp.ready)
        if r:
            break
    ctx.set(dut.dcfg_resp.valid, 0)


class Host(PmHost):
    async def post(self, ctx, tlps):
        """Send TLPs without waiting for anything."""
        await self.ep.send(ctx, tlps)

    async def cfg_timed(self, ctx, before=()):
        """TLPs ``before``, back to back with a CfgRd0 of the Vendor/Device ID: (cycles from the
        first beat offered on rx to the first beat of the CfgRd0's completion on tx, cycles from
        its last beat accepted, the completion)."""
        offered = ctx.get(self.ep.b.cycle)
        tag = self._t()
        await self.ep.send(ctx, [*before, cfg_req(0, bus=BUS, dev=DEV, tag=tag)])
        accepted = self.ep.accepted[-1]
        cpl = await self.wait_tag(ctx, tag)
        edge = self.edge_of(tag)
        return edge - offered, edge - accepted, cpl

    def edge_of(self, tag):
        """Edge of the first tx beat of the last completion with ``tag``."""
        cur, edge = [], None
        for c, b in self.ep.tx.items:
            cur = [(c, b)] if b.first else cur + [(c, b)]
            if b.last and (cur[0][1].data >> 24 & 0xFF) in (0x0A, 0x4A) \
                    and (cur[0][1].data >> 72 & 0xFF) == tag:
                edge = cur[0][0]
        assert edge is not None, f"no completion with tag {tag}"
        return edge

    async def wait_tag(self, ctx, tag):
        for _ in range(2000):
            got = [t for t in self.completions() if t.tag == tag]
            if got:
                self.n = len(self.completions())
                return got[-1]
            await ctx.tick()
        raise AssertionError(f"completion of tag {tag} never came")

    async def flr(self, ctx):
        f = self.img.fields["flr"]
        await self.cfg(ctx, f.offset // 4, write=True, data=1 << (8 * (f.offset & 3) + f.lsb),
                       be=1 << (f.offset & 3))
        for _ in range(2 * T):          # the function resets; nothing is lost in between
            await ctx.tick()

    async def driver_ok(self, ctx):
        common = self.p.regions["common"].offset
        await self.mem(ctx, common + 0x1C, write=True, data=1, fbe=0x3)      # queue 0 enabled
        await self.mem(ctx, common + 0x14, write=True, data=0x07, fbe=0x1)   # DRIVER_OK


def test_doorbell_port_stuck():
    """PCI-01, STS-02, NTF-D1: a back-end that never takes doorbells: the first doorbell waits in
    Notify's register (offered, stream rules kept), the second is given up after T cycles, the
    third at once (2 ``err_backend_timeout`` pulses, DEVICE_NEEDS_RESET set); a CfgRd0 behind them
    is answered T + 2 cycles after its last beat (3 with nothing waiting); an FLR recovers: the
    offered doorbell is delivered once the back-end takes doorbells again, DEVICE_NEEDS_RESET is
    clear, and doorbells after a new initialisation are delivered."""
    p = VirtioPciParams(backend_timeout=T)
    ep = Endpoint(p, "stuck_doorbell")
    h = Host(ep)
    db = StreamMonitor(ep.dut.doorbell, ep.b.cycle, name="doorbell", ready_prob=0.0,
                       rng=seeded("stuck_doorbell"))
    ep.b.add(db, background=True)
    ep.b.add(StreamMonitor(ep.dut.qevent, ep.b.cycle, name="qevent"), background=True)
    errs = Sampler(ep.b.cycle, ep.dut.err_backend_timeout)
    ep.b.add(errs, background=True)
    notify = p.regions["notify"].offset
    common = p.regions["common"].offset

    async def main(ctx):
        await h.setup(ctx)
        _, lat0, _ = await h.cfg_timed(ctx)
        assert lat0 == 3, f"CfgRd0 latency {lat0} with nothing waiting"
        await h.driver_ok(ctx)
        doorbell = [mem_req(BAR + notify, 1, write=True, data=[v], fbe=0x3, tag=0)
                    for v in (0x11, 0x22, 0x33)]
        lat, lat_acc, cpl = await h.cfg_timed(ctx, doorbell)
        assert cpl.status == CplStatus.SC
        assert int.from_bytes(cpl.get_data()[:4], "little") == 0x1041_1AF4
        assert lat_acc == 3
        # 3 TLPs ahead (one cycle each), the second doorbell's wait of T, then the CfgRd0's own 3
        assert lat == 3 + T + 2, f"CfgRd0 behind a stuck doorbell answered after {lat} cycles"
        assert sum(r[1] for r in errs.rows) == 2, "two doorbells given up"
        st = await h.mem(ctx, common + 0x14)
        assert int.from_bytes(st.get_data()[:4], "little") & 0x40, "DEVICE_NEEDS_RESET not set"
        # a fourth doorbell: the port is still stuck, given up at once (no T-cycle wait)
        lat, _, _ = await h.cfg_timed(ctx, doorbell[:1])
        assert lat == 4, f"second wait on a known-stuck port: {lat} cycles"
        assert sum(r[1] for r in errs.rows) == 3
        assert ctx.get(ep.dut.doorbell.valid) and not db.items
        await h.flr(ctx)
        await h.setup(ctx)
        st = await h.mem(ctx, common + 0x14)
        assert int.from_bytes(st.get_data()[:4], "little") & 0xFF == 0, "FLR left status"
        db.ready_prob = 1.0                  # the back-end recovers
        for _ in range(5):
            await ctx.tick()
        assert [d.value for _, d in db.items] == [0x11], "the offered doorbell, once"
        await h.driver_ok(ctx)
        await h.post(ctx, [mem_req(BAR + notify, 1, write=True, data=[0x44], fbe=0x3)])
        for _ in range(10):
            await ctx.tick()
        assert [d.value for _, d in db.items] == [0x11, 0x44]
        assert sum(r[1] for r in errs.rows) == 3

    run(ep, main)


def test_device_config_backend_stuck():
    """DCF-03, PCI-01, STS-02: an external device-config back-end that takes no request: the read is
    given up after T cycles and completes with data 0 (SC), its request stays offered unchanged;
    a CfgRd0 behind it is answered; when the back-end takes the request late, its response is
    discarded, and the next read gets its own data.  A back-end that takes a request but never
    answers is given up the same way; FLR leaves the function working."""
    p = VirtioPciParams(backend_timeout=T, device_cfg_backend="external")
    ep = Endpoint(p, "stuck_dcfg")
    h = Host(ep)
    dut = ep.dut
    req = StreamMonitor(dut.dcfg_req, ep.b.cycle, name="dcfg_req", ready_prob=0.0,
                        rng=seeded("stuck_dcfg"))
    ep.b.add(req, background=True)
    answers = []       # (value, delay) per request taken, in order
    state = {"answered": 0}

    async def responder(ctx):
        while True:
            await ctx.tick()
            if state["answered"] < len(req.items) and state["answered"] < len(answers):
                value, delay = answers[state["answered"]]
                state["answered"] += 1
                if delay is None:
                    continue                 # never answered
                for _ in range(delay):
                    await ctx.tick()
                await _respond(ctx, dut, value)

    ep.b.add(responder, background=True)
    dev = p.regions["device"].offset

    async def main(ctx):
        await h.setup(ctx)
        t0 = await h.mem(ctx, dev + 4)                       # nobody takes it
        assert t0.status == CplStatus.SC and int.from_bytes(t0.get_data()[:4], "little") == 0
        assert ctx.get(dut.dcfg_req.valid) and not req.items, "request withdrawn"
        _, lat, _ = await h.cfg_timed(ctx)
        assert lat == 3
        # the back-end wakes up and answers the old request late: that answer is discarded
        answers.extend([(0xDEAD_BEEF, 5), (0x1234_5678, 0)])
        req.ready_prob = 1.0
        for _ in range(20):
            await ctx.tick()
        assert len(req.items) == 1 and req.items[0][1].addr == 1
        t1 = await h.mem(ctx, dev + 8)
        assert int.from_bytes(t1.get_data()[:4], "little") == 0x1234_5678
        assert [r.addr for _, r in req.items] == [1, 2]
        # taken but never answered: given up after T, data 0, next read works after the
        # orphaned answer comes
        answers.append((0, None))
        t2 = await h.mem(ctx, dev + 12)
        assert int.from_bytes(t2.get_data()[:4], "little") == 0
        await h.flr(ctx)
        await h.setup(ctx)
        _, lat, _ = await h.cfg_timed(ctx)
        assert lat == 3

    run(ep, main)


def test_legacy_reset_never_acknowledged():
    """LEG-05, PCI-01, STS-02: transitional build, a legacy device reset (status 0) the back-end never
    acknowledges: a legacy status read waiting for the acknowledge is answered after T cycles
    (data 0), a CfgRd0 behind it T + 2 cycles after its last beat, and the CfgWr0 that starts an
    FLR is accepted; the FLR ends the reset (``reset_req`` low) and legacy accesses are served in
    3 cycles again."""
    p = VirtioPciParams(backend_timeout=T, transitional=True, mem_bar=2)
    ep = Endpoint(p, "stuck_legacy")
    h = Host(ep)
    dut = ep.dut
    io_bar = h.img.fields["io_bar"]

    async def io_setup(ctx):
        await h.cfg(ctx, io_bar.offset // 4, write=True, data=IO_BASE)
        await h.cfg(ctx, 1, write=True, data=0x0007, be=0x3)

    async def main(ctx):
        await h.setup(ctx)
        await io_setup(ctx)
        await h.post(ctx, [io_req(IO_BASE + 0x10, write=True, data=0x0F << 16, fbe=0x4, tag=h._t())])
        await h.wait_cpl(ctx)
        await h.post(ctx, [io_req(IO_BASE + 0x10, write=True, data=0, fbe=0x4, tag=h._t())])
        await h.wait_cpl(ctx)
        assert ctx.get(dut.reset_req)
        rd_tag = h._t()
        await h.post(ctx, [io_req(IO_BASE + 0x10, fbe=0x4, tag=rd_tag)])  # waits for the ack
        lat, lat_acc, cpl = await h.cfg_timed(ctx)
        assert lat_acc == 3
        assert lat == T + 2, f"CfgRd0 behind a legacy reset wait: {lat} cycles"
        legacy_rd = [t for t in h.completions() if t.tag == rd_tag][-1]
        assert int.from_bytes(legacy_rd.get_data()[:4], "little") == 0
        await h.flr(ctx)
        assert not ctx.get(dut.reset_req), "FLR did not end the reset"
        await h.setup(ctx)
        await io_setup(ctx)
        tag = h._t()
        await h.post(ctx, [io_req(IO_BASE + 0x10, fbe=0x4, tag=tag)])
        sent = ep.accepted[-1]
        for _ in range(10):
            await ctx.tick()
        assert h.edge_of(tag) - sent == 3

    run(ep, main)


def test_posted_writes_pass_reads_waiting_for_tx():
    """PCI-01 (PCIe Base 2.4.1, Table 2-40: a posted request must be able to pass a non-posted
    one): with ``tx`` held, single-DW register reads interleaved with doorbell writes: the reads
    execute in order and their completions wait in the completion queue (``cpl_queue_depth`` = K
    chunks) and the packer (one TLP), so the doorbells behind the first K + 1 reads are delivered;
    the doorbell behind read K + 2 waits with it.  Released, every completion leaves in order with
    the data the register had when the read arrived, and every doorbell is delivered once."""
    K = 4
    p = VirtioPciParams(cpl_queue_depth=K)
    ep = Endpoint(p, "np_pass")
    h = Host(ep)
    dut = ep.dut
    db = StreamMonitor(dut.doorbell, ep.b.cycle, name="doorbell")
    ep.b.add(db, background=True)
    ep.b.add(StreamMonitor(dut.qevent, ep.b.cycle, name="qevent"), background=True)
    notify = p.regions["notify"].offset
    common = p.regions["common"].offset

    n = K + 4
    tlps = []
    for i in range(n):
        # queue_select (read back), then a doorbell whose value names the pair
        tlps.append(mem_req(BAR + common + 0x14, 1, fbe=0xC, tag=0x40 + i))
        tlps.append(mem_req(BAR + notify, 1, write=True, data=[0x100 + i], fbe=0x3))
    go = []

    async def sender(ctx):
        while not go:
            await ctx.tick()
        await ep.send(ctx, tlps)                 # blocks while rx is held

    async def main(ctx):
        await h.setup(ctx)
        await h.driver_ok(ctx)
        for _ in range(10):
            await ctx.tick()
        ep.tx.rng = seeded("np_pass")
        ep.tx.ready_prob = 0.0                   # the link takes nothing
        go.append(1)
        for _ in range(200):
            await ctx.tick()
        got = [d.value for _, d in db.items]
        assert got == [0x100 + i for i in range(K + 1)], [hex(v) for v in got]
        assert not ctx.get(dut.rx.ready), "rx should wait behind read K + 2"
        ep.tx.ready_prob = 1.0
        for _ in range(100):
            await ctx.tick()
        assert [d.value for _, d in db.items] == [0x100 + i for i in range(n)]
        cpls = [t for t in h.completions() if t.tag >= 0x40]
        assert [t.tag for t in cpls] == [0x40 + i for i in range(n)]
        assert all(t.status == CplStatus.SC for t in cpls)

    ep.b.add(sender)
    run(ep, main)


def test_legacy_device_config_after_reset_give_up():
    """LEG-05, DCF-03: transitional build with an external device-config back-end that answers
    every request one cycle after taking it: after a legacy status read waiting for a
    ``reset_ack`` that never comes was given up, a legacy read of the device configuration
    (byte 20) must still get the back-end's data.  Found by the stuck-port episodes of the
    stress: the dispatcher kept one stuck flag for the whole legacy target and gave the read up
    at once (answering 0); a device-config access while that port is idle now shows the legacy
    target alive (top.py, tlp/dispatcher.py)."""
    p = VirtioPciParams(backend_timeout=T, transitional=True, mem_bar=2,
                        device_cfg_backend="external", device_cfg_size=0x10)
    ep = Endpoint(p, "stuck_legacy_dcfg")
    h = Host(ep)
    dut = ep.dut
    io_bar = h.img.fields["io_bar"]
    req = StreamMonitor(dut.dcfg_req, ep.b.cycle, name="dcfg_req")
    ep.b.add(req, background=True)

    async def responder(ctx):
        answered = 0
        while True:
            await ctx.tick()
            if answered < len(req.items):
                answered += 1
                await _respond(ctx, dut, 0x5A5A_0000 | req.items[answered - 1][1].addr)

    ep.b.add(responder, background=True)

    async def main(ctx):
        await h.setup(ctx)
        await h.cfg(ctx, io_bar.offset // 4, write=True, data=IO_BASE)
        await h.cfg(ctx, 1, write=True, data=0x0007, be=0x3)
        t = h._t()
        await h.post(ctx, [io_req(IO_BASE + 0x14, fbe=0xF, tag=t)])     # device config works
        cpl = await h.wait_cpl(ctx)
        assert int.from_bytes(cpl.get_data()[:4], "little") == 0x5A5A_0000
        await h.post(ctx, [io_req(IO_BASE + 0x10, write=True, data=0, fbe=0x4, tag=h._t())])
        await h.wait_cpl(ctx)
        assert ctx.get(dut.reset_req)
        await h.post(ctx, [io_req(IO_BASE + 0x10, fbe=0x4, tag=h._t())])   # given up after T
        await h.wait_cpl(ctx)
        await h.post(ctx, [io_req(IO_BASE + 0x14, fbe=0xF, tag=h._t())])
        cpl = await h.wait_cpl(ctx)
        assert int.from_bytes(cpl.get_data()[:4], "little") == 0x5A5A_0000, \
            "legacy device-config read given up although its back-end answers"

    run(ep, main)
