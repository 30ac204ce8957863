"""The endpoint in hard-IP mode behind the UltraScale+ PCIE4 adapter (hdl/virtio_pci/link/usplus.py),
on cocotbext-pcie's ``UltraScalePlusPcieDevice`` model, enumerated by its root complex.

The model owns the type-0 header, BARs and its capabilities (PM, PCI Express, MSI-X in
"external" mode: table and PBA in the core's BAR, as the IP is configured for it).  Its
configuration-extension interface is a stub, so ``CfgExtModel`` plays the IP's side from PG213
("Configuration Extend Interface"): a configuration read of a register in a forwarded window
(legacy 0xB0-0xBF, extended 0x480-0x4FF) is presented as a one-cycle ``cfg_ext_read_received``
with ``cfg_ext_register_number`` (DW) and answered with the data the user drives with
``cfg_ext_read_data_valid``; a write is a one-cycle ``cfg_ext_write_received`` with the data and
byte enables.

Because PG213's windows cannot hold the virtio capabilities where Linux looks for them
(docs/usplus.md), the driver model here does not discover the structures through the capability
list: it takes their BAR offsets from the port JSON (what a modified driver, or a fixed platform
description, would do) and then runs the Linux modern driver's init sequence to DRIVER_OK.
Random idle on CQ (the model's source), random back-pressure on CC and RQ (its sinks) and on the
back-end streams; CQ back-pressure is the core's own (the adapter's tready follows it).
"""
import logging
import os
import random

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import ClockCycles, RisingEdge
from cocotb.utils import get_sim_time

from cocotbext.axi import AxiStreamBus
from cocotbext.pcie.core import RootComplex
from cocotbext.pcie.xilinx.us import UltraScalePlusPcieDevice

from virtio_pci.config.capabilities import build_config_image
from virtio_pci.params import VirtioPciParams

from tb.env.fabric import functions_with_vendor, load_desc
from tb.host.msix import MsixHost
from tb.host.virtio_driver import CfgType, Mapping, VirtioPciDriver
from tb.models.virtio_backend import VirtioBackend
from tb.scenarios.adapter_bringup import (common_read_matches, driver_ok_and_doorbells,
                                         msix_every_vector)
from tb.scenarios.adapter_dma import adapter_dma, record_upstream
from tb.scenarios.adapter_flr import adapter_flr

WINDOWS = ((0x2C, 0x2F), (0x120, 0x13F))


def _pauses(rng, p):
    while True:
        yield rng.random() < p


class CfgExtModel:
    """The IP's side of the configuration-extension interface (module docstring)."""

    def __init__(self, dut, func):
        self.dut = dut
        self.clk = dut.link_clk
        self.requests = []
        self._orig_read = func.read_config_register
        self._orig_write = func.write_config_register
        func.read_config_register = self.read
        func.write_config_register = self.write
        for n in ("cfg_ext_read_received", "cfg_ext_write_received", "cfg_ext_register_number",
                  "cfg_ext_function_number", "cfg_ext_write_data", "cfg_ext_write_byte_enable"):
            getattr(dut, n).value = 0

    @staticmethod
    def forwarded(reg):
        return any(lo <= reg <= hi for lo, hi in WINDOWS)

    async def read(self, reg):
        if not self.forwarded(reg):
            return await self._orig_read(reg)
        d = self.dut
        await RisingEdge(self.clk)
        d.cfg_ext_register_number.value = reg
        d.cfg_ext_read_received.value = 1
        await RisingEdge(self.clk)
        d.cfg_ext_read_received.value = 0
        for _ in range(2000):
            await RisingEdge(self.clk)
            if d.cfg_ext_read_data_valid.value:
                v = int(d.cfg_ext_read_data.value)
                self.requests.append(("R", reg, v))
                return v
        raise AssertionError(f"no cfg_ext_read_data_valid for register {reg:#x}")

    async def write(self, reg, data, mask):
        await self._orig_write(reg, data, mask)
        if self.forwarded(reg):
            d = self.dut
            await RisingEdge(self.clk)
            d.cfg_ext_register_number.value = reg
            d.cfg_ext_write_data.value = data
            d.cfg_ext_write_byte_enable.value = mask
            d.cfg_ext_write_received.value = 1
            await RisingEdge(self.clk)
            d.cfg_ext_write_received.value = 0
            self.requests.append(("W", reg, data))


