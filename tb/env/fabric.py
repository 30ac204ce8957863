"""The fabric part of the integration test environment: clock, reset, root complex, the RTL
bridge and the raw request path (``tb.env.testbench.TB`` composes it with the other parts).

``Fabric(dut)`` builds the fabric of DESIGN.md section 9: a cocotbext-pcie ``RootComplex`` with one
root port connected to an ``RtlBridge`` around the RTL.  ``await tb.init()`` starts the clock, resets the
RTL and enumerates it (``tb.dev`` is the ``PciDevice``).  Two ways to talk to the RTL:

* through the root complex (``tb.dev.config_read_dword``, ``tb.rc.mem_read``, ...): real routing,
  real tag management, what a driver does;
* raw: ``await tb.raw_request(req)`` injects a request (a cocotbext ``Tlp`` or a hand-made DW list)
  straight into the RTL's rx stream and returns the completions with its tag; ``tb.raw_posted()``
  injects a TLP that expects no answer.  This reaches what the fabric cannot send or would route
  elsewhere: CfgRd1, messages, locked reads, atomics, malformed TLPs, any byte-enable pattern.
  Raw TLPs bypass the fabric, so they can overtake posted writes still travelling through it:
  ``await tb.flush()`` first.

Everything the tests need to know about the build (widths, BAR size, regions, capabilities) comes
from the JSON description that ``sim.run`` passes in ``VPCI_DESC`` (``tb.desc``), never from
hard-coded offsets.  Idle and back-pressure probabilities default to ``DEFAULT_RX_IDLE`` and
``DEFAULT_TX_STALL`` and can be changed with ``VPCI_RX_IDLE`` / ``VPCI_TX_STALL``; the random
generator follows cocotb's seed (``COCOTB_RANDOM_SEED``) unless ``seed`` is given.
"""
import json
import logging
import os

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import ClockCycles, RisingEdge, Timer, with_timeout

from cocotbext.pcie.core import RootComplex
from cocotbext.pcie.core.tlp import CplStatus, Tlp, TlpType

from tb.host.pcispec import CapId, MsixCap, PcieCap, VirtioCap, walk_capabilities
from tb.host.rc_bridge import RtlBridge
from tb.tlp.convert import dws_to_tlp, tlp_to_dws
from tb.tlp.requests import cfg_tlp

__all__ = ["Fabric", "load_desc", "Desc", "PulseCounter", "DEFAULT_RX_IDLE", "DEFAULT_TX_STALL",
           "CLK_PERIOD_NS"]

DEFAULT_RX_IDLE = 0.25
DEFAULT_TX_STALL = 0.25
CLK_PERIOD_NS = 4
#: raw requests use tags from here up; the root complex allocates tags below 32
RAW_TAG_BASE = 0x80


def load_desc():
    """The JSON description of the build under test (``sim.run`` puts it in ``VPCI_DESC``)."""
    text = os.environ.get("VPCI_DESC")
    if not text:
        raise RuntimeError("VPCI_DESC is not set: run cocotb modules through sim.run.run_cocotb")
    return Desc(json.loads(text))


class Desc:
    """Read access to the port/register description written by ``virtio_pci.cli.describe``."""

    def __init__(self, d):
        self.raw = d
        self.params = d["parameters"]
        self.ids = d["ids"]
        self.regions = d["regions"]
        self.caps = d["capabilities"]
        self.ports = {p["name"]: p for p in d["ports"]}

    @property
    def width(self):
        return self.ports["rx__payload"]["fields"]["data"][1] + 1

    @property
    def mem_bar(self):
        """The 64-bit memory BAR entry: dict with index, size, prefetchable."""
        bars = [b for b in self.raw["bars"] if b["kind"] == "mem64"]
        if len(bars) != 1:
            raise AssertionError(f"expected one 64-bit memory BAR in the description, got {bars}")
        return bars[0]

    @property
    def io_bar(self):
        bars = [b for b in self.raw["bars"] if b["kind"] == "io"]
        return bars[0] if bars else None

    def features(self):
        return int(self.params["features"], 0)

    def offers(self, bit):
        return bool(self.features() >> bit & 1)

    def cap_at(self, config_offset):
        for c in self.caps:
            if c["config_offset"] == config_offset:
                return c
        return None



