"""The legacy interface of a transitional device (VIRTIO 1.3 4.1.4.10, 4.1.5.1.1.1, 2.7.2, 6.3)
through the root complex, with the Linux-like legacy driver model (``tb.host.legacy_driver``) and the
back-end model: identity, the header in I/O BAR0, device configuration at 20/24, negotiation
without VERSION_1, PFN rings, doorbells before DRIVER_OK, INTx with the ISR read-clear, MSI-X
through the legacy vector fields, a device reset while queues run.

Endianness (LEG-11): legacy device configuration is in the guest's native endianness.  This
front-end serves little-endian hosts (x86, arm64, riscv: every host a PCIe transitional device is
found in today) and presents the device configuration bytes as the back-end stores them, so the
guest-native value is the little-endian one; a big-endian guest would need a back-end that stores
its fields big-endian while ``legacy`` is high.  The tests check the byte order the guest sees.
"""
import cocotb

from tb.host.legacy_driver import LEGACY_NAMES, Leg, legacy_ring_layout
from tb.env.testbench import LegacyTB
from tb.env.legacy import legacy_init
from tb.host.pcispec import TRANSITIONAL_DEVICE_IDS
from tb.models.virtio_backend import QEVENT_ENABLE, QEVENT_RESET
from tb.host.virtio_driver import NO_VECTOR, DriverError, Status

ANY_LAYOUT = 27
UNUSED_30 = 30
VERSION_1 = 32


def host_features(p):
    return (int(p["features"], 0) & 0xFFFF_FFFF) | (1 << ANY_LAYOUT)


async def start(dut, **kw):
    env = LegacyTB(dut, dcfg_writable=True, **kw)
    await env.start()
    return env


async def check_row(env, q, pfn, num):
    desc, avail, used = legacy_ring_layout(pfn, num)
    row = await env.be.read_queue(q)
    assert row["exists"] and (row["desc"], row["driver"], row["device"]) == (desc, avail, used), \
        f"LEG-10: queue {q} at PFN {pfn:#x}: back-end sees {row}, expected " \
        f"desc {desc:#x} avail {avail:#x} used {used:#x}"
    assert row["size"] == num, f"queue {q}: size {row['size']} (legacy queue size is fixed at {num})"
    return row


@cocotb.test()
async def legacy_identity_header_test(dut):
    """PCI-08, PCI-09, PCI-10, LEG-01, LEG-05: a transitional device has Revision ID 0, Subsystem
    Device ID = virtio type and a Device ID in 0x1000..0x103F; BAR0 sizes as an I/O BAR of the
    configured size and holds the legacy header (every field read with its natural width and in
    one DW reads the reset values); the legacy driver's probe accepts it."""
    env = LegacyTB(dut)
    await env.start(init=False)
    p, dev = env.params, env.dev
    vtype = p["device_type"]
    assert dev.device_id == TRANSITIONAL_DEVICE_IDS[vtype] and 0x1000 <= dev.device_id <= 0x103F, \
        f"PCI-10: device ID {dev.device_id:#06x}"
    assert await env.cfg_read_dword(0x08) & 0xFF == 0, "PCI-08: revision ID"
    assert (await env.cfg_read_dword(0x2C)) >> 16 == vtype, "PCI-09: subsystem device ID"
    assert env.drv.virtio_id == vtype

    # BAR0 sizing as pci_read_bases does it: save, all ones, read the mask, restore
    orig = await env.cfg_read_dword(0x10)
    assert orig & 1 == 1, f"LEG-01: BAR0 {orig:#010x} is not an I/O BAR"
    await env.cfg_write_dword(0x10, 0xFFFF_FFFF)
    mask = await env.cfg_read_dword(0x10)
    await env.cfg_write_dword(0x10, orig)
    size = (~(mask & ~0x3) & 0xFFFF_FFFF) + 1
    assert mask & 0x3 == 0x1 and size == p["io_bar_size"], \
        f"LEG-05: BAR0 sizing read {mask:#010x}: size {size:#x}, expected I/O {p['io_bar_size']:#x}"
    assert env.desc.io_bar["index"] == 0 and dev.bar_size[0] == p["io_bar_size"]
    assert await env.cfg_read_dword(0x10) == orig

    # the header: every field with its natural width, then whole DWs
    expect = {"host_features": host_features(p), "guest_features": 0, "queue_pfn": 0,
              "queue_num": p["queue_max_size"], "queue_sel": 0, "status": 0, "isr": 0}
    for (off, size), name in LEGACY_NAMES.items():
        if name in expect:
            got = await env.io_rd(off, size)
            assert got == expect[name], f"LEG-01: {name} at {off:#x} reads {got:#x}, not {expect[name]:#x}"
    dws = [await env.io_rd(off) for off in (0x00, 0x04, 0x08, 0x0C, 0x10)]
    assert dws == [expect["host_features"], 0, 0, p["queue_max_size"], 0], [hex(d) for d in dws]
    # and through the root complex's I/O space, as the driver reads them
    assert await env.drv.get_features() == expect["host_features"]
    assert await env.rc.io_read_word(env.io_base + Leg.QUEUE_NUM) == p["queue_max_size"]
    env.check()