class UsPlusTB:
    def __init__(self, dut, *, stall=0.3):
        self.dut = dut
        self.log = logging.getLogger("cocotb.tb")
        self.desc = load_desc()
        self.rng = random.Random(cocotb.RANDOM_SEED)
        self.core_ns = float(os.environ.get("VPCI_CORE_NS", "10"))
        p = self.desc.params
        bar = self.desc.mem_bar
        tbl, pba = self.desc.regions["msix_table"], self.desc.regions["msix_pba"]
        for port in self.desc.ports.values():
            n = port["name"]
            if port["direction"] == "input" and n not in ("clk", "rst", "link_clk", "link_rst") \
                    and not n.startswith(("m_axis_", "s_axis_", "cfg_")):
                getattr(dut, n).value = 1 if n.endswith("__ready") else 0
        self.hip = UltraScalePlusPcieDevice(
            pcie_generation=3, pcie_link_width=8, user_clk_frequency=250e6,
            max_payload_size=p["max_payload_supported"],
            pf0_msix_enable=True, pf0_msix_table_size=p["msix_vectors"] - 1,
            pf0_msix_table_bir=bar["index"], pf0_msix_table_offset=tbl["offset"],
            pf0_msix_pba_bir=bar["index"], pf0_msix_pba_offset=pba["offset"],
            user_clk=dut.link_clk, user_reset=dut.link_rst,
            rq_bus=AxiStreamBus.from_prefix(dut, "s_axis_rq"),
            cq_bus=AxiStreamBus.from_prefix(dut, "m_axis_cq"),
            cc_bus=AxiStreamBus.from_prefix(dut, "s_axis_cc"),
            rc_bus=AxiStreamBus.from_prefix(dut, "m_axis_rc"),
            pcie_cq_np_req=dut.pcie_cq_np_req,
            cfg_max_payload=dut.cfg_max_payload, cfg_max_read_req=dut.cfg_max_read_req,
            cfg_function_status=dut.cfg_function_status, cfg_bus_number=dut.cfg_bus_number,
            cfg_interrupt_msix_enable=dut.cfg_interrupt_msix_enable,
            cfg_interrupt_msix_mask=dut.cfg_interrupt_msix_mask,
            cfg_flr_in_process=dut.cfg_flr_in_process, cfg_flr_done=dut.cfg_flr_done)
        dut.cfg_flr_in_process.value = 0
        f = self.hip.functions[0]
        ids = self.desc.ids
        f.vendor_id, f.device_id = ids["vendor_id"], ids["device_id"]
        f.subsystem_vendor_id, f.subsystem_id = ids["subsystem_vendor_id"], ids["subsystem_id"]
        f.class_code, f.revision_id = ids["class_code"], ids["revision_id"]
        f.configure_bar(bar["index"], bar["size"], ext=True)
        self.cfg_ext = CfgExtModel(dut, f)
        self.hip.cq_source.set_pause_generator(_pauses(random.Random(self.rng.random()), stall))
        self.hip.rq_sink.set_pause_generator(_pauses(random.Random(self.rng.random()), stall))
        self.hip.cc_sink.set_pause_generator(_pauses(random.Random(self.rng.random()), stall))
        self.hip.rc_source.set_pause_generator(_pauses(random.Random(self.rng.random()), stall))
        self.upstream = record_upstream(self.hip)
        self.rc = RootComplex()
        self.rc.make_port().connect(self.hip)
        self.backend = VirtioBackend(dut, self.desc, doorbell_stall=stall, qevent_stall=stall)
        self.dev = None
        logging.getLogger("cocotb").setLevel(logging.WARNING)

    async def init(self):
        Clock(self.dut.clk, self.core_ns, unit="ns").start()
        self.dut.rst.value = 1
        await ClockCycles(self.dut.clk, 10)
        self.dut.rst.value = 0
        await ClockCycles(self.dut.link_clk, 40)
        logging.getLogger("cocotb.pcie").setLevel(logging.ERROR)
        await self.rc.enumerate()
        found = functions_with_vendor(self.rc, self.desc.params["vendor_id"])
        assert len(found) == 1, f"expected the function once, found {found}"
        self.dev = found[0]
        await self.dev.enable_device()
        return self.dev

    @property
    def bar_addr(self):
        return self.dev.bar_addr[self.desc.mem_bar["index"]]


def _probe_from_desc(tb, drv):
    """vp_modern_probe's result, from the port JSON instead of the capability list."""
    async def probe():
        await drv.enable_device()
        ids = await drv.cfg_read(0x00, 4, "vendor/device id")
        drv.virtio_id = (ids >> 16) - 0x1040
        bar = tb.desc.mem_bar["index"]
        for t, name, maplen in ((CfgType.COMMON, "common", 0x40), (CfgType.ISR, "isr", 1),
                                (CfgType.NOTIFY, "notify", None), (CfgType.DEVICE, "device",
                                                                   0x1000)):
            r = tb.desc.regions[name]
            drv.maps[t] = Mapping(t, None, bar, r["offset"], r["length"], tb.bar_addr + r["offset"],
                                  min(r["length"], maplen) if maplen else r["length"])
        drv.notify_off_multiplier = tb.desc.params["notify_off_multiplier"]
        await drv.set_master()
        return drv.maps
    drv.probe = probe


