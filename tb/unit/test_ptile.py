"""Intel P-Tile adapter pieces (hdl/virtio_pci/link/ptile.py) on Amaranth's simulator, each checked
against the P-Tile Avalon-ST user guide (UG 683059), written out here independently of the RTL:

* RX/TX: the header travels on the 128-bit ``hdr`` bus, DW0 in bits 127:96 (the header bytes in
  wire order), a 3-DW header leaves bits 31:0 zero; the payload starts in DW lane 0 of ``data`` of
  the ``sop`` beat, little-endian; ``empty`` counts the unused DWs of the ``eop`` beat; one TLP
  per beat at most (single segment).
* ready latency: rx_st_ready 27 cycles (the IP may keep sending that long after it falls),
  tx_st_ready 3 (tx_st_valid only in a cycle whose tx_st_ready three cycles earlier was high).
* TX credits: tx_cdts_limit, TDM index 0 PH, 1 NPH, 2 CPLH, 4 PD, 5 NPD, 6 CPLD; header limits in
  12 bits, data 16 bits, one data credit = 4 DWs; a TLP goes only if
  (limit - (consumed + needed)) mod 2^n <= 2^(n-1) (PCIe Base 2.6.1.2); limit 0 = infinite.
* CII: see CiiBridge's docstring; the request is held while cii_halt is high, the override is taken
  in the cycle cii_halt falls, and cii_req may stay high after that.
"""
import pytest
from cocotbext.pcie.core.tlp import Tlp, TlpType, CplStatus
from cocotbext.pcie.core.utils import PcieId

from virtio_pci.link.ptile import (CII_TAG, CiiBridge, CreditGate, FcType, PTileRx, PTileTx,
                                   RX_READY_LATENCY, TX_READY_LATENCY)
from tb.tlp.convert import tlp_to_dws, dws_to_beats, beats_to_dws
from .helpers import Bench, StreamMonitor, drive, payload_bits, seeded


def _random_tlp(rng):
    t = Tlp()
    kind = rng.randrange(5)
    if kind == 0:
        t.fmt_type = TlpType.MEM_READ
        t.address = rng.randrange(0, 1 << 30) * 4
        t.length = rng.randrange(1, 64)
    elif kind in (1, 2):
        t.fmt_type = TlpType.MEM_WRITE if kind == 1 else TlpType.MEM_WRITE_64
        t.address = rng.randrange(0, 1 << 30) * 4 + (0 if kind == 1 else 1 << 36)
        n = rng.randrange(1, 40)
        t.data = bytes(rng.randrange(256) for _ in range(4 * n))
        t.length = n
    elif kind == 3:
        t.fmt_type = TlpType.CPL_DATA
        n = rng.randrange(1, 20)
        t.data = bytes(rng.randrange(256) for _ in range(4 * n))
        t.length = n
        t.byte_count = 4 * n
        t.completer_id = PcieId(1, 0, 0)
    else:
        t.fmt_type = TlpType.CPL
        t.byte_count = 4
        t.completer_id = PcieId(1, 0, 0)
    t.requester_id = PcieId(0, 0, 0)
    t.tag = rng.randrange(256)
    t.first_be = 0xF
    t.last_be = 0xF if t.length > 1 and kind in (0, 1, 2) else 0
    return t


def ptile_frame(tlp, width):
    """The P-Tile beats of one TLP, per the user guide: list of dicts of rx_st_* values."""
    hdr_bytes = tlp.pack_header()
    hdr = int.from_bytes(hdr_bytes.ljust(16, b"\0"), "big")
    data = tlp.get_data()
    dws = [int.from_bytes(data[i:i + 4], "little") for i in range(0, len(data), 4)]
    lanes = width // 32
    beats = []
    chunks = [dws[i:i + lanes] for i in range(0, len(dws), lanes)] or [[]]
    for k, chunk in enumerate(chunks):
        beats.append({"data": sum(d << (32 * j) for j, d in enumerate(chunk)),
                      "sop": int(k == 0), "eop": int(k == len(chunks) - 1),
                      "empty": lanes - len(chunk) if chunk else 0,
                      "hdr": hdr if k == 0 else 0})
    return beats


