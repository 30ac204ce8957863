"""virtio-rng through the root complex (hdl/virtio_pci/devices/rng.py): the Linux-like driver
posts device-writable buffers in host memory, kicks, and reads back the random bytes; interrupt
suppression, queue reset with buffers outstanding, device reset, index wrap-around.  Run by
tb/integration/test_rng.py."""
import cocotb

from tb.env.rng import RngTB
from tb.models.rng_model import lfsr_bytes
from tb.host.virtio_driver import F
from tb.host.virtqueue_driver import SplitQueue


async def _read(tb, rq, lens, *, irq=True):
    for n in lens:
        rq.add_inbuf(n)
    await rq.kick()
    return await rq.wait_used(len(lens), tb=tb, irq=irq)


def _on_irq(tb, fn):
    async def cb():
        fn()
    tb.targets[1].cb.append(cb)


@cocotb.test()
async def rng_read_test(dut):
    """VQP-02, VQP-04, VQP-06, VQP-08: buffers of assorted sizes come back full of the entropy
    source's bytes (checked against the xorshift64 model), used len = buffer length, one MSI-X
    message per chain, each delivered when the used idx in host memory already announces it."""
    tb = RngTB(dut)
    rq = await tb.start(size=16, features=tb.desc.features() & ~(1 << F.RING_EVENT_IDX))
    seen = []
    _on_irq(tb, lambda: seen.append(rq.sq.used_idx))
    lens = [64, 1, 17, 32, 100, 7, 256, 48]
    got = await _read(tb, rq, lens)
    await tb.cycles(200)
    assert [g[1] for g in got] == lens
    assert [g[2][0] for g in got] == lfsr_bytes(tb.width, lens), \
        "buffer bytes differ from the entropy source's"
    assert tb.irq_count() == len(lens)
    assert seen == list(range(1, len(lens) + 1)), f"MSI-X ahead of its used idx: {seen}"
    tb.log.info("random bytes from the device: %s", got[0][2][0].hex())


@cocotb.test()
async def rng_no_interrupt_test(dut):
    """VQP-05: EVENT_IDX not negotiated: with VIRTQ_AVAIL_F_NO_INTERRUPT set no MSI-X message
    for three chains; cleared again, one per chain."""
    tb = RngTB(dut)
    rq = await tb.start(size=8, features=tb.desc.features() & ~(1 << F.RING_EVENT_IDX))
    assert not tb.drv.negotiated(F.RING_EVENT_IDX)
    rq.sq.no_interrupt(True)
    await _read(tb, rq, [16, 16, 16], irq=False)
    await tb.cycles(300)
    assert tb.irq_count() == 0
    rq.sq.no_interrupt(False)
    await _read(tb, rq, [16, 16])
    await tb.cycles(300)
    assert tb.irq_count() == 2


@cocotb.test()
async def rng_event_idx_test(dut):
    """VQP-05: EVENT_IDX negotiated: used_event = 2 gives exactly one MSI-X message for five
    chains; the device's avail_event follows its last_avail, so the driver's vring_need_event
    asks for the next kick."""
    tb = RngTB(dut)
    rq = await tb.start(size=8)
    assert tb.drv.negotiated(F.RING_EVENT_IDX)
    rq.sq.auto_used_event = False
    rq.sq.set_used_event(2)
    await _read(tb, rq, [8] * 5, irq=False)
    await tb.cycles(400)
    assert tb.irq_count() == 1 and rq.sq.avail_event == 5
    rq.sq.set_used_event(5)
    await _read(tb, rq, [8])
    assert rq.kicks == 2 and tb.irq_count() == 2


@cocotb.test()
async def rng_queue_reset_test(dut):
    """VQP-09: a queue reset (RING_RESET) with buffers outstanding: queue_reset reads 0 once the
    engine let go, the old used ring is not written after that, and the queue re-enabled with
    fresh rings works from index 0."""
    tb = RngTB(dut)
    rq = await tb.start(size=8)
    for n in [256] * 6:
        rq.add_inbuf(n)
    await rq.kick()
    await tb.cycles(80)
    await tb.drv.queue_reset(0)
    old = rq.sq
    old_used = bytes(old.rd(old.device, 6 + 8 * 8))
    assert old.used_idx < 6, "the reset came too late to leave buffers outstanding"
    base, mem = tb.rc.alloc_region(1 << 16)
    rq.sq = SplitQueue(mem, base, 8, event_idx=tb.drv.negotiated(F.RING_EVENT_IDX))
    await tb.drv.reenable_vq(rq.vq, desc=rq.sq.desc, driver=rq.sq.driver, device=rq.sq.device)
    got = await _read(tb, rq, [20, 20])
    await tb.cycles(300)
    assert [g[1] for g in got] == [20, 20] and rq.sq.used_idx == 2
    assert bytes(old.rd(old.device, 6 + 8 * 8)) == old_used, "old used ring written after reset"