@cocotb.test()
async def legacy_config_any_width_test(dut):
    """LEG-02, LEG-11, LEG-03: with MSI-X disabled the device configuration starts at 20; every
    offset read with 1, 2 and 4 bytes (any alignment inside a DW) returns the same bytes as the
    byte reads, and those are the back-end's bytes in little-endian order (the guest-native order
    of the little-endian hosts this front-end serves)."""
    env = await start(dut)
    size = env.params["device_cfg_size"]
    be_bytes = bytes(env.be.dcfg)
    base = Leg.config_off(False)
    span = min(size, env.params["io_bar_size"] - base)
    by_byte = bytes([await env.io_rd(base + i, 1) for i in range(span)])
    assert by_byte == be_bytes[:span], f"LEG-02: byte reads {by_byte.hex()} != {be_bytes[:span].hex()}"
    for width in (2, 4):
        for i in range(span - width + 1):
            off = base + i
            if (off & 3) + width > 4:
                continue                       # one I/O request never crosses a DW
            got = await env.io_rd(off, width)
            want = int.from_bytes(by_byte[i:i + width], "little")
            assert got == want, f"LEG-02/LEG-11: {width}-byte read at config+{i}: {got:#x} != {want:#x}"
    # the driver's byte-wise vp_get and a DW read agree on a 32-bit field
    assert await env.drv.config_read(4, 4) == int.from_bytes(be_bytes[4:8], "little")
    # nothing past the device configuration: reads 0 up to the end of the BAR
    for off in range(base + size, env.params["io_bar_size"], 4):
        assert await env.io_rd(off) == 0, f"I/O BAR offset {off:#x} past the device config"
    env.check()


@cocotb.test()
async def legacy_msix_moves_config_test(dut):
    """LEG-03, MSX-D2: toggling MSI-X Enable in the capability moves the device configuration
    between offset 20 and 24; while enabled the vector fields appear at 20/22 (NO_VECTOR after
    reset, in-range vectors stick, out-of-range ones read back NO_VECTOR), while disabled offset
    20 is device configuration again and the vectors are kept."""
    env = await start(dut)
    drv, mx, p = env.drv, env.msix, env.params
    first = int.from_bytes(env.be.dcfg[0:4], "little")
    assert await env.io_rd(20) == first, "LEG-03: MSI-X disabled, config at 20"
    await mx.set_control(enable=True)
    drv.msix_enabled = True
    assert await env.io_rd(20) == NO_VECTOR | NO_VECTOR << 16, "vector fields after reset"
    assert await env.io_rd(24) == first, "LEG-03: MSI-X enabled, config at 24"
    assert await drv.config_read(0, 4) == first
    assert await drv.config_vector(1) == 1
    assert await drv.queue_vector(2, 3) == 3
    assert await drv.config_vector(p["msix_vectors"]) == NO_VECTOR, "out-of-range config vector"
    assert await drv.queue_vector(1, 0x7FF) == NO_VECTOR, "out-of-range queue vector"
    assert await drv.config_vector(2) == 2
    await mx.set_control(enable=False)
    drv.msix_enabled = False
    assert await env.io_rd(20) == first, "LEG-03: MSI-X disabled again, config back at 20"
    assert await env.io_rd(20, 2) == first & 0xFFFF
    await env.io_wr(20, 0x1234, 2)     # a device-config write now, not a vector write
    await mx.set_control(enable=True)
    drv.msix_enabled = True
    assert await env.io_rd(Leg.MSI_CONFIG_VECTOR, 2) == 2, "config vector kept while MSI-X was off"
    await env.io_wr(Leg.QUEUE_SEL, 2, 2)
    assert await env.io_rd(Leg.MSI_QUEUE_VECTOR, 2) == 3
    env.check()


