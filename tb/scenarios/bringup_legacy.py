"""The legacy-driver part of `make sim` for a transitional device (called by
tb/integration/cocotb/bringup_test.py after enumeration, instead of tb/scenarios/bringup_modern.py and
tb/scenarios/bringup_interrupts.py, when the build is transitional or VPCI_BRINGUP_DRIVER=legacy).

The Linux-like legacy driver (tb/host/legacy_driver.py) probes the device through I/O BAR0, resets it,
negotiates the 32 legacy feature bits, enables MSI-X and sets up every queue with its PFN and
vector through the legacy header (which grows to 24 bytes), reads the device configuration byte
by byte, goes to DRIVER_OK, rings every doorbell; the back-end then requests every queue's
interrupt and a configuration change (MSI-X writes), MSI-X is disabled to show the INTx path
(Assert_INTA, the ISR read-clear at byte 19, Deassert_INTA), and the last queue is deleted
(QUEUE_PFN 0: a queue reset on the back-end port).  Returns the printable lines: the transcript
(time, space, direction, address, legacy register, value) and the back-end's view.
"""
from cocotb.triggers import with_timeout
from cocotb.utils import get_sim_time
from cocotbext.pcie.core.tlp import TlpType

from tb.scenarios.bringup_modern import backend_lines
from tb.env.fabric import CLK_PERIOD_NS
from tb.env.interrupts import ASSERT_INTA, DEASSERT_INTA, record_upstream
from tb.host.msix import MsixHost
from tb.host.legacy_driver import LegacyVirtioDriver
from tb.env.legacy import legacy_find_vqs
from tb.models.virtio_backend import VirtioBackend
from tb.host.virtio_driver import Status

__all__ = ["run_legacy_scenario"]

TIMEOUT_NS = 2000 * CLK_PERIOD_NS


async def _wait(cond, tb, what):
    for _ in range(TIMEOUT_NS // (10 * CLK_PERIOD_NS)):
        if cond():
            return
        await tb.cycles(10)
    raise AssertionError(f"bring-up: {what} did not arrive")


async def run_legacy_scenario(tb):
    be = VirtioBackend(tb.dut, tb.desc)
    drv = LegacyVirtioDriver(tb)
    tb.drv, tb.msix, tb.be = drv, MsixHost(tb), be
    writes = []

    def on_upstream(tlp):
        if tlp.fmt_type in (TlpType.MEM_WRITE, TlpType.MEM_WRITE_64):
            writes.append((get_sim_time("ns"), tlp))
    record_upstream(tb, on_upstream)

    tr = drv.transcript
    nq = min(tb.desc.params["num_queues"], 8)
    await drv.probe()
    await drv.reset()
    await drv.add_status(Status.ACKNOWLEDGE)
    await drv.add_status(Status.DRIVER)
    await drv.finalize_features()
    msix = tb.desc.params["msix_vectors"] >= nq + 1
    tr.note("find_vqs: MSI-X, one vector per queue + config" if msix else "find_vqs: INTx")
    vectors = await legacy_find_vqs(tb, list(range(nq)), msix=msix)
    if tb.desc.params["device_cfg_size"]:
        tr.note("device configuration (byte reads)")
        await drv.config_read(0, min(tb.desc.params["device_cfg_size"], 8))
    await drv.add_status(Status.DRIVER_OK)
    tr.note("DRIVER_OK; kick every queue")
    for vq in drv.vqs.values():
        await drv.kick(vq)
    await be.wait_doorbells(len(drv.vqs))

    irq_lines = []
    if msix:
        tr.note("back-end: every queue's interrupt and a configuration change (MSI-X)")
        for q in drv.vqs:
            be.irq(queue=q)
        be.irq(config=True)
        await be.irq_idle()
        await _wait(lambda: len(writes) >= len(drv.vqs) + 1, tb, "MSI-X writes")
        for t, tlp in writes:
            data = int.from_bytes(tlp.get_data()[:4], "little")
            entry = tb.msix.entry_of(tlp.address, data)
            who = "config" if entry == vectors["config"] else \
                f"queue {next(q for q, v in vectors.items() if v == entry)}"
            irq_lines.append(f"  {t:10.0f} ns  MSI-X write {tlp.address:#x} data {data:#x} "
                             f"(entry {entry}: {who})")
        tr.note("MSI-X disabled: INTx and the ISR")
        await tb.msix.set_control(enable=False)
        drv.msix_enabled = False
    n = len(tb.bridge.messages)
    be.irq(queue=0)
    await be.irq_idle()
    await _wait(lambda: len(tb.bridge.messages) > n, tb, "Assert_INTA")
    isr = await drv.isr()
    await _wait(lambda: len(tb.bridge.messages) > n + 1, tb, "Deassert_INTA")
    for dws in tb.bridge.messages[n:n + 2]:
        code = dws[1] & 0xFF
        name = {ASSERT_INTA: "Assert_INTA", DEASSERT_INTA: "Deassert_INTA"}.get(code, hex(code))
        irq_lines.append(f"  message {name}")
    bits = [b for bit, b in ((1, "used buffer"), (2, "configuration change")) if isr & bit]
    irq_lines.append(f"  ISR read {isr:#04x} ({', '.join(bits) or 'nothing'}), cleared by the read")
    vqs = dict(drv.vqs)
    n_ev = len(be.qevents)
    await drv.del_vq(max(vqs))
    await drv.get_status()
    await with_timeout(be.wait_qevents(n_ev + 1), TIMEOUT_NS, "ns")

    lines = ["", f"legacy driver transcript ({len(tr.accesses())} accesses):"]
    lines += ["  " + line for line in tr.lines()]
    lines.append("")
    lines.append(f"negotiated (legacy) features: {drv.features:#010x}; legacy output "
                 f"{int(tb.dut.legacy.value)}; queues: "
                 + ", ".join(f"{q.index} (size {q.size}, PFN {q.pfn:#x}: desc {q.desc:#x} "
                             f"avail {q.driver:#x} used {q.device:#x})" for q in vqs.values()))
    lines += backend_lines(be, value_digits=4)
    lines += ["", "interrupts:"] + irq_lines
    return lines
