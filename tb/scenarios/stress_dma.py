"""Back-end DMA in the randomised stress (tb/scenarios/stress.py): traffic and its checker.

``DmaStress(stress)`` is created by ``Stress`` when the build has a requester (``dma_tags`` > 0). It
drives the requester port with ``tb.models.dma_lean_backend.LeanDmaBackend``, answers the function's
memory reads from a host memory (``PagedMemory``) with ``tb.host.dma_completer``, and checks every
MRd / MWr the function sends and every answer the back-end gets against what the PCIe rules and the
back-end contract (docs/backend-contract.md, hdl/virtio_pci/dma/layouts.py) allow. The stress calls
it at a few points: ``step`` (a step of the traffic mix), ``claims`` (every upstream TLP, before the
scoreboard: the MRds and the MWrs into the DMA windows are its own; host completions are looked at
for DMA-16), ``drain`` (sync points), ``before_flr`` / ``after_flr`` / ``after_setup`` and
``before_reset`` / ``at_reset`` / ``after_reset`` (Function Level Reset and conventional reset).

Traffic: reads and writes of 1 byte to a few KiB (rarely up to 64 KiB) at random byte alignment,
in three 192 KiB host windows (below 4 GiB, across the 4 GiB line, far above it), a third of them
placed across a 4 KiB boundary, Relaxed Ordering / No Snoop asked for at random; random idle on
``dma_req`` / ``dma_wdata`` and back-pressure on ``dma_rdata`` / ``dma_wdone``, new
probabilities at every sync point.  The host answers each MRd after a random latency with
completions split at the 64-byte RCB and at random legal points (never above the smallest MPS
the function may be using), interleaved between tags; about one MRd in 60 gets a bad answer (UR,
CA, or poisoned data followed by the rest of its completions), sent from the stress's coroutine
so that the reference model sets the error bits the function sets (Received Master Abort /
Target Abort, Detected Parity Error, Master Data Parity Error with Parity Error Response,
Non-Fatal, and Correctable for the completions it must discard).  Now and then the host stays
silent for 500 to 4000 cycles while more reads than tags are asked for (the transport traffic
goes on and is checked: DMA-17).

Checks:

* every MRd / MWr (DMA-02..08, DMA-18): Requester ID = the captured one, TC 0, no ID-based
  ordering, 3-DW header below 4 GiB and 4-DW at or above, First / Last DW byte enables exactly the
  bytes of the chunk, no 4 KiB crossing; each request is cut into the chunks the rules give
  (reads at multiples of min(MRRS, ``dma_max_read``), writes at multiples of MPS, from the Device
  Control values the reference model holds; when Device Control was written since the last
  drained point, any of the values it held since), chunks in address order, requests in order;
  a read's tag below 32 (Extended Tag clear) or ``dma_tags`` and not held by a read the host has
  not finished answering; Attr No Snoop / Relaxed Ordering only when asked for and enabled, the
  same on every chunk of a request;
* data: the bytes each read returns are exactly what the host's completions carried for it (the
  host memory when they were made); when its status is not OK every byte is 0 or such a byte (no
  poisoned, late or stale data); no bytes past its length, ``ceil(length / (W/8))`` beats; every
  MWr carries exactly the request's bytes for its range and lands in host memory (nothing else
  ever writes it);
* answers: each request answered once, in request order (reads on ``dma_rdata``, writes on
  ``dma_wdone``), none without a request (at drained points ``dma_rdata`` / ``dma_wdone`` are not
  valid), none missing (every request answered by the next sync point); the status: OK only when
  every chunk was sent and (reads) answered well; the injected UR / CA / POISONED; BME only when
  Bus Master Enable (``bus_master_allowed``, which includes D3hot) was seen clear while the
  request was pending, and then nothing more of it sent; when BME was clear the whole time, BME
  with no TLP at all (DMA-01); RESET (or BME) only for requests pending at an FLR;
* ordering (DMA-15, DMA-16, PCIe 2.4.1): ``dma_wdone`` OK only after every MWr of the write was
  on ``tx`` (so an interrupt requested after it leaves after them); a completion for a host
  request that arrived after a write's request and data were accepted leaves after that write's
  MWrs (a write that ends OK must not have been passed); an MRd never passes the MWrs of an earlier
  write request;
* resets (DMA-19): at an FLR every pending request is answered without any completion from the host
  (RESET, BME, or what it had already got); the completions the host still owed are sent afterwards
  with garbage data and must be discarded (the model expects Unexpected Completion, correctable); at
  a conventional reset the back-end is reset with the function, its pending requests are lost and
  late completions discarded; after either (when it found DMA in progress), a burst of as many reads
  as there are usable tags must have every one in flight at once (no tag leaked), then complete.

Counts go to the stress's STRESS line (``dma_*``).  Mutations (``VPCI_STRESS_MUTATE``,
tb/integration/test_stress.py) make the expectation wrong so that each check is seen failing:
``dma_data`` (a read byte), ``dma_write`` (a write byte), ``dma_drop_write`` (a write the checker
never hears of), ``dma_lost`` (an answer the back-end waits for that was never asked),
``dma_dup`` (a read the back-end forgets it asked: one answer too many), ``dma_status`` (an
injected UR expected as OK).
"""
import collections
import os
import random

