"""Test environment of the interrupt tests: the transport environment plus the host side of MSI-X
and INTx (PCI 3.0 6.8.2, PCIe 2.2.8.1; VIRTIO 1.3 4.1.5; Linux's vp_find_vqs strategies, spec
section 3.1.B.7).

``IrqTB(dut)`` is a ``TransportTB`` (driver model ``env.drv``, back-end model ``env.be``) that also

* records every memory write the RTL sends upstream (``env.writes``: ``Upstream`` records with the
  time, the header format (3-DW ``MWr`` or 4-DW ``MWr64``), address and data), matched to the
  MSI-X table entry programmed with that address and data; and counts what reaches the root
  complex's MSI regions (``env.msix.delivered``), so a write the fabric could not route is noticed;
* keeps the INTx messages the bridge collects (``env.intx()``: ``"assert"``/``"deassert"``);
* records the acceptance time of every back-end interrupt request (``env.requests``);
* ``env.msix``: the function's MSI-X capability, table and PBA as a host programs them
  (``MsixHost``), with message addresses from the root complex's MSI region (32-bit: 3-DW
  writes) or from a second MSI region above 4 GiB (64-bit: 4-DW writes).

``linux_find_vqs`` / ``linux_init`` follow Linux's ``vp_find_vqs``: MSI-X with one vector per queue
plus one for configuration changes, else two shared vectors, else INTx.
"""
import collections
from dataclasses import dataclass

import cocotb
from cocotb.triggers import RisingEdge
from cocotb.utils import get_sim_time
from cocotbext.pcie.core.msi import MsiRegion
from cocotbext.pcie.core.tlp import TlpType

from tb.env.transport import TransportTB
from tb.models.virtio_backend import unpack_fields
from tb.host.virtio_driver import NO_VECTOR, Status

__all__ = [
    "ASSERT_INTA",
    "DEASSERT_INTA",
    "MSI64_BASE",
    "STRATEGIES",
    "IrqRequestRecord",
    "IrqTB",
    "MsixHost",
    "Upstream",
    "linux_find_vqs",
    "linux_init",
    "record_upstream",
]

#: where the second (64-bit) MSI region lives in the root complex's memory space
MSI64_BASE = 0x0000_0040_0000_0000
ASSERT_INTA = 0x20
DEASSERT_INTA = 0x24
MSG_LOCAL = 0x34          # Fmt 001 (4-DW header, no data), Type 10100 (routed to the receiver)

#: vp_find_vqs's attempts, in order
STRATEGIES = ("msix_per_vq", "msix_shared", "intx")


@dataclass(frozen=True)
class Upstream:
    """A memory write the RTL sent upstream."""
    time_ns: float
    fmt64: bool              # 4-DW header
    addr: int
    data: int
    length: int
    entry: int               # MSI-X table entry programmed with (addr, data), or None


@dataclass(frozen=True)
class IrqRequestRecord:
    time_ns: float
    queue: int
    config: int


class _IrqMonitor:
    """Records every transfer on the back-end's ``irq`` stream (Python per cycle only while
    ``irq.valid`` is high)."""

    def __init__(self, dut, fields, out):
        self.dut, self.fields, self.out = dut, fields, out
        self._task = cocotb.start_soon(self._run())

    async def _run(self):
        d = self.dut
        while True:
            await RisingEdge(d.clk)
            if not d.irq__valid.value:
                await RisingEdge(d.irq__valid)
                continue
            if d.irq__ready.value:
                f = unpack_fields(int(d.irq__payload.value), self.fields)
                self.out.append(IrqRequestRecord(get_sim_time("ns"), f["queue"], f["config"]))


