"""UltraScale+ PCIE4 adapter pieces (hdl/virtio_pci/link/usplus.py) on Amaranth's simulator.

The descriptor formats are checked against cocotbext-pcie's own implementation of PG213's formats
(``Tlp_us.pack_us_cq`` / ``unpack_us_cc`` / ``unpack_us_rq``), an independent encoder/decoder, in
the DWORD-aligned, non-straddled mode: CQ/RQ descriptors are 4 DWs, CC 3 DWs, the payload follows
from the next DW; CQ tuser first BE [3:0], last BE [7:4], sop [40]; RQ tuser first/last BE [7:0].
"""
import pytest
from cocotbext.pcie.core.tlp import CplStatus, Tlp, TlpType
from cocotbext.pcie.core.utils import PcieId
from cocotbext.pcie.xilinx.us.interface import UsPcieFrame
from cocotbext.pcie.xilinx.us.tlp import ErrorCode, Tlp_us

from virtio_pci.link.usplus import CFG_EXT_TAG, UsCfg, UsCq, UsRc, UsTx
from tb.tlp.convert import beats_to_dws, dws_to_beats, dws_to_tlp, tlp_to_dws
from .helpers import Bench, StreamMonitor, drive, payload_bits, seeded

APERTURE = 15          # a 32 KiB BAR


def _cq_request(rng, k):
    t = Tlp_us()
    kind = rng.randrange(3)
    base = 0xFEB0_0000 if kind != 2 else 0x40_0000_0000
    t.address = base + 4 * rng.randrange(0x2000)
    if kind == 0:
        t.fmt_type = TlpType.MEM_READ
        t.length = rng.randrange(1, 16)
    else:
        t.fmt_type = TlpType.MEM_WRITE if kind == 1 else TlpType.MEM_WRITE_64
        n = rng.randrange(1, 20)
        t.data = bytes(rng.randrange(256) for _ in range(4 * n))
        t.length = n
    t.first_be = rng.choice([0xF, 0x1, 0x6, 0xC])
    t.last_be = 0xF if t.length > 1 else 0
    t.requester_id = PcieId(0, 1, 0)
    t.tag = k & 0xFF
    t.bar_id = 0
    t.bar_aperture = APERTURE
    return t


def _axis_beats(frame, width):
    lanes = width // 32
    out = []
    for i in range(0, len(frame.data), lanes):
        chunk = frame.data[i:i + lanes]
        user = (frame.first_be | frame.last_be << 4 | 1 << 40) if i == 0 else 0
        out.append({"tdata": sum(d << (32 * j) for j, d in enumerate(chunk)),
                    "tkeep": (1 << len(chunk)) - 1, "tlast": int(i + lanes >= len(frame.data)),
                    "tuser": user})
    return out


async def _axis_source(ctx, dut, name, beats, rng, *, sample=(), seen=None):
    """Offer ``beats`` on the IP's ``m_axis_<name>`` stream with 30 % idle before each; the
    signals in ``sample`` are recorded in ``seen`` at every clock edge while a beat is offered."""
    for bt in beats:
        while rng.random() < 0.3:
            ctx.set(getattr(dut, f"m_axis_{name}_tvalid"), 0)
            await ctx.tick()
        for k, v in bt.items():
            ctx.set(getattr(dut, f"m_axis_{name}_{k}"), v)
        ctx.set(getattr(dut, f"m_axis_{name}_tvalid"), 1)
        while True:
            _, _, r, *vals = await ctx.tick().sample(getattr(dut, f"m_axis_{name}_tready"),
                                                     *sample)
            if seen is not None:
                seen.append(vals)
            if r:
                break
    ctx.set(getattr(dut, f"m_axis_{name}_tvalid"), 0)
    for _ in range(100):
        await ctx.tick()


def _tlps_seen(mon, width):
    """The TLPs a ``StreamMonitor`` on a TLP stream recorded."""
    got, cur = [], []
    for _, p in mon.items:
        cur.append((payload_bits(p.data), int(p.keep), int(p.first), int(p.last)))
        if p.last:
            got.append(dws_to_tlp(beats_to_dws(cur, width)))
            cur = []
    return got


