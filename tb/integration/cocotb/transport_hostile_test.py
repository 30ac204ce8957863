"""A hostile driver against the common configuration structure: every access width and
byte-enable pattern (contiguous or not, zero-length), garbage in disabled byte lanes, multi-DW
reads and writes, read-only fields, out-of-range selects, illegal sizes, forbidden values; each
access is checked against the Python reference model (tb/models/virtio_model.py).
"""
import random

import cocotb

from tb.env.fabric import load_desc
from tb.env.testbench import TransportTB
from tb.env.regions import common_dw
from tb.host.virtio_driver import F, NO_VECTOR, Status
from tb.models.virtio_model import CommonCfgModel

DESC = load_desc()
P = DESC.params
FEATURES = DESC.features()
NQ = P["num_queues"]
QMAX = P["queue_max_size"]
NVEC = P["msix_vectors"]
SPAN_DW = DESC.regions["common"]["span"] // 4


def _bytemask(be):
    return sum(0xFF << (8 * i) for i in range(4) if be >> i & 1)


class Checker:
    """Runs accesses on the RTL (raw path) and on the model, and compares."""

    def __init__(self, env, rng):
        self.env = env
        self.rng = rng
        self.model = CommonCfgModel.from_params(P)
        self.expected_qevents = []
        self.reads = 0
        self.writes = 0

    async def read(self, dw, be=0xF):
        got = await self.env.rd("common", 4 * dw, fbe=be)
        want = self.model.read(dw, be)
        m = _bytemask(be)
        assert got & m == want & m, \
            f"read DW {dw} ({4 * dw:#x}) BE {be:#06b}: RTL {got:#010x}, model {want:#010x}"
        self.reads += 1
        return got

    async def read_n(self, dw, n, fbe=0xF, lbe=0xF):
        got = await self.env.rd_n("common", 4 * dw, n, fbe=fbe, lbe=lbe if n > 1 else 0)
        for i in range(n):
            be = fbe if i == 0 else (lbe if i == n - 1 else 0xF)
            want = self.model.read(dw + i, be)
            m = _bytemask(be)
            assert got[i] & m == want & m, \
                f"{n}-DW read at DW {dw}: DW {dw + i}: RTL {got[i]:#010x}, model {want:#010x}"
        self.reads += 1
        return got

    async def write(self, dw, data, be=0xF, garbage=True):
        if garbage:
            data ^= self.rng.getrandbits(32) & ~_bytemask(be)
        await self.env.wr("common", 4 * dw, data, fbe=be)
        await self._apply(self.model.write(dw, be, data))
        self.writes += 1

    async def write_n(self, dw, data, fbe=0xF, lbe=0xF):
        n = len(data)
        await self.env.wr_n("common", 4 * dw, data, fbe=fbe, lbe=lbe if n > 1 else 0)
        events = []
        for i, d in enumerate(data):
            be = fbe if i == 0 else (lbe if i == n - 1 else 0xF)
            events += self.model.write(dw + i, be, d)
        await self._apply(events)
        self.writes += 1

    async def _apply(self, events):
        be = self.env.be
        for ev in events:
            if ev[0] == "reset":
                await be.wait_reset(len(be.resets) + 1)
                await self.env.cycles(4)
                self.model.reset_done()
            elif ev[0] == "enable":
                self.expected_qevents.append((ev[1], 0))
            elif ev[0] == "qreset":
                self.expected_qevents.append((ev[1], 1))
                n = len(be.qresets_done) + 1
                while len(be.qresets_done) < n:
                    await self.env.cycles(8)
                await be.qreset_src.idle.wait()
                await self.env.cycles(4)
                self.model.qreset_done(ev[1])

    def check_backend(self):
        got = [(e.queue, e.kind) for e in self.env.be.qevents]
        assert got == self.expected_qevents, f"queue events {got} != {self.expected_qevents}"
        dut = self.env.dut
        assert int(dut.driver_features.value) == self.model.negotiated
        assert int(dut.device_status.value) == self.model.status