@pytest.mark.parametrize("width", [128, 256])
def test_ptile_rx_layout_and_ready_latency(width):
    """No requirement ID (P-Tile UG: Avalon-ST RX interface): random TLPs in P-Tile form, sent with
    random idle and the IP's 27-cycle ready latency (beats keep coming after rx_st_ready fell),
    come out on the core's stream with header and payload contiguous from lane 0, unchanged."""
    rng = seeded("ptile-rx", width)
    tlps = [_random_tlp(rng) for _ in range(60)]
    dut = PTileRx(width)
    b = Bench(dut, f"ptile_rx_{width}")
    mon = StreamMonitor(dut.tlp, b.cycle, rng=seeded("ptile-rx-bp", width), ready_prob=0.3,
                        name="tlp")
    b.add(mon, background=True)
    frames = [bt for t in tlps for bt in ptile_frame(t, width)]

    async def source(ctx):
        hist = []         # rx_st_ready of every past cycle (sampled at the edge)
        queue = list(frames)
        while queue:
            # the IP may drive a beat only if rx_st_ready was high RX_READY_LATENCY cycles ago
            ok = len(hist) >= RX_READY_LATENCY and hist[-RX_READY_LATENCY]
            send = ok and rng.random() < 0.8
            if send:
                f = queue.pop(0)
                for k, v in f.items():
                    ctx.set(getattr(dut, f"rx_st_{k}"), v)
            ctx.set(dut.rx_st_valid, int(send))
            _, _, r = await ctx.tick().sample(dut.rx_st_ready)
            hist.append(r)
        ctx.set(dut.rx_st_valid, 0)
        for _ in range(2000):
            if sum(int(p.last) for _, p in mon.items) == len(tlps):
                return
            await ctx.tick()
    b.add(source)
    b.run(timeout=60000)
    beats, got = [], []
    for _, p in mon.items:
        beats.append((payload_bits(p.data), int(p.keep), int(p.first), int(p.last)))
        if p.last:
            got.append(beats_to_dws(beats, width))
            beats = []
    assert got == [tlp_to_dws(t) for t in tlps]
    # framing: exactly the beats DESIGN.md section 3 prescribes (no empty or split beats)
    assert [bt for t in tlps for bt in dws_to_beats(tlp_to_dws(t), width)] == \
        [(payload_bits(p.data) & ((1 << (32 * bin(int(p.keep)).count("1"))) - 1), int(p.keep),
          bool(p.first), bool(p.last)) for _, p in mon.items]


@pytest.mark.parametrize("width", [128, 256])
def test_ptile_tx_layout_ready_latency_credits(width):
    """No requirement ID (P-Tile UG: Avalon-ST TX interface): random TLPs from the core leave on
    tx_st with the header on tx_st_hdr (DW0 in bits 127:96, bits 31:0 zero for 3-DW headers), the
    payload from lane 0, sop/eop framing, tx_st_valid only where tx_st_ready was high three cycles
    earlier (random tx_st_ready), infinite credits advertised as limit 0."""
    rng = seeded("ptile-tx", width)
    tlps = [_random_tlp(rng) for _ in range(60)]
    dut = PTileTx(width)
    b = Bench(dut, f"ptile_tx_{width}")
    frames = []
    beats = [{"data": d, "keep": k, "first": int(f), "last": int(la)}
             for t in tlps for d, k, f, la in dws_to_beats(tlp_to_dws(t), width)]

    async def src(ctx):
        await drive(ctx, dut.tlp, beats, b.cycle, rng=seeded("ptile-tx-idle", width), idle=0.3)

    async def sink(ctx):
        hist = []
        cur = None
        lanes = width // 32
        for _ in range(20000):
            r = int(rng.random() < 0.5)
            ctx.set(dut.tx_st_ready, r)
            _, _, v, sop, eop, hdr, d = await ctx.tick().sample(
                dut.tx_st_valid, dut.tx_st_sop, dut.tx_st_eop, dut.tx_st_hdr, dut.tx_st_data)
            if v:
                assert len(hist) >= TX_READY_LATENCY and hist[-TX_READY_LATENCY], \
                    "tx_st_valid without tx_st_ready three cycles earlier"
                if sop:
                    assert cur is None, "sop inside a frame"
                    cur = {"hdr": hdr, "data": []}
                assert cur is not None, "beat outside a frame"
                cur["data"] += [(d >> (32 * k)) & 0xFFFF_FFFF for k in range(lanes)]
                if eop:
                    frames.append(cur)
                    cur = None
            hist.append(r)
            if len(frames) == len(tlps):
                break
    b.add(src)
    b.add(sink)
    b.run(timeout=30000)
    assert len(frames) == len(tlps)
    for f, t in zip(frames, tlps):
        hdr = t.pack_header()
        assert f["hdr"] == int.from_bytes(hdr.ljust(16, b"\0"), "big")
        if len(hdr) == 12:
            assert f["hdr"] & 0xFFFF_FFFF == 0
        n = len(t.get_data()) // 4
        exp = [int.from_bytes(t.get_data()[4 * i:4 * i + 4], "little") for i in range(n)]
        assert f["data"][:n] == exp
        lanes = width // 32
        assert len(f["data"]) // lanes == max(1, -(-n // lanes))   # beats: the payload's, min 1


