"""Function Level Reset through a vendor hard-IP adapter (P-Tile, UltraScale+), on cocotbext-pcie's
model of the IP and its root complex: the scenario both adapter tests run.

cocotbext-pcie's IP models leave the FLR interfaces as stubs (the PCI Express capability's
``initiate_function_level_reset`` does nothing), so the test gives ``adapter_flr`` the IP's side of
the vendor handshake as ``ip_handshake(tb)``: an async function that tells the adapter of the FLR
the way the IP does (UltraScale+: ``cfg_flr_in_process``; P-Tile: a ``flr_rcvd_pf`` pulse) and
returns the link-clock edges the adapter took to answer (``cfg_flr_done`` / ``flr_completed_pf``)
and the simulation time (ns) of that answer.  It is started when the root complex's Device Control write with
Initiate Function Level Reset reaches the model's PCI Express capability, as in the IP.  The IP
also resets the function's Command register (Memory Space, Bus Master Enable): modelled here.

``ip_handshake`` None: the IP's own Device Control is not under the core's (the P-Tile model's
layout), so the write starts the core's FLR only, and the IP's capability must not see it.

``adapter_flr(tb, dev, drv, ip_handshake)``, with the device at DRIVER_OK (``drv`` brought it
there):

1. back-end DMA in flight: 12 random reads and writes (1 B to 2 KiB);
2. the root complex writes Initiate Function Level Reset;
3. checked: the adapter answers the IP once, and only after the core's own FLR (its ``flr``
   port); every DMA request is answered once, OK with the host's data or RESET / BME (DMA-19);
   after the host restores the BARs it saved before the FLR (as Linux's pci_reset_function does)
   and enables memory space, device_status reads 0 and queue 0 is disabled (STS-D1);
4. the driver brings the device to DRIVER_OK again and every doorbell reaches the back-end; then
   16 reads and writes, all OK with their data (no tag lost in the FLR).

Returns a dict of figures for the log (handshake latency, statuses).
"""
import cocotb
from cocotb.triggers import Event, RisingEdge, with_timeout
from cocotb.utils import get_sim_time
from cocotbext.pcie.core.caps import PciCapId

from tb.host.virtio_driver import Status
from tb.models.dma_backend import DmaBackend
from tb.models.dma_model import StatusRef
from tb.scenarios.adapter_bringup import driver_ok_and_doorbells

__all__ = ["adapter_flr", "ip_resets_command"]

SIZE = 0x4000


def ip_resets_command(func):
    """What the IP does to the function's own registers at an FLR (PCIe 6.6.2: the function's
    configuration returns to its reset state): Memory Space, Bus Master and I/O Enable cleared."""
    func.io_space_enable = func.memory_space_enable = func.bus_master_enable = False


