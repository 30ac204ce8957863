"""virtio-rng as a transitional device driven by the legacy driver model through I/O BAR0: the
request queue is placed by a page frame number (the legacy ring layout) and served before and
after DRIVER_OK as a legacy driver expects.  Run by tb/integration/test_rng.py."""
import cocotb

from tb.env.rng import RngTB
from tb.host.legacy_driver import LegacyVirtioDriver
from tb.host.virtio_driver import Status
from tb.host.virtqueue_driver import DriverVirtqueue, SplitQueue, legacy_layout
from tb.models.rng_model import lfsr_bytes


@cocotb.test()
async def rng_legacy_pfn_test(dut):
    """VQP-08, VQP-02, VQP-04: a legacy driver's queue (QUEUE_PFN: descriptors at PFN*4096, used
    ring on the next page boundary after the available ring) is served at the addresses that
    layout implies: buffers come back full of the entropy source's bytes, the ISR shows the
    queue interrupt (INTx, no MSI-X)."""
    tb = RngTB(dut)
    await tb.init()
    drv = LegacyVirtioDriver(tb)
    await drv.probe()
    await drv.reset()
    await drv.add_status(Status.ACKNOWLEDGE)
    await drv.add_status(Status.DRIVER)
    await drv.finalize_features()
    num = await drv.get_queue_size(0)
    base, mem = tb.rc.alloc_region(1 << 16)
    assert base % 4096 == 0
    # one page in: host memory starts at bus address 0 here, and PFN 0 means "no queue"
    sq = SplitQueue(mem, base, num, layout=legacy_layout, event_idx=drv.negotiated(29), start=4096)
    vq = await drv.setup_vq(0, pfn=sq.desc >> 12)
    assert (vq.desc, vq.driver, vq.device) == (sq.desc, sq.driver, sq.device)
    await drv.add_status(Status.DRIVER_OK)
    rq = DriverVirtqueue(drv, vq, sq)
    lens = [40, 3, 130]
    for n in lens:
        rq.add_inbuf(n)
    await rq.kick()
    got = await rq.wait_used(len(lens), tb=tb)
    assert [g[1] for g in got] == lens
    assert [g[2][0] for g in got] == lfsr_bytes(tb.width, lens)
    await tb.cycles(100)
    assert await drv.isr() & 1, "no queue interrupt in the ISR"
