"""Virtio transport at run time: doorbells, device configuration and config_generation, device
reset, queue reset, DEVICE_NEEDS_RESET, ISR, and the PCI-cfg access window.

The driver model brings the device up as Linux does; the checks then use the driver model or the
raw request path (any byte-enable pattern) and the back-end model's records.
"""
import random

import cocotb
from cocotb.triggers import RisingEdge

from tb.env.fabric import load_desc
from tb.env.testbench import TransportTB
from tb.models.virtio_backend import QEVENT_RESET
from tb.host.virtio_driver import CfgType, F, NO_VECTOR, Status

DESC = load_desc()
P = DESC.params
FEATURES = DESC.features() & ~((1 << 24) | (1 << 27))     # legacy-only bits: legacy header only
NQ = P["num_queues"]
MULT = P["notify_off_multiplier"]
ND = DESC.offers(F.NOTIFICATION_DATA)
RR = DESC.offers(F.RING_RESET)
NCD = DESC.offers(F.NOTIF_CONFIG_DATA)
DCFG_SIZE = P["device_cfg_size"]
REG = DESC.regions


def _msix_cap():
    for c in DESC.caps:
        if c["cap_id"] == 0x11:
            return c["config_offset"]
    raise AssertionError("no MSI-X capability")


async def _set_msix_enable(env, on):
    off = _msix_cap()
    dw = await env.cfg_read_dword(off)
    dw = (dw | (1 << 31)) if on else (dw & ~(1 << 31))
    await env.cfg_write_dword(off, dw)


async def _isr_now(env):
    """Read (and clear) the ISR through the memory BAR with a one-byte read."""
    return (await env.rd("isr", 0, fbe=0x1)) & 0xFF


# =============================================================================== doorbells
@cocotb.test()
async def doorbell_test(dut):
    """NTF-D1, NTF-D2, DRV-16, CC-D4: each queue's doorbell kicks exactly that queue, with a
    16-bit write of the index (or of queue_notif_config_data) and with a 32-bit
    NOTIFICATION_DATA write (vq in 15:0, next_off 30:16, next_wrap 31 passed to the back-end);
    identical repeated writes are separate kicks; with multiplier 0 the queue comes from the
    value."""
    env = TransportTB(dut)
    drv = await env.start(linux_filter=False)       # negotiate everything offered
    be = env.be
    vqs = drv.vqs
    if NCD:
        for q, vq in vqs.items():
            assert vq.notif_config_data is not None
    expected = []
    # 16-bit writes at every doorbell (the driver's own format without NOTIFICATION_DATA)
    for q, vq in vqs.items():
        ident = vq.notif_config_data if drv.negotiated(F.NOTIF_CONFIG_DATA) else q
        await drv.mem_write(vq.notify_addr, 2, ident, f"notify[q{q}] 16-bit")
        expected.append((q, ident, 0))
    # 32-bit writes: crafted next_off / next_wrap, repeated twice
    for q, vq in vqs.items():
        for value in ((0x7FFF << 16) | (1 << 31) | q, (0x1234 << 16) | q, (0x1234 << 16) | q):
            await drv.mem_write(vq.notify_addr, 4, value, f"notify[q{q}] 32-bit")
            expected.append((q, value, 1))
    await env.flush()
    await be.wait_doorbells(len(expected))
    await env.cycles(20)
    got = [(d.queue, d.value, d.wide) for d in be.doorbells]
    assert got == expected, f"doorbells {got} != {expected}"
    if MULT:
        # DRV-16: with a non-zero multiplier the address decides, the value is only a hint
        be.doorbells.clear()
        await drv.mem_write(vqs[0].notify_addr, 2, (NQ - 1) & 0xFFFF, "notify[q0] wrong value")
        await env.flush()
        await be.wait_doorbells(1)
        assert be.doorbells[0].queue == 0, f"DRV-16: queue taken from the value: {be.doorbells}"
    env.check()


@cocotb.test()
async def doorbell_drop_test(dut):
    """NTF-D3, STS-01, DRV-12, NTF-D4, DRV-16: doorbells before DRIVER_OK, to a disabled queue,
    to a queue that does not exist or outside a doorbell are dropped without an error; reads of
    the notify region return 0 and kick nothing."""
    env = TransportTB(dut)
    drv = await env.start(init=False)
    be = env.be
    await drv.reset()
    await drv.add_status(Status.ACKNOWLEDGE | Status.DRIVER)
    await drv.finalize_features()
    vqs = {q: await drv.setup_vq(q) for q in range(NQ)}
    for q in range(NQ - 1):                 # the last queue stays disabled
        await drv.enable_vq(q)
    for vq in vqs.values():                 # before DRIVER_OK
        await drv.kick(vq, 3)
    await env.flush()
    await env.cycles(20)
    assert be.doorbells == [], f"STS-01/NTF-D3: doorbell before DRIVER_OK: {be.doorbells}"
    await drv.add_status(Status.DRIVER_OK)
    ur_before = env.error_count("err_ur")
    await drv.kick(vqs[NQ - 1], 3)           # disabled queue
    notify = drv.maps[CfgType.NOTIFY]
    if MULT:
        # the address of the queue after the last one, and a mis-aligned one inside queue 0
        if NQ * MULT < REG["notify"]["span"]:
            await drv.mem_write(notify.addr + NQ * MULT, 2, NQ, "notify[q=num_queues]")
        await drv.mem_write(notify.addr + 2, 2, 0, "notify+2 (mis-aligned)")
    else:
        for v in (NQ, NQ + 7, 0xFFFF):
            await drv.mem_write(notify.addr, 2, v, f"notify value {v}")
    # reads: 0 and no kick
    for off in range(0, min(notify.length, 16), 4):
        v = await drv.mem_read(notify.addr + off, 4)
        assert v == 0, f"NTF-D4: notify+{off:#x} reads {v:#x}"
    await env.flush()
    await env.cycles(20)
    assert be.doorbells == [], f"NTF-D3/DRV-16: dropped doorbells reached the back-end: {be.doorbells}"
    assert env.error_count("err_ur") == ur_before, "a dropped doorbell was answered as an error"
    # an enabled queue still works afterwards
    await drv.kick(vqs[0], 4)
    await env.flush()
    await be.wait_doorbells(1)
    assert be.doorbells[0].queue == 0
    env.check()


