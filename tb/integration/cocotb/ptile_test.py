"""The endpoint behind the Intel P-Tile adapter (hdl/virtio_pci/link/ptile.py), on cocotbext-pcie's
``PTilePcieDevice`` model, enumerated by its root complex and brought up by the virtio driver model.

The model's Configuration Intercept Interface is a stub (it only ties the cii_* outputs to 0), so
``CiiModel`` below plays the hard IP's side of it, from the P-Tile Avalon-ST user guide (UG 683059,
"Configuration Intercept Interface (EP Only)"):

* every configuration request to the function is presented with ``cii_req`` high and ``cii_addr``
  (DW address), ``cii_wr``, ``cii_dout`` (write data, little-endian), ``cii_hdr_first_be``,
  ``cii_func_num``, ``cii_hdr_poisoned``;
* the IP holds the request while the application drives ``cii_halt`` high; at the first clock edge
  at which it samples ``cii_halt`` low it takes ``cii_override_en`` / ``cii_override_din``: for a
  CfgRd the completion carries ``cii_override_din`` instead of the register value, for a CfgWr
  ``cii_override_din`` is written instead of the request's data;
* because of the EMIB latency ``cii_req`` can stay high for several cycles after that (here a
  random 0..4), so the application must act on rising edges only.

The model's own configuration registers (BARs, Command) still receive every write not overridden,
so its BAR match routes memory requests to the adapter as the real IP would.

Clocks: the model's ``coreclkout_hip`` (250 MHz, 256-bit Gen3 x8) is the adapter's ``link_clk``;
the core's ``clk`` is set per test (``VPCI_CORE_NS``): slower and faster than the link.  Random idle
on rx_st (pause generator of the model's source), random back-pressure on tx_st (its sink) and on
the back-end's doorbell and queue-event ports.
"""
import logging
import os
import random

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import ClockCycles, RisingEdge
from cocotbext.pcie.core import RootComplex
from cocotbext.pcie.core.tlp import TlpType
from cocotbext.pcie.intel.ptile import PTilePcieDevice, PTileRxBus, PTileTxBus

from tb.env.fabric import functions_with_vendor, load_desc
from tb.host.msix import MsixHost
from tb.host.virtio_driver import VirtioPciDriver
from tb.models.virtio_backend import VirtioBackend
from tb.scenarios.adapter_bringup import (common_read_matches, driver_ok_and_doorbells,
                                         msix_every_vector)
from tb.scenarios.adapter_dma import adapter_dma, record_upstream
from tb.scenarios.adapter_flr import adapter_flr

LINK_MHZ = 250


def _pauses(rng, p):
    while True:
        yield rng.random() < p


class CiiModel:
    """The hard IP's side of the Configuration Intercept Interface (see the module docstring),
    wrapped around the model function's register access."""

    def __init__(self, dut, func, rng):
        self.dut = dut
        self.clk = dut.link_clk
        self.rng = rng
        self.requests = []            # (write, dw address, data, first_be, overridden, value)
        self._orig_read = func.read_config_register
        self._orig_write = func.write_config_register
        func.read_config_register = self.read
        func.write_config_register = self.write
        self._lock = None
        for name in ("cii_req", "cii_wr", "cii_addr", "cii_dout", "cii_hdr_first_be",
                     "cii_func_num", "cii_hdr_poisoned"):
            getattr(dut, name).value = 0

    async def _intercept(self, write, reg, data, be):
        from cocotb.triggers import Lock
        if self._lock is None:
            self._lock = Lock()
        async with self._lock:
            d = self.dut
            await RisingEdge(self.clk)
            d.cii_addr.value = reg
            d.cii_wr.value = int(write)
            d.cii_dout.value = data if write else 0
            d.cii_hdr_first_be.value = be
            d.cii_func_num.value = 0
            d.cii_hdr_poisoned.value = 0
            d.cii_req.value = 1
            for _ in range(20000):
                await RisingEdge(self.clk)
                if not d.cii_halt.value:
                    break
            else:
                raise AssertionError(f"cii_halt held for 20000 cycles (reg {reg:#x})")
            override = bool(d.cii_override_en.value)
            value = int(d.cii_override_din.value)
            for _ in range(self.rng.randrange(5)):      # EMIB latency: cii_req falls late
                await RisingEdge(self.clk)
            d.cii_req.value = 0
            d.cii_wr.value = 0
            self.requests.append((write, reg, data, be, override, value))
            return override, value

    async def read(self, reg):
        hip = await self._orig_read(reg)
        override, value = await self._intercept(False, reg, 0, 0xF)
        return value if override else hip

    async def write(self, reg, data, mask):
        override, value = await self._intercept(True, reg, data, mask)
        await self._orig_write(reg, value if override else data, mask)