class MsixHost:
    """The host's view of the function's MSI-X capability (config space through the root
    complex) and of the table and PBA (memory BAR), as Linux's PCI core programs them."""

    def __init__(self, tb):
        self.tb = tb
        self.rc = tb.rc
        caps = [c for c in tb.desc.caps if c["cap_id"] == 0x11]
        assert len(caps) == 1, f"expected one MSI-X capability, got {caps}"
        self.cap = caps[0]["config_offset"]
        self.n = tb.desc.params["msix_vectors"]
        self.entries = {}            # table entry -> (addr, data) programmed
        self.delivered = collections.Counter()   # (addr, data) -> writes the root complex got
        self._msi64 = None

    # -- addresses from the root complex ----------------------------------------------------
    def alloc(self, k, *, wide=False):
        """``k`` MSI message targets (cocotbext ``MsiVector``s with ``addr``/``data``/``event``):
        the root complex's MSI region (32-bit address) or, with ``wide``, a second MSI region
        above 4 GiB (64-bit address: the function must use 4-DW writes)."""
        if not wide:
            vecs = self.rc.msi_alloc_vectors(k)
        else:
            if self._msi64 is None:
                self._msi64 = MsiRegion(self.rc)
                self.rc.mem_address_space.register_region(self._msi64, MSI64_BASE)
            vecs = self._msi64.alloc_vectors(k)
        for v in vecs:
            key = (v.addr, v.data)

            async def hit(key=key):
                self.delivered[key] += 1
            v.cb.append(hit)
        return vecs

    # -- capability -------------------------------------------------------------------------
    async def control(self):
        return int.from_bytes(await self.tb.dev.config_read(self.cap + 2, 2), "little")

    async def set_control(self, *, enable=None, fmask=None):
        """Read-modify-write of Message Control (pci_msix_clear_and_set_ctrl)."""
        c = await self.control()
        if enable is not None:
            c = (c | 0x8000) if enable else (c & ~0x8000)
        if fmask is not None:
            c = (c | 0x4000) if fmask else (c & ~0x4000)
        await self.tb.dev.config_write(self.cap + 2, c.to_bytes(2, "little"))

    # -- table and PBA ----------------------------------------------------------------------
    def region_addr(self, name, off=0):
        return self.tb.bar_addr + self.tb.desc.regions[name]["offset"] + off

    def entry_addr(self, v, dw=0):
        return self.region_addr("msix_table", 16 * v + 4 * dw)

    async def write_entry(self, v, addr, data, *, masked=True):
        """Program entry ``v``: Vector Control first with the Mask bit, then address and data,
        then Vector Control (as Linux's msix_prepare_msi_desc / __pci_write_msi_msg)."""
        w = self.rc.mem_write_dword
        await w(self.entry_addr(v, 3), 1)
        await w(self.entry_addr(v, 0), addr & 0xFFFF_FFFF)
        await w(self.entry_addr(v, 1), addr >> 32)
        await w(self.entry_addr(v, 2), data)
        self.entries[v] = (addr, data)
        if not masked:
            await self.mask(v, False)

    async def program(self, vecs, *, first=0, masked=False):
        """Entries ``first``.. get the targets ``vecs`` (from ``alloc``)."""
        for i, t in enumerate(vecs):
            await self.write_entry(first + i, t.addr, t.data, masked=masked)

    async def mask(self, v, masked=True):
        await self.rc.mem_write_dword(self.entry_addr(v, 3), int(masked))

    async def read_entry(self, v):
        """(address, data, vector control) of entry ``v``."""
        r = self.rc.mem_read_dword
        lo, hi = await r(self.entry_addr(v, 0)), await r(self.entry_addr(v, 1))
        return (hi << 32) | lo, await r(self.entry_addr(v, 2)), await r(self.entry_addr(v, 3))

    async def pba(self):
        """The Pending Bit Array as an integer (memory reads of every QWORD)."""
        words = (self.n + 63) // 64
        v = 0
        for i in range(words):
            v |= (await self.rc.mem_read_qword(self.region_addr("msix_pba", 8 * i))) << (64 * i)
        return v

    def entry_of(self, addr, data):
        for v, ad in self.entries.items():
            if ad == (addr, data):
                return v
        return None


