"""The legacy interface of a transitional device against the modern one and against bad input:
a modern driver after a legacy one, legacy writes after a modern driver negotiated, I/O requests
the function must refuse (outside the BAR, I/O Space disabled, the wrong address space) and
writes to read-only legacy fields.
"""
import cocotb
from cocotbext.pcie.core.tlp import CplStatus, TlpType

from tb.host.legacy_driver import Leg, LegacyVirtioDriver
from tb.env.testbench import LegacyTB
from tb.env.legacy import legacy_init
from tb.tlp.requests import io_tlp, mem_tlp
from tb.host.pcispec import CapId, DevSta, Hdr, PcieCap, Sts
from tb.host.virtio_driver import F, Status, VirtioPciDriver

ANY_LAYOUT = 27
NOTIFY_ON_EMPTY = 24
LEGACY_ONLY = (1 << ANY_LAYOUT) | (1 << NOTIFY_ON_EMPTY)


async def modern_state(env):
    """What a modern driver set: status, negotiated features, queue_select, vectors and the
    queue rows the back-end reads."""
    st = env.be.status()
    rows = [await env.be.read_queue(q) for q in range(env.params["num_queues"])]
    common = [await env.rd("common", off) for off in range(0, 0x40, 4)]
    return st, rows, common, env.port("legacy")


@cocotb.test()
async def legacy_then_modern_test(dut):
    """LEG-06, LEG-09, CC-06, FEA-01, FEA-03: a legacy driver brings the device up, resets it, and a
    modern driver (the Linux-like modern model, through the memory BAR of the same transitional
    device) then negotiates VERSION_1 with FEATURES_OK: ``legacy`` falls, device_feature shows no
    legacy-only bit (ANY_LAYOUT, NOTIFY_ON_EMPTY: offered through the legacy header only), the
    back-end sees the modern feature set and the modern queue addresses, doorbells come through
    the modern notify structure."""
    env = LegacyTB(dut)
    await env.start()
    ldrv = env.drv
    await legacy_init(env, msix=False)
    assert env.port("legacy") == 1
    await ldrv.reset()
    assert env.port("legacy") == 0
    mdrv = VirtioPciDriver(env)
    await mdrv.init()
    await env.flush()
    st = env.be.status()
    assert mdrv.negotiated(F.VERSION_1) and st["features_ok"] and env.port("legacy") == 0, st
    assert st["driver_features"] == mdrv.features, f"{st['driver_features']:#x} != {mdrv.features:#x}"
    assert not mdrv.device_features & LEGACY_ONLY, \
        f"FEA-03: device_feature offers legacy-only bits {mdrv.device_features & LEGACY_ONLY:#x}"
    assert not st["driver_features"] & LEGACY_ONLY
    for q, vq in mdrv.vqs.items():
        row = await env.be.read_queue(q)
        assert (row["desc"], row["driver"], row["device"], row["size"]) == \
            (vq.desc, vq.driver, vq.device, vq.size), f"queue {q}: {row}"
    n = len(env.be.doorbells)
    for vq in mdrv.vqs.values():
        await mdrv.kick(vq, 5)
    await env.be.wait_doorbells(n + len(mdrv.vqs))
    assert [d.queue for d in env.be.doorbells[n:]] == list(mdrv.vqs)
    # the legacy header shows the modern queue as active (its PFN field reads the desc page)
    await env.io_wr(Leg.QUEUE_SEL, 0, 2)
    assert await env.io_rd(Leg.QUEUE_NUM, 2) == mdrv.vqs[0].size
    env.check()


@cocotb.test()
async def modern_then_legacy_writes_test(dut):
    """FEA-01, LEG-04, LEG-06: after a modern driver's FEATURES_OK (and DRIVER_OK), legacy writes
    through the I/O BAR (guest features, QUEUE_PFN 0 and non-zero, queue select, a non-zero
    status, the vector fields) change nothing the modern driver or the back-end sees: status,
    negotiated features, every common-config field, the queue rows, no queue event; the
    ``legacy`` output stays low.  A legacy status 0 (a legacy driver taking over) still resets the
    device, and the legacy driver then initialises it."""
    env = LegacyTB(dut)
    await env.start(modern=True, init=True)
    mdrv = env.drv
    await env.flush()
    n_ev = len(env.be.qevents)
    before = await modern_state(env)
    assert before[0]["features_ok"] and before[0]["driver_ok"]
    await env.msix.set_control(enable=True)
    await env.io_wr(Leg.GUEST_FEATURES, 0xFFFF_FFFF)
    await env.io_wr(Leg.QUEUE_SEL, 1, 2)
    await env.io_wr(Leg.QUEUE_PFN, 0)
    await env.io_wr(Leg.QUEUE_PFN, 0x1234)
    await env.io_wr(Leg.STATUS, Status.ACKNOWLEDGE, 1)
    await env.io_wr(Leg.MSI_CONFIG_VECTOR, 1, 2)
    await env.io_wr(Leg.MSI_QUEUE_VECTOR, 2, 2)
    await env.settle()
    await env.msix.set_control(enable=False)
    after = await modern_state(env)
    assert after == before, f"legacy writes after FEATURES_OK changed the state:\n{before}\n{after}"
    assert len(env.be.qevents) == n_ev, env.be.qevents[n_ev:]
    # the modern driver carries on
    n = len(env.be.doorbells)
    await mdrv.kick(mdrv.vqs[1], 1)
    await env.be.wait_doorbells(n + 1)
    # a legacy driver taking over starts with status 0: that resets the device
    ldrv = LegacyVirtioDriver(env)
    await ldrv.probe()
    env.drv = ldrv
    await legacy_init(env, msix=False)
    st = env.be.status()
    assert env.port("legacy") == 1 and not st["features_ok"] and st["device_status"] == 0x07, st
    assert not st["driver_features"] >> 32
    env.check()


