"""Virtio transport: probe, feature negotiation and virtqueue set-up through the Linux-like driver
model (tb/host/virtio_driver.py) and the back-end model (tb/models/virtio_backend.py).

Every test reads what it expects from the build's JSON description (parameters, regions,
capabilities), so the module runs unchanged on every parameter set of tb/integration/test_transport.py.
"""
import cocotb

from tb.env.fabric import load_desc
from virtio_pci.virtio.feature_rules import missing_prerequisites
from tb.env.testbench import TransportTB
from tb.models.virtio_backend import QEVENT_ENABLE
from tb.host.virtio_driver import CfgType, F, NO_VECTOR, Status, VirtioPciDriver

DESC = load_desc()
P = DESC.params
#: what device_feature offers: legacy-only bits (NOTIFY_ON_EMPTY on a transitional build) only
#: appear in the legacy header's host features
FEATURES = DESC.features() & ~((1 << 24) | (1 << 27))
NQ = P["num_queues"]
MULT = P["notify_off_multiplier"]
ND = DESC.offers(F.NOTIFICATION_DATA)

#: feature -> features it needs (VIRTIO 1.3 chapter 6; 5.1.3.1 for virtio-net device bits)
NET_DEPENDS = {7: (1,), 8: (1,), 10: (1,), 11: (0,), 12: (0,), 14: (0,),
               18: (17,), 19: (17,), 20: (17,), 21: (17,), 22: (17,), 23: (17,)}
NET_DEPENDS_ANY = {9: (7, 8), 13: (11, 12)}
TRANSPORT_DEPENDS = {F.NOTIF_CONFIG_DATA: (F.VERSION_1,), F.RING_RESET: (F.VERSION_1,),
                     F.ADMIN_VQ: (F.VERSION_1,)}


def _pow2(x):
    return x > 0 and not x & (x - 1)


@cocotb.test()
async def linux_probe_test(dut):
    """CC-01, CC-02, NTF-01, ISR-01, DCF-01, DCF-02, PCC-01, DCF-D2, CC-D1, DRV-02: the whole
    capability list is walked as Linux does; the first usable cap of each cfg_type is mapped with
    vp_modern_map_capability's checks; mandatory structures exist and are aligned."""
    env = TransportTB(dut)
    drv = await env.start(init=False)
    types = [c.cfg_type for c in drv.caps]
    for t, what in ((CfgType.COMMON, "CC-02"), (CfgType.NOTIFY, "NTF-01"), (CfgType.ISR, "ISR-01"),
                    (CfgType.PCI_CFG, "PCC-01"), (CfgType.DEVICE, "DCF-01")):
        assert t in types, f"{what}: no vendor capability with cfg_type {t} in {types}"
        assert drv.find_capability(t) is not None, f"{what}: cfg_type {t} has no usable BAR"
    # every vendor cap sits in the standard list at a dword-aligned offset >= 0x40
    for c in drv.caps:
        assert c.offset >= 0x40 and c.offset % 4 == 0, f"vendor cap at {c.offset:#x}"
    common = drv.maps[CfgType.COMMON]
    assert common.offset % 4 == 0, f"CC-01: common offset {common.offset:#x}"
    assert common.length >= 0x38, f"common length {common.length}"
    if DESC.offers(F.RING_RESET):
        assert common.length >= 0x3C, "common cap too short for RING_RESET"
    device = drv.maps[CfgType.DEVICE]
    assert device.offset % 4 == 0, f"DCF-02: device cfg offset {device.offset:#x}"
    assert device.length >= P["device_cfg_size"] > 0, f"DCF-D2: device cfg length {device.length}"
    assert device.offset + device.length <= env.dev.bar_size[device.bar]
    assert await drv.get_num_queues() == NQ, "CC-D1: num_queues"
    # DRV-02: the driver never writes capability structures; check they are read-only anyway
    cap = drv.find_capability(CfgType.COMMON)
    before = [await env.cfg_read_dword(cap.offset + 4 * i) for i in range(4)]
    for i in range(4):
        await env.cfg_write_dword(cap.offset + 4 * i, 0xA5A5_5A5A)
    after = [await env.cfg_read_dword(cap.offset + 4 * i) for i in range(4)]
    assert after == before, f"DRV-02: common cap changed by CfgWr: {before} -> {after}"
    env.check()


