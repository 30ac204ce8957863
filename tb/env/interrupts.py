"""The interrupt part of the integration test environment: what the RTL sends the host for
MSI-X and INTx (PCI 3.0 6.8.2, PCIe 2.2.8.1; VIRTIO 1.3 4.1.5; Linux's vp_find_vqs strategies,
spec section 3.1.B.7).

``Interrupts(env)`` (``env.irqs`` of a ``tb.env.testbench.TB`` built with ``interrupts=True``; its
methods are reached as ``env.intx()``, ``env.wait_writes()``, ...)

* records every memory write the RTL sends upstream (``env.writes``: ``Upstream`` records with the
  time, the header format (3-DW ``MWr`` or 4-DW ``MWr64``), address and data), matched to the
  MSI-X table entry programmed with that address and data (``env.msix``, ``tb.host.msix``); the
  check compares them with what reached the root complex's MSI regions
  (``env.msix.delivered``), so a write the fabric could not route is noticed;
* keeps the INTx messages the bridge collects (``env.intx()``: ``"assert"``/``"deassert"``);
* records the acceptance time of every back-end interrupt request (``env.requests``).

``linux_find_vqs`` / ``linux_init`` follow Linux's ``vp_find_vqs``: MSI-X with one vector per queue
plus one for configuration changes, else two shared vectors, else INTx.
"""
import collections
from dataclasses import dataclass

import cocotb
from cocotb.triggers import RisingEdge
from cocotb.utils import get_sim_time
from cocotbext.pcie.core.tlp import TlpType

from tb.models.virtio_backend import unpack_fields
from tb.host.virtio_driver import NO_VECTOR, Status

__all__ = [
    "ASSERT_INTA",
    "DEASSERT_INTA",
    "STRATEGIES",
    "IrqRequestRecord",
    "Interrupts",
    "Upstream",
    "linux_find_vqs",
    "linux_init",
    "record_upstream",
]

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


def record_upstream(tb, fn):
    """Call ``fn(tlp)`` for every TLP the RTL sends into the fabric (the bridge's upstream path;
    messages and completions for raw requests are kept on the bridge instead)."""
    orig = tb.bridge.upstream_send

    async def upstream_send(tlp):
        fn(tlp)
        await orig(tlp)
    tb.bridge.upstream_send = upstream_send


class Interrupts:
    """Records of the interrupt traffic of ``env`` (the composed ``TB``: its fabric, back-end model
    and MSI-X host ``env.msix``)."""

    def __init__(self, env):
        self.env = env
        self.bridge = env.bridge
        self.writes = []
        self.other_upstream = []
        self.requests = []
        self._irq_mon = _IrqMonitor(env.dut, env.desc.ports["irq__payload"]["fields"], self.requests)
        record_upstream(env, self._record)

    # -- records ----------------------------------------------------------------------------
    def _record(self, tlp):
        if tlp.fmt_type in (TlpType.MEM_WRITE, TlpType.MEM_WRITE_64):
            data = int.from_bytes(tlp.get_data()[:4], "little")
            entry = self.env.msix.entry_of(tlp.address, data) if self.env.msix else None
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
            assert dws[1] >> 16 == int(self.env.dev.pcie_id), \
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
                self.env.be.irq(queue=e[1])
            else:
                self.env.be.irq(config=True)
        await self.env.be.irq_idle()

    async def wait_writes(self, n, timeout_cycles=3000):
        """Wait until ``n`` memory writes in total came upstream."""
        for _ in range(timeout_cycles // 10):
            if len(self.writes) >= n:
                return self.writes
            await self.env.cycles(10)
        raise AssertionError(f"{len(self.writes)} memory writes upstream, expected {n}: "
                             f"{self.writes}")

    async def wait_intx(self, n, timeout_cycles=3000):
        for _ in range(timeout_cycles // 10):
            if len(self.bridge.messages) >= n:
                return self.intx()
            await self.env.cycles(10)
        raise AssertionError(f"{len(self.bridge.messages)} INTx messages, expected {n}")

    async def expect_quiet(self, mark, cycles=80, what=""):
        """Nothing upstream (no memory write, no message) since ``mark``."""
        await self.env.settle(cycles)
        w, msgs, _ = mark
        assert self.writes[w:] == [], f"{what}: unexpected memory writes {self.writes[w:]}"
        assert self.bridge.messages[msgs:] == [], \
            f"{what}: unexpected messages {self.bridge.messages[msgs:]}"

    def check(self):
        """Every memory write upstream was an MSI-X message to a programmed entry, a single DW,
        that reached the root complex; nothing else but completions and INTx messages left."""
        for w in self.writes:
            assert w.entry is not None, f"memory write {w} matches no MSI-X table entry"
            assert w.length == 1, f"MSI-X write of {w.length} DWs"
            assert w.fmt64 == (w.addr >> 32 != 0), f"{w}: header format does not fit the address"
        sent = collections.Counter((w.addr, w.data) for w in self.writes)
        got = self.env.msix.delivered if self.env.msix else {}
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