@cocotb.test()
async def legacy_init_intx_test(dut):
    """LEG-04, LEG-06, LEG-09, LEG-10, ISR-03, ISR-05: the legacy driver's init with INTx: host
    features offer ANY_LAYOUT (and no bit above 31), guest features without VERSION_1 make the
    device legacy (``legacy`` output, the back-end's negotiated features are the guest features,
    bits 32+ not accepted, no FEATURES_OK); writing the UNUSED bit 30 changes nothing; each
    QUEUE_PFN enables the queue with the legacy ring layout seen on the back-end's queue table;
    kicks reach the doorbell stream; a used-buffer interrupt asserts INTx, the ISR read (byte 19)
    returns bit 0, clears it and deasserts INTx."""
    env = await start(dut)
    drv, be, p = env.drv, env.be, env.params
    host = host_features(p)
    # after the reset, a modern write of VERSION_1 into driver feature bits 32-63: the legacy
    # guest-features write must drop it (LEG-04)
    assert await drv.reset() == 0
    await env.flush()
    await env.wr("common", 0x08, 1)
    await env.wr("common", 0x0C, 1)
    assert await env.rd("common", 0x0C) == 1
    vectors = await legacy_init(env, msix=False, features=host | (1 << UNUSED_30), reset=False)
    feats = drv.features
    assert feats >> ANY_LAYOUT & 1 and not feats >> UNUSED_30 & 1, f"LEG-09: {feats:#x}"
    assert host >> ANY_LAYOUT & 1, "LEG-09: ANY_LAYOUT not offered"
    assert await env.io_rd(Leg.GUEST_FEATURES) == feats
    st = be.status()
    assert env.port("legacy") == 1, "LEG-06: the device did not switch to legacy semantics"
    assert st["driver_features"] == feats, \
        f"LEG-04/LEG-06: back-end sees {st['driver_features']:#x}, driver wrote {feats:#x}"
    assert not st["driver_features"] >> VERSION_1, "LEG-04: bits 32+ accepted"
    assert not st["features_ok"] and st["device_status"] == 0x07, st
    # the modern view agrees: driver feature word 1 is 0
    await env.wr("common", 0x08, 1)
    assert await env.rd("common", 0x0C) == 0, "LEG-04: modern driver_feature[1] after legacy write"
    # bit 30 written again with the same features: nothing changes
    await env.io_wr(Leg.GUEST_FEATURES, feats | 1 << UNUSED_30)
    assert await env.io_rd(Leg.GUEST_FEATURES) == feats and be.status()["driver_features"] == feats

    nq = len(drv.vqs)
    assert nq == p["num_queues"] and set(vectors) == {"config", *range(nq)}
    assert [(e.queue, e.kind) for e in be.qevents] == [(q, QEVENT_ENABLE) for q in range(nq)]
    for q, vq in drv.vqs.items():
        await check_row(env, q, vq.pfn, p["queue_max_size"])
        await env.io_wr(Leg.QUEUE_SEL, q, 2)
        assert await env.io_rd(Leg.QUEUE_PFN) == vq.pfn, "PFN read back"
        assert await env.io_rd(Leg.QUEUE_NUM, 2) == p["queue_max_size"]
    # queue size is read only (LEG-10: not negotiable)
    await env.io_wr(Leg.QUEUE_NUM, 16, 2)
    assert await env.io_rd(Leg.QUEUE_NUM, 2) == p["queue_max_size"], "LEG-10: queue size changed"
    assert (await env.be.read_queue(nq - 1))["size"] == p["queue_max_size"]

    for q, vq in drv.vqs.items():
        await drv.kick(vq)
    await be.wait_doorbells(nq)
    assert [(d.queue, d.value) for d in be.doorbells] == [(q, q) for q in range(nq)]

    # INTx and the ISR (no MSI-X): used buffer on queue 1
    m = env.mark()
    await env.irq(("q", 1))
    assert await env.wait_intx(m[1] + 1) == ["assert"]
    assert await drv.isr() == 0x1, "ISR bit 0 after a used-buffer interrupt"
    assert (await env.wait_intx(m[1] + 2))[-1] == "deassert", "INTx not deasserted by the ISR read"
    assert await drv.isr() == 0, "ISR not cleared by the read"
    # a configuration change after DRIVER_OK: ISR bit 1
    await env.irq(("c",))
    await env.wait_intx(m[1] + 3)
    assert await env.io_rd(Leg.STATUS, 2) == 0x07 | 0x02 << 8, "status | ISR in one 2-byte read"
    assert await drv.isr() == 0
    await env.wait_intx(m[1] + 4)
    assert env.intx()[m[1]:] == ["assert", "deassert", "assert", "deassert"]
    env.check()


