"""The legacy header of a transitional device (virtio/legacy.py) end to end on Amaranth's
simulator: I/O requests in, completions out, the doorbell and queue-event streams, and the queue
table the back-end reads.  The register-level tests with the Linux-like legacy driver are the
cocotb ones (tb/integration/cocotb/legacy_*_test.py); these pin the routes and the cycle counts.
"""
from cocotbext.pcie.core.tlp import TlpType, CplStatus

from virtio_pci.params import Feature, VirtioPciParams

from tb.tlp.requests import cfg_req, io_req, mem_req

from .helpers import StreamMonitor
from .test_endpoint_sim import BUS, DEV, Endpoint, run

IO = 0xC000
LEG = VirtioPciParams(transitional=True, mem_bar=2, num_queues=3, queue_max_size=256,
                      device_cfg_init=bytes(range(0x40, 0x60)), msix_vectors=4)


def setup_reqs(p, tag0=0x40):
    """BAR0 (I/O) at IO, I/O + memory space and bus master enabled."""
    return [cfg_req(4, write=True, data=IO, bus=BUS, dev=DEV, tag=tag0),
            cfg_req(1, write=True, data=0x0007, fbe=0x3, bus=BUS, dev=DEV, tag=tag0 + 1)]


def io_rd(off, tag, size=4):
    fbe = ((1 << size) - 1) << (off & 3)
    return io_req(IO + off, fbe=fbe, tag=tag)


def io_wr(off, value, tag, size=4):
    fbe = ((1 << size) - 1) << (off & 3)
    return io_req(IO + off, write=True, data=(value << 8 * (off & 3)) & 0xFFFF_FFFF, fbe=fbe, tag=tag)


def data_of(t, off, size):
    v = int.from_bytes(t.get_data()[:4], "little")
    return (v >> 8 * (off & 3)) & ((1 << 8 * size) - 1)


class LegacyEndpoint(Endpoint):
    def __init__(self, p, name, **kw):
        super().__init__(p, name, **kw)
        self.db = StreamMonitor(self.dut.doorbell, self.b.cycle, name="doorbell")
        self.qev = StreamMonitor(self.dut.qevent, self.b.cycle, name="qevent")
        self.b.add(self.db, background=True)
        self.b.add(self.qev, background=True)

    async def xfer(self, ctx, reqs):
        """Send ``reqs``, wait for one completion per request (all non-posted), return them."""
        n0 = len(self.tlps())
        await self.send(ctx, reqs)
        tl = await self.wait_tlps(ctx, n0 + len(reqs))
        return [t for _, t in tl[n0:n0 + len(reqs)]]


def test_legacy_header_routes():
    """LEG-01, LEG-05 (header in I/O BAR0), LEG-02/03 (device config at 20, any width), LEG-04/06
    (guest features, legacy mode), LEG-09 (ANY_LAYOUT offered), LEG-10 (PFN -> legacy ring
    layout), LEG-08 (a kick before DRIVER_OK is delivered)."""
    p = LEG
    ep = LegacyEndpoint(p, "legacy_routes")

    async def main(ctx):
        out = await ep.xfer(ctx, setup_reqs(p))
        assert all(t.status == CplStatus.SC for t in out)
        r = await ep.xfer(ctx, [io_rd(0x00, 1), io_rd(0x0C, 2, 2), io_rd(0x0E, 3, 2),
                                io_rd(0x12, 4, 1), io_rd(0x13, 5, 1)])
        assert all(t.fmt_type == TlpType.CPL_DATA for t in r), r
        host = data_of(r[0], 0, 4)
        assert host == (p.features & 0xFFFF_FFFF) | (1 << Feature.ANY_LAYOUT), hex(host)
        assert data_of(r[1], 0x0C, 2) == p.queue_max_size
        assert data_of(r[2], 0x0E, 2) == 0
        assert data_of(r[3], 0x12, 1) == 0
        # device configuration at 20 with any width returns the same bytes (MSI-X disabled)
        init = p.device_cfg_init
        reqs = [io_rd(0x14 + off, 10 + off, 1) for off in range(8)] + [io_rd(0x14, 30, 4),
                                                                       io_rd(0x16, 31, 2)]
        r = await ep.xfer(ctx, reqs)
        for off in range(8):
            assert data_of(r[off], 0x14 + off, 1) == init[off], (off, r[off])
        assert data_of(r[8], 0x14, 4) == int.from_bytes(init[0:4], "little")
        assert data_of(r[9], 0x16, 2) == int.from_bytes(init[2:4], "little")
        # status ACK | DRIVER, guest features (unoffered bits dropped), queue 1 at PFN 0x12345
        r = await ep.xfer(ctx, [io_wr(0x12, 0x03, 40, 1), io_wr(0x04, 0xFFFF_FFFF, 41),
                                io_rd(0x04, 42), io_wr(0x0E, 1, 43, 2), io_rd(0x0C, 44, 2),
                                io_wr(0x08, 0x12345, 45), io_rd(0x08, 46), io_rd(0x12, 47, 1)])
        assert [t.fmt_type for t in r[:2]] == [TlpType.CPL, TlpType.CPL], r
        assert data_of(r[2], 0x04, 4) == host
        assert data_of(r[4], 0x0C, 2) == p.queue_max_size
        assert data_of(r[6], 0x08, 4) == 0x12345
        assert data_of(r[7], 0x12, 1) == 0x03
        assert ctx.get(ep.dut.legacy) == 1
        assert ctx.get(ep.dut.driver_features) == host
        assert [q.queue for _, q in ep.qev.items] == [1]
        # the back-end sees the legacy ring layout of 256 entries
        ctx.set(ep.dut.qrd_addr, 1)
        await ctx.tick()
        row = ctx.get(ep.dut.qrd_data)
        base = 0x12345 << 12
        assert row.desc == base and row.driver == base + 16 * 256, row
        assert row.device == base + 0x2000, hex(row.device)     # 4096 + 518 rounded up
        # a kick before DRIVER_OK (LEG-08): the doorbell of queue 1; queue 2 is not enabled
        await ep.xfer(ctx, [io_wr(0x10, 1, 50, 2), io_wr(0x10, 2, 51, 2)])
        assert [(d.queue, d.value) for _, d in ep.db.items] == [(1, 1)]

    run(ep, main)