def _set_limit(ctx, dut, kind, value):
    ctx.set(dut.tx_cdts_limit_tdm_idx, kind)
    ctx.set(dut.tx_cdts_limit, value)


def test_credit_gate_rules():
    """No requirement ID (PCIe Base 2.6.1.2 via the P-Tile TX flow control interface): a posted
    TLP of 8 DWs needs 1 PH + 2 PD; with PD limit 4 two pass and the third waits until the limit
    rises; completions with limits 0 (infinite) pass; the gate never splits a TLP."""
    dut = CreditGate(128)
    b = Bench(dut, "credit_gate")
    mon = StreamMonitor(dut.o, b.cycle, name="o")
    b.add(mon, background=True)
    mwr = Tlp()
    mwr.fmt_type = TlpType.MEM_WRITE
    mwr.address = 0x1000
    mwr.data = bytes(32)
    mwr.length = 8
    cpl = Tlp()
    cpl.fmt_type = TlpType.CPL_DATA
    cpl.data = bytes(4)
    cpl.length = 1
    cpl.byte_count = 4
    beats = lambda t: [{"data": d, "keep": k, "first": int(f), "last": int(la)}  # noqa: E731
                       for d, k, f, la in dws_to_beats(tlp_to_dws(t), 128)]
    seen = {}

    async def limits(ctx):
        # PH 16, PD 4 credits; completions infinite (0); then PD 6 from cycle 200
        for c in range(400):
            pd = 4 if c < 200 else 6
            for kind, val in ((FcType.PH, 16), (FcType.PD, pd), (FcType.CPLH, 0),
                              (FcType.CPLD, 0), (FcType.NPH, 0), (FcType.NPD, 0)):
                _set_limit(ctx, dut, kind, val)
                await ctx.tick()

    async def src(ctx):
        await drive(ctx, dut.i, beats(mwr) * 3 + beats(cpl) * 5, b.cycle)

    async def check(ctx):
        for _ in range(150 * 6):
            await ctx.tick()
        seen["early"] = sum(int(p.last) for _, p in mon.items)
        seen["consumed_pd_early"] = ctx.get(dut.consumed.pd)
        for _ in range(200 * 6):
            await ctx.tick()
        seen["late"] = sum(int(p.last) for _, p in mon.items)
        seen["consumed"] = {t: ctx.get(getattr(dut.consumed, t)) for t in CreditGate.TYPES}
    b.add(limits)
    b.add(src)
    b.add(check)
    b.run(timeout=10000)
    assert seen["early"] == 2 and seen["consumed_pd_early"] == 4
    assert seen["late"] == 8
    assert seen["consumed"] == {"ph": 3, "nph": 0, "cplh": 5, "pd": 6, "npd": 0, "cpld": 5}
    # a TLP is never cut: every frame on o is whole
    firsts = [int(p.first) for _, p in mon.items]
    lasts = [int(p.last) for _, p in mon.items]
    assert sum(firsts) == sum(lasts) == 8