@cocotb.test()
async def doorbell_backpressure_test(dut):
    """NTF-D1, NTF-D2, DRV-16: a long burst of doorbells under random back-pressure on the
    doorbell port, and with the port held not-ready, arrives complete, in order, without
    duplicates (back-pressure stalls rx; nothing is dropped), interleaved register reads stay
    correct."""
    env = TransportTB(dut, doorbell_stall=0.7)
    drv = await env.start()
    be = env.be
    rng = random.Random(cocotb.RANDOM_SEED)
    vqs = list(drv.vqs.values())
    wide = drv.negotiated(F.NOTIFICATION_DATA)
    sent = []
    for i in range(240):
        vq = rng.choice(vqs)
        if wide:
            await drv.kick(vq, i)
            sent.append((vq.index, (i << 16) | (vq.notif_config_data or vq.index)))
        else:
            await drv.kick(vq)
            sent.append((vq.index, vq.notif_config_data if vq.notif_config_data is not None
                         else vq.index))
        if i % 37 == 0:
            assert await drv.common_read("num_queues") == NQ
    await env.flush()
    await be.wait_doorbells(len(sent), timeout_cycles=20000)
    await env.cycles(50)
    got = [(d.queue, d.value) for d in be.doorbells]
    assert len(got) == len(sent), f"{len(got)} doorbells for {len(sent)} writes"
    assert got == sent, "doorbells lost, duplicated or reordered"
    # hold the port: doorbells wait (and rx with them), then all arrive
    be.doorbells.clear()
    be.pause_doorbells(True)
    for i in range(5):
        await drv.kick(vqs[0], 100 + i)
    await env.cycles(100)
    assert len(be.doorbells) == 0, "doorbell transferred while ready was low"
    be.pause_doorbells(False)
    await env.flush()
    await be.wait_doorbells(5)
    await env.cycles(30)
    assert len(be.doorbells) == 5
    env.check()