class PTileTB:
    """Fabric: root complex -> P-Tile model -> adapter + endpoint (the DUT)."""

    def __init__(self, dut, *, rx_idle=0.3, tx_stall=0.3, backend_stall=0.3):
        self.dut = dut
        self.log = logging.getLogger("cocotb.tb")
        self.desc = load_desc()
        self.rng = random.Random(cocotb.RANDOM_SEED)
        p = self.desc.params
        self.core_ns = float(os.environ.get("VPCI_CORE_NS", "10"))
        for port in self.desc.ports.values():
            if port["direction"] == "input" and port["name"] not in ("clk", "rst", "link_clk",
                                                                       "link_rst") \
                    and not port["name"].startswith(("rx_st_", "tx_", "tl_cfg", "cii_")):
                getattr(dut, port["name"]).value = 1 if port["name"].endswith("__ready") else 0
        self.hip = PTilePcieDevice(
            pcie_generation=3, pcie_link_width=8, pld_clk_frequency=LINK_MHZ * 1e6,
            max_payload_size=p["max_payload_supported"],
            rx_bus=PTileRxBus.from_prefix(dut, "rx_st"),
            tx_bus=PTileTxBus.from_prefix(dut, "tx_st"),
            coreclkout_hip=dut.link_clk, reset_status=dut.link_rst,
            tx_cdts_limit=dut.tx_cdts_limit, tx_cdts_limit_tdm_idx=dut.tx_cdts_limit_tdm_idx,
            tl_cfg_func=dut.tl_cfg_func, tl_cfg_add=dut.tl_cfg_add, tl_cfg_ctl=dut.tl_cfg_ctl)
        # the IP's BAR as the integrator configures it: the core's memory BAR (docs/ptile.md)
        bar = self.desc.mem_bar
        self.hip.functions[0].configure_bar(bar["index"], bar["size"], ext=True)
        self.cii = CiiModel(dut, self.hip.functions[0], self.rng)
        self.hip.rx_source.set_pause_generator(_pauses(random.Random(self.rng.random()), rx_idle))
        self.hip.tx_sink.set_pause_generator(_pauses(random.Random(self.rng.random()), tx_stall))
        self.rc = RootComplex()
        self.rc.make_port().connect(self.hip)
        self.backend = VirtioBackend(dut, self.desc, doorbell_stall=backend_stall,
                                     qevent_stall=backend_stall)
        self.dev = None
        self.upstream = record_upstream(self.hip)
        for name in ("cocotb.pcie", "cocotb.tb.bridge"):
            logging.getLogger(name).setLevel(logging.WARNING)
        logging.getLogger("cocotb").setLevel(logging.WARNING)

    async def init(self):
        Clock(self.dut.clk, self.core_ns, unit="ns").start()
        self.dut.rst.value = 1
        await ClockCycles(self.dut.clk, 10)
        self.dut.rst.value = 0
        while int(self.dut.link_rst.value):
            await RisingEdge(self.dut.link_clk)
        await ClockCycles(self.dut.clk, 10)
        quiet = logging.getLogger("cocotb.pcie")
        quiet.setLevel(logging.INFO if os.environ.get("VPCI_DEBUG") else logging.ERROR)
        await self.rc.enumerate()
        self.dev = self._find()
        await self.dev.enable_device()
        return self.dev

    def _find(self):
        found = functions_with_vendor(self.rc, self.desc.params["vendor_id"])
        assert len(found) == 1, (f"expected the function once in the enumerated tree, found "
                                 f"{found}; CII requests: {self.cii.requests[:12]}")
        return found[0]

    @property
    def bar_addr(self):
        return self.dev.bar_addr[self.desc.mem_bar["index"]]

    async def cycles(self, n):
        await ClockCycles(self.dut.clk, n)