@cocotb.test()
async def rng_device_reset_test(dut):
    """VQP-09: a device reset with buffers outstanding completes (status reads 0), the old rings
    are left alone, and the driver brings the device up again and reads random bytes."""
    tb = RngTB(dut)
    rq = await tb.start(size=8)
    for n in [256] * 6:
        rq.add_inbuf(n)
    await rq.kick()
    await tb.cycles(80)
    await tb.drv.reset()
    old = rq.sq
    snap = bytes(old.rd(old.device, 6 + 8 * 8))
    rq = await tb.start(size=8, init=False)
    got = await _read(tb, rq, [33])
    await tb.cycles(300)
    assert got[0][1] == 33 and bytes(old.rd(old.device, 6 + 8 * 8)) == snap


@cocotb.test()
async def rng_wrap_test(dut):
    """VQP-01: indices wrap past 65535: the queue starts at 65530 (the engine's qstart port, the
    vDPA set_vq_state hook) and 20 chains are returned across the wrap, in order, by a driver
    whose indices start there too."""
    tb = RngTB(dut)
    rq = await tb.start(size=8, first_idx=65530)
    # a restored queue's avail_event is where the device stopped (written by the device before
    # a migration); without it the driver's vring_need_event would not kick
    rq.sq.set_u16(rq.sq.device + 4 + 8 * 8, 65530)
    total = []
    for _ in range(5):
        total += await _read(tb, rq, [4] * 4)
    assert len(total) == 20 and rq.sq.used_idx == (65530 + 20) & 0xFFFF
    assert all(g[1] == 4 for g in total)


@cocotb.test()
async def rng_hostile_ring_test(dut):
    """VQP-07: a descriptor loop posted by a broken driver: the device sets DEVICE_NEEDS_RESET
    (with the configuration-change MSI-X message on vector 0), returns nothing, keeps answering
    the driver, and a device reset brings it back."""
    from tb.host.virtqueue_driver import DESC_F_NEXT, DESC_F_WRITE
    from tb.host.virtio_driver import Status
    tb = RngTB(dut)
    rq = await tb.start(size=8)
    sq = rq.sq
    a, b = sq.alloc.alloc(16), sq.alloc.alloc(16)
    sq.add_raw([(0, a, 16, DESC_F_WRITE | DESC_F_NEXT, 1), (1, b, 16, DESC_F_WRITE | DESC_F_NEXT, 0)])
    await rq.kick()
    for _ in range(100):
        if await tb.drv.get_status() & Status.DEVICE_NEEDS_RESET:
            break
        await tb.cycles(50)
    else:
        raise AssertionError("DEVICE_NEEDS_RESET never set")
    await tb.cycles(100)
    assert sq.used_idx == 0 and tb.irq_count(0) == 1 and tb.irq_count(1) == 0
    await tb.drv.reset()
    rq = await tb.start(size=8, init=False)
    got = await _read(tb, rq, [5])
    assert got[0][1] == 5


@cocotb.test()
async def rng_split_completions_backpressure_test(dut):
    """VQP-02, VQP-03, DMA-09: the root complex splits every completion at each 64-byte Read
    Completion Boundary while rx idles and tx stalls at random: chains through indirect tables
    (6 to 13 descriptors) and a direct chain, some with 200+ bytes of device-readable data ahead
    of the writable buffers (read across several boundaries, so in several completions), are
    walked exactly; every writable buffer comes back full of the entropy source's bytes in chain
    order, used len = the bytes written."""
    tb = RngTB(dut, rx_idle=0.3, tx_stall=0.3, seed=11)
    rq = await tb.start(size=32)
    tb.rc.split_on_all_rcb = True
    sq = rq.sq
    chains = [[8] * 6, [3, 70, 1, 5, 9, 16, 2], [16] * 12, [33], [1, 2, 3, 4, 5, 6, 7, 8, 9]]
    for k, lens in enumerate(chains):
        # device-readable data ahead of the writable buffers (read by the engine, dropped by
        # virtio-rng): reads of 200+ bytes that cross several 64-byte boundaries
        out = [bytes(range(256))[:200 + 13 * k]] if k % 2 == 0 else []
        sq.add(out=out, inp=lens, indirect=(k != 3))
    await rq.kick()
    got = await rq.wait_used(len(chains), tb=tb, irq=True)
    flat = [n for lens in chains for n in lens]
    expect = lfsr_bytes(tb.width, flat)
    assert [g[1] for g in got] == [sum(lens) for lens in chains], "used len is not the bytes written"
    bufs = [b for g in got for b in g[2]]
    assert bufs == expect, "buffer bytes differ from the entropy source's"
    # the walk really read across Read Completion Boundaries (so the completions were split)
    crossing = 0
    for _, dws in tb.bridge.requests:
        if (dws[0] >> 24) & 0xDF != 0x00:          # MRd32 / MRd64 only
            continue
        n = (dws[0] & 0x3FF) or 1024
        addr = ((dws[2] << 32) | dws[3]) if dws[0] >> 29 & 1 else dws[2]
        addr &= ~3
        crossing += (addr // 64) != ((addr + 4 * n - 1) // 64)
    assert crossing >= 3, f"only {crossing} reads crossed a 64-byte boundary"
