"""A few end-to-end checks of the whole VirtioPciEndpoint on Amaranth's simulator (top.py).

Requests are encoded by cocotbext-pcie and completions decoded by it (tb/tlp/convert.py), so the
header layouts of the RTL are checked against an independent implementation.  The thorough
register-level checks are the cocotb integration tests; these are the latency and throughput
figures of DESIGN.md section 8 and the basic routes through the pipeline.
"""
import pytest

from cocotbext.pcie.core.tlp import TlpType, CplStatus

from virtio_pci.params import VirtioPciParams
from virtio_pci.top import VirtioPciEndpoint
from virtio_pci.config.capabilities import build_config_image, CapId

from tb.tlp.convert import dws_to_tlp, beats_to_dws
from tb.tlp.requests import cfg_req, mem_req

from .helpers import Bench, drive, StreamMonitor, beats_of, seeded
from tb.models.pcie_rules import split_read

BUS, DEV = 0x3C, 0x05
CID = (BUS << 8) | (DEV << 3)
BAR = 0xE000_0000


class Endpoint:
    """The endpoint on a bench: send TLPs (DW lists) on rx, completions collected from tx."""

    def __init__(self, p, name, *, rng=None, ready_prob=1.0):
        self.p = p
        self.dut = VirtioPciEndpoint(p)
        self.b = Bench(self.dut, name)
        self.tx = StreamMonitor(self.dut.tx, self.b.cycle, rng=rng, ready_prob=ready_prob, name="tx")
        self.b.add(self.tx, background=True)
        self.accepted = []

    async def send(self, ctx, tlps, **kw):
        beats = [bt for t in tlps for bt in beats_of(t, self.p.data_width)]
        await drive(ctx, self.dut.rx, beats, self.b.cycle, accepted=self.accepted, **kw)

    async def wait_tlps(self, ctx, n, limit=2000):
        for _ in range(limit):
            if len(self.tlps()) >= n:
                return self.tlps()
            await ctx.tick()
        raise AssertionError(f"only {len(self.tlps())} of {n} TLPs on tx")

    def tlps(self):
        """[(edge of the first beat, cocotbext Tlp)] of every complete TLP seen on tx."""
        out = []
        cur = []
        for c, p in self.tx.items:
            if p.first:
                cur = [(c, p)]
            else:
                cur.append((c, p))
            if p.last:
                beats = [(q.data, q.keep, q.first, q.last) for _, q in cur]
                out.append((cur[0][0], dws_to_tlp(beats_to_dws(beats, self.p.data_width))))
        return out


def run(ep, main):
    ep.b.add(main)
    ep.b.run(timeout=20000)


def check_cpl(t, tag, *, status=CplStatus.SC, data=None, fmt=None):
    assert t.fmt_type == (fmt or (TlpType.CPL_DATA if data is not None else TlpType.CPL)), t
    assert t.tag == tag and t.status == status, t
    assert int(t.completer_id) == CID, f"completer id {int(t.completer_id):#06x}"
    if data is not None:
        got = int.from_bytes(t.get_data()[:4], "little")
        assert got == data, f"tag {tag}: data {got:#010x} != {data:#010x}"