@cocotb.test()
async def ptile_bringup_test(dut):
    """PCI-02, PCI-03, CAP-01, MSX-04: through the P-Tile adapter and the model's CII, the root
    complex enumerates the function (every configuration read answered by the core's soft space
    via cii_override), the driver model finds the virtio capabilities and reaches DRIVER_OK,
    every queue's doorbell reaches the back-end, MSI-X messages of every vector reach the root
    complex, and memory reads of the common configuration come back through tx_st."""
    tb = PTileTB(dut)
    dev = await tb.init()
    p = tb.desc.params
    assert dev.vendor_id == 0x1AF4 and dev.device_id == tb.desc.ids["device_id"]
    reads = [r for r in tb.cii.requests if not r[0]]
    assert reads and all(r[4] for r in reads), "a CII read was not answered with an override"
    assert not any(r[4] for r in tb.cii.requests if r[0]), "a CII write was overridden"
    # the soft space's answer is what the root complex saw: vendor/device ID via CII
    assert any(r[1] == 0 and r[5] == (tb.desc.ids["device_id"] << 16 | 0x1AF4) for r in reads)

    drv = VirtioPciDriver(tb)
    nq = p["num_queues"]
    await driver_ok_and_doorbells(tb, drv)
    await msix_every_vector(tb, drv, MsixHost(tb))
    msix = [t for t in tb.upstream if t.fmt_type in (TlpType.MEM_WRITE, TlpType.MEM_WRITE_64)]
    assert len(msix) == nq + 1, msix
    assert any(t.fmt_type == TlpType.MEM_WRITE_64 for t in msix)      # a 4-DW header went out
    # a multi-DW read of the common configuration (payload realigned on tx_st)
    raw = await common_read_matches(tb)
    assert int.from_bytes(raw[0x12:0x14], "little") == nq               # num_queues
    # and a multi-DW write (payload realigned on rx_st): queue_desc of queue 0, read back
    await drv.common_write("queue_select", 0)
    got = await drv.common_read("queue_desc_lo")
    assert got == drv.vqs[0].desc & 0xFFFF_FFFF
    cpl_credits = int(dut.adapter_consumed_cplh.value) if hasattr(dut, "adapter_consumed_cplh") \
        else None
    tb.log.warning("P-Tile bring-up: %d CII requests, %d MSI-X writes, %d doorbells, core clock "
                   "%.3f ns, link %d MHz%s", len(tb.cii.requests), len(msix),
                   len(tb.backend.doorbells), tb.core_ns, LINK_MHZ,
                   "" if cpl_credits is None else f", CplH credits used {cpl_credits}")


@cocotb.test()
async def ptile_dma_test(dut):
    """DMA-02, DMA-03, DMA-04, DMA-05, DMA-06, DMA-08, DMA-09: back-end DMA through the P-Tile
    adapter (tb/scenarios/adapter_dma.py): random byte-granular reads and writes below and above
    4 GiB leave as MRd/MWr on tx_st (header on tx_st_hdr, payload realigned, credits respected),
    the root complex's completions come back on rx_st split at its RCB and reach the requester;
    read data equals host memory, written data lands, every request keeps the PCIe rules (4 KiB,
    MPS, MRRS, 3-DW below / 4-DW above 4 GiB, Requester ID from tl_cfg's bus/device), with idle
    on rx_st, back-pressure on tx_st and on every stream of the requester port."""
    tb = PTileTB(dut)
    dev = await tb.init()
    for mps, mrrs, n, sent in await adapter_dma(tb, dev, tb.upstream):
        tb.log.warning("P-Tile DMA: %d requests -> %d MRd/MWr (MPS %d, MRRS %d), core clock "
                       "%.3f ns", n, sent, mps, mrrs, tb.core_ns)


@cocotb.test()
async def ptile_flr_test(dut):
    """STS-D1, DMA-19: an FLR through the P-Tile IP (the root complex writes Initiate Function
    Level Reset in the core's PCI Express capability, through the CII) with back-end DMA in flight
    (tb/scenarios/adapter_flr.py): the core resets once; in the model's layout the write falls on
    the IP's MSI capability, not its Device Control, so the IP starts no FLR of its own
    (flr_completed_pf stays 0; the handshake for layouts where it does is checked in
    tb/unit/test_flr_handshake.py); every DMA request is answered once (OK with the host's data,
    RESET or BME); device_status is 0 and queue 0 disabled afterwards; the driver reaches
    DRIVER_OK again, every doorbell arrives, and new DMA completes with its data."""
    tb = PTileTB(dut)
    dev = await tb.init()
    completed = []

    async def watch():
        while True:
            await RisingEdge(dut.link_clk)
            if int(dut.flr_completed_pf.value):
                completed.append(int(dut.flr_completed_pf.value))
    cocotb.start_soon(watch())
    drv = VirtioPciDriver(tb)
    await driver_ok_and_doorbells(tb, drv)
    fig = await adapter_flr(tb, dev, drv, None)
    assert not completed, f"flr_completed_pf pulsed without an FLR of the IP: {completed}"
    tb.log.warning("P-Tile FLR: DMA in flight ended %s, core clock %.3f ns", fig["statuses"],
                   tb.core_ns)