@cocotb.test()
async def notify_structure_test(dut):
    """NTF-02, NTF-03, NTF-04, NTF-05 (NOTIFICATION_DATA not offered) or NTF-06, NTF-07, NTF-08,
    NTF-09 (offered), CC-D3: notify cap alignment, multiplier and length cover every queue's
    doorbell; queue_notify_off is stable per queue."""
    env = TransportTB(dut)
    drv = await env.start(init=False)
    mp = drv.maps[CfgType.NOTIFY]
    mult = drv.notify_off_multiplier
    assert mult == MULT
    if ND:
        assert mp.offset % 4 == 0, f"NTF-07: notify offset {mp.offset:#x}"
        assert mult == 0 or (_pow2(mult) and mult % 4 == 0), f"NTF-06: multiplier {mult}"
        assert mp.length >= 4, f"NTF-08: notify length {mp.length}"
        width = 4
    else:
        assert mp.offset % 2 == 0, f"NTF-02: notify offset {mp.offset:#x}"
        assert mult == 0 or (_pow2(mult) and mult >= 2), f"NTF-03: multiplier {mult}"
        assert mp.length >= 2, f"NTF-04: notify length {mp.length}"
        width = 2
    offs = {}
    for q in list(range(NQ)) + list(reversed(range(NQ))):
        await drv.common_write("queue_select", q)
        off = await drv.common_read("queue_notify_off")
        assert offs.setdefault(q, off) == off, f"CC-D3: queue {q} notify_off changed"
        assert mp.length >= off * mult + width, \
            f"NTF-05/NTF-09: queue {q}: {off}*{mult}+{width} > length {mp.length}"
    if mult:
        addrs = {q: off * mult for q, off in offs.items()}
        assert len(set(addrs.values())) == NQ, f"queues share doorbells: {addrs}"
    env.check()