def record_upstream(tb, fn):
    """Call ``fn(tlp)`` for every TLP the RTL sends into the fabric (the bridge's upstream path;
    messages and completions for raw requests are kept on the bridge instead)."""
    orig = tb.bridge.upstream_send

    async def upstream_send(tlp):
        fn(tlp)
        await orig(tlp)
    tb.bridge.upstream_send = upstream_send


class IrqTB(TransportTB):
    def __init__(self, dut, **kw):
        super().__init__(dut, **kw)
        self.writes = []
        self.other_upstream = []
        self.requests = []
        self.msix = None
        self._irq_mon = _IrqMonitor(dut, self.desc.ports["irq__payload"]["fields"], self.requests)
        record_upstream(self, self._record)

    async def start(self, init=False, **kw):
        drv = await super().start(init=init, **kw)
        self.msix = MsixHost(self)
        return drv

    # -- records ----------------------------------------------------------------------------
    def _record(self, tlp):
        if tlp.fmt_type in (TlpType.MEM_WRITE, TlpType.MEM_WRITE_64):
            data = int.from_bytes(tlp.get_data()[:4], "little")
            entry = self.msix.entry_of(tlp.address, data) if self.msix else None
            self.writes.append(Upstream(get_sim_time("ns"), tlp.fmt_type == TlpType.MEM_WRITE_64,
                                        tlp.address, data, tlp.length, entry))
        elif tlp.fmt_type not in (TlpType.CPL, TlpType.CPL_DATA):
            self.other_upstream.append(tlp)

    def intx(self):
        """INTx messages so far: list of "assert"/"deassert" (any other message fails)."""
        out = []
        for dws in self.bridge.messages:
            assert len(dws) == 4 and dws[0] >> 24 == MSG_LOCAL and dws[0] & 0x3FF == 0, \
                f"unexpected message {[hex(d) for d in dws]}"
            assert dws[1] >> 16 == int(self.dev.pcie_id), \
                f"INTx message requester ID {dws[1] >> 16:#06x} is not the function's"
            code = dws[1] & 0xFF
            assert code in (ASSERT_INTA, DEASSERT_INTA), f"message code {code:#x}"
            out.append("assert" if code == ASSERT_INTA else "deassert")
        return out

    def msix_writes(self, since=0):
        return self.writes[since:]

    def entries_hit(self, since=0):
        return [w.entry for w in self.writes[since:]]

    def mark(self):
        """A point to count from: (writes, messages, requests)."""
        return len(self.writes), len(self.bridge.messages), len(self.requests)

    async def irq(self, *events):
        """Back-end interrupt requests (``("q", n)`` / ``("c",)``), back to back; returns once
        all were accepted."""
        for e in events:
            if e[0] == "q":
                self.be.irq(queue=e[1])
            else:
                self.be.irq(config=True)
        await self.be.irq_idle()

    async def settle(self, cycles=40):
        """Let everything in flight reach the host: rx drained, tx idle for a while, and the
        fabric's queue empty."""
        await self.rx_drained()
        await self.cycles(cycles)

    async def wait_writes(self, n, timeout_cycles=3000):
        """Wait until ``n`` memory writes in total came upstream."""
        for _ in range(timeout_cycles // 10):
            if len(self.writes) >= n:
                return self.writes
            await self.cycles(10)
        raise AssertionError(f"{len(self.writes)} memory writes upstream, expected {n}: "
                             f"{self.writes}")

    async def wait_intx(self, n, timeout_cycles=3000):
        for _ in range(timeout_cycles // 10):
            if len(self.bridge.messages) >= n:
                return self.intx()
            await self.cycles(10)
        raise AssertionError(f"{len(self.bridge.messages)} INTx messages, expected {n}")

    async def expect_quiet(self, mark, cycles=80, what=""):
        """Nothing upstream (no memory write, no message) since ``mark``."""
        await self.settle(cycles)
        w, msgs, _ = mark
        assert self.writes[w:] == [], f"{what}: unexpected memory writes {self.writes[w:]}"
        assert self.bridge.messages[msgs:] == [], \
            f"{what}: unexpected messages {self.bridge.messages[msgs:]}"

    def check(self):
        """Every memory write upstream was an MSI-X message to a programmed entry, a single DW,
        that reached the root complex; nothing else but completions and INTx messages left."""
        super().check()
        for w in self.writes:
            assert w.entry is not None, f"memory write {w} matches no MSI-X table entry"
            assert w.length == 1, f"MSI-X write of {w.length} DWs"
            assert w.fmt64 == (w.addr >> 32 != 0), f"{w}: header format does not fit the address"
        sent = collections.Counter((w.addr, w.data) for w in self.writes)
        got = self.msix.delivered if self.msix else {}
        assert sent == got, f"upstream {dict(sent)} != delivered {dict(got)}"
        assert not self.other_upstream, f"unexpected upstream TLPs {self.other_upstream}"
        self.intx()


# ------------------------------------------------------------------------- Linux's vp_find_vqs
async def linux_init(env, *, strategy=None, host_vectors=None, wide=False, queues=None):
    """virtio_dev_probe up to DRIVER_OK with vp_find_vqs's interrupt strategies.

    ``strategy``: force one of ``STRATEGIES``; default: Linux's order, where an MSI-X attempt
    fails when the host cannot give the exact number of vectors (``host_vectors``: how many
    the host has; None = enough) or the table is too small.  ``wide``: 64-bit message addresses.
    Returns ``(strategy, vectors)``: vectors is {"config": entry, queue: entry} (NO_VECTOR for
    INTx).  Leaves MSI-X enabled and every used entry unmasked, as request_irq does."""
    drv = env.drv
    await drv.reset()
    await drv.add_status(Status.ACKNOWLEDGE)
    await drv.add_status(Status.DRIVER)
    await drv.finalize_features()
    chosen, vectors = await linux_find_vqs(env, strategy=strategy, host_vectors=host_vectors,
                                           wide=wide, queues=queues)
    for q in vectors:
        if q != "config":
            await drv.enable_vq(q)
    await drv.add_status(Status.DRIVER_OK)
    await env.flush()
    return chosen, vectors


async def linux_find_vqs(env, *, strategy=None, host_vectors=None, wide=False, queues=None):
    drv, mx = env.drv, env.msix
    nq = await drv.get_num_queues()
    queues = list(range(nq)) if queues is None else list(queues)
    order = STRATEGIES if strategy is None else (strategy,)
    for s in order:
        if s == "intx":
            # vp_find_vqs_intx: only with an interrupt pin; vectors stay NO_VECTOR
            if not await drv.cfg_read(0x3D, 1, "interrupt pin"):
                raise AssertionError("no MSI-X strategy fits and no interrupt pin")
            for q in queues:
                await drv.setup_vq(q)
            return s, {"config": NO_VECTOR, **{q: NO_VECTOR for q in queues}}
        need = 1 + len(queues) if s == "msix_per_vq" else 2
        table = ((await mx.control()) & 0x7FF) + 1
        if need > table or (host_vectors is not None and need > host_vectors):
            continue                       # pci_alloc_irq_vectors(min = max = need) fails
        # pci_alloc_irq_vectors: MSI-X enabled with all vectors masked (Function Mask during
        # the table setup), then the entries, then Function Mask cleared
        await mx.set_control(enable=True, fmask=True)
        targets = mx.alloc(need, wide=wide)
        await mx.program(targets, masked=True)
        await mx.set_control(fmask=False)
        for v in range(need):
            await mx.mask(v, False)          # request_irq -> unmask
        vectors = {"config": 0}
        got = await drv.config_vector(0)
        if got == NO_VECTOR:
            raise AssertionError("config vector refused (-EBUSY)")
        for i, q in enumerate(queues):
            v = 1 + i if s == "msix_per_vq" else 1
            await drv.setup_vq(q, vector=v)
            vectors[q] = v
        return s, vectors
    raise AssertionError("no interrupt strategy left")
