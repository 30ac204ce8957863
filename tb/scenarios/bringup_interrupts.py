"""The interrupt part of `make sim` (called by tb/integration/cocotb/bringup_test.py after the driver scenario
of tb/scenarios/bringup_modern.py has taken the device to DRIVER_OK).

As Linux's vp_find_vqs does: MSI-X enabled with the Function Mask set, one table entry per queue
plus one for configuration changes (two shared entries when the table is smaller), targets from
the root complex's MSI region (32-bit addresses: 3-DW writes) and, for every other queue, from a
second MSI region above 4 GiB (64-bit: 4-DW writes); then every queue's interrupt and a
configuration change are requested on the back-end's ``irq`` port, one vector is masked to show
its pending bit, and finally MSI-X is disabled to show the INTx path (Assert_INTA, ISR read,
Deassert_INTA).  Each step waits for the message to arrive at the root complex and fails if it
does not.  Returns printable lines.
"""
from cocotb.triggers import RisingEdge, with_timeout
from cocotb.utils import get_sim_time
from cocotbext.pcie.core.tlp import TlpType

from tb.env.fabric import CLK_PERIOD_NS
from tb.env.interrupts import ASSERT_INTA, DEASSERT_INTA, record_upstream
from tb.host.msix import MsixHost
from tb.models.virtio_backend import pack_fields
from tb.host.virtio_driver import CfgType, Status, VirtioPciDriver

__all__ = ["run_interrupt_scenario"]

TIMEOUT_NS = 2000 * CLK_PERIOD_NS


async def _request(tb, *, queue=0, config=False):
    """One request on the back-end's ``irq`` stream (the back-end model's, when the driver
    scenario left it on ``tb.backend``; else driven here: that stream is otherwise idle)."""
    be = getattr(tb, "backend", None)
    if be is not None:
        be.irq(queue=queue, config=config)
        await be.irq_idle()
        return get_sim_time("ns")
    d = tb.dut
    await RisingEdge(d.clk)
    d.irq__payload.value = pack_fields({"queue": queue, "config": int(config)},
                                       tb.desc.ports["irq__payload"]["fields"])
    d.irq__valid.value = 1
    while True:
        await RisingEdge(d.clk)
        if d.irq__ready.value:
            break
    d.irq__valid.value = 0
    return get_sim_time("ns")


async def run_interrupt_scenario(tb):
    lines = ["", "interrupts:"]
    writes = []

    def on_upstream(tlp):
        if tlp.fmt_type in (TlpType.MEM_WRITE, TlpType.MEM_WRITE_64):
            writes.append((get_sim_time("ns"), tlp))
    record_upstream(tb, on_upstream)

    drv = VirtioPciDriver(tb)
    await drv.probe()
    if not await drv.get_status() & Status.DRIVER_OK:
        await drv.init()
    nq = await drv.get_num_queues()
    mx = MsixHost(tb)
    table = ((await mx.control()) & 0x7FF) + 1
    per_queue = table >= nq + 1
    nvec = nq + 1 if per_queue else 2
    # pci_alloc_irq_vectors + request_irq
    await mx.set_control(enable=True, fmask=True)
    targets = [mx.alloc(1, wide=(v % 2 == 0 and v > 0))[0] for v in range(nvec)]
    await mx.program(targets, masked=True)
    await mx.set_control(fmask=False)
    for v in range(nvec):
        await mx.mask(v, False)
    assert await drv.config_vector(0) == 0
    qvec = {}
    for q in range(nq):
        qvec[q] = 1 + q if per_queue else 1
        assert await drv.queue_vector(q, qvec[q]) == qvec[q]
    lines.append(f"  MSI-X table size {table}: {'one vector per queue' if per_queue else 'two shared vectors'}"
                 f" (Linux vp_find_vqs); entry: address / data")
    for v, t in enumerate(targets):
        users = [str(q) for q in range(nq) if qvec[q] == v]
        use = "configuration" if v == 0 else ("queue " if len(users) == 1 else "queues ") + ",".join(users)
        lines.append(f"    entry {v}: {t.addr:#018x} / {t.data:#06x}  ({use})")

    async def expect(target, request):
        n = len(writes)
        target.event.clear()
        t_req = await request()
        await with_timeout(target.event.wait(), TIMEOUT_NS, "ns")
        t_arr, tlp = writes[n]
        fmt = "MWr64 (4-DW header)" if tlp.fmt_type == TlpType.MEM_WRITE_64 else "MWr (3-DW header)"
        assert tlp.address == target.addr, f"MSI-X write to {tlp.address:#x}, expected {target.addr:#x}"
        data = int.from_bytes(tlp.get_data()[:4], "little")
        cycles = round((t_arr - t_req) / CLK_PERIOD_NS)
        return f"{fmt} to {tlp.address:#x} data {data:#06x}, last beat on tx {cycles} cycles " \
               f"after the request"

    lines.append("  (cycles include the bridge's random tx back-pressure)")
    await drv.common_read("device_status")          # the vector writes have arrived
    for q in range(nq):
        text = await expect(targets[qvec[q]], lambda q=q: _request(tb, queue=q))
        lines.append(f"  queue {q} interrupt -> entry {qvec[q]}: {text}")
    text = await expect(targets[0], lambda: _request(tb, config=True))
    lines.append(f"  configuration change -> entry 0: {text}")
    # a masked vector: pending bit, sent on unmask
    v = qvec[0]
    await mx.mask(v, True)
    await drv.common_read("device_status")
    n = len(writes)
    await _request(tb, queue=0)
    pba = await mx.pba()
    assert pba >> v & 1 and len(writes) == n, f"masked entry {v}: PBA {pba:#x}, writes {writes[n:]}"
    targets[v].event.clear()
    await mx.mask(v, False)
    await with_timeout(targets[v].event.wait(), TIMEOUT_NS, "ns")
    lines.append(f"  entry {v} masked: queue 0 interrupt held, PBA {pba:#x}; unmasked: sent "
                 f"({len(writes) - n} write), PBA {await mx.pba():#x}")
    # INTx (the ISR still holds bit 1 of the configuration change: read it first, or disabling
    # MSI-X would assert INTx for it at once)
    await drv.read(CfgType.ISR, 0, 1)
    await mx.set_control(enable=False)
    await drv.common_read("device_status")
    msgs = tb.bridge.messages
    n = len(msgs)

    async def messages(k):
        for _ in range(TIMEOUT_NS // (10 * CLK_PERIOD_NS)):
            if len(msgs) >= k:
                return msgs
            await tb.cycles(10)
        raise AssertionError(f"{len(msgs) - n} INTx messages, expected {k - n}")
    await _request(tb, queue=0)
    dws = (await messages(n + 1))[n]
    assert dws[1] & 0xFF == ASSERT_INTA, f"expected Assert_INTA, got {[hex(d) for d in dws]}"
    status = await drv.cfg_read(0x06, 2, "status")
    isr = await drv.read(CfgType.ISR, 0, 1)
    dws = (await messages(n + 2))[n + 1]
    assert dws[1] & 0xFF == DEASSERT_INTA, f"expected Deassert_INTA, got {[hex(d) for d in dws]}"
    assert isr == 1 and status >> 3 & 1, f"ISR {isr:#x}, Status {status:#06x}"
    lines.append(f"  MSI-X disabled: queue 0 interrupt -> Assert_INTA (Status.Interrupt Status "
                 f"{status >> 3 & 1}); ISR read {isr:#x} -> Deassert_INTA")
    await mx.set_control(enable=True)
    return lines