@cocotb.test()
async def legacy_kick_before_driver_ok_test(dut):
    """LEG-08: a legacy driver uses a queue before DRIVER_OK: after its guest features and QUEUE_PFN
    a kick reaches the back-end's doorbell stream, and the back-end's used-buffer interrupt is
    delivered (INTx, ISR bit 0); a kick for a queue without a PFN is dropped."""
    env = await start(dut)
    drv, be = env.drv, env.be
    await drv.reset()
    await drv.add_status(Status.ACKNOWLEDGE | Status.DRIVER)
    await drv.finalize_features()
    vq = await drv.setup_vq(0)
    assert not be.status()["driver_ok"] and await drv.get_status() == 0x03
    await drv.kick(vq)
    await env.io_wr(Leg.QUEUE_NOTIFY, 1, 2)          # queue 1 has no PFN
    await env.flush()
    await be.wait_doorbells(1)
    await env.settle()
    assert [(d.queue, d.value) for d in be.doorbells] == [(0, 0)], be.doorbells
    m = env.mark()
    await env.irq(("q", 0))
    assert await env.wait_intx(m[1] + 1) == ["assert"], "LEG-08: interrupt before DRIVER_OK"
    assert await drv.isr() == 1
    await env.wait_intx(m[1] + 2)
    env.check()


@cocotb.test()
async def legacy_msix_test(dut):
    """LEG-03, MSX-D2: Linux's legacy MSI-X setup: MSI-X enabled, config vector 0 and one vector per
    queue written through the legacy header at 20/22 and read back; used-buffer and configuration
    interrupts become MSI-X writes to those entries (no INTx, ISR bit 0 not set); a vector beyond
    the table reads back NO_VECTOR and the driver deactivates that queue (PFN 0)."""
    env = await start(dut)
    drv, be, p = env.drv, env.be, env.params
    vectors = await legacy_init(env, msix=True, queues=range(p["num_queues"]))
    assert vectors == {"config": 0, **{q: 1 + q for q in range(p["num_queues"])}}, vectors
    for q in range(p["num_queues"]):
        assert (await be.read_queue(q))["vector"] == 1 + q
    m = env.mark()
    await env.irq(("q", 2), ("q", 0), ("c",))
    await env.wait_writes(m[0] + 3)
    assert env.entries_hit(m[0]) == [3, 1, 0], env.writes[m[0]:]
    assert await drv.isr() == 0x2, "MSI-X: ISR bit 0 must not be set, bit 1 is (config change)"
    await env.expect_quiet(env.mark(), what="after the MSI-X writes")
    assert env.intx() == []
    # a vector beyond the table: NO_VECTOR read back, queue deactivated by the driver
    await drv.del_vq(1)
    await env.settle()
    try:
        await drv.setup_vq(1, vector=p["msix_vectors"])
    except DriverError as exc:
        assert "refused" in str(exc), exc
    else:
        raise AssertionError("an out-of-range queue vector was accepted")
    await env.io_wr(Leg.QUEUE_SEL, 1, 2)
    assert await env.io_rd(Leg.MSI_QUEUE_VECTOR, 2) == NO_VECTOR
    await env.settle()
    assert await env.io_rd(Leg.QUEUE_PFN) == 0
    env.check()