def _random_ops(be, rng, base, count):
    ops = []
    for _ in range(count):
        n = rng.choice([1, 3, 4, 7, 64, 65, 130, 511, 1000, 2048])
        if rng.random() < 0.5:
            ops.append(be.read(base + rng.randrange(0, SIZE // 2 - n), n))
        else:
            a = base + SIZE // 2 + rng.randrange(0, SIZE // 2 - n)
            ops.append(be.write(a, bytes(rng.getrandbits(8) for _ in range(n))))
    return ops


async def adapter_flr(tb, dev, drv, ip_handshake):
    rng = tb.rng
    dut = tb.dut
    fig = {}
    region = tb.rc.mem_pool.alloc_region(SIZE)
    base = region.get_absolute_address(0)
    before = bytes(rng.getrandbits(8) for _ in range(SIZE))
    await region.write(0, before)
    be = DmaBackend(dut, tb.desc, rng=rng, req_idle=0.1, ready_prob=0.8)

    # the core's own FLR: its ``flr`` port (core clock), by simulation time
    core_flr = []

    async def watch_flr():
        while True:
            await RisingEdge(dut.clk)
            if int(dut.flr.value):
                core_flr.append(get_sim_time("ns"))
    cocotb.start_soon(watch_flr())

    # the IP's side: the Device Control write reaches the model's capability, the handshake runs
    func = tb.hip.functions[0]
    started, answered = Event(), Event()
    result = {}

    async def handshake():
        result["edges"], result["t_done"] = await ip_handshake(tb)
        answered.set()

    async def initiate():
        ip_resets_command(func)
        started.set()
        cocotb.start_soon(handshake())
    func.pcie_cap.initiate_function_level_reset = initiate

    await dev.set_master()
    # what Linux's pci_reset_function saves before an FLR and restores after it: the BARs
    saved = [(a, await dev.config_read_dword(a)) for a in range(0x10, 0x28, 4)]
    ops = _random_ops(be, rng, base, 12)
    await RisingEdge(dut.clk)
    devctl = await dev.capability_read_word(PciCapId.EXP, 8)
    await dev.capability_write_word(PciCapId.EXP, 8, devctl | 1 << 15)
    if ip_handshake is None:
        # an IP whose own Device Control is not under the core's: only the core resets
        for _ in range(2000):
            if core_flr:
                break
            await RisingEdge(dut.clk)
        assert not started.is_set(), "the IP's Device Control was written"
        fig["handshake_link_edges"] = None
    else:
        await with_timeout(started.wait(), 10, "us")
        await with_timeout(answered.wait(), 50, "us")
        assert core_flr and core_flr[0] <= result["t_done"], \
            f"the adapter answered the IP at {result['t_done']} ns, before the core's FLR " \
            f"({core_flr} ns)"
        fig["handshake_link_edges"] = result["edges"]
    assert len(core_flr) == 1, f"core FLR pulses at {core_flr} ns"

    # DMA-19: every request answered once; OK ones with the host's data
    for op in ops:
        await with_timeout(op.wait(), 200, "us")
    statuses = {}
    for op in ops:
        st = op.status
        name = {StatusRef.OK: "OK", StatusRef.RESET: "RESET", StatusRef.BME: "BME"}.get(st)
        assert name is not None, f"{op}: status {st} after an FLR (DMA-19: OK, RESET or BME)"
        statuses[name] = statuses.get(name, 0) + 1
        if st == StatusRef.OK and not op.write:
            assert op.data == before[op.addr - base:op.addr - base + op.length], f"{op}: data"
    fig["statuses"] = statuses

    # STS-D1: the function starts again from its reset state.  The host restores the BARs
    # (pci_restore_state) and enables memory space and Bus Master Enable (the UltraScale+ model
    # derives all of cfg_function_status[2:0] from the latter)
    for a, v in saved:
        await dev.config_write_dword(a, v)
    await drv.enable_device()
    await drv.set_master()
    assert await drv.get_status() == 0, "device_status after FLR"
    await drv.common_write("queue_select", 0)
    assert await drv.common_read("queue_enable") == 0, "queue 0 still enabled after FLR"

    # the device works again: DRIVER_OK, doorbells, DMA without a lost tag
    tb.backend.doorbells.clear()
    await driver_ok_and_doorbells(tb, drv)
    assert await drv.get_status() & Status.DRIVER_OK
    await dev.set_master()
    mem = bytearray(await region.read(0, SIZE))
    ops = _random_ops(be, rng, base, 16)
    for op in ops:
        await with_timeout(op.wait(), 200, "us")
    for op in ops:
        assert op.status == StatusRef.OK, op
    # dma_wdone means "left the core's tx": a read, which cannot pass the writes, flushes them
    flush = be.read(base, 4)
    await with_timeout(flush.wait(), 200, "us")
    final = {}
    for op in ops:
        if op.write:
            final.update((op.addr - base + i, b) for i, b in enumerate(op.wdata))
    host = await region.read(0, SIZE)
    for op in ops:          # reads from the first half, which the writes never touch
        if not op.write:
            assert op.data == bytes(mem[op.addr - base:op.addr - base + op.length]), f"{op}: data"
    bad = [k for k, b in final.items() if host[k] != b]
    assert not bad, f"writes after the FLR missing at offsets {bad[:8]}"
    return fig