@cocotb.test()
async def legacy_bad_requests_test(dut):
    """LEG-01, PCI-01: I/O requests the function must refuse get an Unsupported Request completion
    and change nothing: IORd/IOWr just past the I/O BAR, IORd/IOWr with I/O Space disabled in the
    Command register, I/O requests at the memory BAR's address, memory requests at the I/O BAR's
    address; the legacy header still works afterwards."""
    env = LegacyTB(dut)
    await env.start()
    p = env.params
    io = env.io_base
    ur0 = env.error_count("err_ur")
    n_ur = 0

    async def expect_ur(req, what):
        nonlocal n_ur
        cpls = await env.raw_request(req)
        assert len(cpls) == 1 and cpls[0].status == CplStatus.UR, f"{what}: {cpls}"
        assert cpls[0].fmt_type == TlpType.CPL, f"{what}: UR completion carries data {cpls[0]!r}"
        n_ur += 1

    await expect_ur(io_tlp(False, io + p["io_bar_size"]), "IORd past the I/O BAR")
    await expect_ur(io_tlp(True, io + p["io_bar_size"], fbe=0x4, data=0), "IOWr past the I/O BAR")
    await expect_ur(io_tlp(False, io - 4), "IORd below the I/O BAR")
    mem = env.bar_addr
    await expect_ur(io_tlp(False, mem & 0xFFFF_FFFC), "IORd at the memory BAR")
    await expect_ur(io_tlp(True, mem & 0xFFFF_FFFC, fbe=0x1, data=1), "IOWr at the memory BAR")
    assert io != mem & 0xFFFF_FFFF
    await expect_ur(mem_tlp(False, io), "MRd at the I/O BAR address")
    await env.expect_no_completion(mem_tlp(True, io + Leg.STATUS & ~3, fbe=0x4, data=[0x0F << 16]))
    # I/O Space disabled
    cmd = await env.cfg_read_dword(Hdr.COMMAND) & 0xFFFF
    await env.cfg_write_dword(Hdr.COMMAND, cmd & ~0x1, fbe=0x3)
    await expect_ur(io_tlp(False, io), "IORd with I/O Space disabled")
    await expect_ur(io_tlp(True, io + Leg.STATUS & ~3, fbe=0x4, data=0x01 << 16),
                    "IOWr with I/O Space disabled")
    await env.cfg_write_dword(Hdr.COMMAND, cmd, fbe=0x3)
    # nothing changed; the header answers again
    assert await env.io_rd(Leg.STATUS, 1) == 0
    assert await env.io_rd(Leg.HOST_FEATURES) & 1 << ANY_LAYOUT
    if ur0 is not None:
        assert env.error_count("err_ur") - ur0 >= n_ur, "err_ur did not count the refused requests"
    env.check()