import cocotb
from cocotb.triggers import RisingEdge, Timer
from cocotb.utils import get_sim_time

from tb.env.fabric import CLK_PERIOD_NS
from tb.host.dma_completer import DmaCompleter
from tb.models.dma_lean_backend import LeanDmaBackend, LeanOp
from tb.models.dma_model import PagedMemory, StatusRef, byte_enables_ref, parse_request

__all__ = ["DmaStress"]

FOUR_GIB = 1 << 32
WINDOW = 0x30000
STATUS_NAMES = ["ok", "ur", "ca", "poisoned", "timeout", "reset", "bme", "malformed"]
BAD_STATUS = {"ur": StatusRef.UR, "ca": StatusRef.CA, "poison": StatusRef.POISONED}


def _size_code(code):
    """Device Control MPS / MRRS code -> bytes (reserved codes 6 and 7 act as 128)."""
    return 128 << code if code <= 5 else 128


class DmaStress:
    def __init__(self, stress):
        s = self.s = stress
        self.dut = s.dut
        P = s.params
        self.n_tags = P["dma_tags"]
        self.max_read = P["dma_max_read"]
        self.mps_supported = P["max_payload_supported"]
        self.rng = rng = random.Random(s.seed * 7 + 3)
        self.mem = PagedMemory()
        lo = rng.randrange(0x100, 0xF0000) << 12
        hi = rng.randrange(1 << 21, 1 << 51) << 12
        self.windows = [(lo, WINDOW), (FOUR_GIB - WINDOW // 2, WINDOW), (hi, WINDOW)]
        self.be = LeanDmaBackend(s.dut, s.desc, rng, on_answer=self._on_answer,
                                 on_ready=self._on_ready)
        self.host = DmaCompleter(s.drv, self.mem, rng, CLK_PERIOD_NS)
        if int(os.environ.get("VPCI_STRESS_HISTORY", "0")):
            self.host.trace = lambda dws: s.sb.last_tlp.append(
                "DMA completion " + " ".join(f"{d:08x}" for d in dws))
        self.B = self.be.B
        self.seq = 0
        self.live = {}                      # seq -> op submitted, not answered
        self.rd_issue = collections.deque()  # read ops whose MRds are not all seen
        self.wr_issue = collections.deque()  # write ops whose MWrs are not all seen
        self.ready_unsent = []              # writes ready (request and data in), MWrs not all out
        self.snap = {}                      # host request key -> ready_unsent at its arrival
        self.blocked = False                # a reset is being handled: no new traffic
        self.in_flight = False              # the reset being handled found DMA in progress
        self.rate = 0.07                    # share of the mix's DMA steps that submit requests
        self.p_bad = 1 / 60
        self.mutate = s.mutate if s.mutate.startswith("dma_") else ""
        self._mut_n = 0
        if self.mutate:
            self.rate = 0.6                 # the short self-test runs need DMA traffic early
        if self.mutate == "dma_status":
            self.p_bad = 0.5
        for k in ("reads", "writes", "read_bytes", "write_bytes", "mrd", "mwr", "cpl",
                  "bad_cpl", "late_cpl", "above_4g", "cross_4k", "big", "silent", "tag_bursts",
                  "lost", "cpl_waits", "mrd_after_flr", *STATUS_NAMES):
            s.stats[f"dma_{k}"] = 0
        self.st = s.stats
        # Device Control values the function may be using (see _dc_sets)
        cfg = s.model.cfg
        self._dc_dw = cfg.dword_of("pcie_devctl")
        self._dc_hist = set()
        orig_write, orig_reset = cfg.write, cfg.reset

        def write(dw, be, data):
            orig_write(dw, be, data)
            if dw == self._dc_dw:
                self._dc_note()

        def reset():
            orig_reset()
            self._dc_note()
        cfg.write, cfg.reset = write, reset
        self._dc_note()
        s.drv.on_sent = self._on_rx_sent
        self.flr_mrd = None                 # tag of the MRd on tx when an FLR came (_watch_flr)
        cocotb.start_soon(self._watch_flr())

    # ---------------------------------------------------------------- Device Control --
    def _dc_now(self):
        f = self.s.model.cfg.field
        return (min(_size_code(f("mps")), self.mps_supported),
                min(_size_code(f("mrrs")), self.max_read), f("ext_tag_en"), f("relaxed_en"),
                f("no_snoop_en"))

    def _dc_note(self):
        self._dc_hist.add(self._dc_now())
        self.host.mps = min(v[0] for v in self._dc_hist)

    def _dc_reset(self):
        """At a drained point (no DMA pending, every configuration write applied): only the
        current values count."""
        self._dc_hist = {self._dc_now()}
        self.host.mps = min(v[0] for v in self._dc_hist)

    # ---------------------------------------------------------------- helpers --
    def _fail(self, msg):
        self.s.sb.fail(f"DMA: {msg}")

    def _now(self):
        return get_sim_time("ns")

    async def _cycles(self, n):
        if n > 0:               # (cocotb's Timer refuses 0)
            await Timer(n * CLK_PERIOD_NS, "ns")

    def _in_window(self, a):
        return any(b <= a < b + n for b, n in self.windows)

    def rand_len(self):
        rng = self.rng
        r = rng.random()
        if r < 0.6:
            return rng.randint(1, 64)
        if r < 0.85:
            return rng.randint(65, 512)
        if r < 0.98:
            return rng.randint(513, 4096)
        if r < 0.998:
            return rng.randint(4097, 16384)
        return rng.randint(16385, 65536)

    def rand_addr(self, n):
        """A start address no request in progress has (so that each MRd / MWr belongs to one
        request only, even when the one before it was refused part-way)."""
        busy = {op.addr for op in self.rd_issue} | {op.addr for op in self.wr_issue}
        while True:
            a = self._rand_addr(n)
            if a not in busy:
                return a

    def _rand_addr(self, n):
        rng = self.rng
        base, size = rng.choice(self.windows)
        if rng.random() < 0.35:
            # across a 4 KiB boundary (the 4 GiB line in the middle window)
            pg = base + 4096 * rng.randrange(1, size // 4096)
            a = pg - rng.randint(1, min(n, 4095)) if n > 1 else pg - 1
        else:
            a = base + rng.randrange(size - n + 1)
        return min(max(a, base), base + size - n)

    # ---------------------------------------------------------------- traffic --
    def submit(self, write, addr, n, *, relaxed=None, no_snoop=None):
        rng = self.rng
        relaxed = int(rng.random() < 0.3) if relaxed is None else relaxed
        no_snoop = int(rng.random() < 0.3) if no_snoop is None else no_snoop
        self.seq += 1
        data = rng.randbytes(n) if write else b""
        op = LeanOp(write, addr, n, data, relaxed=relaxed, no_snoop=no_snoop, seq=self.seq)
        op.cursor = addr
        op.tlps = 0
        op.attr = None
        op.flr = False
        op.inject = None
        op.all_sent = False
        op.passed = None
        op.ref = data
        op.good = 0
        op.expect = None if write else bytearray(n)
        op.gmask = None if write else bytearray(n)
        mu = self.mutate
        forget = False
        # (every write from the 4th request on: one of them may be refused by BME or a reset)
        if mu in ("dma_write", "dma_drop_write") and write and self.seq > 3:
            if mu == "dma_write":
                op.ref = bytes([data[0] ^ 0x01]) + data[1:]
            else:
                forget = True
        st = self.st
        st["dma_writes" if write else "dma_reads"] += 1
        st["dma_write_bytes" if write else "dma_read_bytes"] += n
        if addr + n > FOUR_GIB:
            st["dma_above_4g"] += 1
        if addr >> 12 != (addr + n - 1) >> 12:
            st["dma_cross_4k"] += 1
        if n > 16384:
            st["dma_big"] += 1
        if not forget:
            self.live[op.seq] = op
            (self.wr_issue if write else self.rd_issue).append(op)
        self.be.submit(op)
        if mu in ("dma_lost", "dma_dup") and not write and self.seq > 3 and not self._mut_n:
            self._mut_n = 1
            cocotb.start_soon(self._mutate_answers(op, mu))
        return op

    async def _mutate_answers(self, op, mu):
        """``dma_lost``: the back-end waits for an answer to a read it never asked;
        ``dma_dup``: it forgets a read it asked (the answer to it is one too many)."""
        while op.t_offer is None:
            await self._cycles(1)
        if mu == "dma_lost":
            ghost = LeanOp(False, op.addr, op.length, seq=0)
            ghost.bme0, ghost.bme_changes0 = op.bme0, op.bme_changes0
            self.be.reads.insert(self.be.reads.index(op), ghost)
        elif op in self.be.reads:
            self.be.reads.remove(op)

    async def step(self):
        """One step of the stress's mix: now and then a few requests (or a silent host)."""
        if self.blocked:
            return
        await self._flush_bad()
        rng = self.rng
        if rng.random() > self.rate or self.be.pending > 12:
            return
        if rng.random() < 0.015 and self._now() >= self.host.silent_until:
            # the host stops answering; more reads than tags (DMA-17: the function keeps
            # answering the host, checked by the transport scoreboard meanwhile)
            self.st["dma_silent"] += 1
            self.host.silent_until = self._now() + CLK_PERIOD_NS * rng.randint(500, 4000)
            for _ in range(self._tag_limit() + rng.randint(1, 8)):
                n = rng.randint(1, 64)
                self.submit(False, self.rand_addr(n), n)
            return
        for _ in range(rng.choice((1, 1, 1, 2, 3))):
            n = self.rand_len()
            self.submit(rng.random() < 0.5, self.rand_addr(n), n)

    def _tag_limit(self):
        ext = self.s.model.cfg.field("ext_tag_en")
        return self.n_tags if ext else min(32, self.n_tags)

    # ---------------------------------------------------------------- upstream TLPs --
    def claims(self, dws):
        """Called for every upstream TLP: True when it is back-end DMA (checked here)."""
        top = dws[0] >> 24
        if top in (0x0A, 0x4A):
            if self.snap:
                self._on_host_cpl(dws)
            return False
        if top in (0x00, 0x20):
            self._on_mrd(dws)
            return True
        if top in (0x40, 0x60):
            if len(dws) < (4 if top == 0x40 else 5):
                return False
            addr = (dws[2] if top == 0x40 else dws[2] << 32 | dws[3]) & ~3
            if not self._in_window(addr):
                return False
            msix_like = len(dws) == (4 if top == 0x40 else 5) and dws[1] & 0xFF == 0x0F
            if msix_like and not any(op.cursor & ~3 == addr for op in
                                     list(self.wr_issue)[:4]):
                return False        # an MSI-X write whose address happens to be in a window
            self._on_mwr(dws)
            return True
        return False

    def _parse(self, dws, what):
        try:
            r = parse_request(dws)
        except AssertionError as e:
            self._fail(f"malformed {what} {[hex(d) for d in dws]}: {e}")
            return None
        want_id = self.s.model.completer_id
        errs = []
        if r.requester_id != want_id:
            errs.append(f"Requester ID {r.requester_id:#06x}, captured {want_id:#06x} (DMA-08)")
        if r.tc or r.attr & 4:
            errs.append(f"TC {r.tc} / ID-based ordering {r.attr >> 2} not 0")
        if (r.hdr_dw == 4) != (r.addr >= FOUR_GIB):
            errs.append(f"{r.hdr_dw}-DW header for address {r.addr:#x} (DMA-05)")
        if r.nbytes < 1 or (r.length_dw, r.fbe, r.lbe) != byte_enables_ref(r.start, r.nbytes):
            errs.append(f"length {r.length_dw} DW, byte enables {r.fbe:#x}/{r.lbe:#x} for "
                        f"{r.nbytes} bytes at {r.start:#x} (DMA-06)")
        if r.start >> 12 != (r.start + r.nbytes - 1) >> 12:
            errs.append("crosses a 4 KiB boundary (DMA-04)")
        if errs:
            self._fail(f"{what} {[hex(d) for d in dws]}: " + "; ".join(errs))
        return r

    def _attribute(self, queue, r, what):
        """The request the chunk ``r`` belongs to: the first whose next byte it starts at (a
        request refused part-way, by BME or an FLR, is skipped: it must not end OK)."""
        for i, op in enumerate(queue):
            if i > 16:
                break
            if r.start == op.cursor and (i == 0 or op.cursor == op.addr):
                for _ in range(i):
                    queue.popleft()
                return op
        head = queue[0] if queue else None
        self._fail(f"{what} {r.start:#x}+{r.nbytes} belongs to no request in progress (next "
                   f"expected: {head!r} at {head.cursor:#x})" if head else
                   f"{what} {r.start:#x}+{r.nbytes} with no request in progress")
        return None

    def _check_chunk(self, op, r, sizes, what, ids):
        end = op.end
        ok = any(r.nbytes == min(end - r.start, b - r.start % b) for b in sizes)
        if not ok:
            self._fail(f"{what} {r.start:#x}+{r.nbytes} of {op!r}: not the chunk the split at "
                       f"{sorted(sizes)} bytes gives ({ids})")
        # Attr: No Snoop (bit 0) / Relaxed Ordering (bit 1) only when asked for and enabled
        ns_ok = {op.no_snoop & v[4] for v in self._dc_hist}
        ro_ok = {op.relaxed & v[3] for v in self._dc_hist}
        if (r.attr & 1) not in ns_ok or (r.attr >> 1 & 1) not in ro_ok:
            self._fail(f"{what} of {op!r}: Attr {r.attr:#x}, asked No Snoop {op.no_snoop} "
                       f"Relaxed {op.relaxed}, enables "
                       f"{sorted((v[4], v[3]) for v in self._dc_hist)}"
                       f" (DMA-18)")
        if op.attr is None:
            op.attr = r.attr
        elif op.attr != r.attr:
            self._fail(f"{what} of {op!r}: Attr {r.attr:#x} after {op.attr:#x} on the same request")

    async def _watch_flr(self):
        """An MRd the function already offered on ``tx`` when an FLR comes cannot be taken back
        (``tx`` keeps a beat offered until it is taken): it leaves after the FLR although its
        read was answered RESET, and the host answers it late (PCIe 6.6.2: completions of
        requests from before the FLR are discarded).  The FLR's edge is watched for one; any
        other MRd of a finished read is still an error."""
        d = self.dut
        f = self.s.desc.ports["tx__payload"]["fields"]
        while True:
            await RisingEdge(d.flr)
            if not int(d.tx__valid.value):
                continue
            p = int(d.tx__payload.value)
            dw0 = p >> f["data"][0] & 0xFFFF_FFFF
            dw1 = p >> (f["data"][0] + 32) & 0xFFFF_FFFF
            if p >> f["first"][0] & 1 and dw0 >> 24 in (0x00, 0x20):
                self.flr_mrd = dw1 >> 8 & 0xFF

    def _on_mrd(self, dws):
        r = self._parse(dws, "MRd")
        if r is None:
            return
        self.st["dma_mrd"] += 1
        if self.flr_mrd is not None and r.tag == self.flr_mrd:
            self.flr_mrd = None
            self.st["dma_mrd_after_flr"] += 1
            self.host.request(r)            # answered by _late(), discarded by the function
            return
        op = self._attribute(self.rd_issue, r, "MRd")
        if op is None:
            return
        self._check_chunk(op, r, {v[1] for v in self._dc_hist}, "MRd", "DMA-02")
        ext = any(v[2] for v in self._dc_hist)
        limit = self.n_tags if ext else min(32, self.n_tags)
        if r.tag >= limit:
            self._fail(f"MRd tag {r.tag} with {limit} tags usable (Extended Tag "
                       f"{sorted({v[2] for v in self._dc_hist})}) (DMA-07)")
        if r.tag in self.host.outstanding:
            self._fail(f"MRd tag {r.tag} reused while the host still owes completions for it "
                       f"(DMA-07)")
        # PCIe 2.4.1 (Table 2-40 row B column 2): a read does not pass an earlier posted write
        for w in self.wr_issue:
            if w.seq < op.seq and w.passed is None:
                w.passed = f"MRd {r.start:#x} of {op!r}"
        bad = None
        if op.inject is None and self.rng.random() < self.p_bad:
            kind = self.rng.choice(("ur", "ur", "ca", "ca", "poison", "poison", "poison"))
            bad = (kind, self.rng.randrange(3))
            op.inject = BAD_STATUS[kind]
            if self.mutate == "dma_status":
                op.inject = StatusRef.OK
        op.cursor = r.start + r.nbytes
        op.tlps += 1
        if op.cursor == op.end and self.rd_issue and self.rd_issue[0] is op:
            self.rd_issue.popleft()
        self.host.request(r, on_data=lambda a, d, op=op: self._got(op, a, d), bad=bad)

    def _got(self, op, a, data):
        """A good completion for ``op`` carried ``data`` at ``a``."""
        o = a - op.addr
        n = len(data)
        if self.mutate == "dma_data" and op.seq > 3:
            data = bytes([data[0] ^ 0x80]) + data[1:]
        op.expect[o:o + n] = data
        op.gmask[o:o + n] = b"\x01" * n
        op.good += n
        self.st["dma_cpl"] += 1

    def _on_mwr(self, dws):
        r = self._parse(dws, "MWr")
        if r is None:
            return
        self.st["dma_mwr"] += 1
        op = self._attribute(self.wr_issue, r, "MWr")
        if op is None:
            return
        self._check_chunk(op, r, {v[0] for v in self._dc_hist}, "MWr", "DMA-03")
        o = r.start - op.addr
        want = op.ref[o:o + r.nbytes]
        if r.data != want:
            i = next(k for k in range(len(want)) if k >= len(r.data) or r.data[k] != want[k])
            self._fail(f"MWr {r.start:#x}+{r.nbytes} of {op!r}: byte {r.start + i:#x} is "
                       f"{r.data[i]:#04x}, the request wrote {want[i]:#04x}")
        self.mem.write(r.start, r.data)
        op.cursor = r.start + r.nbytes
        op.tlps += 1
        if op.cursor == op.end:
            op.all_sent = True
            if self.wr_issue and self.wr_issue[0] is op:
                self.wr_issue.popleft()
            if op in self.ready_unsent:
                self.ready_unsent.remove(op)

    # ---------------------------------------------------------------- DMA-16 --
    @staticmethod
    def _key(dw0, rid_tag_dw):
        return (rid_tag_dw >> 16) << 10 | (rid_tag_dw >> 8 & 0xFF) | (dw0 >> 19 & 1) << 8 \
            | (dw0 >> 23 & 1) << 9

    def _on_ready(self, op):
        if not op.all_sent and op.seq in self.live:
            self.ready_unsent.append(op)

    def _on_rx_sent(self, beats):
        """A TLP's last beat was accepted on ``rx``: remember which writes were ready then."""
        if not self.ready_unsent and not self.snap:
            return
        data = beats[0][0]
        dw0 = data & 0xFFFF_FFFF
        if dw0 >> 24 & 0x1F in (0x0A, 0x0B) or dw0 >> 30 & 1 and not dw0 >> 24 & 0x1F:
            return                  # completions, posted memory writes: no completion follows
        key = self._key(dw0, data >> 32 & 0xFFFF_FFFF)
        if self.ready_unsent:
            self.snap[key] = list(self.ready_unsent)
        else:
            self.snap.pop(key, None)

    def _on_host_cpl(self, dws):
        ws = self.snap.get(self._key(dws[0], dws[2]))
        if ws:
            for w in ws:
                self.st["dma_cpl_waits"] += 1
                if not w.all_sent and w.passed is None:
                    w.passed = f"host completion {[hex(d) for d in dws[:3]]}"

    # ---------------------------------------------------------------- answers --
    def _on_answer(self, op):
        if op.seq not in self.live:
            if op.seq:
                self._fail(f"answer for {op!r}, which was answered before or never asked")
            else:
                self._fail(f"answer (status {op.status}) for a read the back-end never asked")
            return
        del self.live[op.seq]
        st = self.st
        name = STATUS_NAMES[op.status] if op.status < len(STATUS_NAMES) else str(op.status)
        st[f"dma_{name}"] += 1
        q = self.wr_issue if op.write else self.rd_issue
        if op in q:
            q.remove(op)
        if op in self.ready_unsent:
            self.ready_unsent.remove(op)
        on, off = self.be.bme_seen(op)
        complete = op.cursor == op.end and (op.write or op.good == op.length)
        allowed = set()
        if op.inject is not None:
            allowed.add(op.inject)
        elif complete:
            allowed.add(StatusRef.OK)
        if off:
            allowed.add(StatusRef.BME)
        if op.flr:
            allowed |= {StatusRef.RESET, StatusRef.BME}
        if not on and not op.flr:
            allowed = {StatusRef.BME}
            if op.tlps:
                self._fail(f"{op!r}: {op.tlps} TLPs sent while Bus Master Enable was clear "
                           f"(DMA-01)")
        if op.status not in allowed:
            why = []
            if not complete:
                why.append(f"{op.cursor - op.addr} of {op.length} bytes requested"
                           + ("" if op.write else f", {op.good} answered"))
            self._fail(f"{op!r}: status {name}, allowed "
                       f"{sorted(STATUS_NAMES[s] for s in allowed)} (BME seen on {int(on)} off "
                       f"{int(off)}, FLR {int(op.flr)}, injected {op.inject}) {'; '.join(why)}")
        if op.write:
            if op.status == StatusRef.OK and not op.all_sent:
                self._fail(f"{op!r}: dma_wdone OK before all its MWrs were on tx (DMA-15)")
            if op.status == StatusRef.OK and op.passed:
                self._fail(f"{op!r} (request and data accepted at {op.t_ready} ns) was passed "
                           f"by {op.passed} (DMA-16 / PCIe 2.4.1)")
            return
        # reads: data
        nb = (op.length + self.B - 1) // self.B
        if op.beats != nb or any(op.tail):
            self._fail(f"{op!r}: {op.beats} beats (want {nb}), bytes past the length "
                       f"{op.tail.hex()}")
        if op.status == StatusRef.OK:
            if op.data != bytes(op.expect):
                i = next(k for k in range(op.length) if op.data[k] != op.expect[k])
                self._fail(f"{op!r}: read byte {op.addr + i:#x} is {op.data[i]:#04x}, the host "
                           f"sent {op.expect[i]:#04x}")
        else:
            e, g = op.expect, op.gmask
            for i, d in enumerate(op.data):
                if d and (not g[i] or d != e[i]):
                    self._fail(f"{op!r}: status {name} but byte {op.addr + i:#x} is {d:#04x} "
                               f"(good data {e[i]:#04x} known {g[i]}): stale, poisoned or late "
                               f"data handed on (DMA-11, DMA-19)")
                    break

    # ---------------------------------------------------------------- bad completions --
    async def _flush_bad(self):
        """Send the completions that set error bits, and tell the reference model."""
        h = self.host
        if not h.bad or h.pause:
            return
        await self.s._cfg_quiet()
        m = self.s.model
        cfg = m.cfg
        while h.bad:
            dws, kind, last = h.bad.popleft()
            if kind == "ur":
                cfg.set_bit("status", 13)           # Received Master Abort
            elif kind == "ca":
                cfg.set_bit("status", 12)           # Received Target Abort
            elif kind == "poison":
                cfg.set_bit("status", 15)           # Detected Parity Error
                cfg.set_bit("pcie_devsta", 1)       # Non-Fatal Error Detected
                if m.command >> 6 & 1:
                    cfg.set_bit("status", 8)        # Master Data Parity Error
            elif kind == "zombie":
                cfg.set_bit("pcie_devsta", 0)       # Unexpected Completion: correctable
            if kind:
                self.st["dma_bad_cpl"] += 1
            self.s.sb.mark(f"DMA completion {kind}")
            self.s.drv.send(dws)
            if last is not None:
                h.release(last)

    # ---------------------------------------------------------------- sync points --
    async def _wait(self, cond, limit_cycles, what):
        t0 = self._now()
        while not cond():
            await self._flush_bad()
            await self._cycles(16)
            if self._now() - t0 > limit_cycles * CLK_PERIOD_NS:
                what = what() if callable(what) else what
                self._fail(f"{what} after {limit_cycles} cycles: {len(self.live)} requests "
                           f"unanswered (first {next(iter(self.live.values()), None)!r}), host "
                           f"owes {len(self.host.outstanding)} reads")
                return False
        return True

    async def drain(self):
        """At a sync point: every request answered and checked; nothing answered without a
        request; then new idle / back-pressure / latency settings."""
        await self._wait(lambda: not self.live and not self.be.pending and not self.host.busy,
                         400_000, "DMA requests not answered")
        await self._cycles(4)
        d = self.dut
        if int(d.dma_rdata__valid.value) or int(d.dma_wdone__valid.value):
            self._fail(f"an answer with no request pending (dma_rdata valid "
                       f"{int(d.dma_rdata__valid.value)}, dma_wdone valid "
                       f"{int(d.dma_wdone__valid.value)})")
        if self.host.outstanding:
            self._fail(f"the host still owes completions for tags "
                       f"{sorted(self.host.outstanding)} with every request answered")
        self.snap.clear()
        self._dc_reset()
        self.sweep()

    def sweep(self):
        rng = self.rng
        be = self.be
        be.req_idle = rng.choice([0.0, 0.0, 0.1, 0.3, 0.7])
        be.wdata_idle = rng.choice([0.0, 0.0, 0.1, 0.3, 0.7])
        be.rdata_stall = rng.choice([0.0, 0.0, 0.2, 0.5, 0.9])
        be.wdone_stall = rng.choice([0.0, 0.2, 0.6, 0.95])
        self.host.lat = rng.choice([(0, 8), (0, 40), (20, 200), (50, 400)])
        self.host.gap = rng.choice([(0, 2), (0, 8), (0, 40)])

    # ---------------------------------------------------------------- resets --
    async def before_flr(self):
        """An FLR is about to be sent: the completions that set error bits go out first (so
        that the host's late answers continue where they stopped), then the host stops
        answering; whatever is pending may end with RESET (or BME: the FLR clears Bus Master
        Enable)."""
        await self._in_flight()
        self.blocked = True
        await self._flush_bad()
        self.host.pause = True
        self.in_flight = bool(self.live or self.host.outstanding)
        for op in self.live.values():
            op.flr = True

    async def after_flr(self):
        """Every pending request must be answered without the host; then the host sends what
        it still owed (garbage data): the function must discard it (Unexpected Completion)."""
        await self._wait(lambda: not self.live and not self.be.pending, 50_000,
                         "DMA requests not answered after an FLR without completions (DMA-19)")
        await self._wait(lambda: self.flr_mrd is None, 400_000,
                         "the MRd offered on tx at the FLR never left")
        await self._late()

    async def _late(self):
        late = self.host.abandon(mps=128)
        self.host.silent_until = 0
        self.st["dma_late_cpl"] += len(late)
        self.rd_issue.clear()
        self.wr_issue.clear()
        self.ready_unsent.clear()
        self.snap.clear()
        for dws in late:
            await self.s.send(dws)          # the model: an unexpected completion
        self.host.pause = False

    async def _in_flight(self):
        """Before a reset, most of the time: a few requests, given a little time to get going
        (so that the reset finds MRds waiting for completions, writes half sent, ...)."""
        rng = self.rng
        if self.blocked or rng.random() < 0.3:
            return
        for _ in range(rng.randint(1, 4)):
            n = self.rand_len()
            self.submit(rng.random() < 0.5, self.rand_addr(n), n)
        await self._cycles(rng.randint(0, 120))

    async def before_reset(self):
        """A conventional reset is coming: most of the time with DMA in flight.  The host stops
        answering now: a completion it started after the stress drained ``rx`` would be cut by
        the reset and its rest arrive as a fragment, which is the rx driver's doing, not the
        function's (the stress cuts a TLP only when it means to, ``drv.abort``)."""
        await self._in_flight()
        self.host.pause = True

    def at_reset(self):
        """``rst`` is asserted: the back-end is reset with the function; what was pending is
        lost (no answer may come for it)."""
        self.in_flight = bool(self.live or self.host.outstanding)
        self.blocked = True
        self.host.pause = True
        self.st["dma_lost"] += len(self.live)
        self.be.reset()
        self.live.clear()

    async def after_reset(self):
        """The function is set up again: the host's late completions must be discarded; then
        every tag must be usable."""
        await self._late()
        await self.s._drain()               # processed before new reads could take the tags
        await self.after_setup()

    async def after_setup(self):
        """No tag leaked: when the reset found DMA in progress, as many reads as there are
        usable tags must all be in flight at once while the host holds its answers; then they
        complete."""
        self._dc_reset()
        if not self.in_flight:
            self.blocked = False
            return
        # the set-up's TLPs are only queued for the link when ``setup`` returns: the burst
        # waits until they were all answered, or its first read could reach the requester
        # before the Command write that sets Bus Master Enable (and be refused with BME)
        await self.s._drain()
        rng = self.rng
        limit = self._tag_limit()
        R = self._dc_now()[1]
        h = self.host
        h.hold = True
        h.held = 0
        base, size = rng.choice(self.windows)
        blocks = rng.sample(range(size // R), limit)
        ops = []
        for b in blocks:
            n = rng.randint(1, min(64, R))
            ops.append(self.submit(False, base + b * R + rng.randrange(R - n + 1), n))
        ok = await self._wait(lambda: h.held >= limit, 4000,
                              lambda: f"only {h.held} of {limit} reads in flight after the "
                                      f"reset (a "
                              f"tag leaked: DMA-07, DMA-19)")
        h.hold = False
        h.wake()
        if ok:
            await self._wait(lambda: not any(op.seq in self.live for op in ops), 100_000,
                             "reads of the tag burst not answered")
        self.st["dma_tag_bursts"] += 1
        self.blocked = False