@cocotb.test()
async def usplus_bringup_test(dut):
    """PCI-02, MSX-04: behind the UltraScale+ adapter the root complex enumerates the IP's
    function, a read of the forwarded legacy window 0xB0-0xBF is answered by the core's
    configuration space through cfg_ext, the driver sequence (structures located from the port
    JSON) reaches DRIVER_OK with memory requests through CQ/CC, every queue's doorbell reaches the
    back-end, and MSI-X (the IP's capability, the core's table) delivers every vector as RQ memory
    writes."""
    tb = UsPlusTB(dut)
    dev = await tb.init()
    assert dev.vendor_id == 0x1AF4
    # the forwarded legacy window: answered by the soft space (its image at 0xB0)
    img = build_config_image(VirtioPciParams.from_dict(tb.desc.params))
    v = await dev.config_read_dword(0xB0)
    assert tb.cfg_ext.requests and tb.cfg_ext.requests[-1] == ("R", 0x2C, v)
    assert v == img.dword(0x2C)[0], f"0xB0 read {v:#010x}, image {img.dword(0x2C)[0]:#010x}"
    drv = VirtioPciDriver(tb)
    _probe_from_desc(tb, drv)
    await driver_ok_and_doorbells(tb, drv)
    # MSI-X: the IP's capability (found in the IP's list), the core's table and PBA
    mx = MsixHost(tb)
    mx.cap = next(off for off, cid in await _caps(dev) if cid == 0x11)
    await msix_every_vector(tb, drv, mx)
    # a multi-DW read of the common configuration through CQ/CC
    await common_read_matches(tb)
    tb.log.warning("UltraScale+ bring-up: %d cfg_ext accesses, %d doorbells, core clock %.3f ns",
                   len(tb.cfg_ext.requests), len(tb.backend.doorbells), tb.core_ns)


async def _caps(dev):
    out = []
    ptr = int.from_bytes(await dev.config_read(0x34, 1), "little") & 0xFC
    while ptr and len(out) < 48:
        dw = await dev.config_read_dword(ptr)
        out.append((ptr, dw & 0xFF))
        ptr = (dw >> 8) & 0xFC
    return out


@cocotb.test()
async def usplus_dma_test(dut):
    """DMA-02, DMA-03, DMA-04, DMA-05, DMA-06, DMA-08, DMA-09: back-end DMA through the
    UltraScale+ adapter (tb/scenarios/adapter_dma.py): random byte-granular reads and writes
    below and above 4 GiB leave on RQ (4-DW descriptors, write payload moved up one DW after a
    3-DW header), the root complex's completions come back on RC (descriptor rewritten to a CplD
    header, merged with CQ into the core's rx) split at its RCB; read data equals host memory,
    written data lands, every request keeps the PCIe rules with the IP's MPS and MRRS, with idle
    on RC and CQ and back-pressure on RQ, CC and every stream of the requester port."""
    tb = UsPlusTB(dut)
    dev = await tb.init()
    for mps, mrrs, n, sent in await adapter_dma(tb, dev, tb.upstream):
        tb.log.warning("UltraScale+ DMA: %d requests -> %d MRd/MWr (MPS %d, MRRS %d), core "
                       "clock %.3f ns", n, sent, mps, mrrs, tb.core_ns)


async def _ip_flr(tb):
    """The IP's side of the FLR handshake (PG213): ``cfg_flr_in_process[0]`` high until the user's
    ``cfg_flr_done[0]`` pulse, then low; one pulse only.  Returns the user_clk edges it took and the time of the
    pulse (ns)."""
    d = tb.dut
    await RisingEdge(d.link_clk)
    d.cfg_flr_in_process.value = 1
    for n in range(1, 20001):
        await RisingEdge(d.link_clk)
        if int(d.cfg_flr_done.value) & 1:
            t_done = get_sim_time("ns")
            break
    else:
        raise AssertionError("cfg_flr_done never pulsed")
    d.cfg_flr_in_process.value = 0
    for _ in range(64):
        await RisingEdge(d.link_clk)
        assert not int(d.cfg_flr_done.value), "cfg_flr_done pulsed twice for one FLR"
    return n, t_done


@cocotb.test()
async def usplus_flr_test(dut):
    """STS-D1, DMA-19: an FLR through the UltraScale+ IP (the root complex writes Initiate Function
    Level Reset in the IP's PCI Express capability; the IP's cfg_flr_in_process / cfg_flr_done
    handshake modelled from PG213) with back-end DMA in flight (tb/scenarios/adapter_flr.py):
    cfg_flr_done comes once, after the core's own FLR; every DMA request is answered once (OK
    with the host's data, RESET or BME); device_status is 0 and queue 0 disabled afterwards; the
    driver reaches DRIVER_OK again, every doorbell arrives, and new DMA completes with its data."""
    tb = UsPlusTB(dut)
    dev = await tb.init()
    drv = VirtioPciDriver(tb)
    _probe_from_desc(tb, drv)
    await driver_ok_and_doorbells(tb, drv)
    fig = await adapter_flr(tb, dev, drv, _ip_flr)
    tb.log.warning("UltraScale+ FLR: cfg_flr_done %d user_clk edges after cfg_flr_in_process, "
                   "DMA in flight ended %s, core clock %.3f ns", fig["handshake_link_edges"],
                   fig["statuses"], tb.core_ns)