@cocotb.test()
async def legacy_queue_pfn_zero_test(dut):
    """LEG-10, VQR-01: writing QUEUE_PFN 0 to an active queue (del_vq) asks the back-end for a
    queue reset (queue event RESET); once the back-end completes it on qreset_done the queue is
    inactive (PFN reads 0, queue table row reset) and a new PFN activates it at the new place; a
    PFN written to an active queue is ignored; a PFN for a select beyond the queues is ignored."""
    env = await start(dut, auto_qreset=False)
    drv, be, p = env.drv, env.be, env.params
    await legacy_init(env, msix=False)
    n0 = len(be.qevents)
    vq = drv.vqs[1]
    await env.io_wr(Leg.QUEUE_SEL, 1, 2)
    await env.io_wr(Leg.QUEUE_PFN, 0x4242)        # active: ignored
    assert await env.io_rd(Leg.QUEUE_PFN) == vq.pfn
    await drv.del_vq(1)
    await be.wait_qevents(n0 + 1)
    assert (be.qevents[-1].queue, be.qevents[-1].kind) == (1, QEVENT_RESET)
    # until the back-end completes, the queue is still being reset: a new PFN is ignored
    await env.io_wr(Leg.QUEUE_PFN, 0x5000)
    await env.settle()
    assert len(be.qevents) == n0 + 1
    be.complete_qreset(1)
    await env.settle()
    assert await env.io_rd(Leg.QUEUE_PFN) == 0
    row = await be.read_queue(1)
    assert not row["exists"], f"queue 1 after its reset: {row}"
    new = await drv.setup_vq(1, pfn=0xABCDE)
    await check_row(env, 1, new.pfn, p["queue_max_size"])
    assert (be.qevents[-1].queue, be.qevents[-1].kind) == (1, QEVENT_ENABLE)
    await check_row(env, 0, drv.vqs[0].pfn, p["queue_max_size"])   # others untouched
    # a select beyond the queues: size 0, PFN ignored, no event
    n1 = len(be.qevents)
    await env.io_wr(Leg.QUEUE_SEL, p["num_queues"], 2)
    assert await env.io_rd(Leg.QUEUE_NUM, 2) == 0
    await env.io_wr(Leg.QUEUE_PFN, 0x7777)
    assert await env.io_rd(Leg.QUEUE_PFN) == 0
    await env.settle()
    assert len(be.qevents) == n1
    env.check()


@cocotb.test()
async def legacy_reset_running_test(dut):
    """CC-06, CC-07, LEG-06: a legacy device reset (status 0) while queues run and doorbells come:
    the back-end is asked to reset and acknowledges it, the status read that follows the write
    reads 0, every queue is inactive (PFN 0), the guest features and ``legacy`` are cleared, and
    the driver initialises the device again."""
    env = await start(dut)
    drv, be, p = env.drv, env.be, env.params
    await legacy_init(env, msix=False)
    for vq in drv.vqs.values():
        await drv.kick(vq)
    r0 = len(be.resets)
    assert await drv.reset() == 0, "status after the reset write"
    assert len(be.resets) == r0 + 1, "the back-end did not see (and acknowledge) the reset"
    assert env.port("legacy") == 0 and be.status()["driver_features"] == 0
    for q in range(p["num_queues"]):
        await env.io_wr(Leg.QUEUE_SEL, q, 2)
        assert await env.io_rd(Leg.QUEUE_PFN) == 0, f"queue {q} still active after reset"
        assert not (await be.read_queue(q))["exists"]
    assert await env.io_rd(Leg.GUEST_FEATURES) == 0
    # kicks are dropped now (no queue active)
    n = len(be.doorbells)
    await env.io_wr(Leg.QUEUE_NOTIFY, 0, 2)
    await env.settle()
    assert len(be.doorbells) == n
    drv.vqs.clear()
    await legacy_init(env, msix=False)
    assert env.port("legacy") == 1 and be.status()["device_status"] == 0x07
    await drv.kick(drv.vqs[2])
    await be.wait_doorbells(n + 1)
    assert be.doorbells[-1].queue == 2
    env.check()


@cocotb.test()
async def legacy_dcfg_write_before_features_test(dut):
    """LEG-07, LEG-02: after reset and ACKNOWLEDGE|DRIVER, before the guest features are written,
    legacy device-config writes of 1, 2 and 4 bytes reach the device-config back-end with their
    byte enables (a modern driver's would be refused before FEATURES_OK), and read back."""
    env = await start(dut)
    drv, be = env.drv, env.be
    await drv.reset()
    await drv.add_status(Status.ACKNOWLEDGE | Status.DRIVER)
    assert env.port("legacy") == 0
    n = len(be.dcfg_requests)
    base = Leg.config_off(False)
    await drv.config_write(6, 1, 0xA5)
    await env.io_wr(base + 8, 0xBEEF, 2)
    await env.io_wr(base + 12, 0x01020304, 4)
    writes = [f for _, f in be.dcfg_requests[n:] if f["write"]]
    assert [(w["addr"], w["be"]) for w in writes] == [(1, 0b0100), (2, 0b0011), (3, 0b1111)], writes
    assert await drv.config_read(6, 1) == 0xA5
    assert await env.io_rd(base + 8, 2) == 0xBEEF
    assert await env.io_rd(base + 12) == 0x01020304
    # the modern path before FEATURES_OK ignores the write (the difference LEG-07 is about)
    n = len(be.dcfg_requests)
    await env.wr("device", 16, 0x55, fbe=0x1)
    await env.settle()
    assert [f for _, f in be.dcfg_requests[n:] if f["write"]] == []
    env.check()