@pytest.mark.parametrize("width", [128, 256])
def test_usplus_cq_to_tlp(width):
    """No requirement ID (PG213 completer request descriptor): CQ requests (PG213 layout, encoded
    by cocotbext-pcie) become TLPs with a 4-DW header: type, length, requester ID, tag, byte
    enables, TC/attributes, the address masked to the BAR aperture (offset inside the BAR), and
    the payload unchanged, under random idle and back-pressure."""
    rng = seeded("us-cq", width)
    reqs = [_cq_request(rng, k) for k in range(40)]
    dut = UsCq(width)
    b = Bench(dut, f"us_cq_{width}")
    mon = StreamMonitor(dut.tlp, b.cycle, rng=seeded("us-cq-bp", width), ready_prob=0.5)
    b.add(mon, background=True)
    beats = [bt for t in reqs for bt in _axis_beats(t.pack_us_cq(), width)]

    async def src(ctx):
        await _axis_source(ctx, dut, "cq", beats, rng)
    b.add(src)
    b.run(timeout=20000)
    got = _tlps_seen(mon, width)
    assert len(got) == len(reqs)
    for g, t in zip(got, reqs):
        exp_ft = TlpType.MEM_READ_64 if t.fmt_type == TlpType.MEM_READ else TlpType.MEM_WRITE_64
        assert g.fmt_type == exp_ft
        assert g.address == t.address & ((1 << APERTURE) - 1)
        assert (g.length, g.tag, int(g.requester_id)) == (t.length, t.tag, int(t.requester_id))
        assert (g.first_be, g.last_be) == (t.first_be, t.last_be)
        assert bytes(g.get_data()) == bytes(t.get_data())


def _cpl(rng, k):
    t = Tlp()
    n = rng.randrange(0, 12)
    t.fmt_type = TlpType.CPL_DATA if n else TlpType.CPL
    t.status = CplStatus.SC if n else rng.choice([CplStatus.SC, CplStatus.UR, CplStatus.CA])
    if n:
        t.data = bytes(rng.randrange(256) for _ in range(4 * n))
        t.length = n
    t.byte_count = 4 * n + rng.randrange(0, 64) if n else 4
    t.lower_address = rng.randrange(0, 128) & ~3
    t.requester_id = PcieId(0, 0, 0)
    t.completer_id = PcieId(3, 0, 0)
    t.tag = k
    return t


