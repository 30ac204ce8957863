"""Power management of the whole endpoint on Amaranth's simulator (config/config_space.py, top.py).

PCI Bus Power Management 1.2 section 3.2.4 (PowerState: a write of an unsupported state is
discarded) and PCIe Base 5.3.1.4.1 (D3hot: only configuration and message requests are accepted,
every other request is an Unsupported Request, and the function initiates no requests).
"""
from cocotbext.pcie.core.tlp import CplStatus

from virtio_pci.config.capabilities import build_config_image, CapId
from virtio_pci.params import VirtioPciParams

from tb.tlp.convert import beats_to_dws, dws_to_tlp

from tb.tlp.requests import cfg_req, mem_req

from .helpers import StreamMonitor
from .test_endpoint_sim import BAR, BUS, DEV, Endpoint, check_cpl, run

MSI_ADDR, MSI_DATA = 0xFEE0_1000, 0x4321


class PmHost:
    """Config and memory requests to an ``Endpoint``, with a running tag."""

    def __init__(self, ep):
        self.ep = ep
        self.p = ep.p
        self.img = build_config_image(ep.p)
        self.tag = 0
        self.n = 0

    def completions(self):
        """Completions on tx as cocotbext Tlps (messages and MSI-X writes left out)."""
        out, cur = [], []
        for _, b in self.ep.tx.items:
            cur = [b] if b.first else cur + [b]
            if b.last:
                d = beats_to_dws([(q.data, q.keep, q.first, q.last) for q in cur],
                                 self.p.data_width)
                if d[0] >> 24 in (0x0A, 0x4A):
                    out.append(dws_to_tlp(d))
        return out

    async def wait_cpl(self, ctx):
        self.n += 1
        for _ in range(2000):
            if len(self.completions()) >= self.n:
                return self.completions()[self.n - 1]
            await ctx.tick()
        raise AssertionError(f"completion {self.n} never came")

    def _t(self):
        self.tag = (self.tag + 1) & 0xFF
        return self.tag

    def field_dw(self, name, value):
        """(dword, be, data) writing ``value`` into config field ``name``."""
        f = self.img.fields[name]
        shift = 8 * (f.offset & 3) + f.lsb
        nbytes = (shift + f.width + 7) // 8
        return f.offset // 4, ((1 << nbytes) - 1) << (f.offset & 3) & 0xF, value << shift

    async def cfg(self, ctx, dw, *, write=False, data=0, be=0xF):
        """One configuration request; returns its completion (a cocotbext Tlp)."""
        await self.ep.send(ctx, [cfg_req(dw, write=write, data=data, fbe=be, bus=BUS, dev=DEV,
                                         tag=self._t())])
        return await self.wait_cpl(ctx)

    async def cfg_field(self, ctx, name, value):
        dw, be, data = self.field_dw(name, value)
        cur = (await self.cfg(ctx, dw)).get_data()
        cur = int.from_bytes(cur[:4], "little")
        mask = sum(0xFF << (8 * i) for i in range(4) if be >> i & 1)
        f = self.img.fields[name]
        fmask = ((1 << f.width) - 1) << (8 * (f.offset & 3) + f.lsb)
        return await self.cfg(ctx, dw, write=True, data=(cur & mask & ~fmask) | data, be=be)

    async def read_field(self, ctx, name):
        f = self.img.fields[name]
        v = int.from_bytes((await self.cfg(ctx, f.offset // 4)).get_data()[:4], "little")
        return v >> (8 * (f.offset & 3) + f.lsb) & ((1 << f.width) - 1)

    async def mem(self, ctx, off, *, write=False, data=0, fbe=0xF):
        """One memory request; returns the completion of a read (None for a write)."""
        await self.ep.send(ctx, [mem_req(BAR + off, 1, write=write, data=[data] if write else None,
                                         fbe=fbe, tag=self._t())])
        if write:
            return None
        return await self.wait_cpl(ctx)

    async def setup(self, ctx):
        lo = 4 + self.p.mem_bar
        await self.cfg(ctx, lo, write=True, data=BAR)
        await self.cfg(ctx, lo + 1, write=True, data=0)
        await self.cfg(ctx, 1, write=True, data=0x0006, be=0x3)    # Memory Space, Bus Master


def pm_state_dw(img):
    f = img.fields["pm_csr"]
    return f.offset // 4


def test_powerstate_d1_d2_discarded():
    """PCI-01: PMC advertises neither D1 nor D2, and a PowerState write of 1 or 2 is discarded:
    the field keeps D0 or D3hot, whichever it had (PCI PM 1.2 3.2.4); 3 and 0 are taken.
    No_Soft_Reset (bit 3) reads 1 whatever is written."""
    p = VirtioPciParams()
    ep = Endpoint(p, "pm_d1d2")
    h = PmHost(ep)
    pm = next(c.offset for c in h.img.caps if c.cap_id == CapId.PM)

    async def main(ctx):
        pmc = int.from_bytes((await h.cfg(ctx, pm // 4)).get_data()[:4], "little") >> 16
        assert not pmc >> 9 & 1 and not pmc >> 10 & 1, f"PMC {pmc:#06x} advertises D1/D2"
        dw = pm_state_dw(h.img)
        seen = []
        for v in (1, 2, 3, 1, 2, 0, 2, 3, 0):
            await h.cfg(ctx, dw, write=True, data=v, be=0x1)
            r = int.from_bytes((await h.cfg(ctx, dw)).get_data()[:4], "little")
            seen.append(r & 0xF)
        # PowerState, with No_Soft_Reset (bit 3) set throughout
        assert seen == [8, 8, 11, 11, 11, 8, 8, 11, 8], [hex(s) for s in seen]
        assert ctx.get(ep.dut.power_state) == 0

    run(ep, main)


def test_d3hot_refuses_memory_and_initiates_nothing():
    """PCI-01, MSX-D1: in D3hot (PCIe 5.3.1.4.1) a memory read gets a UR completion (URD), a
    memory write is dropped (a notify write rings no doorbell), the PCI-cfg window reaches nothing,
    an interrupt request sends no MSI-X write (its pending bit is kept and the message leaves on
    the return to D0), an asserted INTx is deasserted and asserted again in D0,
    ``bus_master_allowed`` is low; configuration requests are served, and D0 restores every
    register (No_Soft_Reset)."""
    p = VirtioPciParams()
    ep = Endpoint(p, "pm_d3hot")
    h = PmHost(ep)
    dut = ep.dut
    db = StreamMonitor(dut.doorbell, ep.b.cycle, name="doorbell")
    ep.b.add(db, background=True)
    common = p.regions["common"].offset
    table = p.regions["msix_table"].offset
    notify = p.regions["notify"].offset
    pm_dw = pm_state_dw(h.img)

    def raw():
        """DWs of every TLP seen on tx, in order (INTx messages included, which the cocotbext
        decoder of ``Endpoint.tlps`` does not know)."""
        out, cur = [], []
        for _, b in ep.tx.items:
            cur = [b] if b.first else cur + [b]
            if b.last:
                out.append(beats_to_dws([(q.data, q.keep, q.first, q.last) for q in cur],
                                        p.data_width))
        return out

    def intx_codes():
        return [d[1] & 0xFF for d in raw() if d[0] >> 24 == 0x34]

    def msix_writes():
        """(address, data) of the MWr TLPs (3-DW header) on tx."""
        return [(d[2], d[3]) for d in raw() if d[0] >> 24 == 0x40]

    async def irq(ctx, config=1, queue=0):
        for _ in range(5):              # the posted writes before it have taken effect
            await ctx.tick()
        ctx.set(dut.irq.payload, {"queue": queue, "config": config})
        ctx.set(dut.irq.valid, 1)
        await ctx.tick()
        ctx.set(dut.irq.valid, 0)
        for _ in range(20):
            await ctx.tick()

    async def main(ctx):
        await h.setup(ctx)
        assert ctx.get(dut.bus_master_allowed)
        # queue 0 enabled, DRIVER_OK, config vector 0
        await h.mem(ctx, common + 0x1C, write=True, data=1, fbe=0x3)
        await h.mem(ctx, common + 0x10, write=True, data=0, fbe=0x3)
        await h.mem(ctx, common + 0x14, write=True, data=0x07, fbe=0x1)
        # INTx first (MSI-X disabled): a configuration change asserts INTA
        await irq(ctx)
        assert intx_codes() == [0x20]
        # D3hot
        await h.cfg(ctx, pm_dw, write=True, data=3, be=0x1)
        for _ in range(10):
            await ctx.tick()
        assert intx_codes() == [0x20, 0x24], "INTx not deasserted in D3hot"
        assert ctx.get(dut.power_state) == 3 and not ctx.get(dut.bus_master_allowed)
        # memory read: UR; memory write: dropped (no doorbell)
        t = await h.mem(ctx, common + 0x10)
        check_cpl(t, h.tag, status=CplStatus.UR)
        await h.mem(ctx, notify, write=True, data=0, fbe=0x3)
        sta = await h.read_field(ctx, "pcie_devsta")
        assert sta & 0b1000, "URD not set by the refused request"
        # configuration still served; MSI-X enabled while in D3hot
        await h.cfg_field(ctx, "msix_enable", 1)
        await irq(ctx)
        assert not msix_writes(), "MSI-X write sent in D3hot"
        # back to D0: MSI-X table still as set before?  Program it now (D0) and see the message
        await h.cfg(ctx, pm_dw, write=True, data=0, be=0x1)
        assert ctx.get(dut.bus_master_allowed)
        for i, v in enumerate((MSI_ADDR, 0, MSI_DATA)):
            await h.mem(ctx, table + 4 * i, write=True, data=v)
        await h.mem(ctx, table + 12, write=True, data=0)          # unmask vector 0
        for _ in range(30):
            await ctx.tick()
        assert msix_writes() == [(MSI_ADDR, MSI_DATA)], msix_writes()
        assert intx_codes() == [0x20, 0x24], "INTx while MSI-X is enabled"
        # state kept across D3hot: DRIVER_OK still set
        t = await h.mem(ctx, common + 0x14)
        assert (int.from_bytes(t.get_data()[:4], "little") & 0xFF) == 0x07
        assert not db.items, "doorbell rang from a write received in D3hot"

    run(ep, main)
