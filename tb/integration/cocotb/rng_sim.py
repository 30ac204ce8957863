"""`make sim PARAMS=examples/virtio-rng.json`: the virtio-rng scenario.

The root complex enumerates the device, the Linux-like driver probes it (features, MSI-X, the
request queue in host memory, DRIVER_OK), posts device-writable buffers the way virtio_rng's
request_entropy does, kicks, takes the used buffers after the MSI-X interrupt and prints the
random bytes, the ring traffic (the device's memory requests) and the MSI-X writes.  The report
goes to ``VPCI_BRINGUP_OUT``.
"""
import os

import cocotb
from cocotb.utils import get_sim_time
from cocotbext.pcie.core.tlp import TlpType

from tb.env.interrupts import record_upstream
from tb.env.rng import RngTB
from tb.models.rng_model import lfsr_bytes


@cocotb.test()
async def rng_sim_test(dut):
    """VQP-02, VQP-04, VQP-06: the make-sim scenario: random bytes read through the request
    queue, checked against the entropy model, one MSI-X message per returned buffer."""
    tb = RngTB(dut)
    upstream = []

    def rec(tlp):
        if tlp.fmt_type not in (TlpType.CPL, TlpType.CPL_DATA):
            upstream.append((get_sim_time("ns"), tlp))
    record_upstream(tb, rec)
    rq = await tb.start(size=16)
    out = [f"virtio-rng: device ID {tb.desc.ids['device_id']:#06x}, features negotiated "
           f"{tb.drv.features:#x}, request queue of {rq.sq.size} at desc {rq.sq.desc:#x} "
           f"avail {rq.sq.driver:#x} used {rq.sq.device:#x}"]
    lens = [32, 64, 16, 48]
    got = []
    for n in lens:          # one buffer at a time, as hwrng reads do
        rq.add_inbuf(n)
        await rq.kick()
        got += await rq.wait_used(1, tb=tb, irq=True)
    await tb.cycles(100)
    exp = lfsr_bytes(tb.width, lens)
    for (uid, ulen, datas), e in zip(got, exp):
        out.append(f"  buffer id {uid}: used len {ulen}: {datas[0].hex()}")
        assert datas[0] == e, "random bytes differ from the entropy model"
    out.append(f"MSI-X messages on the queue's vector: {tb.irq_count()}")
    if tb.dma_model is not None:
        out.append("device memory requests (served by the testbench's requester stand-in: the "
                   "endpoint has no requester port yet, so these are not TLPs):")
        for t, kind, addr, n in tb.dma_model.log:
            out.append(f"  {t:10.0f} ns  {'MWr' if kind == 'W' else 'MRd'}  {addr:#010x}  {n} B")
    out.append("TLPs from the device to the root complex (memory writes and reads):")
    for t, tlp in upstream:
        kind = {TlpType.MEM_WRITE: "MWr", TlpType.MEM_WRITE_64: "MWr64", TlpType.MEM_READ: "MRd",
                TlpType.MEM_READ_64: "MRd64"}.get(tlp.fmt_type, str(tlp.fmt_type))
        data = tlp.get_data().hex() if kind.startswith("MWr") else ""
        out.append(f"  {t:10.0f} ns  {kind:5}  {tlp.address:#010x}  {tlp.length} DW  {data}")
    assert tb.irq_count() == len(lens)
    text = "\n".join(out) + "\n"
    path = os.environ.get("VPCI_BRINGUP_OUT")
    if path:
        with open(path, "w") as f:
            f.write(text)
    tb.log.info("\n%s", text)