@cocotb.test()
async def linux_init_test(dut):
    """CC-D5, DRV-12, FEA-02, FEA-05, CC-07, STS-01: the Linux sequence reset, ACKNOWLEDGE,
    DRIVER, features (selects 0..3), FEATURES_OK and re-read, queue set-up, enable, DRIVER_OK;
    status reads back 0x01, 0x03, 0x0B, 0x0F; the back-end sees each queue enabled with the
    programmed parameters; doorbells work only after DRIVER_OK."""
    env = TransportTB(dut)
    drv = await env.start(init=False)
    be = env.be
    await drv.reset()
    for bits, expect in ((Status.ACKNOWLEDGE, 0x01), (Status.DRIVER, 0x03)):
        await drv.add_status(bits)
        assert await drv.get_status() == expect, "CC-D5"
    assert FEATURES >> F.VERSION_1 & 1, "FEA-05: VERSION_1 not offered"
    feats = await drv.finalize_features()
    assert await drv.get_status() == 0x0B, "CC-D5: FEATURES_OK must stick for the Linux set"
    assert int(dut.driver_features.value) == feats, "back-end sees another feature set"
    vqs = {}
    for q in range(NQ):
        vqs[q] = await drv.setup_vq(q, size=P["queue_max_size"] // 2)
    for q in range(NQ):
        await drv.enable_vq(q)
    await env.flush()
    await be.wait_qevents(NQ)
    assert [(e.queue, e.kind) for e in be.qevents] == [(q, QEVENT_ENABLE) for q in range(NQ)]
    # STS-01 / DRV-12: queues are enabled but DRIVER_OK is not set: kicks are dropped
    for vq in vqs.values():
        await drv.kick(vq, 7)
    await env.flush()
    await env.cycles(20)
    assert be.doorbells == [], f"STS-01: doorbell before DRIVER_OK reached the back-end: {be.doorbells}"
    await drv.add_status(Status.DRIVER_OK)
    assert await drv.get_status() == 0x0F, "CC-D5"
    for q, vq in vqs.items():
        row = await be.read_queue(q)
        assert row["exists"] and row["size"] == vq.size and row["desc"] == vq.desc \
            and row["driver"] == vq.driver and row["device"] == vq.device, f"queue {q}: {row}"
    for vq in vqs.values():
        await drv.kick(vq, 9)
    await env.flush()
    await be.wait_doorbells(NQ)
    assert [d.queue for d in be.doorbells] == list(range(NQ))
    env.check()


@cocotb.test()
async def device_feature_window_test(dut):
    """CC-03, FEA-05, FEA-01, FEA-03, FEA-09: device_feature shows bits 32*sel.. for every select
    (0 above the offered range, selects 2 and 3 never alias 0 and 1); the offered set has every
    prerequisite, no reserved or unsupported bit; SR_IOV only with an SR-IOV capability."""
    env = TransportTB(dut)
    drv = await env.start(init=False)
    for sel in (0, 1, 2, 3, 4, 5, 0x10, 0x8000_0000, 0xFFFF_FFFF, 1, 0):
        await drv.common_write("device_feature_select", sel)
        got = await drv.common_read("device_feature")
        want = (FEATURES >> (32 * sel)) & 0xFFFF_FFFF if sel < 4 else 0
        assert got == want, f"CC-03: select {sel:#x}: {got:#x} != {want:#x}"
        assert await drv.common_read("device_feature_select") == sel
    offered = await drv.get_features()
    assert offered == FEATURES
    assert offered >> F.VERSION_1 & 1, "FEA-05"
    for f, reqs in TRANSPORT_DEPENDS.items():
        if offered >> f & 1:
            for r in reqs:
                assert offered >> r & 1, f"FEA-01: feature {f} offered without {r}"
    if P["device_type"] == 1:
        for f, reqs in NET_DEPENDS.items():
            if offered >> f & 1:
                assert all(offered >> r & 1 for r in reqs), f"FEA-01: net feature {f}"
        for f, any_of in NET_DEPENDS_ANY.items():
            if offered >> f & 1:
                assert any(offered >> r & 1 for r in any_of), f"FEA-01: net feature {f}"
    # FEA-03: reserved / legacy-only / unsupported bits are never offered
    forbidden = [24, 27, 30, F.ADMIN_VQ] + list(range(42, 50))
    for b in forbidden:
        assert not offered >> b & 1, f"FEA-03: bit {b} offered"
    assert offered < (1 << 128)
    # FEA-09: SR_IOV offered iff an SR-IOV extended capability exists
    ext, sriov, hops = 0x100, False, 0
    while ext and hops < 100:
        hdr = await env.cfg_read_dword(ext)
        if hdr in (0, 0xFFFF_FFFF):
            break
        sriov |= (hdr & 0xFFFF) == 0x0010
        ext, hops = (hdr >> 20) & 0xFFC, hops + 1
    assert bool(offered >> F.SR_IOV & 1) == sriov, "FEA-09"
    env.check()


@cocotb.test()
async def driver_feature_window_test(dut):
    """CC-04, FEA-D1, FEA-D2, DRV-11: driver_feature reads back every bit written for selects
    0..3 (offered or not); other selects read 0 and ignore writes (no aliasing); writes after
    FEATURES_OK change neither the read-back nor the negotiated set; only a reset renegotiates."""
    env = TransportTB(dut)
    drv = await env.start(init=False)
    await drv.reset()
    await drv.add_status(Status.ACKNOWLEDGE | Status.DRIVER)
    patterns = [0xFFFF_FFFF, 0x5A5A_A5A5, 0x1234_5678, 0]
    for i in range(4):
        for pat in patterns:
            await drv.common_write("driver_feature_select", i)
            await drv.common_write("driver_feature", pat)
            assert await drv.common_read("driver_feature") == pat, f"CC-04: select {i} {pat:#x}"
        await drv.common_write("driver_feature", 0x1111_1111 * (i + 1))
    for sel in (4, 7, 0xFFFF_FFFF):
        await drv.common_write("driver_feature_select", sel)
        await drv.common_write("driver_feature", 0xDEAD_BEEF)
        assert await drv.common_read("driver_feature") == 0, f"select {sel:#x} must read 0"
    for i in range(4):
        await drv.common_write("driver_feature_select", i)
        assert await drv.common_read("driver_feature") == 0x1111_1111 * (i + 1), \
            f"select {i} changed by writes to unimplemented selects"
    # negotiate the offered set, then try to change it
    await drv.set_features(FEATURES)
    await drv.add_status(Status.FEATURES_OK)
    assert await drv.get_status() & Status.FEATURES_OK
    neg = int(dut.driver_features.value)
    assert neg == FEATURES
    for i in range(4):
        await drv.common_write("driver_feature_select", i)
        await drv.common_write("driver_feature", 0)
        assert await drv.common_read("driver_feature") == (FEATURES >> (32 * i)) & 0xFFFF_FFFF, \
            "FEA-D1: driver_feature changed after FEATURES_OK"
    # clearing FEATURES_OK by a status write does not reopen negotiation
    await drv.set_status(Status.ACKNOWLEDGE | Status.DRIVER)
    await drv.common_write("driver_feature_select", 1)
    await drv.common_write("driver_feature", 0)
    await env.flush()
    assert int(dut.driver_features.value) == neg, "FEA-D1/FEA-D2: negotiated set changed"
    assert await drv.get_status() & Status.FEATURES_OK, "FEATURES_OK cleared without reset"
    # FEA-D2: reset, negotiate a different set
    await drv.reset()
    assert int(dut.driver_features.value) == 0
    await drv.add_status(Status.ACKNOWLEDGE | Status.DRIVER)
    only_v1 = 1 << F.VERSION_1
    await drv.set_features(only_v1)
    await drv.add_status(Status.FEATURES_OK)
    assert await drv.get_status() & Status.FEATURES_OK
    assert int(dut.driver_features.value) == only_v1, "FEA-D2: renegotiation after reset"
    env.check()


async def _try_features(drv, value):
    await drv.reset()
    await drv.add_status(Status.ACKNOWLEDGE | Status.DRIVER)
    await drv.set_features(value)
    await drv.add_status(Status.FEATURES_OK)
    return await drv.get_status()


@cocotb.test()
async def features_ok_test(dut):
    """FEA-02, FEA-04, DRV-11, DRV-21: every valid subset is accepted (FEATURES_OK sticks); an
    unoffered bit, a missing VERSION_1, SR_IOV without the capability or a back-end veto refuse
    it (FEATURES_OK reads 0, ACKNOWLEDGE and DRIVER of the same write stay); a set accepted once is
    accepted again after reset."""
    env = TransportTB(dut)
    drv = await env.start(init=False)
    offered_bits = [b for b in range(128) if FEATURES >> b & 1]
    subsets = [FEATURES, 1 << F.VERSION_1]
    subsets += [(1 << F.VERSION_1) | (1 << b) for b in offered_bits if b != F.VERSION_1]
    # a bit with prerequisites (VIRTIO 1.3 5.1.3.1) is valid only together with them
    for i, s in enumerate(subsets):
        for _f, needs, kind in missing_prerequisites(P["device_type"], s):
            s |= 1 << needs[0] if kind == "any" else sum(1 << n for n in needs)
        subsets[i] = s
    for s in subsets:
        st = await _try_features(drv, s)
        assert st == 0x0B, f"FEA-02: valid subset {s:#x} refused (status {st:#x})"
        assert int(dut.driver_features.value) == s
    unoffered = [b for b in (0, 5, 31, F.ACCESS_PLATFORM, F.RING_PACKED, F.SR_IOV, 39, 40, 41, 63,
                             64, 100, 127) if not FEATURES >> b & 1]
    for b in unoffered:
        st = await _try_features(drv, FEATURES | (1 << b))
        assert st == 0x03, f"FEA-02/DRV-11: unoffered bit {b} accepted (status {st:#x})"
        assert int(dut.driver_features.value) == 0, "negotiated set visible after refusal"
    assert not FEATURES >> F.SR_IOV & 1
    st = await _try_features(drv, FEATURES & ~(1 << F.VERSION_1))
    assert st == 0x03, f"FEA-02: set without VERSION_1 accepted (status {st:#x})"
    env.be.set_veto(True)
    st = await _try_features(drv, FEATURES)
    assert st == 0x03, f"FEA-02: back-end veto ignored (status {st:#x})"
    env.be.set_veto(False)
    # FEA-04: the same set twice across resets
    for _ in range(2):
        assert await _try_features(drv, FEATURES) == 0x0B, "FEA-04"
    # a refused FEATURES_OK can be retried with a valid set without reset (status bit re-set)
    await drv.reset()
    await drv.add_status(Status.ACKNOWLEDGE | Status.DRIVER)
    await drv.set_features(FEATURES | (1 << unoffered[0]))
    await drv.add_status(Status.FEATURES_OK)
    assert not await drv.get_status() & Status.FEATURES_OK
    await drv.set_features(FEATURES)
    await drv.add_status(Status.FEATURES_OK)
    assert await drv.get_status() == 0x0B
    env.check()


@cocotb.test(skip=not (DESC.offers(F.ACCESS_PLATFORM) or DESC.offers(F.ORDER_PLATFORM)))
async def platform_features_test(dut):
    """FEA-06, FEA-08: ACCESS_PLATFORM / ORDER_PLATFORM offered by the parameters are visible and
    negotiable; a back-end that needs them refuses FEATURES_OK when the driver leaves them out."""
    env = TransportTB(dut)
    drv = await env.start(init=False)
    offered = await drv.get_features()
    need = FEATURES & ((1 << F.ACCESS_PLATFORM) | (1 << F.ORDER_PLATFORM))
    assert offered & need == need
    assert await _try_features(drv, FEATURES) == 0x0B
    # the back-end's policy: veto while the platform bits are missing
    env.be.set_veto(True)
    st = await _try_features(drv, FEATURES & ~need)
    assert st == 0x03, "FEA-06: refusal through features_veto"
    env.be.set_veto(False)
    env.check()


@cocotb.test()
async def linux_filter_test(dut):
    """FEA-02, DRV-12: the full Linux probe (transport-bit filter: NOTIF_CONFIG_DATA is never
    negotiated) reaches DRIVER_OK, twice in a row (driver unbound and bound again)."""
    env = TransportTB(dut)
    drv = await env.start(init=True)
    assert await drv.get_status() == 0x0F
    assert not drv.features >> F.NOTIF_CONFIG_DATA & 1
    assert drv.features == VirtioPciDriver.transport_filter(FEATURES)
    # a second driver instance re-probes from scratch (rmmod/modprobe)
    drv2 = VirtioPciDriver(env)
    await drv2.init()
    assert await drv2.get_status() == 0x0F
    assert int(dut.driver_features.value) == drv2.features
    env.check()


@cocotb.test()
async def queue_setup_test(dut):
    """CC-07, CC-14, CC-D2, CC-D6, DRV-05, LAY-01: every queue reads enable 0 and a power-of-two
    maximum before set-up; a smaller size is kept; each queue keeps its own parameters across
    re-selection; 64-bit fields take their halves independently and in any order; parameters are
    latched at enable (later size/address writes ignored, the vector stays writable)."""
    env = TransportTB(dut)
    drv = await env.start(init=False)
    await drv.reset()
    await drv.add_status(Status.ACKNOWLEDGE | Status.DRIVER)
    await drv.finalize_features()
    qmax = P["queue_max_size"]
    for q in range(NQ):
        await drv.common_write("queue_select", q)
        assert await drv.common_read("queue_enable") == 0, f"CC-07: queue {q}"
        size = await drv.common_read("queue_size")
        assert size == qmax and _pow2(size), f"CC-14: queue {q} size {size}"
    # LAY-01 on queue 0: halves in both orders, and one 8-byte write
    await drv.common_write("queue_select", 0)
    await drv.common_write("queue_desc_lo", 0x1111_0000)
    assert await drv.common_read("queue_desc_hi") == 0
    await drv.common_write("queue_desc_hi", 0x2222_0000)
    assert await drv.common_read("queue_desc_lo") == 0x1111_0000
    await drv.common_write("queue_driver_hi", 0x0000_00AB)
    await drv.common_write("queue_driver_lo", 0x0000_1000)
    assert await drv.common_read("queue_driver_hi") == 0xAB
    await drv.common_write("queue_driver_hi", 0x0000_00CD)
    assert await drv.common_read("queue_driver_lo") == 0x1000, "LAY-01: lo changed by hi write"
    await drv.mem_write(drv.maps[CfgType.COMMON].addr + 0x30, 8, 0x0000_0033_4444_8000,
                        "common.queue_device (8 bytes)")
    assert await drv.common_read("queue_device_lo") == 0x4444_8000
    assert await drv.common_read("queue_device_hi") == 0x33
    # CC-D6: different parameters per queue
    vecs = min(P["msix_vectors"], 4)
    progs = {}
    for q in range(NQ):
        sz = qmax >> (q % 3 + 1) or 1
        progs[q] = (sz, 0x1_0000_0000 * (q + 1), 0x2000 * (q + 1), 0x3_0000 + q * 0x100, q % vecs)
        d, drv_a, dev_a, vec = progs[q][1:]
        await drv.common_write("queue_select", q)
        await drv.common_write("queue_size", sz)
        await drv.write64("queue_desc_lo", d)
        await drv.write64("queue_driver_lo", drv_a)
        await drv.write64("queue_device_lo", dev_a)
        await drv.common_write("queue_msix_vector", vec)
    for q in reversed(range(NQ)):
        await drv.common_write("queue_select", q)
        got = (await drv.common_read("queue_size"),
               await drv.common_read("queue_desc_lo") | await drv.common_read("queue_desc_hi") << 32,
               await drv.common_read("queue_driver_lo") | await drv.common_read("queue_driver_hi") << 32,
               await drv.common_read("queue_device_lo") | await drv.common_read("queue_device_hi") << 32,
               await drv.common_read("queue_msix_vector"))
        assert got == progs[q], f"CC-D2/CC-D6: queue {q}: {got} != {progs[q]}"
    # DRV-05: enable queue 0, then try to change it
    await drv.enable_vq(0)
    await drv.common_write("queue_size", qmax)
    await drv.write64("queue_desc_lo", 0xDEAD_0000)
    new_vec = (progs[0][4] + 1) % vecs
    await drv.common_write("queue_msix_vector", new_vec)
    assert await drv.common_read("queue_size") == progs[0][0], "DRV-05: size changed while enabled"
    assert await drv.common_read("queue_desc_lo") == progs[0][1] & 0xFFFF_FFFF
    assert await drv.common_read("queue_msix_vector") == new_vec, "vector must stay writable"
    await env.flush()
    row = await env.be.read_queue(0)
    assert (row["size"], row["desc"], row["driver"], row["device"]) == progs[0][:4], row
    assert row["vector"] == new_vec
    env.check()


@cocotb.test()
async def misaligned_ring_test(dut):
    """DRV-20: the front-end does not check ring alignment (the option the requirement allows);
    misaligned addresses are stored and passed to the back-end verbatim, nothing breaks."""
    env = TransportTB(dut)
    drv = await env.start(init=False)
    await drv.reset()
    await drv.add_status(Status.ACKNOWLEDGE | Status.DRIVER)
    await drv.finalize_features()
    vq = await drv.setup_vq(0, desc=0x1003, driver=0x2001, device=0x3002)
    await drv.enable_vq(0)
    await drv.add_status(Status.DRIVER_OK)
    await env.flush()
    row = await env.be.read_queue(0)
    assert (row["desc"], row["driver"], row["device"]) == (0x1003, 0x2001, 0x3002)
    await drv.kick(vq, 1)
    await env.flush()
    await env.be.wait_doorbells(1)
    assert not await drv.get_status() & Status.DEVICE_NEEDS_RESET
    env.check()


@cocotb.test()
async def vector_mapping_test(dut):
    """MSX-04, MSX-05, MSX-06, MSX-08, MSX-09, DRV-15: the config event and every queue can be
    mapped to every vector of the table (read back equal), unmapped with NO_VECTOR, all queues
    at once to distinct and to shared vectors; vectors >= Table Size read back NO_VECTOR."""
    env = TransportTB(dut)
    drv = await env.start(init=False)
    n = P["msix_vectors"]
    ctrl = None
    for c in DESC.caps:
        if c["cap_id"] == 0x11:
            ctrl = (await env.cfg_read_dword(c["config_offset"])) >> 16
    assert ctrl is not None and (ctrl & 0x7FF) + 1 == n, "MSI-X Table Size"
    for v in list(range(n)) + [NO_VECTOR]:
        assert await drv.config_vector(v) == v, f"MSX-04/06: config vector {v}"
        for q in range(NQ):
            assert await drv.queue_vector(q, v) == v, f"MSX-04/06: queue {q} vector {v}"
    for bad in sorted({n, n + 1, 0x7FF, 0x800, 0xFFFE, 0x8000}):
        if bad < n:
            continue
        assert await drv.config_vector(bad) == NO_VECTOR, f"MSX-09: config vector {bad:#x}"
        assert await drv.queue_vector(0, bad) == NO_VECTOR, f"MSX-09: queue vector {bad:#x}"
    # MSX-05 after a mapping
    await drv.config_vector(0)
    assert await drv.config_vector(NO_VECTOR) == NO_VECTOR
    # MSX-08: distinct (as far as the table allows), then all shared
    for q in range(NQ):
        assert await drv.queue_vector(q, (q + 1) % n) == (q + 1) % n
    for q in range(NQ):
        assert await drv.queue_vector(q, n - 1) == n - 1, "MSX-08: shared vector refused"
    for q in range(NQ):
        await drv.common_write("queue_select", q)
        assert await drv.common_read("queue_msix_vector") == n - 1
    env.check()