@cocotb.test()
async def legacy_poisoned_malformed_io_test(dut):
    """LEG-01, PCI-01: bad I/O requests to the legacy header: a poisoned IOWr (EP=1) is discarded
    and answered with UR (PCIe 2.7.2.2), setting Detected Parity Error and Non-Fatal Error
    Detected; I/O requests that break the I/O rules (TC other than 0, length other than 1, a
    last byte enable) are malformed: dropped without a completion, Fatal Error Detected.  None of
    them changes the device status; the header still answers."""
    env = LegacyTB(dut)
    await env.start()
    io = env.io_base
    caps = await env.capabilities()
    devctl = env.find_cap(caps, CapId.PCIE).offset + PcieCap.DEVCTL
    errs = DevSta.CORRECTABLE | DevSta.NONFATAL | DevSta.FATAL | DevSta.UNSUPPORTED_REQUEST

    async def devsta():
        return (await env.cfg_read_dword(devctl)) >> 16

    async def clear():
        await env.cfg_write_dword(devctl, errs << 16, fbe=0b1100)
        await env.cfg_write_dword(Hdr.COMMAND, Sts.RW1C << 16, fbe=0b1100)

    await clear()
    assert await env.io_rd(Leg.STATUS, 1) == 0
    status_dw = io + Leg.STATUS & ~3
    bad = io_tlp(True, status_dw, fbe=0x4, data=Status.ACKNOWLEDGE << 16)
    bad.ep = True
    cpls = await env.raw_request(bad, settle=10)
    assert len(cpls) == 1 and cpls[0].status == CplStatus.UR and cpls[0].fmt_type == TlpType.CPL, \
        f"poisoned IOWr: {cpls}"
    assert await env.io_rd(Leg.STATUS, 1) == 0, "poisoned IOWr landed"
    sts = (await env.cfg_read_dword(Hdr.COMMAND)) >> 16
    assert sts & Sts.DETECTED_PARITY_ERROR, f"poisoned IOWr: Status {sts:#x}"
    assert await devsta() & errs == DevSta.NONFATAL, "poisoned IOWr: Device Status"
    await clear()

    def variant(tlp, fix):
        dws, tag = env.dws(tlp)
        return fix(dws), tag

    cases = [
        ("IORd with TC 1", variant(io_tlp(False, io), lambda d: [d[0] | 1 << 20] + d[1:])),
        ("IOWr with TC 7", variant(io_tlp(True, status_dw, fbe=0x4, data=Status.ACKNOWLEDGE << 16),
                                   lambda d: [d[0] | 7 << 20] + d[1:])),
        ("IORd length 2", variant(io_tlp(False, io), lambda d: [d[0] & ~0x3FF | 2] + d[1:])),
        ("IOWr length 2", variant(io_tlp(True, status_dw, fbe=0x4, data=Status.ACKNOWLEDGE << 16),
                                  lambda d: [d[0] & ~0x3FF | 2] + d[1:] + [d[-1]])),
        ("IOWr with last BE", variant(io_tlp(True, status_dw, fbe=0x4, data=Status.ACKNOWLEDGE << 16),
                                      lambda d: [d[0], d[1] | 0xF0] + d[2:])),
    ]
    for name, (dws, tag) in cases:
        await env.expect_no_completion(dws, tag=tag)
        sta = await devsta()
        assert sta & DevSta.FATAL, f"{name}: Fatal Error Detected not set ({sta:#x})"
        await clear()
    assert await env.io_rd(Leg.STATUS, 1) == 0, "a malformed IOWr landed"
    assert await env.io_rd(Leg.HOST_FEATURES) & 1 << ANY_LAYOUT
    env.check()


@cocotb.test()
async def legacy_ro_fields_test(dut):
    """LEG-09, LEG-10, ISR-05: writes to the read-only legacy fields are ignored: host features
    (ANY_LAYOUT stays offered, nothing added), QUEUE_NUM (the size stays the maximum), the ISR
    byte (a pending bit survives a write of 0 and is cleared only by the read), QUEUE_NOTIFY reads
    0; a 4-byte write at 0x10 with status 0 in byte 2 is a reset plus a doorbell."""
    env = LegacyTB(dut)
    await env.start()
    drv, be, p = env.drv, env.be, env.params
    await legacy_init(env, msix=False)
    host = await env.io_rd(Leg.HOST_FEATURES)
    await env.io_wr(Leg.HOST_FEATURES, 0xFFFF_FFFF)
    await env.io_wr(Leg.HOST_FEATURES, 0)
    assert await env.io_rd(Leg.HOST_FEATURES) == host and host >> ANY_LAYOUT & 1
    await env.io_wr(Leg.QUEUE_SEL, 2, 2)
    await env.io_wr(Leg.QUEUE_NUM, 4, 2)
    assert await env.io_rd(Leg.QUEUE_NUM, 2) == p["queue_max_size"]
    assert (await be.read_queue(2))["size"] == p["queue_max_size"]
    m = env.mark()
    await env.irq(("q", 0))
    await env.wait_intx(m[1] + 1)
    await env.io_wr(Leg.ISR, 0, 1)
    assert await env.io_rd(Leg.QUEUE_NOTIFY, 2) == 0, "QUEUE_NOTIFY is write-only (reads 0)"
    assert await drv.isr() == 1, "ISR changed by a write"
    await env.wait_intx(m[1] + 2)
    # one DW write over notify and status: doorbell for queue 2, then the reset
    n, r = len(be.doorbells), len(be.resets)
    await env.io_wr(Leg.QUEUE_NOTIFY, 2)           # bytes 16-17 = 2, status byte 0
    await be.wait_doorbells(n + 1)
    assert be.doorbells[-1].queue == 2
    assert await drv.get_status() == 0 and len(be.resets) == r + 1
    env.check()