def test_cfgrd_latency_128():
    """CfgRd0 -> CplD: the first completion beat leaves exactly 3 cycles after the request's last
    beat (DESIGN.md section 8), and carries the right header and config dword."""
    p = VirtioPciParams(data_width=128)
    img = build_config_image(p)
    ep = Endpoint(p, "ep_cfgrd_latency")

    async def main(ctx):
        for k, reg in enumerate([0, 0x2C // 4, 0x34 // 4, 0x40 // 4]):
            ep.accepted.clear()
            await ep.send(ctx, [cfg_req(reg, bus=BUS, dev=DEV, tag=0x20 + k, rid=0x0010)])
            for _ in range(6):
                await ctx.tick()
            edge, t = ep.tlps()[-1]
            assert edge - ep.accepted[-1] == 3, f"CfgRd0 latency {edge - ep.accepted[-1]} cycles, target 3"
            check_cpl(t, 0x20 + k, data=img.dword(reg)[0])
            assert t.byte_count == 4 and t.lower_address == 0 and t.length == 1
            assert int(t.requester_id) == 0x0010

    run(ep, main)


@pytest.mark.parametrize("width", [128, 256])
def test_cfgrd_back_to_back(width):
    """Back-to-back single-DW CfgRd0 (one beat each): one completion per cycle, in order."""
    p = VirtioPciParams(data_width=width)
    img = build_config_image(p)
    ep = Endpoint(p, f"ep_cfgrd_b2b_{width}")
    n = 32

    async def main(ctx):
        await ep.send(ctx, [cfg_req(i, bus=BUS, dev=DEV, tag=i) for i in range(n)])
        tlps = await ep.wait_tlps(ctx, n)
        edges = [e for e, _ in tlps]
        assert ep.accepted == list(range(ep.accepted[0], ep.accepted[0] + n)), "rx stalled"
        assert edges == list(range(edges[0], edges[0] + n)), f"completions not one per cycle: {edges}"
        for i, (_, t) in enumerate(tlps):
            check_cpl(t, i, data=img.dword(i)[0])

    run(ep, main)


def test_cfgrd_back_to_back_under_backpressure():
    """Random back-pressure on tx: nothing lost, duplicated or reordered."""
    p = VirtioPciParams(data_width=128)
    img = build_config_image(p)
    rng = seeded("ep-bp")
    ep = Endpoint(p, "ep_cfgrd_bp", rng=rng, ready_prob=0.4)
    n = 40

    async def main(ctx):
        await ep.send(ctx, [cfg_req(i % 64, bus=BUS, dev=DEV, tag=i) for i in range(n)], rng=rng, idle=0.2)
        tlps = await ep.wait_tlps(ctx, n)
        assert len(tlps) == n
        for i, (_, t) in enumerate(tlps):
            check_cpl(t, i, data=img.dword(i % 64)[0])

    run(ep, main)


@pytest.mark.parametrize("width", [64, 128, 256])
def test_mrd_bar_after_programming(width):
    """MRd to the BAR: UR while the BAR is unprogrammed / Memory Space disabled; after CfgWr0 of the
    BAR and Command, a register read returns its value, and a long read is split into completions
    at MPS boundaries with the right byte counts and lower addresses."""
    p = VirtioPciParams(data_width=width)
    img = build_config_image(p)
    ep = Endpoint(p, f"ep_mrd_{width}")
    lo = 4 + p.mem_bar
    common = p.regions["common"].offset
    ex = {c.cap_id: c.offset for c in img.caps}[CapId.PCIE]

    async def main(ctx):
        await ep.send(ctx, [cfg_req(0, bus=BUS, dev=DEV, tag=1),
                            mem_req(BAR + common + 0x10, 1, tag=2)])
        tlps = await ep.wait_tlps(ctx, 2)
        check_cpl(tlps[1][1], 2, status=CplStatus.UR)
        assert tlps[1][1].byte_count == 4 and tlps[1][1].lower_address == 0x10
        await ep.send(ctx, [cfg_req(lo, write=True, data=BAR, bus=BUS, dev=DEV, tag=3),
                            cfg_req(lo + 1, write=True, data=0, bus=BUS, dev=DEV, tag=4),
                            mem_req(BAR + common + 0x10, 1, tag=5),                  # still disabled
                            cfg_req(1, write=True, data=0x0006, fbe=0x3, bus=BUS, dev=DEV, tag=6),
                            cfg_req(lo, bus=BUS, dev=DEV, tag=7)])
        tlps = await ep.wait_tlps(ctx, 7)
        for i in (2, 3, 5):
            check_cpl(tlps[i][1], i + 1)
        check_cpl(tlps[4][1], 5, status=CplStatus.UR)
        check_cpl(tlps[6][1], 7, data=BAR | 0b0100)
        # msix_config (NO_VECTOR at reset) and num_queues share the dword at 0x10
        ep.accepted.clear()
        await ep.send(ctx, [mem_req(BAR + common + 0x10, 1, tag=8, rid=0x0020)])
        tlps = await ep.wait_tlps(ctx, 8)
        edge, t = tlps[7]
        check_cpl(t, 8, data=(p.num_queues << 16) | 0xFFFF)
        assert t.byte_count == 4 and t.lower_address == 0x10 and int(t.requester_id) == 0x0020
        assert edge - ep.accepted[-1] <= 3, f"register MRd latency {edge - ep.accepted[-1]} cycles"
        # a 397-byte read from offset 0x0D of the BAR at MPS 128: four completions at 128-byte
        # boundaries (MPS stays 128 after reset)
        assert (img.dword((ex + 8) // 4)[0] >> 5) & 7 == 0
        length, fbe, lbe = 100, 0xE, 0x3
        await ep.send(ctx, [mem_req(BAR + 0x0C, length, fbe=fbe, lbe=lbe, tag=0x1A5, tc=2, attr=2)])
        parts = split_read((BAR + 0x0C) >> 2, length, fbe, lbe, 128)
        tlps = await ep.wait_tlps(ctx, 8 + len(parts))
        got = [t for _, t in tlps[8:]]
        assert len(got) == len(parts) == 4
        for t, (s, n, bc, la) in zip(got, parts):
            assert t.fmt_type == TlpType.CPL_DATA and t.status == CplStatus.SC
            assert (t.length, t.byte_count, t.lower_address) == (n, bc & 0xFFF, la), t
            assert t.tag == 0x1A5 and t.tc == 2 and int(t.attr) == 2
        assert int.from_bytes(got[0].get_data()[0x10 - 0xC:0x10 - 0xC + 4], "little") == \
            (p.num_queues << 16) | 0xFFFF, "the read data follows the register contents"

    run(ep, main)


def test_mrdlk_gets_cpllk_ur():
    """An endpoint answers MRdLk with UR in a CplLk (PCIe 4.0 2.3.1, Table 2-3)."""
    p = VirtioPciParams(data_width=128)
    ep = Endpoint(p, "ep_mrdlk")

    async def main(ctx):
        await ep.send(ctx, [cfg_req(0, bus=BUS, dev=DEV, tag=1),
                            mem_req(BAR + 0x8, 2, locked=True, fbe=0xC, lbe=0x1, tag=2)])
        tlps = await ep.wait_tlps(ctx, 2)
        t = tlps[1][1]
        check_cpl(t, 2, status=CplStatus.UR, fmt=TlpType.CPL_LOCKED)
        assert t.byte_count == 3 and t.lower_address == 0x0A

    run(ep, main)


@pytest.mark.parametrize("width", [64, 256])
def test_mrd_random_backpressure(width):
    """Random multi-DW reads of the device-config register file (known contents) and CfgRd0s mixed,
    random idle on rx and back-pressure on tx: every completion's header matches the PCIe split
    reference and its data the register file, in request order."""
    rng = seeded("ep-mrd-rand", width)
    init = bytes(rng.getrandbits(8) for _ in range(0x200))
    p = VirtioPciParams(data_width=width, device_cfg_size=0x200, device_cfg_init=init)
    img = build_config_image(p)
    ep = Endpoint(p, f"ep_mrd_random_{width}", rng=rng, ready_prob=0.6)
    dev = p.regions["device"].offset
    lo = 4 + p.mem_bar

    async def main(ctx):
        await ep.send(ctx, [cfg_req(lo, write=True, data=BAR, bus=BUS, dev=DEV),
                            cfg_req(1, write=True, data=0x0002, fbe=0x1, bus=BUS, dev=DEV)])
        await ep.wait_tlps(ctx, 2)
        reqs = []
        for k in range(30):
            if rng.random() < 0.3:
                reg = rng.randrange(64)
                reqs.append(("cfg", k, reg))
            else:
                length = rng.choice([1, 2, 3, rng.randint(1, 40)])
                off = rng.randrange(0, 0x200 // 4 - length + 1) * 4
                fbe = rng.choice([0xF, 0xE, 0xC, 0x8]) if length > 1 else rng.choice([0xF, 0x1, 0x6, 0x0])
                lbe = rng.choice([0xF, 0x7, 0x3, 0x1]) if length > 1 else 0
                reqs.append(("mrd", k, off, length, fbe, lbe))
        tlps = [cfg_req(r[2], bus=BUS, dev=DEV, tag=r[1]) if r[0] == "cfg" else
                mem_req(BAR + dev + r[2], r[3], fbe=r[4], lbe=r[5], tag=r[1]) for r in reqs]
        await ep.send(ctx, tlps, rng=rng, idle=0.3)
        cfgval = {i: img.dword(i)[0] for i in range(64)}
        cfgval[1] |= 0x0002                     # Memory Space Enable written above
        cfgval[lo] = BAR | 0b0100
        exp = []
        for r in reqs:
            if r[0] == "cfg":
                exp.append((r[1], 1, 4, 0, [cfgval[r[2]]]))
                continue
            _, tag, off, length, fbe, lbe = r
            for s, n, bc, la in split_read((BAR + dev + off) >> 2, length, fbe, lbe, 128):
                words = [int.from_bytes(init[off + 4 * i:off + 4 * i + 4], "little") for i in range(s, s + n)]
                exp.append((tag, n, bc, la, words))
        tlps = await ep.wait_tlps(ctx, 2 + len(exp), limit=5000)
        for (_, t), (tag, n, bc, la, words) in zip(tlps[2:], exp):
            check_cpl(t, tag, fmt=TlpType.CPL_DATA)
            assert (t.length, t.byte_count, t.lower_address) == (n, bc, la), (t, n, bc, la)
            got = [int.from_bytes(t.get_data()[4 * i:4 * i + 4], "little") for i in range(n)]
            assert got == words, f"tag {tag}: data {got} != {words}"

    run(ep, main)


def test_pci_cfg_window_back_to_back():
    """PCC-02, PCC-03: CfgWr to the PCI-cfg capability's bar/offset/length immediately followed
    (next cycle, W=128) by a CfgRd/CfgWr of pci_cfg_data uses the new window: the window's
    registered decode must not serve the stale one."""
    p = VirtioPciParams(data_width=128)
    img = build_config_image(p)
    f = img.fields
    bar_dw, off_dw, len_dw = (f["pci_cfg_bar"].offset // 4, f["pci_cfg_offset"].offset // 4,
                              f["pci_cfg_length"].offset // 4)
    data_dw = f["pci_cfg_data"].offset // 4
    common = p.regions["common"].offset
    ep = Endpoint(p, "pci_cfg_b2b")

    def cw(dw, value, tag, fbe=0xF):
        return cfg_req(dw, write=True, data=value, fbe=fbe, bus=BUS, dev=DEV, tag=tag)

    async def main(ctx):
        bar_lane = f["pci_cfg_bar"].offset & 3
        reqs = [cw(bar_dw, p.mem_bar << 8 * bar_lane, 1, fbe=1 << bar_lane),
                cw(off_dw, common + 0x10, 2), cw(len_dw, 2, 3),
                cfg_req(data_dw, bus=BUS, dev=DEV, tag=4),        # msix_config via the window
                cw(off_dw, common + 0x12, 5),
                cfg_req(data_dw, bus=BUS, dev=DEV, tag=6),        # num_queues (offset changed the cycle before)
                cw(len_dw, 3, 7),                                 # invalid length
                cfg_req(data_dw, bus=BUS, dev=DEV, tag=8)]
        await ep.send(ctx, reqs)
        tl = [t for _, t in await ep.wait_tlps(ctx, len(reqs))]
        got = {t.tag: int.from_bytes(t.get_data()[:4], "little") for t in tl
               if t.fmt_type == TlpType.CPL_DATA}
        assert got[4] & 0xFFFF == 0xFFFF, f"msix_config reads NO_VECTOR, got {got[4]:#x}"
        assert got[6] & 0xFFFF == p.num_queues, f"num_queues via the window, got {got[6]:#x}"
        assert got[8] == 0, f"an invalid window reads 0, got {got[8]:#x}"

    run(ep, main)


def test_flr_keeps_offered_queue_event():
    """Stream rules across FLR: a queue event the back-end has not taken yet when an FLR resets
    common cfg stays offered, unchanged, and is delivered exactly once (the back-end sees ``flr``
    and decides); the doorbell stream has the same guarantee (notify is outside the FLR)."""
    p = VirtioPciParams(data_width=128)
    img = build_config_image(p)
    lo = 4 + p.mem_bar
    common = p.regions["common"].offset
    flr = img.fields["flr"]
    ep = Endpoint(p, "flr_qevent")
    qev = StreamMonitor(ep.dut.qevent, ep.b.cycle, name="qevent", ready_prob=0.0,
                        rng=seeded("flr_qevent"))
    ep.b.add(qev, background=True)

    async def main(ctx):
        await ep.send(ctx, [cfg_req(lo, write=True, data=BAR, bus=BUS, dev=DEV, tag=1),
                            cfg_req(lo + 1, write=True, data=0, bus=BUS, dev=DEV, tag=2),
                            cfg_req(1, write=True, data=0x0006, fbe=0x3, bus=BUS, dev=DEV, tag=3)])
        await ep.wait_tlps(ctx, 3)       # a host waits for its config writes' completions
        await ep.send(ctx, [mem_req(BAR + common + 0x1C, 1, write=True, data=[1], fbe=0x3, tag=4)])
        for _ in range(10):
            await ctx.tick()
        assert ctx.get(ep.dut.qevent.valid), "queue_enable=1 offers a queue event"
        offered = ctx.get(ep.dut.qevent.payload)
        await ep.send(ctx, [cfg_req(flr.dword, write=True, data=1 << (8 * (flr.offset & 3) + flr.lsb),
                                    fbe=1 << (flr.offset & 3), bus=BUS, dev=DEV, tag=5)])
        flr_seen = False
        for _ in range(20):
            await ctx.tick()
            flr_seen |= bool(ctx.get(ep.dut.flr))
            assert ctx.get(ep.dut.qevent.valid), "FLR withdrew an offered queue event"
            assert ctx.get(ep.dut.qevent.payload) == offered
        assert flr_seen
        qev.ready_prob = 1.0
        for _ in range(10):
            await ctx.tick()
        assert len(qev.items) == 1 and qev.items[0][1].queue == 0, qev.items

    run(ep, main)