# =============================================================================== device config
@cocotb.test()
async def device_config_test(dut):
    """DCF-03, DCF-D1, DRV-17: the whole device configuration is readable before FEATURES_OK with
    its initial contents, little-endian, at widths 1, 2 and 4; reads past the implemented fields
    return 0; driver writes to the read-only register file are ignored."""
    env = TransportTB(dut)
    drv = await env.start(init=False)
    await drv.reset()
    await drv.add_status(Status.ACKNOWLEDGE | Status.DRIVER)
    contents = bytes(env.be.dcfg)
    assert len(contents) == DCFG_SIZE
    for off in range(0, DCFG_SIZE, 4):
        v = await drv.read(CfgType.DEVICE, off, 4)
        assert v == int.from_bytes(contents[off:off + 4], "little"), f"DCF-03: device+{off:#x}"
    for off in range(0, min(DCFG_SIZE, 16)):
        assert await drv.read(CfgType.DEVICE, off, 1) == contents[off], f"DCF-D1: byte {off}"
    for off in range(0, min(DCFG_SIZE, 16), 2):
        assert await drv.read(CfgType.DEVICE, off, 2) == int.from_bytes(contents[off:off + 2], "little")
    for off in (DCFG_SIZE, DCFG_SIZE + 4, REG["device"]["span"] - 4):
        if off < REG["device"]["span"]:
            assert await env.rd("device", off) == 0, f"DRV-17: device+{off:#x} past the fields"
    await drv.write(CfgType.DEVICE, 0, 4, 0xFFFF_FFFF)
    await drv.write(CfgType.DEVICE, 4, 1, 0x5A)
    if not env.be.dcfg_writable:
        assert await drv.read(CfgType.DEVICE, 0, 4) == int.from_bytes(contents[0:4], "little")
        assert await drv.read(CfgType.DEVICE, 4, 1) == contents[4]
    # the config is still readable at FEATURES_OK and after DRIVER_OK, multi-DW too
    await drv.finalize_features()
    n = min(DCFG_SIZE // 4, 8)
    words = await env.rd_n("device", 0, n)
    assert words == [int.from_bytes(contents[4 * i:4 * i + 4], "little") for i in range(n)]
    env.check()


@cocotb.test()
async def config_generation_test(dut):
    """CC-05, STS-D2, ISR-02: config_generation differs whenever the device config changed since
    the driver read it, however many changes happened (300, and 256 changes each followed by a
    device_status read that does not include config_generation); the generation loop re-reads a
    torn value; a change after DRIVER_OK raises the configuration-change ISR bit."""
    env = TransportTB(dut)
    drv = await env.start()
    be = env.be
    # the generation loop: a change between the two generation reads forces a retry
    g0 = await drv.common_read("config_generation")
    v_old = await drv.read(CfgType.DEVICE, 0, 4)
    await be.dcfg_write(0, v_old ^ 0x0101_0101)
    g1 = await drv.common_read("config_generation")
    assert g1 != g0, "CC-05: one change, generation unchanged"
    v, tries = await drv.config_read(0, 4)
    assert v == v_old ^ 0x0101_0101 and tries == 1
    # torn read: change in the middle of a config_read
    task = cocotb.start_soon(drv.config_read(0, 8))
    await env.cycles(2)
    await be.dcfg_write(1, 0x7777_0000)
    v, tries = await task
    assert v >> 32 == 0x7777_0000, f"generation loop returned a stale value {v:#x} ({tries} tries)"
    # 300 changes between two reads
    g = await drv.common_read("config_generation")
    for i in range(300):
        await be.dcfg_write(2, i)
    assert await drv.common_read("config_generation") != g, "CC-05: 300 changes, same generation"
    # 256 changes, each followed by a read of device_status only (byte 0x14, not 0x15)
    g = await drv.common_read("config_generation")
    for i in range(256):
        await be.dcfg_write(3, 0x100 + i)
        await env.rd("common", 0x14, fbe=0x1)
    assert await drv.common_read("config_generation") != g, \
        "CC-05: 256 changes with status reads in between wrapped config_generation"
    # STS-D2 / ISR-02: configuration change after DRIVER_OK sets ISR bit 1
    await _isr_now(env)
    await be.dcfg_write(0, 0x1234_5678)
    await env.cycles(5)
    isr = await _isr_now(env)
    assert isr & 0x2, f"STS-D2/ISR-02: ISR {isr:#x} after a config change"
    env.check()


# =============================================================================== reset
@cocotb.test()
async def device_reset_test(dut):
    """CC-06, STS-04, DRV-06, CC-07, CC-08, MSX-07, STS-D1, STS-05: status reads 0 at power-on;
    writing 0 starts a reset that keeps device_status non-zero until the back-end acknowledges
    (writes in between are ignored); afterwards every field has its reset value: status 0,
    selects 0, features 0, config and queue vectors NO_VECTOR, queue_enable and queue_reset 0,
    sizes at the maximum; no doorbell reaches the back-end until the driver re-initialises."""
    env = TransportTB(dut, auto_reset_ack=False)
    drv = await env.start(init=False)
    be = env.be
    assert await drv.get_status() == 0, "STS-D1: device_status after power-on"
    # bring up (acknowledging the driver's reset by hand)
    reset_task = cocotb.start_soon(drv.reset())
    await env.cycles(200)
    assert not reset_task.done(), "reset completed without the back-end's acknowledge"
    await be.ack_reset()
    seen = await reset_task
    assert all(s != 0 for s in seen[:-1]) and seen[-1] == 0, f"DRV-06: {seen}"
    await drv.add_status(Status.ACKNOWLEDGE | Status.DRIVER)
    await drv.finalize_features()
    vec = min(1, P["msix_vectors"] - 1)
    await drv.config_vector(vec)
    vqs = {q: await drv.setup_vq(q, vector=vec, size=P["queue_max_size"] // 2) for q in range(NQ)}
    for q in range(NQ):
        await drv.enable_vq(q)
    await drv.add_status(Status.DRIVER_OK)
    await drv.common_write("device_feature_select", 1)
    await drv.common_write("driver_feature_select", 1)
    await drv.common_write("queue_select", NQ - 1)
    # reset, back-end slow
    await drv.common_write("device_status", 0)
    for _ in range(10):
        s = await drv.get_status()
        assert s != 0, "CC-06/DRV-06: device_status 0 before the back-end acknowledged"
        assert s & Status.DEVICE_NEEDS_RESET
    # writes while resetting are ignored
    await drv.common_write("queue_select", 0)
    await drv.common_write("device_status", Status.ACKNOWLEDGE)
    await drv.common_write("config_msix_vector", 0)
    await drv.kick(vqs[0], 1)
    await env.flush()
    assert int(dut.reset_req.value) == 1
    await be.ack_reset()
    seen = []
    for _ in range(20):
        s = await drv.get_status()
        seen.append(s)
        if s == 0:
            break
    assert seen[-1] == 0, f"CC-06/STS-04: status {seen}"
    checks = {"device_status": 0, "device_feature_select": 0, "driver_feature_select": 0,
              "config_msix_vector": NO_VECTOR, "queue_select": 0}
    for name, want in checks.items():
        assert await drv.common_read(name) == want, f"reset value of {name}"
    for i in range(4):
        await drv.common_write("driver_feature_select", i)
        assert await drv.common_read("driver_feature") == 0
    await drv.common_write("driver_feature_select", 0)
    assert int(dut.driver_features.value) == 0 and int(dut.driver_ok.value) == 0
    for q in range(NQ):
        await drv.common_write("queue_select", q)
        assert await drv.common_read("queue_enable") == 0, f"CC-07: queue {q}"
        assert await drv.common_read("queue_reset") == 0, f"CC-08: queue {q}"
        assert await drv.common_read("queue_msix_vector") == NO_VECTOR, f"MSX-07: queue {q}"
        assert await drv.common_read("queue_size") == P["queue_max_size"], f"queue {q} size"
        assert await drv.common_read("queue_desc_lo") == 0
    # STS-05: nothing reaches the back-end until re-initialised
    for vq in vqs.values():
        await drv.kick(vq, 2)
    await env.flush()
    await env.cycles(20)
    assert be.doorbells == [], f"STS-05: doorbells after reset: {be.doorbells}"
    assert await _isr_now(env) == 0, "ISR not cleared by the reset"
    env.check()


@cocotb.test(skip=not RR)
async def reset_during_queue_reset_test(dut):
    """CC-06, CC-08, DRV-06: a device reset while a queue reset is still in progress leaves every
    queue disabled with queue_reset 0; the late queue-reset completion of the back-end does not
    disable a queue the driver enabled again."""
    env = TransportTB(dut, auto_qreset=False)
    drv = await env.start()
    be = env.be
    await drv.common_write("queue_select", 0)
    await drv.common_write("queue_reset", 1)
    await env.flush()
    await be.wait_qevents(NQ + 1)
    assert be.qevents[-1].kind == QEVENT_RESET
    await drv.reset()
    for q in range(NQ):
        await drv.common_write("queue_select", q)
        assert await drv.common_read("queue_reset") == 0
        assert await drv.common_read("queue_enable") == 0
    await drv.init()
    # the stale completion from before the device reset arrives now
    be.complete_qreset(0)
    await env.cycles(20)
    await drv.common_write("queue_select", 0)
    assert await drv.common_read("queue_enable") == 1, "stale qreset_done disabled queue 0"
    await drv.kick(drv.vqs[0], 1)
    await env.flush()
    await be.wait_doorbells(1)
    env.check()


@cocotb.test(skip=not RR)
async def queue_reset_test(dut):
    """CC-09, CC-10, CC-11, CC-12, VQR-01, VQR-02, VQR-03, DRV-08, DRV-19: queue_reset reads 0
    after enable; writing 1 sends a reset request for that queue only; it reads 1 until the
    (slow) back-end completes, then queue_reset and queue_enable read 0; the queue's state is back
    to defaults and its doorbell is dropped while other queues work; re-enabled with new size,
    addresses and vector, the back-end sees the new parameters."""
    env = TransportTB(dut, qreset_delay=60)
    drv = await env.start(vectors={q: 0 for q in range(NQ)})
    be = env.be
    for q in range(NQ):
        await drv.common_write("queue_select", q)
        assert await drv.common_read("queue_reset") == 0, f"CC-09: queue {q}"
    target = NQ - 1
    other = 0
    n_ev = len(be.qevents)
    seen = await drv.queue_reset(target)
    assert len(seen) >= 2 and all(v == 1 for v in seen[:-1]) and seen[-1] == 0, \
        f"CC-11: queue_reset reads {seen} (must be 1 until the back-end completes)"
    assert [(e.queue, e.kind) for e in be.qevents[n_ev:]] == [(target, QEVENT_RESET)], "CC-10"
    assert be.qresets_done and be.qresets_done[-1][1] == target
    assert await drv.common_read("queue_enable") == 0, "CC-12"
    assert await drv.common_read("queue_size") == P["queue_max_size"], "VQR-02: size"
    assert await drv.common_read("queue_desc_lo") == 0 and await drv.common_read("queue_driver_lo") == 0
    assert await drv.common_read("queue_msix_vector") == NO_VECTOR, "VQR-02: vector"
    await env.flush()
    row = await be.read_queue(target)
    assert row["exists"] == 0 and row["size"] == P["queue_max_size"] and row["desc"] == 0, f"VQR-02: {row}"
    # VQR-01: the reset queue is silent, the others work
    await drv.kick(drv.vqs[target], 5)
    await drv.kick(drv.vqs[other], 6)
    await env.flush()
    await be.wait_doorbells(1)
    await env.cycles(30)
    assert [d.queue for d in be.doorbells] == [other], f"VQR-01: {be.doorbells}"
    await drv.common_write("queue_select", other)
    assert await drv.common_read("queue_enable") == 1, "queue reset touched another queue"
    # VQR-03 / DRV-19: re-program and re-enable
    vq = drv.vqs[target]
    new_vec = min(1, P["msix_vectors"] - 1)
    await drv.reenable_vq(vq, size=P["queue_max_size"] // 4, desc=0xA000, driver=0xB000,
                          device=0xC000, vector=new_vec)
    await env.flush()
    row = await be.read_queue(target)
    assert (row["size"], row["desc"], row["driver"], row["device"], row["vector"]) == \
        (P["queue_max_size"] // 4, 0xA000, 0xB000, 0xC000, new_vec), f"VQR-03: {row}"
    assert await drv.common_read("queue_reset") == 0, "CC-09 after re-enable"
    be.doorbells.clear()
    await drv.kick(vq, 0)
    await env.flush()
    await be.wait_doorbells(1)
    assert be.doorbells[0].queue == target
    # DRV-08: writes to a queue while its reset is in progress
    be.auto_qreset = False
    n_ev = len(be.qevents)
    await drv.common_write("queue_select", target)
    await drv.common_write("queue_reset", 1)
    await drv.common_write("queue_enable", 1)
    await drv.common_write("queue_reset", 1)
    await drv.common_write("queue_size", 1)
    await env.flush()
    assert await drv.common_read("queue_reset") == 1
    assert await drv.common_read("queue_enable") == 1
    await env.cycles(10)
    assert [(e.queue, e.kind) for e in be.qevents[n_ev:]] == [(target, QEVENT_RESET)], \
        f"DRV-08: queue events while the queue was resetting: {be.qevents[n_ev:]}"
    be.complete_qreset(target)
    await env.cycles(10)
    assert await drv.common_read("queue_reset") == 0 and await drv.common_read("queue_enable") == 0
    assert await drv.common_read("queue_size") == P["queue_max_size"]
    env.check()


@cocotb.test(skip=RR)
async def queue_reset_not_negotiated_test(dut):
    """CC-08, DRV-08: without RING_RESET (not offered) a write of 1 to queue_reset is ignored: no
    request to the back-end, the queue stays enabled, queue_reset reads 0."""
    env = TransportTB(dut)
    drv = await env.start()
    await drv.common_write("queue_select", 0)
    await drv.common_write("queue_reset", 1)
    await env.flush()
    await env.cycles(20)
    assert await drv.common_read("queue_reset") == 0
    assert await drv.common_read("queue_enable") == 1
    assert all(e.kind != QEVENT_RESET for e in env.be.qevents)
    env.check()


# =============================================================================== needs reset
@cocotb.test()
async def needs_reset_test(dut):
    """STS-02, STS-03: the back-end's needs_reset sets DEVICE_NEEDS_RESET (sticky, the driver's
    status writes keep it); after DRIVER_OK it is followed by a configuration-change notification
    (ISR bit 1); a device reset clears it."""
    env = TransportTB(dut)
    drv = await env.start()
    be = env.be
    await _isr_now(env)
    await be.needs_reset()
    s = await drv.get_status()
    assert s & Status.DEVICE_NEEDS_RESET, f"STS-02: status {s:#x}"
    assert s & 0x0F == 0x0F
    isr = await _isr_now(env)
    assert isr & 0x2, f"STS-03: no configuration-change notification (ISR {isr:#x})"
    await drv.set_status(0x0F)
    assert await drv.get_status() & Status.DEVICE_NEEDS_RESET, "driver cleared NEEDS_RESET"
    await drv.reset()
    assert await drv.get_status() == 0
    # before DRIVER_OK: bit set, no notification
    await drv.add_status(Status.ACKNOWLEDGE)
    await env.flush()
    await _isr_now(env)
    await be.needs_reset()
    assert await drv.get_status() == Status.ACKNOWLEDGE | Status.DEVICE_NEEDS_RESET
    assert await _isr_now(env) == 0, "configuration-change notification before DRIVER_OK"
    env.check()


# =============================================================================== ISR
@cocotb.test()
async def isr_test(dut):
    """ISR-03, ISR-04, ISR-05, ISR-D1, ISR-D2, DRV-13: with MSI-X disabled a queue interrupt
    sets bit 0 and a configuration change bit 1 (both: 0x3), PCI Status.Interrupt Status is their
    OR; a read returns and clears the ISR (a zero-length read does not); writes are ignored and
    bits 2-7 read 0; with MSI-X enabled queue interrupts leave the ISR alone, reads still clear."""
    env = TransportTB(dut)
    await env.start()
    be = env.be

    async def int_status():
        return (await env.cfg_read_dword(0x04)) >> (16 + 3) & 1

    assert await _isr_now(env) == 0
    assert await int_status() == 0
    be.irq(queue=0)
    await be.irq_idle()
    await env.cycles(4)
    assert await int_status() == 1, "ISR-04: Status.Interrupt Status not set"
    # zero-length read (BE 0) and reads not enabling byte 0 have no side effect
    await env.rd("isr", 0, fbe=0x0)
    await env.wr("isr", 0, 0xFF, fbe=0xF)            # ISR-D1: ignored
    await env.wr("isr", 0, 0x00, fbe=0x1)
    isr = await _isr_now(env)
    assert isr == 0x1, f"ISR-03/ISR-D1: ISR {isr:#x} after a queue interrupt"
    assert await _isr_now(env) == 0, "ISR-05: read did not clear"
    assert await int_status() == 0, "ISR-04: Interrupt Status after the clear"
    # both causes, one read
    be.irq(queue=NQ - 1)
    be.irq(config=True)
    await be.irq_idle()
    await env.cycles(4)
    full = await env.rd("isr", 0)
    assert full == 0x3, f"ISR-D2: ISR dword {full:#x}"
    assert await _isr_now(env) == 0
    # DRV-13 / MSI-X enabled: queue interrupts do not use the ISR, reads still clear
    await _set_msix_enable(env, True)
    be.irq(queue=0)
    await be.irq_idle()
    await env.cycles(4)
    assert await _isr_now(env) == 0, "ISR bit 0 set with MSI-X enabled"
    be.irq(config=True)
    await be.irq_idle()
    await env.cycles(4)
    assert await int_status() == 0, "Interrupt Status with MSI-X enabled"
    assert await _isr_now(env) == 0x2, "ISR-02: bit 1 with MSI-X enabled"
    assert await _isr_now(env) == 0
    await _set_msix_enable(env, False)
    env.check()


# =============================================================================== PCI-cfg window
async def _window_read(env, off, length):
    await env.pcc_setup(DESC.mem_bar["index"], off, length)
    return await env.pcc_read()


async def _window_write(env, off, length, value):
    await env.pcc_setup(DESC.mem_bar["index"], off, length)
    await env.pcc_write(value)


@cocotb.test()
async def pci_cfg_window_test(dut):
    """PCC-02, PCC-03, PCC-D1, ISR-05, DRV-14: through the PCI-cfg capability, lengths 1, 2 and
    4 read and write every structure (common fields, device config, ISR with its read-to-clear,
    doorbells that kick); the data lands in the first bytes of pci_cfg_data; bar, offset, length
    and data are writable, the other capability bytes are not."""
    env = TransportTB(dut)
    drv = await env.start()
    be = env.be
    c = REG["common"]["offset"]
    # reads of common config at every width
    ids = await drv.common_read("num_queues")
    assert await _window_read(env, c + 0x12, 2) == ids, "PCC-03: num_queues, length 2"
    assert await _window_read(env, c + 0x12, 1) == ids & 0xFF, "PCC-03: length 1"
    await drv.common_write("device_feature_select", 1)
    await env.flush()
    assert await _window_read(env, c + 0x04, 4) == (FEATURES >> 32) & 0xFFFF_FFFF, "length 4"
    assert await _window_read(env, c + 0x14, 1) == 0x0F, "device_status through the window"
    # writes: queue_select (2 bytes), device_feature_select (4), queue_msix_vector (2)
    await _window_write(env, c + 0x16, 2, NQ - 1)
    assert await drv.common_read("queue_select") == NQ - 1, "PCC-02: length 2 write"
    await _window_write(env, c + 0x00, 4, 0)
    assert await drv.common_read("device_feature_select") == 0, "PCC-02: length 4 write"
    await _window_write(env, c + 0x1A, 2, 0)
    assert await drv.common_read("queue_msix_vector") == 0, "PCC-02: vector write"
    await _window_write(env, c + 0x16, 1, 0)
    assert await drv.common_read("queue_select") == 0, "PCC-02: length 1 write"
    # device config
    dc = REG["device"]["offset"]
    contents = bytes(be.dcfg)
    for length in (1, 2, 4):
        for off in range(0, 8, length):
            want = int.from_bytes(contents[off:off + length], "little")
            assert await _window_read(env, dc + off, length) == want, f"device+{off} len {length}"
    # ISR: read through the window returns and clears
    be.irq(config=True)
    await be.irq_idle()
    await env.cycles(4)
    assert await _window_read(env, REG["isr"]["offset"], 1) == 0x2, "ISR through the window"
    assert await _isr_now(env) == 0, "ISR-05: window read did not clear the ISR"
    # doorbell through the window
    vq = drv.vqs[0]
    notify_off = vq.notify_addr - env.bar_addr
    if drv.negotiated(F.NOTIFICATION_DATA):
        await _window_write(env, notify_off, 4, (0x55 << 16) | 0)
        want = (0, (0x55 << 16), 1)
    else:
        ident = vq.notif_config_data if vq.notif_config_data is not None else 0
        await _window_write(env, notify_off, 2, ident)
        want = (0, ident, 0)
    await be.wait_doorbells(1)
    d = be.doorbells[0]
    assert (d.queue, d.value, d.wide) == want, f"PCC-02: doorbell {d}"
    # data register: byte enables and read-back; other cap bytes are read-only
    cap = env.pci_cfg_cap
    await env.pcc_setup(7, 0, 0)                       # invalid window: data is just storage
    await env.pcc_write(0x1122_3344)
    hdr = await env.cfg_read_dword(cap)
    await env.cfg_write_dword(cap, 0xFFFF_FFFF)
    assert await env.cfg_read_dword(cap) == hdr, "PCC-D1: cap header writable"
    w1 = await env.cfg_read_dword(cap + 4)
    assert w1 & 0xFF == 7, "PCC-D1: bar not writable"
    await env.cfg_write_dword(cap + 4, 0xFFFF_FF07)
    assert await env.cfg_read_dword(cap + 4) == w1, "PCC-D1: id/padding bytes writable"
    await env.cfg_write_dword(cap + 8, 0x1234_5678)
    await env.cfg_write_dword(cap + 12, 0x0000_0003)
    assert await env.cfg_read_dword(cap + 8) == 0x1234_5678
    assert await env.cfg_read_dword(cap + 12) == 3
    assert await env.pcc_read() == 0, "DRV-14: invalid window must read 0"
    env.check()


@cocotb.test()
async def pci_cfg_window_malformed_test(dut):
    """DRV-14, PCC-D1: a window with a length other than 1/2/4, an offset not a multiple of the
    length, a bar other than the structures' BAR, or a range outside every virtio structure reads
    0 and writes nothing (no register changes, no doorbell, no ISR clear)."""
    env = TransportTB(dut)
    drv = await env.start()
    be = env.be
    bar = DESC.mem_bar["index"]
    c = REG["common"]["offset"]
    # arm the ISR so that a wrong clear would show
    be.irq(config=True)
    await be.irq_idle()
    await drv.common_write("queue_select", 1 % NQ)
    await env.flush()
    qsel = 1 % NQ
    bad = [
        (bar, c + 0x16, 3), (bar, c + 0x16, 0), (bar, c + 0x16, 8), (bar, c + 0x16, 0x100),
        (bar, c + 0x17, 2), (bar, c + 0x15, 4), (bar, c + 0x16, 0xFFFF_FFFF),
        ((bar + 1) % 6, c + 0x16, 2), (6, c + 0x16, 2), (0xFF, c + 0x16, 2),
        (bar, c + REG["common"]["length"], 4),                 # past the common structure
        (bar, c + REG["common"]["length"] - 2, 4),             # straddles its end
        (bar, REG["msix_table"]["offset"], 4),                 # not a virtio structure
        (bar, REG["isr"]["offset"] + 4, 4),
        (bar, REG["isr"]["offset"], 2),                        # wider than the 1-byte ISR
        (bar, REG["isr"]["offset"], 4),
        (bar, REG["notify"]["offset"] + REG["notify"]["length"], 2),
        (bar, REG["device"]["offset"] + REG["device"]["length"], 4),
        (bar, 0xFFFF_FFFC, 4), (bar, DESC.mem_bar["size"], 4),
    ]
    for b, off, length in bad:
        await env.pcc_setup(b, off, length)
        assert await env.pcc_read() == 0, f"DRV-14: window bar {b} off {off:#x} len {length} read"
        await env.pcc_write(0)
    # ISR and notify windows with bad bar: no clear, no kick
    await env.pcc_setup((bar + 1) % 6, REG["isr"]["offset"], 1)
    assert await env.pcc_read() == 0
    await env.pcc_setup((bar + 1) % 6, drv.vqs[0].notify_addr - env.bar_addr, 2)
    await env.pcc_write(0)
    assert await drv.common_read("queue_select") == qsel, "DRV-14: a malformed window wrote"
    assert await drv.common_read("device_status") == 0x0F
    assert await _isr_now(env) == 0x2, "DRV-14: a malformed window cleared the ISR"
    await env.cycles(20)
    assert be.doorbells == [], f"DRV-14: a malformed window rang {be.doorbells}"
    env.check()


@cocotb.test()
async def irq_gating_test(dut):
    """STS-01, STS-05, VQR-01, ISR-03: used-buffer notifications requested by the back-end reach
    the driver (ISR bit 0, MSI-X disabled) only for an enabled queue after DRIVER_OK: requests
    before DRIVER_OK, for a disabled, missing or resetting queue, and after a device reset until
    re-initialisation are dropped; configuration notifications likewise need DRIVER_OK."""
    env = TransportTB(dut, auto_qreset=False)
    drv = await env.start(init=False)
    be = env.be

    async def fire(**kw):
        be.irq(**kw)
        await be.irq_idle()
        await env.cycles(4)
        return await _isr_now(env)

    await drv.reset()
    await drv.add_status(Status.ACKNOWLEDGE | Status.DRIVER)
    await drv.finalize_features()
    for q in range(NQ):
        await drv.setup_vq(q)
    for q in range(NQ - 1):
        await drv.enable_vq(q)
    await env.flush()
    assert await fire(queue=0) == 0, "STS-01: used-buffer notification before DRIVER_OK"
    assert await fire(config=True) == 0, "configuration notification before DRIVER_OK"
    await drv.add_status(Status.DRIVER_OK)
    await env.flush()
    assert await fire(queue=0) == 0x1, "ISR-03: notification for an enabled queue"
    assert await fire(queue=NQ - 1) == 0, "notification for a disabled queue"
    assert await fire(queue=NQ) == 0, "notification for a missing queue"
    assert await fire(queue=0xFFFF) == 0, "notification for queue 0xFFFF"
    assert await fire(config=True) == 0x2
    if drv.negotiated(F.RING_RESET):
        await drv.common_write("queue_select", 0)
        await drv.common_write("queue_reset", 1)
        await env.flush()
        assert await fire(queue=0) == 0, "VQR-01: notification for a queue being reset"
        be.complete_qreset(0)
        await env.cycles(10)
        assert await fire(queue=0) == 0, "VQR-01: notification for a reset queue"
    # STS-05: after a device reset nothing until DRIVER_OK again
    await drv.reset()
    await env.flush()
    for q in range(NQ):
        assert await fire(queue=q) == 0, f"STS-05: notification for queue {q} after reset"
    assert await fire(config=True) == 0, "STS-05: configuration notification after reset"
    env.check()


@cocotb.test()
async def doorbell_lanes_test(dut):
    """DRV-16, DRV-01, NTF-D1: doorbell writes of any width are decoded from their enabled byte
    lanes only: a one-byte write of the index with garbage in the other lanes kicks the right
    queue with the index as value; a 16-bit write in the upper half of a DW (multiplier 0: the
    shared doorbell) is taken from bytes 2-3."""
    env = TransportTB(dut)
    drv = await env.start(linux_filter=False)
    be = env.be
    q = NQ - 1
    vq = drv.vqs[q]
    ident = vq.notif_config_data if vq.notif_config_data is not None else q
    off = vq.notify_addr - env.addr("notify")
    expected = []
    await env.wr("notify", off, 0xA5A5_A500 | ident, fbe=0x1)
    expected.append((q, ident, 0))
    if MULT == 0:
        await env.wr("notify", 0, (ident << 16) | 0xA5A5, fbe=0xC)
        expected.append((q, ident, 0))
    await be.wait_doorbells(len(expected))
    await env.cycles(20)
    got = [(d.queue, d.value, d.wide) for d in be.doorbells]
    assert got == expected, f"DRV-16: doorbells {got} != {expected}"
    env.check()


@cocotb.test(skip="dcfg_req__valid" not in DESC.ports)
async def device_config_write_gate_test(dut):
    """DRV-12, DCF-03: with the external device-config back-end, driver writes to the device
    configuration before FEATURES_OK (forbidden to the driver) are dropped by the front-end and
    never reach the back-end, while reads are served; after FEATURES_OK writes are forwarded with
    their byte enables."""
    env = TransportTB(dut, dcfg_writable=True)
    drv = await env.start(init=False)
    be = env.be
    await drv.reset()
    await drv.add_status(Status.ACKNOWLEDGE | Status.DRIVER)
    before = bytes(be.dcfg)
    await drv.write(CfgType.DEVICE, 0, 4, 0xDEAD_BEEF)
    await drv.write(CfgType.DEVICE, 5, 1, 0x77)
    assert await drv.read(CfgType.DEVICE, 0, 4) == int.from_bytes(before[:4], "little")
    writes = [r for _, r in be.dcfg_requests if r["write"]]
    assert writes == [], f"DRV-12: device-config writes before FEATURES_OK reached the back-end: {writes}"
    assert bytes(be.dcfg) == before
    await drv.finalize_features()
    await drv.write(CfgType.DEVICE, 5, 1, 0x77)
    assert await drv.read(CfgType.DEVICE, 4, 4) >> 8 & 0xFF == 0x77
    writes = [r for _, r in be.dcfg_requests if r["write"]]
    assert [(w["addr"], w["be"]) for w in writes] == [(1, 0b0010)], writes
    env.check()


@cocotb.test()
async def flr_test(dut):
    """STS-D1, CC-07, MSX-07: after a Function Level Reset the virtio state is back to its reset
    values (status 0, features 0, vectors NO_VECTOR, queues disabled, ISR 0) without a driver
    reset handshake, the back-end sees its ``flr`` pulse, and the driver can initialise again."""
    env = TransportTB(dut)
    drv = await env.start(config_vector=0, vectors={q: 0 for q in range(NQ)})
    be = env.be
    flr_pulses = []

    async def watch():
        while True:
            await RisingEdge(dut.flr)
            flr_pulses.append(cocotb.utils.get_sim_time("ns"))

    cocotb.start_soon(watch())
    be.irq(config=True)
    await be.irq_idle()
    fields = DESC.raw["config_fields"]
    flr = fields["flr"]
    bar_lo = fields["mem_bar_lo"]["offset"]
    saved = [await env.cfg_read_dword(bar_lo), await env.cfg_read_dword(bar_lo + 4),
             await env.cfg_read_dword(0x04)]
    dword = flr["offset"] & ~3
    bit = 8 * (flr["offset"] & 3) + flr["lsb"]
    cur = await env.cfg_read_dword(dword)
    await env.cfg_write_dword(dword, cur | (1 << bit), fbe=1 << (flr["offset"] & 3))
    await env.cycles(20)
    assert len(flr_pulses) == 1, f"flr pulses {flr_pulses}"
    assert int(dut.driver_ok.value) == 0 and int(dut.driver_features.value) == 0
    assert int(dut.reset_req.value) == 0, "FLR must not wait for the virtio reset handshake"
    # restore the BAR and the command register (the OS does after an FLR)
    await env.cfg_write_dword(bar_lo, saved[0])
    await env.cfg_write_dword(bar_lo + 4, saved[1])
    await env.cfg_write_dword(0x04, saved[2] & 0xFFFF)
    assert await drv.get_status() == 0, "STS-D1: device_status after FLR"
    assert await drv.common_read("config_msix_vector") == NO_VECTOR
    for q in range(NQ):
        await drv.common_write("queue_select", q)
        assert await drv.common_read("queue_enable") == 0, f"CC-07 after FLR: queue {q}"
        assert await drv.common_read("queue_msix_vector") == NO_VECTOR, f"MSX-07 after FLR: {q}"
    assert await _isr_now(env) == 0, "ISR after FLR"
    n = len(be.resets)
    await drv.init()
    assert await drv.get_status() == 0x0F
    assert len(be.resets) == n + 1
    env.check()