def test_legacy_msix_vectors_move_device_config():
    """LEG-03: with MSI-X enabled the vector fields are at 20/22 and device config at 24; MSX
    vector fields through the legacy header accept table vectors and store NO_VECTOR otherwise."""
    p = LEG
    ep = LegacyEndpoint(p, "legacy_msix")
    msix_cap = None
    from virtio_pci.config.capabilities import build_config_image, CapId
    for c in build_config_image(p).caps:
        if c.cap_id == CapId.MSIX:
            msix_cap = c.offset

    async def main(ctx):
        await ep.xfer(ctx, setup_reqs(p))
        await ep.xfer(ctx, [cfg_req(msix_cap // 4, write=True, data=0x8000_0000, fbe=0x8,
                                    bus=BUS, dev=DEV, tag=2)])
        r = await ep.xfer(ctx, [io_rd(0x18, 3, 4), io_wr(0x14, 2, 4, 2), io_rd(0x14, 5, 2),
                                io_wr(0x16, 3, 6, 2), io_rd(0x16, 7, 2), io_wr(0x14, 9, 8, 2),
                                io_rd(0x14, 9, 2)])
        assert data_of(r[0], 0x18, 4) == int.from_bytes(p.device_cfg_init[:4], "little")
        assert data_of(r[2], 0x14, 2) == 2
        assert data_of(r[4], 0x16, 2) == 3
        assert data_of(r[6], 0x14, 2) == 0xFFFF

    run(ep, main)


def test_legacy_guard_mutes_bars():
    """NTL-01: a non-transitional device with ``legacy_guard``: a one-byte write of 0 at I/O BAR0
    offset 18 makes every BAR read 0 and ignore writes; config space keeps working."""
    p = VirtioPciParams(legacy_guard=True, mem_bar=2)
    ep = LegacyEndpoint(p, "legacy_guard")
    bar = 0xE000_0000
    common = p.regions["common"].offset

    async def main(ctx):
        await ep.xfer(ctx, setup_reqs(p) + [
            cfg_req(6, write=True, data=bar, bus=BUS, dev=DEV, tag=3),
            cfg_req(7, write=True, data=0, bus=BUS, dev=DEV, tag=4)])
        r = await ep.xfer(ctx, [mem_req(bar + common + 0x10, tag=5), io_rd(0x10, 6)])
        before = int.from_bytes(r[0].get_data()[:4], "little")
        assert before >> 16 == p.num_queues
        # a two-byte write of 0 does not trigger, a one-byte one does
        r = await ep.xfer(ctx, [io_wr(0x12, 0, 7, 2), mem_req(bar + common + 0x10, tag=8),
                                io_wr(0x12, 0, 9, 1), mem_req(bar + common + 0x10, tag=10),
                                cfg_req(0, bus=BUS, dev=DEV, tag=11)])
        assert int.from_bytes(r[1].get_data()[:4], "little") == before
        assert int.from_bytes(r[3].get_data()[:4], "little") == 0
        assert r[3].status == CplStatus.SC
        assert int.from_bytes(r[4].get_data()[:4], "little") == p.vendor_id | p.device_id << 16

    run(ep, main)