def functions_with_vendor(rc, vendor_id):
    """Every type-0 function of the root complex's enumerated tree with ``vendor_id``."""
    found = []

    def walk(bus):
        for d in bus.devices:
            if d.header_type == 0 and d.vendor_id == vendor_id:
                found.append(d)
        for child in bus.children:
            walk(child)

    walk(rc.host_bridge.bus)
    return found

class PulseCounter:
    """Counts the cycles in which a one-bit event output (``err_*``, ``flr``) is high, without
    per-cycle Python while it is low."""

    def __init__(self, clk, sig):
        self.clk = clk
        self.sig = sig
        self.count = 0
        self._task = cocotb.start_soon(self._run())

    async def _run(self):
        while True:
            await RisingEdge(self.sig)
            while True:
                await RisingEdge(self.clk)
                if not self.sig.value:
                    break
                self.count += 1


class Fabric:
    _LINK_INPUTS = ("clk", "rst", "rx__payload", "rx__valid", "tx__ready")

    def __init__(self, dut, *, rx_idle=None, tx_stall=None, seed=None):
        self.dut = dut
        self.log = logging.getLogger("cocotb.tb")
        self.log.setLevel(logging.INFO)
        self.desc = load_desc()
        self.width = self.desc.width
        if rx_idle is None:
            rx_idle = float(os.environ.get("VPCI_RX_IDLE", DEFAULT_RX_IDLE))
        if tx_stall is None:
            tx_stall = float(os.environ.get("VPCI_TX_STALL", DEFAULT_TX_STALL))
        if seed is None:
            seed = cocotb.RANDOM_SEED
        self.rc = RootComplex()
        self.bridge = RtlBridge(dut, self.width, rx_idle=rx_idle, tx_stall=tx_stall, seed=seed,
                                raw_tag_base=RAW_TAG_BASE)
        self.rc.make_port().connect(self.bridge)
        self.dev = None
        self.errors = {name: PulseCounter(dut.clk, getattr(dut, name))
                       for name in ("err_malformed", "err_ur", "err_unexpected_cpl")
                       if name in self.desc.ports}
        self._next_tag = RAW_TAG_BASE
        self._clock_started = False
        # back-end inputs idle: every back-end stream sink ready (doorbells, queue events), no
        # requests, interrupts or acknowledgements
        for port in self.desc.ports.values():
            if port["direction"] == "input" and port["name"] not in Fabric._LINK_INPUTS:
                getattr(dut, port["name"]).value = 1 if port["name"].endswith("__ready") else 0
        for name in ("cocotb.pcie", "cocotb.tb.bridge"):
            logging.getLogger(name).setLevel(logging.WARNING)

    # -- bring-up ---------------------------------------------------------------------------
    async def reset(self, cycles=8):
        if not self._clock_started:
            Clock(self.dut.clk, CLK_PERIOD_NS, unit="ns").start()
            self._clock_started = True
        self.dut.rst.value = 1
        await ClockCycles(self.dut.clk, cycles)
        self.dut.rst.value = 0
        await ClockCycles(self.dut.clk, 2)

    async def enumerate(self, enable=True):
        """Enumerate the fabric with the root complex and return the RTL's ``PciDevice``.
        ``enable``: then set Memory Space Enable as ``pci_enable_device()`` does."""
        quiet = logging.getLogger("cocotb.pcie")
        level = quiet.level
        quiet.setLevel(logging.ERROR)      # scanning empty slots logs one warning per slot
        try:
            await self.rc.enumerate()
        finally:
            quiet.setLevel(level)
        self.dev = self.find_function()
        if enable:
            await self.dev.enable_device()
        return self.dev

    async def init(self, enable=True):
        """Clock, reset, enumeration (and Memory Space Enable): the state a driver probes in."""
        await self.reset()
        return await self.enumerate(enable)

    def find_function(self):
        """The enumerated function whose vendor ID is the RTL's (the root port is the other one)."""
        found = functions_with_vendor(self.rc, self.desc.params["vendor_id"])
        if len(found) != 1:
            raise AssertionError(f"expected the RTL function once in the enumerated tree, found {found}")
        return found[0]

    @property
    def mem_bar_index(self):
        return self.desc.mem_bar["index"]

    @property
    def bar_addr(self):
        """Address the root complex assigned to the memory BAR."""
        return self.dev.bar_addr[self.mem_bar_index]

    # -- cycles and time --------------------------------------------------------------------
    async def cycles(self, n):
        """Wait about ``n`` clock periods with one timer (no per-cycle Python) and return in a
        clock-edge callback, where writes to the RTL are well defined (they take effect after
        that edge); a bare timer can fire at an edge time and race it."""
        if n > 1:
            await Timer((n - 1) * CLK_PERIOD_NS, unit="ns")
        await RisingEdge(self.dut.clk)

    async def rx_drained(self, extra=0):
        """Wait until every queued rx TLP has been accepted by the RTL (plus ``extra`` cycles)."""
        while not self.bridge.rx_quiet:
            await RisingEdge(self.dut.clk)
        if extra:
            await self.cycles(extra)

    # -- raw requests -----------------------------------------------------------------------
    async def flush(self):
        """Make posted writes sent through the root complex reach the RTL before what follows.

        Raw TLPs enter the RTL's rx queue directly and would overtake writes still travelling
        through the fabric; a read through the fabric cannot pass them (PCIe ordering), so when
        its completion is back they are all in the queue ahead of anything sent later."""
        await self.dev.config_read_dword(0)

    def alloc_tag(self):
        for _ in range(0x80):
            tag = self._next_tag
            self._next_tag = RAW_TAG_BASE + (self._next_tag + 1 - RAW_TAG_BASE) % 0x80
            if tag not in self.bridge._claimed:
                return tag
        raise RuntimeError("no free raw tag")

    @staticmethod
    def _as_dws(req):
        return tlp_to_dws(req) if isinstance(req, Tlp) else list(req)

    async def raw_request(self, req, *, timeout_cycles=2000, settle=0):
        """Send a non-posted request straight to the RTL and return its completions (``Tlp``s).
        It bypasses the fabric: see ``flush()`` after posted writes through the root complex.

        ``req``: a cocotbext ``Tlp`` (its tag is replaced by a fresh raw tag) or a DW list (its
        tag is used as is).  Completions are collected until the request is complete: one
        completion for everything but successful memory reads, which end when the byte count is
        covered.  ``settle`` cycles are then waited and anything arriving late is returned too.
        Raises ``SimTimeoutError`` when nothing (or not enough) arrives in ``timeout_cycles``.
        """
        if isinstance(req, Tlp):
            req = Tlp(req)
            req.tag = self.alloc_tag()
            tag = req.tag
            is_mrd = req.fmt_type in (TlpType.MEM_READ, TlpType.MEM_READ_64)
        else:
            dws = list(req)
            tag = (dws[1] >> 8 & 0xFF) | (dws[0] >> 19 & 1) << 8 | (dws[0] >> 23 & 1) << 9
            is_mrd = (dws[0] >> 24) in (0x00, 0x20)
        q = self.bridge.claim_tag(tag)
        try:
            self.bridge.send_dws(self._as_dws(req))
            cpls = []
            while True:
                dws = await with_timeout(q.get(), timeout_cycles * CLK_PERIOD_NS, "ns")
                cpl = dws_to_tlp(dws)
                assert cpl.check(), f"malformed completion from the RTL: {cpl!r}"
                cpls.append(cpl)
                if cpl.status != CplStatus.SC or not is_mrd:
                    break
                if cpl.fmt_type != TlpType.CPL_DATA:
                    break
                if cpl.byte_count <= cpl.length * 4 - (cpl.lower_address & 3):
                    break
            if settle:
                await self.cycles(settle)
                while not q.empty():
                    cpls.append(dws_to_tlp(q.get_nowait()))
            return cpls
        finally:
            self.bridge.release_tag(tag)

    def dws(self, tlp):
        """A cocotbext ``Tlp`` as DWs with a fresh raw tag: ``(dws, tag)``.  For hand-made
        variants (malformed TLPs) that start from a well-formed request."""
        tlp = Tlp(tlp)
        tlp.tag = self.alloc_tag()
        return tlp_to_dws(tlp), tlp.tag

    async def expect_no_completion(self, req, *, tag=None, cycles=200):
        """Send a TLP that must not be answered (posted, malformed, dropped); wait ``cycles``
        after the RTL accepted it and fail if a completion came back for its tag (``tag``: for
        DW lists; a ``Tlp`` gets a fresh one).  Stray answers with other raw tags are caught by
        ``check_clean``."""
        if isinstance(req, Tlp):
            req, tag = self.dws(req)
        q = self.bridge.claim_tag(tag) if tag is not None else None
        try:
            self.bridge.send_dws(self._as_dws(req))
            await self.rx_drained(cycles)
            if q is not None and not q.empty():
                raise AssertionError(f"unexpected completion {dws_to_tlp(q.get_nowait())!r}")
        finally:
            if q is not None:
                self.bridge.release_tag(tag)

    async def raw_posted(self, req, *, extra=20):
        """Send a TLP that expects no answer and wait until the RTL accepted it."""
        self.bridge.send_dws(self._as_dws(req))
        await self.rx_drained(extra)

    # -- config helpers on the raw path (any byte-enable pattern) ---------------------------
    async def cfg_read(self, addr, *, fbe=0xF, dest=None):
        cpls = await self.raw_request(cfg_tlp(False, addr, dest=dest or self.dev.pcie_id, fbe=fbe))
        return cpls[0]

    async def cfg_write(self, addr, data, *, fbe=0xF, dest=None):
        cpls = await self.raw_request(cfg_tlp(True, addr, dest=dest or self.dev.pcie_id, fbe=fbe,
                                              data=data))
        return cpls[0]

    async def cfg_read_dword(self, addr, *, dest=None):
        """Config dword through the raw path; asserts a successful one-DW completion."""
        cpl = await self.cfg_read(addr, dest=dest)
        assert cpl.fmt_type == TlpType.CPL_DATA and cpl.status == CplStatus.SC and cpl.length == 1, \
            f"CfgRd0 {addr:#05x}: {cpl!r}"
        return int.from_bytes(cpl.data[:4], "little")

    async def cfg_write_dword(self, addr, data, fbe=0xF, *, dest=None):
        cpl = await self.cfg_write(addr, data, fbe=fbe, dest=dest)
        assert cpl.fmt_type == TlpType.CPL and cpl.status == CplStatus.SC, f"CfgWr0 {addr:#05x}: {cpl!r}"

    # -- capabilities -----------------------------------------------------------------------
    @staticmethod
    def cap_length(cap_id, first_dword):
        """Bytes of a capability worth reading, by its ID (spec lengths; vendor caps say theirs)."""
        if cap_id == CapId.VENDOR:
            return max(first_dword >> 16 & 0xFF, 4)
        return {CapId.PCIE: PcieCap.LEN_V2, CapId.MSIX: MsixCap.LEN, CapId.PM: 8}.get(cap_id, 4)

    async def capabilities(self, read_dword=None):
        """Walk the capability list (through the root complex unless ``read_dword`` is given)."""
        return await walk_capabilities(read_dword or self.dev.config_read_dword,
                                       length_of=self.cap_length)

    @staticmethod
    def find_cap(caps, cap_id, cfg_type=None):
        """First capability with ``cap_id`` (and virtio ``cfg_type``), as a driver would pick it."""
        for c in caps:
            if c.cap_id == cap_id and (cfg_type is None or c.byte(VirtioCap.CFG_TYPE) == cfg_type):
                return c
        raise AssertionError(f"no capability {cap_id:#x} (cfg_type {cfg_type}) in the list")

    # -- checks shared by tests --------------------------------------------------------------
    def check_clean(self):
        """No unparsable upstream TLPs and no completions for released raw tags."""
        assert not self.bridge.unparsed, f"unparsable TLPs from the RTL: {self.bridge.unparsed}"
        assert not self.bridge.stray, f"late or duplicate completions: {self.bridge.stray}"

    def error_count(self, name):
        c = self.errors.get(name)
        return None if c is None else c.count