@pytest.mark.parametrize("width", [256])
def test_usplus_tx_cc_and_rq(width):
    """No requirement ID (PG213 completer completion and requester request descriptors): the
    core's completions leave on CC and decode (cocotbext-pcie's PG213 decoder) to the same
    completion: lower address, byte count, dword count, status, requester/completer ID, tag and
    payload; its one-DW memory writes (MSI-X) leave on RQ with address, data, tag and byte
    enables; messages are dropped and counted.  Random back-pressure on CC and RQ."""
    rng = seeded("us-tx", width)
    tlps = []
    for k in range(30):
        if k % 5 == 4:
            t = Tlp()
            t.fmt_type = TlpType.MEM_WRITE_64 if k % 2 else TlpType.MEM_WRITE
            t.address = (0x40_0000_1000 if k % 2 else 0xFEE0_0000) + 4 * k
            t.data = (0x4000 + k).to_bytes(4, "little")
            t.length = 1
            t.first_be = 0xF
            t.tag = 0
            tlps.append(t)
        else:
            tlps.append(_cpl(rng, k))
    msg = [0x34000000, 0x00000020, 0, 0]            # Assert_INTA (Msg, routed locally)
    dut = UsTx(width)
    b = Bench(dut, f"us_tx_{width}")
    out = {"cc": [], "rq": []}
    drops = []

    async def src(ctx):
        beats = [{"data": d, "keep": k, "first": int(f), "last": int(la)}
                 for t in tlps for d, k, f, la in dws_to_beats(tlp_to_dws(t), width)]
        beats += [{"data": d, "keep": k, "first": int(f), "last": int(la)}
                  for d, k, f, la in dws_to_beats(msg, width)]
        await drive(ctx, dut.tlp, beats, b.cycle, rng=seeded("us-tx-idle", width), idle=0.2)
        for _ in range(100):
            await ctx.tick()

    async def sinks(ctx):
        cur = {"cc": [], "rq": []}
        while True:
            r = {n: int(rng.random() < 0.5) for n in ("cc", "rq")}
            for n in r:
                ctx.set(getattr(dut, f"s_axis_{n}_tready"), r[n])
            vals = await ctx.tick().sample(
                *[getattr(dut, f"s_axis_{n}_{k}") for n in ("cc", "rq")
                  for k in ("tvalid", "tdata", "tkeep", "tlast", "tuser")], dut.msg_dropped)
            vals = vals[2:]
            if vals[-1]:
                drops.append(1)
            for j, n in enumerate(("cc", "rq")):
                v, d, kp, last, user = vals[5 * j:5 * j + 5]
                if v and r[n]:
                    cur[n] += [(d >> (32 * i)) & 0xFFFF_FFFF for i in range(width // 32)
                               if kp >> i & 1]
                    if last:
                        out[n].append((cur[n], user))
                        cur[n] = []
    b.add(src)
    b.add(sinks, background=True)
    b.run(timeout=20000)
    cpls = [t for t in tlps if t.fmt_type in (TlpType.CPL, TlpType.CPL_DATA)]
    mwrs = [t for t in tlps if t not in cpls]
    assert len(out["cc"]) == len(cpls) and len(out["rq"]) == len(mwrs) and drops == [1]
    for (dws, _), t in zip(out["cc"], cpls):
        f = UsPcieFrame()
        f.data = dws
        g = Tlp_us.unpack_us_cc(f)
        assert g.lower_address == t.lower_address and g.byte_count == t.byte_count
        assert g.length == t.length and g.status == t.status and g.tag == t.tag
        assert int(g.requester_id) == int(t.requester_id)
        assert int(g.completer_id) == int(t.completer_id) and g.completer_id_enable
        assert bytes(g.get_data()) == bytes(t.get_data())
    for (dws, user), t in zip(out["rq"], mwrs):
        f = UsPcieFrame()
        f.data = dws
        f.first_be, f.last_be = user & 0xF, (user >> 4) & 0xF
        g = Tlp_us.unpack_us_rq(f)
        assert g.fmt_type in (TlpType.MEM_WRITE, TlpType.MEM_WRITE_64)
        assert g.address == t.address and g.length == 1 and g.first_be == 0xF
        assert bytes(g.get_data()) == bytes(t.get_data())
        assert not g.requester_id_enable


def _dma_request(rng, k):
    """A memory request as the DMA requester sends it: MRd or MWr, 3-DW below 4 GiB, 4-DW above."""
    t = Tlp()
    high = rng.random() < 0.5
    n = rng.choice([1, 2, 3, 4, 5, 6, 7, 8, 9, 12, 13, 16, 17, 31, 32, 33, 64])
    write = rng.random() < 0.6
    if write:
        t.fmt_type = TlpType.MEM_WRITE_64 if high else TlpType.MEM_WRITE
        t.data = bytes(rng.randrange(256) for _ in range(4 * n))
    else:
        t.fmt_type = TlpType.MEM_READ_64 if high else TlpType.MEM_READ
    t.length = n
    t.address = (0x12_3400_0000 if high else 0x8000_0000) + 4 * rng.randrange(0x1000)
    t.first_be = rng.choice([0xF, 0xE, 0xC, 0x8]) if n > 1 else rng.choice([0xF, 0x1, 0x6])
    t.last_be = rng.choice([0xF, 0x7, 0x3, 0x1]) if n > 1 else 0
    t.tag = k & 0x1F
    t.requester_id = PcieId(0x21, 0, 0)
    return t


def test_usplus_rq_dma_requests():
    """DMA-04, DMA-05: back-end memory reads and writes of 1 to 64 DWs, 3-DW headers below 4 GiB
    and 4-DW above, leave on RQ in PG213's layout (decoded by cocotbext-pcie's ``unpack_us_rq``):
    request type, 64-bit address, dword count, first/last byte enables in tuser, tag, and the
    payload from DW 4 of the first beat (moved up one DW after a 3-DW header, with the extra
    output beat a 5-DW, 13-DW ... payload needs), under random idle and RQ back-pressure."""
    width = 256
    rng = seeded("us-rq-dma")
    reqs = [_dma_request(rng, k) for k in range(60)]
    dut = UsTx(width)
    b = Bench(dut, "us_rq_dma")
    out = []

    async def src(ctx):
        ctx.set(dut.requester_id, 0x2100)
        beats = [{"data": d, "keep": k, "first": int(f), "last": int(la)}
                 for t in reqs for d, k, f, la in dws_to_beats(tlp_to_dws(t), width)]
        await drive(ctx, dut.tlp, beats, b.cycle, rng=seeded("us-rq-idle"), idle=0.2)
        for _ in range(100):
            await ctx.tick()

    async def sink(ctx):
        cur, first_user = [], None
        while True:
            r = int(rng.random() < 0.6)
            ctx.set(dut.s_axis_rq_tready, r)
            _, _, v, d, kp, last, user = await ctx.tick().sample(
                dut.s_axis_rq_tvalid, dut.s_axis_rq_tdata, dut.s_axis_rq_tkeep,
                dut.s_axis_rq_tlast, dut.s_axis_rq_tuser)
            if v and r:
                assert kp and kp & (kp + 1) == 0, f"tkeep {kp:#x} is not contiguous from lane 0"
                if not cur:
                    first_user = user
                cur += [(d >> (32 * i)) & 0xFFFF_FFFF for i in range(width // 32) if kp >> i & 1]
                if last:
                    out.append((cur, first_user))
                    cur = []
    b.add(src)
    b.add(sink, background=True)
    b.run(timeout=40000)
    assert len(out) == len(reqs)
    for (dws, user), t in zip(out, reqs):
        f = UsPcieFrame()
        f.data = dws
        f.first_be, f.last_be = user & 0xF, (user >> 4) & 0xF
        g = Tlp_us.unpack_us_rq(f)
        write = t.fmt_type in (TlpType.MEM_WRITE, TlpType.MEM_WRITE_64)
        assert (g.fmt_type in (TlpType.MEM_WRITE, TlpType.MEM_WRITE_64)) == write, (g, t)
        assert g.address == t.address and g.length == t.length, (g, t)
        assert (g.first_be, g.last_be, g.tag) == (t.first_be, t.last_be, t.tag), (g, t)
        assert int(g.requester_id) == 0x2100 and not g.requester_id_enable
        assert len(dws) == 4 + (t.length if write else 0), f"{len(dws)} DWs for {t}"
        if write:
            assert bytes(g.get_data()) == bytes(t.get_data()), t


def _rc_completion(rng, k):
    t = Tlp_us()
    n = rng.choice([0, 1, 2, 5, 8, 13, 16, 29, 32])
    t.fmt_type = TlpType.CPL_DATA if n else TlpType.CPL
    t.status = CplStatus.SC if n else rng.choice([CplStatus.UR, CplStatus.CA])
    if n:
        t.data = bytes(rng.randrange(256) for _ in range(4 * n))
        t.length = n
    t.byte_count = min(4096, 4 * n + rng.randrange(0, 64)) if n else 4
    t.lower_address = rng.randrange(0, 0x1000)
    t.requester_id = PcieId(0x21, 0, 0)
    t.completer_id = PcieId(0, 0, 0)
    t.tag = k & 0x1F
    t.ep = n and rng.random() < 0.1
    t.tc, t.attr = rng.randrange(8), rng.randrange(8)
    t.error_code = rng.choice([ErrorCode.NORMAL_TERMINATION] * 6 + [
        ErrorCode.POISONED, ErrorCode.BAD_STATUS, ErrorCode.INVALID_TAG, ErrorCode.FLR,
        ErrorCode.TIMEOUT])
    return t


def test_usplus_rc_to_tlp():
    """DMA-09, DMA-10: completions for back-end reads arrive on RC (PG213 requester completion
    descriptor, encoded by cocotbext-pcie's ``pack_us_rc``) and become CplD/Cpl TLPs on the core's
    stream: length, status, poisoned, byte count (4096 as 0), lower address (its 7 bits), tag,
    requester and completer ID, TC, attributes and the payload in place; descriptors the IP made
    up itself (error code FLR or completion timeout: no TLP behind them) are dropped and counted,
    under random idle and back-pressure."""
    width = 256
    rng = seeded("us-rc")
    cpls = [_rc_completion(rng, k) for k in range(60)]
    dut = UsRc(width)
    b = Bench(dut, "us_rc")
    mon = StreamMonitor(dut.tlp, b.cycle, rng=seeded("us-rc-bp"), ready_prob=0.5)
    b.add(mon, background=True)
    beats = [bt for t in cpls for bt in _axis_beats(t.pack_us_rc(), width)]
    seen = []

    async def src(ctx):
        await _axis_source(ctx, dut, "rc", beats, rng, sample=(dut.ip_dropped,), seen=seen)
    b.add(src)
    b.run(timeout=20000)
    got = _tlps_seen(mon, width)
    drops = [v[0] for v in seen]
    kept = [t for t in cpls if t.error_code not in (ErrorCode.FLR, ErrorCode.TIMEOUT)]
    assert sum(drops) == len(cpls) - len(kept) > 0
    assert len(got) == len(kept)
    for g, t in zip(got, kept):
        assert g.fmt_type == t.fmt_type and g.length == t.length and g.status == t.status, (g, t)
        assert g.byte_count == t.byte_count & 0xFFF and g.lower_address == t.lower_address & 0x7F
        assert (g.tag, g.ep, g.tc, g.attr) == (t.tag, bool(t.ep), t.tc, t.attr), (g, t)
        assert int(g.requester_id) == int(t.requester_id)
        assert int(g.completer_id) == int(t.completer_id)
        assert bytes(g.get_data()) == bytes(t.get_data())


def test_usplus_cfg_status_flr_and_cfg_ext():
    """No requirement ID (PG213 configuration status, FLR and extend interfaces): status ports
    decode to the hard-IP status (Memory Space / Bus Master Enable, MSI-X Enable / Mask, MPS,
    MRRS, bus); a rising cfg_flr_in_process gives one FLR pulse and cfg_flr_done follows once the
    core's FLR took place; a
    cfg_ext read in a forwarded window becomes a CfgRd0 to the core and is answered with
    cfg_ext_read_data_valid and the completion's data; reads outside the windows are ignored."""
    dut = UsCfg(128)
    b = Bench(dut, "us_cfg")
    rx = StreamMonitor(dut.rx_out, b.cycle, name="rx_out")
    b.add(rx, background=True)
    rec = {}

    async def main(ctx):
        ctx.set(dut.cfg_function_status, 0b0110)
        ctx.set(dut.cfg_interrupt_msix_enable, 1)
        ctx.set(dut.cfg_max_payload, 1)
        ctx.set(dut.cfg_max_read_req, 2)
        ctx.set(dut.cfg_bus_number, 0x21)
        await ctx.tick()
        await ctx.tick()
        h = dut.hip
        rec["hip"] = tuple(ctx.get(getattr(h, n)) for n in ("mem_enable", "bus_master",
                                                            "msix_enable", "msix_fmask", "mps",
                                                            "mrrs", "bus"))
        # FLR
        ctx.set(dut.cfg_flr_in_process, 1)
        flr, done = [], []
        for c in range(12):
            # the core's FLR (behind the clock-domain crossing) comes some cycles later
            ctx.set(dut.core_flr, c == 6)
            _, _, f, d = await ctx.tick().sample(dut.hip.flr, dut.cfg_flr_done)
            flr.append(f)
            done.append(d & 1)
        ctx.set(dut.cfg_flr_in_process, 0)
        rec["flr"], rec["done"] = flr, done
        # cfg_ext: one read outside, one inside the legacy window
        for reg in (0x10, 0x2D):
            ctx.set(dut.cfg_ext_register_number, reg)
            ctx.set(dut.cfg_ext_read_received, 1)
            await ctx.tick()
            ctx.set(dut.cfg_ext_read_received, 0)
            for _ in range(5):
                await ctx.tick()
        rec["injected"] = len(rx.items)
        dws = beats_to_dws([(payload_bits(p.data), int(p.keep), 1, 1) for _, p in rx.items], 128)
        rec["req"] = dws
        cpl = Tlp()
        cpl.fmt_type = TlpType.CPL_DATA
        cpl.requester_id = PcieId.from_int(dws[1] >> 16)
        cpl.completer_id = PcieId.from_int(dws[1] >> 16)
        cpl.tag = CFG_EXT_TAG
        cpl.byte_count = 4
        cpl.data = (0xCAFE_0009).to_bytes(4, "little")
        cpl.length = 1
        beats = [{"data": d, "keep": k, "first": int(f), "last": int(la)}
                 for d, k, f, la in dws_to_beats(tlp_to_dws(cpl), 128)]
        ctx.set(dut.tx_out.ready, 1)
        await drive(ctx, dut.tx_in, beats, b.cycle)
        for _ in range(3):
            _, _, v, d = await ctx.tick().sample(dut.cfg_ext_read_data_valid,
                                                 dut.cfg_ext_read_data)
            if v:
                rec["answer"] = d
    b.add(main)
    b.run(timeout=500)
    assert rec["hip"] == (1, 1, 1, 0, 1, 2, 0x21)
    assert sum(rec["flr"]) == 1 and sum(rec["done"]) == 1
    assert rec["flr"].index(1) == 1
    assert rec["done"].index(1) == 7            # the cycle after the core's FLR, not before
    assert rec["injected"] == 1
    req = rec["req"]
    assert req[0] >> 24 == 0x04 and (req[2] >> 2) & 0x3FF == 0x2D and req[1] >> 16 == 0x2100
    assert rec["answer"] == 0xCAFE_0009


def test_usplus_parameters_rejected():
    """No requirement ID: widths the converters do not handle are refused with clear messages."""
    with pytest.raises(ValueError, match="the CQ converter needs 128 or 256 bits"):
        UsCq(64)
    with pytest.raises(ValueError, match="the UltraScale\\+ tx converter needs 256 bits"):
        UsTx(128)