def _value_for(rng, dw):
    """A write value for DW ``dw`` that is meaningful often and random sometimes."""
    r = rng.random()
    if r < 0.15:
        return rng.getrandbits(32)
    if dw in (0, 2):
        return rng.choice([0, 1, 2, 3, 4, 0x10, 0xFFFF_FFFF, 0x8000_0000])
    if dw == 3:
        return rng.choice([(FEATURES >> (32 * rng.randrange(4))) & 0xFFFF_FFFF, 0, 0xFFFF_FFFF,
                           1 << rng.randrange(32)])
    if dw == 4:
        return rng.choice(list(range(NVEC + 2)) + [NO_VECTOR, 0x7FF, 0x800]) | rng.getrandbits(16) << 16
    if dw == 5:
        status = rng.choice([0x01, 0x03, 0x0B, 0x0F, 0x8F, 0x07, 0x02, 0x40, 0xFF, 0x08])
        if rng.random() < 0.05:
            status = 0
        qsel = rng.randrange(NQ) if rng.random() < 0.7 else rng.choice([NQ, NQ + 1, 0xFFFF, 0x8000])
        return status | rng.getrandbits(8) << 8 | qsel << 16
    if dw == 6:
        size = rng.choice([1, 2, 4, QMAX // 2, QMAX, QMAX * 2, 0, 3, 6, QMAX - 1, 0xFFFF, 0x8000])
        vec = rng.choice(list(range(NVEC + 1)) + [NO_VECTOR, 0xFFFE])
        return size | vec << 16
    if dw == 7:
        return rng.choice([0, 1, 1, 1, 2, 0x101, 0xFFFF, 0x100]) | rng.getrandbits(16) << 16
    if dw == 14:
        return rng.getrandbits(16) | rng.choice([0, 1, 1, 1, 2, 0x101, 0xFFFF]) << 16
    return rng.getrandbits(32)


def _contig(rng, first):
    """A contiguous byte-enable pattern ending at byte 3 (first DW) or starting at byte 0."""
    k = rng.randrange(1, 5)
    return ((0xF << (4 - k)) & 0xF) if first else (0xF >> (4 - k))


@cocotb.test()
async def hostile_random_test(dut):
    """DRV-01, DRV-03, DRV-04, DRV-07, DRV-10, DRV-22, LAY-01, LAY-D1, CC-13: 2000 random accesses
    to the common configuration (every DW and beyond, every byte-enable pattern including
    non-contiguous and zero-length ones, garbage in disabled lanes, multi-DW reads and writes,
    resets, feature negotiation, queue enables and resets, config changes, needs_reset) agree with
    the reference model, and the back-end sees exactly the model's queue events."""
    env = TransportTB(dut, qreset_delay=3)
    await env.start(init=False)
    rng = random.Random(cocotb.RANDOM_SEED ^ 0x5EED)
    ck = Checker(env, rng)
    dws = list(range(16)) + [16, 17, 31, SPAN_DW - 1]
    for i in range(2000):
        r = rng.random()
        dw = rng.choice(dws)
        if r < 0.33:
            await ck.read(dw, rng.randrange(16))
        elif r < 0.70:
            dw = rng.choice(list(range(16)) + [5, 5, 6, 6, 7, 14, 16, SPAN_DW - 1])
            be = rng.randrange(16) if rng.random() < 0.6 else 0xF
            await ck.write(dw, _value_for(rng, dw), be)
        elif r < 0.78:
            n = rng.choice([2, 3, 4, 16])
            start = 0 if n == 16 else rng.randrange(0, 16 - n + 1)
            await ck.read_n(start, n, fbe=_contig(rng, True), lbe=_contig(rng, False))
        elif r < 0.86:
            n = rng.choice([2, 3])
            start = rng.randrange(0, 16 - n + 1)
            data = [_value_for(rng, start + k) for k in range(n)]
            # a multi-DW write must not reset the device half-way through the TLP
            if start <= 5 < start + n and data[5 - start] & 0xFF == 0:
                data[5 - start] |= 0x01
            await ck.write_n(start, data, fbe=_contig(rng, True), lbe=_contig(rng, False))
        elif r < 0.90:
            v = rng.getrandbits(32)
            await env.be.dcfg_write(rng.randrange(P["device_cfg_size"] // 4), v)
            ck.model.config_changed()
        elif r < 0.92:
            await env.be.needs_reset()
            ck.model.needs_reset()
        elif r < 0.95:
            # a well-formed negotiation now and then, so that enables and queue resets happen
            await ck.write(5, 0x03 | ck.model.qsel << 16, 0x1)
            for sel in range(4):
                await ck.write(2, sel)
                await ck.write(3, (FEATURES >> (32 * sel)) & 0xFFFF_FFFF)
            await ck.write(5, 0x0B, 0x1)
        elif r < 0.96:
            await ck.write(5, 0x00, 0x1)                     # device reset
        else:
            # a well-formed queue set-up and enable, or a queue reset, of a random queue
            q = rng.randrange(NQ)
            await ck.write(5, q << 16, 0b1100)
            if rng.random() < 0.5:
                await ck.write(6, rng.choice([1, QMAX // 2, QMAX]), 0b0011)
                await ck.write_n(8, [rng.getrandbits(32) for _ in range(6)])
                await ck.write(7, 1, 0b0011)
            else:
                await ck.write(14, 1 << 16, 0b1100)
        if i % 50 == 49:
            await env.cycles(10)
            ck.check_backend()
    await env.cycles(10)
    ck.check_backend()
    enables = sum(1 for _, k in ck.expected_qevents if k == 0)
    qresets = len(ck.expected_qevents) - enables
    env.log.info("hostile: %d reads, %d writes, %d enables, %d queue resets, %d device resets",
                 ck.reads, ck.writes, enables, qresets, len(env.be.resets))
    # the sequence must have exercised the state machine, not only bounced off it
    assert enables >= 5 and len(env.be.resets) >= 3, "random sequence too tame"
    if DESC.offers(F.RING_RESET):
        assert qresets >= 1, "random sequence made no queue reset"
    env.check()


@cocotb.test()
async def read_only_fields_test(dut):
    """DRV-03: writes to device_feature, num_queues, config_generation, queue_notify_off,
    queue_notif_config_data and the admin fields (all widths, all values) change nothing."""
    env = TransportTB(dut)
    drv = await env.start()
    rng = random.Random(cocotb.RANDOM_SEED)
    names = ["device_feature", "num_queues", "config_generation", "queue_notify_off",
             "queue_notif_config_data", "admin_queue_index", "admin_queue_num"]
    for q in range(NQ):
        await drv.common_write("queue_select", q)
        before = {n: await drv.common_read(n) for n in names}
        for n in names:
            dw, lane, size = common_dw(n)
            for v in (0, 0xFFFF_FFFF, rng.getrandbits(32)):
                await env.wr("common", 4 * dw, v, fbe=((1 << size) - 1) << lane)
            await drv.mem_write(drv.maps[1].addr + 4 * dw + lane, size, (1 << (8 * size)) - 1)
        after = {n: await drv.common_read(n) for n in names}
        assert after == before, f"DRV-03: queue {q}: {before} -> {after}"
    assert await drv.get_status() == 0x0F
    env.check()


@cocotb.test()
async def illegal_queue_size_test(dut):
    """DRV-04, CC-14: queue_size keeps its value for 0, non-powers of two and values above the
    maximum (split rings), for every width of the write; legal smaller values are taken."""
    env = TransportTB(dut)
    drv = await env.start(init=False)
    await drv.reset()
    await drv.add_status(Status.ACKNOWLEDGE | Status.DRIVER)
    await drv.finalize_features()
    packed = drv.negotiated(F.RING_PACKED)
    await drv.common_write("queue_select", 0)
    for bad in (0, 3, 6, QMAX - 1, QMAX + 1, QMAX * 2, 0x8000, 0xFFFF, 0x8001):
        if packed and 0 < bad <= QMAX:
            continue
        await drv.common_write("queue_size", bad)
        got = await drv.common_read("queue_size")
        assert got == QMAX, f"DRV-04: size {bad:#x} written, reads {got:#x}"
        # byte-wise: low byte 0 (size 0x??00 -> 0 when upper is 0)
        await drv.mem_write(drv.maps[1].addr + 0x18, 1, bad & 0xFF)
        got2 = await drv.common_read("queue_size")
        merged = (QMAX & 0xFF00) | (bad & 0xFF)
        legal = merged and merged <= QMAX and not merged & (merged - 1)
        assert got2 == (merged if legal else QMAX), f"DRV-04: byte write {bad & 0xFF:#x}: {got2:#x}"
        await drv.common_write("queue_size", QMAX)
    s = QMAX
    while s >= 1:
        await drv.common_write("queue_size", s)
        assert await drv.common_read("queue_size") == s, f"legal size {s}"
        s //= 2
    env.check()


@cocotb.test()
async def queue_enable_zero_test(dut):
    """DRV-07, DRV-05: writing 0 (or anything but 1) to queue_enable is ignored: an enabled queue
    stays enabled and keeps working, a disabled one stays disabled; no queue event, no
    DEVICE_NEEDS_RESET."""
    env = TransportTB(dut)
    drv = await env.start()
    be = env.be
    n_ev = len(be.qevents)
    for q in range(NQ):
        await drv.common_write("queue_select", q)
        for v in (0, 2, 0x100, 0xFFFF, 0x8001):
            await drv.common_write("queue_enable", v)
        assert await drv.common_read("queue_enable") == 1, f"DRV-07: queue {q} disabled"
    await env.flush()
    assert len(be.qevents) == n_ev
    assert await drv.get_status() == 0x0F
    for vq in drv.vqs.values():
        await drv.kick(vq, 1)
    await env.flush()
    await be.wait_doorbells(NQ)
    # a second enable of an enabled queue is not a new event either
    await drv.enable_vq(0)
    await env.flush()
    await env.cycles(10)
    assert len(be.qevents) == n_ev, "enable of an enabled queue sent an event"
    env.check()


@cocotb.test()
async def queue_select_range_test(dut):
    """CC-13, DRV-22, DRV-09: selects num_queues .. 0xFFFF read queue_size 0, queue_enable 0,
    queue_msix_vector NO_VECTOR, notify_off 0, addresses 0, and ignore every write (enable
    included: no queue event); the select itself reads back; no admin queues exist."""
    env = TransportTB(dut)
    drv = await env.start(init=False)
    await drv.reset()
    await drv.add_status(Status.ACKNOWLEDGE | Status.DRIVER)
    await drv.finalize_features()
    assert await drv.common_read("admin_queue_num") == 0
    for sel in sorted({NQ, NQ + 1, 2 * NQ, 0x7FFF, 0x8000, 0xFFFE, 0xFFFF, 1 << (NQ - 1).bit_length()}):
        if sel < NQ:
            continue
        await drv.common_write("queue_select", sel)
        assert await drv.common_read("queue_select") == sel
        await drv.common_write("queue_size", 1)
        await drv.common_write("queue_msix_vector", 0)
        await drv.write64("queue_desc_lo", 0x1234_5678_9ABC_DEF0)
        await drv.common_write("queue_enable", 1)
        got = {n: await drv.common_read(n) for n in ("queue_size", "queue_enable",
                                                      "queue_msix_vector", "queue_notify_off",
                                                      "queue_desc_lo", "queue_desc_hi",
                                                      "queue_reset")}
        want = {"queue_size": 0, "queue_enable": 0, "queue_msix_vector": NO_VECTOR,
                "queue_notify_off": 0, "queue_desc_lo": 0, "queue_desc_hi": 0, "queue_reset": 0}
        assert got == want, f"CC-13/DRV-22: select {sel:#x}: {got}"
    await env.flush()
    assert env.be.qevents == [], f"DRV-22: enable of a missing queue: {env.be.qevents}"
    # the real queues are untouched (aliasing of high selects onto low queues)
    for q in range(NQ):
        await drv.common_write("queue_select", q)
        assert await drv.common_read("queue_size") == QMAX
        assert await drv.common_read("queue_desc_lo") == 0
        assert await drv.common_read("queue_msix_vector") == NO_VECTOR
    env.check()


@cocotb.test()
async def status_bits_test(dut):
    """DRV-10, CC-D5: status writes that clear bits or set FAILED are taken as written (no partial
    reset); FEATURES_OK and DEVICE_NEEDS_RESET cannot be cleared that way; only 0 resets."""
    env = TransportTB(dut)
    drv = await env.start()
    be = env.be
    resets = len(be.resets)
    await drv.set_status(0x0B)                       # clear DRIVER_OK
    assert await drv.get_status() == 0x0B
    await drv.set_status(0x01)                       # clear DRIVER and FEATURES_OK
    assert await drv.get_status() == 0x09, "FEATURES_OK cleared without reset"
    await drv.set_status(0x80 | 0x0F)                # FAILED
    assert await drv.get_status() == 0x8F
    await drv.set_status(0x70)                       # reserved bits and NEEDS_RESET from the driver
    s = await drv.get_status()
    assert s & 0x30 == 0 and not s & Status.DEVICE_NEEDS_RESET, f"status {s:#x}"
    await env.flush()
    assert len(be.resets) == resets, "a non-zero status write reset the device"
    assert int(dut.features_ok.value) == 1
    await drv.reset()
    assert await drv.get_status() == 0
    env.check()


@cocotb.test()
async def byte_lanes_test(dut):
    """LAY-D1, DRV-01, LAY-01: every field is little-endian: byte and half-word writes and reads
    at every lane of queue_desc, selects and vectors land in the right bytes; a field spanning
    two DWs (queue_desc) takes one 8-byte write and one 2-DW read; a write spanning two fields
    (queue_size + queue_msix_vector in one DW) applies per field."""
    env = TransportTB(dut)
    drv = await env.start(init=False)
    await drv.reset()
    await drv.add_status(Status.ACKNOWLEDGE | Status.DRIVER)
    await drv.finalize_features()
    await drv.common_write("queue_select", 0)
    base = drv.maps[1].addr
    for i, b in enumerate((0x44, 0x33, 0x22, 0x11)):
        await drv.mem_write(base + 0x20 + i, 1, b)
    assert await drv.common_read("queue_desc_lo") == 0x1122_3344
    for i, b in enumerate((0x44, 0x33, 0x22, 0x11)):
        assert await drv.mem_read(base + 0x20 + i, 1) == b
    assert await drv.mem_read(base + 0x22, 2) == 0x1122
    await drv.mem_write(base + 0x26, 2, 0xBEEF)
    assert await drv.common_read("queue_desc_hi") == 0xBEEF_0000
    assert await drv.mem_read(base + 0x20, 8) == 0xBEEF_0000_1122_3344
    await drv.mem_write(base + 0x28, 8, 0x0102_0304_0506_0708)
    assert await drv.common_read("queue_driver_lo") == 0x0506_0708
    assert await drv.common_read("queue_driver_hi") == 0x0102_0304
    # queue_size and queue_msix_vector in one 32-bit write
    vec = NVEC - 1
    await drv.mem_write(base + 0x18, 4, (vec << 16) | (QMAX // 2))
    assert await drv.common_read("queue_size") == QMAX // 2
    assert await drv.common_read("queue_msix_vector") == vec
    # a 32-bit write with an illegal size and a legal vector: only the vector is taken
    await drv.mem_write(base + 0x18, 4, (0 << 16) | 3)
    assert await drv.common_read("queue_size") == QMAX // 2
    assert await drv.common_read("queue_msix_vector") == 0
    # selects: byte writes to the upper bytes of a 32-bit select
    await drv.common_write("device_feature_select", 0)
    await drv.mem_write(base + 0x03, 1, 0x80)
    assert await drv.common_read("device_feature_select") == 0x8000_0000
    assert await drv.common_read("device_feature") == 0
    await drv.mem_write(base + 0x03, 1, 0x00)
    await drv.mem_write(base + 0x00, 1, 0x01)
    assert await drv.common_read("device_feature") == (FEATURES >> 32) & 0xFFFF_FFFF
    env.check()


@cocotb.test()
async def garbage_lanes_test(dut):
    """DRV-01: the bytes of disabled lanes of a write are never used: one-byte writes of 1 to
    queue_enable and queue_reset with garbage in the neighbouring lanes enable / reset the queue,
    and a one-byte status write with garbage around it sets the status."""
    env = TransportTB(dut)
    drv = await env.start(init=False)
    be = env.be
    await drv.reset()
    await env.flush()
    await env.wr("common", 0x14, 0xFFFF_FF01, fbe=0x1)      # status = ACK, garbage elsewhere
    assert await drv.get_status() == 0x01
    assert await drv.common_read("queue_select") == 0, "status write changed queue_select"
    await drv.add_status(Status.DRIVER)
    await drv.finalize_features(linux_filter=False)
    await drv.setup_vq(0)
    await env.flush()
    await env.wr("common", 0x1C, 0xA5A5_A501, fbe=0x1)      # queue_enable low byte = 1
    assert await drv.common_read("queue_enable") == 1, "DRV-01: one-byte enable with garbage lanes"
    await env.flush()
    await be.wait_qevents(1)
    if drv.negotiated(F.RING_RESET):
        await env.wr("common", 0x38, 0x5A01_A5A5, fbe=0x4)  # queue_reset low byte = 1
        await env.flush()
        await be.wait_qevents(2)
        assert be.qevents[1].kind == 1, "DRV-01: one-byte queue_reset with garbage lanes"
    env.check()
