"""cocotb module of `make linux`: the endpoint RTL behind the UML bridge, until Linux powers off.

Started by ``sim/linux/run.py`` (through ``sim.run.run_cocotb``), which then boots UML against
the socket.  Environment:

* ``VPCI_LINUX_SOCKET``: the vhost-user socket path to listen on;
* ``VPCI_LINUX_OUT``: directory for ``transcript.txt`` (every TLP) and ``bridge.json`` (the
  bridge's counters, errors and the wall time of DRIVER_OK);
* ``VPCI_LINUX_LIMIT_S``: wall-clock limit of the whole run;
* ``VPCI_LINUX_DMA_PROBE``: after the first doorbell, DMA reads through the requester port;
* ``VPCI_LINUX_DROP_ANSWER``: never answer that non-posted request (fault injection);
* ``VPCI_LINUX_CONFIG_CHANGE``: seconds after the first doorbell (the guest set the interface
  up, which posts receive buffers and kicks) at which the back-end changes
  the device configuration (the virtio-net link status goes down): a config-change interrupt
  that Linux must see (MSI-X vector or INTx + ISR).

For a bare endpoint the back-end behind the front-end is the testbench's ``VirtioBackend``
model: it acknowledges virtio and queue resets and completes no virtqueue buffers.  A whole
device (virtio-rng: endpoint, split-virtqueue engine, device function) serves its rings itself
through the requester.
"""
import json
import os
import time

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import ClockCycles, RisingEdge, Timer

from tb.env.fabric import load_desc
from tb.host.uml_bridge import PcidevBridge
from tb.host.vhost_user import VhostUserServer
from tb.models.virtio_backend import VirtioBackend

CLK_NS = 4


async def _watch_driver_ok(dut, out, t0):
    while True:
        await RisingEdge(dut.driver_ok)
        out.setdefault("driver_ok_wall_s", time.time())
        out["driver_ok_count"] = out.get("driver_ok_count", 0) + 1


async def _count_flr(dut, out):
    while True:
        await RisingEdge(dut.flr)
        out["flr_count"] = out.get("flr_count", 0) + 1


async def _config_change(be, out, delay_s):
    # after the first doorbell: the guest has brought the interface up (rx buffers kicked)
    while not be.doorbells:
        await Timer(1000 * CLK_NS, unit="ns")
    t = time.time()
    while time.time() - t < delay_s:
        await Timer(1000 * CLK_NS, unit="ns")
    # virtio-net config: mac[6] then status (le16): VIRTIO_NET_S_LINK_UP = 1 -> 0
    await be.dcfg_write(1, 0x0000_0000, be=0x3 << 2)
    out["config_change_wall_s"] = time.time()


async def _dma_probe(dut, desc, be, out):
    """The RTL's own memory requests against the guest memory vhost-user shares: after the first
    doorbell, read the kicked queue's driver area (avail flags and idx) through the requester
    port, then 4 bytes at guest physical 0x1000, which UML does not share (its kernel image)."""
    from tb.models.dma_backend import DmaBackend       # per-cycle Python: only when asked
    while not be.doorbells:
        await Timer(1000 * CLK_NS, unit="ns")
    q = be.doorbells[0].queue
    row = await be.read_queue(q)
    dma = DmaBackend(dut, desc)
    op = await dma.read(row["driver"], 4).wait()
    bad = await dma.read(0x1000, 4).wait()
    out["dma_probe"] = {"queue": q, "driver_area": row["driver"], "status": op.status,
                        "avail_idx": int.from_bytes(op.data[2:4], "little"),
                        "outside_status": bad.status}


@cocotb.test()
async def linux_cosim_test(dut):
    desc = load_desc()
    outdir = os.environ["VPCI_LINUX_OUT"]
    limit = float(os.environ.get("VPCI_LINUX_LIMIT_S", "300"))
    deadline = time.monotonic() + limit
    Clock(dut.clk, CLK_NS, unit="ns").start()
    for port in desc.ports.values():
        if port["direction"] == "input" and port["name"] not in ("clk", "rst"):
            getattr(dut, port["name"]).value = 1 if port["name"].endswith("__ready") else 0
    dut.rst.value = 1
    await ClockCycles(dut.clk, 8)
    dut.rst.value = 0
    await ClockCycles(dut.clk, 2)
    # a whole device (virtio-rng: endpoint + ring engine, hdl/virtio_pci/cli.py top_level) has
    # no back-end ports: nothing for the back-end model to drive
    be = VirtioBackend(dut, desc) if "doorbell__payload" in desc.ports else None
    if be is not None and desc.params["device_type"] == 1 and desc.params["device_cfg_size"] >= 8:
        await be.dcfg_write(1, 0x0001_0000, be=0x3 << 2)   # link up (VIRTIO_NET_S_LINK_UP)

    server = VhostUserServer(os.environ["VPCI_LINUX_SOCKET"])
    transcript = open(os.path.join(outdir, "transcript.txt"), "w")
    bridge = PcidevBridge(dut, desc.raw, server, transcript)
    if os.environ.get("VPCI_LINUX_DROP_ANSWER"):
        bridge.drop_answer = int(os.environ["VPCI_LINUX_DROP_ANSWER"])
    info = {"sim_start_wall_s": time.time()}
    if "driver_ok" in desc.ports:
        cocotb.start_soon(_watch_driver_ok(dut, info, time.time()))
    if "flr" in desc.ports:
        cocotb.start_soon(_count_flr(dut, info))
    if be is not None and os.environ.get("VPCI_LINUX_DMA_PROBE") and "dma_req__valid" in desc.ports:
        cocotb.start_soon(_dma_probe(dut, desc, be, info))
    if be is not None and os.environ.get("VPCI_LINUX_CONFIG_CHANGE"):
        cocotb.start_soon(_config_change(be, info, float(os.environ["VPCI_LINUX_CONFIG_CHANGE"])))
    try:
        how = await bridge.serve(deadline, os.environ.get("VPCI_LINUX_STOP"))
    finally:
        transcript.close()
        server.close()
    info.update(end=how, errors=bridge.errors, stats=bridge.stats,
                sim_end_wall_s=time.time(), sim_ns=cocotb.utils.get_sim_time("ns"))
    if be is not None:
        info.update(device_status=int(dut.device_status.value),
                    resets=len(be.resets), qevents=len(be.qevents), doorbells=len(be.doorbells),
                    doorbell_queues=sorted({d.queue for d in be.doorbells}))
    if "chains" in desc.ports:
        info["chains"] = int(dut.chains.value)
    with open(os.path.join(outdir, "bridge.json"), "w") as f:
        json.dump(info, f, indent=1)
    assert how in ("closed", "stopped"), f"wall-clock limit of {limit} s reached before Linux powered off"
    assert not bridge.errors, f"bridge errors: {bridge.errors[:5]}"