@pytest.mark.parametrize("write", [False, True])
def test_cii_bridge_handshake(write):
    """No requirement ID (P-Tile UG: Configuration Intercept Interface): a CII request becomes a
    CfgRd0/CfgWr0 on the core's rx (completer ID from tl_cfg address 0x01, the register and byte
    enables of the request); cii_halt is high from the cycle cii_req rises until the core's
    completion came back, then low with cii_override_en = 1 and the completion data for a read
    (0 for a write: the IP writes its own register too); the completion does not reach tx_out;
    a cii_req that stays high is not a second request; other tx traffic passes."""
    dut = CiiBridge(128)
    b = Bench(dut, f"cii_{write}")
    rx = StreamMonitor(dut.rx_out, b.cycle, name="rx_out")
    tx = StreamMonitor(dut.tx_out, b.cycle, name="tx_out")
    b.add(rx, background=True)
    b.add(tx, background=True)
    rec = {"halt": [], "answer": None}
    bus, dev = 0x42, 3

    async def tl_cfg(ctx):
        while True:
            for add in range(32):
                ctx.set(dut.tl_cfg_add, add)
                ctx.set(dut.tl_cfg_ctl, (dev << 8 | bus) if add == 1 else 0x5A5A)
                await ctx.tick()

    async def hip(ctx):
        for _ in range(70):            # tl_cfg went round twice
            await ctx.tick()
        ctx.set(dut.cii_addr, 0x21)
        ctx.set(dut.cii_wr, int(write))
        ctx.set(dut.cii_dout, 0xDEAD_BEEF)
        ctx.set(dut.cii_hdr_first_be, 0b0110)
        ctx.set(dut.cii_req, 1)
        # halt must be high in the very cycle cii_req rises
        assert ctx.get(dut.cii_halt) == 1
        for c in range(200):
            _, _, halt, en, din = await ctx.tick().sample(dut.cii_halt, dut.cii_override_en,
                                                          dut.cii_override_din)
            rec["halt"].append(halt)
            if not halt:
                rec["answer"] = (en, din, c)
                break
        for _ in range(6):             # EMIB latency: cii_req stays high
            _, _, halt = await ctx.tick().sample(dut.cii_halt)
            assert not halt
        ctx.set(dut.cii_req, 0)
        for _ in range(20):
            await ctx.tick()

    async def core(ctx):
        # wait for the injected request, answer it after 7 cycles, then send an unrelated TLP
        while not rx.items:
            await ctx.tick()
        dws = beats_to_dws([(payload_bits(p.data), int(p.keep), 1, 1) for _, p in rx.items[:1]], 128)
        rec["req"] = dws
        for _ in range(7):
            await ctx.tick()
        rid = dws[1] >> 16
        cpl = Tlp()
        cpl.fmt_type = TlpType.CPL if write else TlpType.CPL_DATA
        cpl.requester_id = PcieId.from_int(rid)
        cpl.completer_id = PcieId.from_int(rid)
        cpl.tag = CII_TAG
        cpl.status = CplStatus.SC
        cpl.byte_count = 4
        if not write:
            cpl.data = (0x1234_5678).to_bytes(4, "little")
            cpl.length = 1
        other = Tlp(cpl)
        other.requester_id = PcieId(0, 0, 0)
        other.tag = 5
        beats = [{"data": d, "keep": k, "first": int(f), "last": int(la)}
                 for t in (cpl, other) for d, k, f, la in dws_to_beats(tlp_to_dws(t), 128)]
        await drive(ctx, dut.tx_in, beats, b.cycle)
    b.add(tl_cfg, background=True)
    b.add(hip)
    b.add(core)
    b.run(timeout=3000)
    own = (bus << 8) | (dev << 3)
    req = rec["req"]
    assert req[0] >> 24 == (0x44 if write else 0x04) and req[0] & 0x3FF == 1
    assert req[1] & 0xF == 0b0110 and (req[1] >> 8) & 0xFF == CII_TAG and req[1] >> 16 == own
    assert req[2] >> 16 == own and (req[2] >> 2) & 0x3FF == 0x21
    if write:
        assert len(req) == 4 and req[3] == 0xDEAD_BEEF
    assert len(rx.items) == 1, "cii_req held high was taken for a second request"
    en, din, c = rec["answer"]
    assert all(rec["halt"][:-1]) and c >= 7
    assert (en, din) == ((0, 0) if write else (1, 0x1234_5678))
    # only the unrelated completion reached tx_out
    out = beats_to_dws([(payload_bits(p.data), int(p.keep), 1, 1) for _, p in tx.items], 128)
    assert len(tx.items) == 1 and (out[2] >> 8) & 0xFF == 5


def test_ptile_parameters_rejected():
    """No requirement ID: the 512-bit (two-segment) mode and small rx buffers are refused."""
    with pytest.raises(ValueError, match="P-Tile adapter width must be 128 or 256"):
        PTileRx(512)
    with pytest.raises(ValueError, match="rx buffer depth must be at least 35"):
        PTileRx(256, depth=32)
