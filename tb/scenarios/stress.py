"""Randomised stress with a scoreboard (DESIGN.md section 9, issue 5).

``Stress(dut, seed, count).run()`` sends ``count`` random TLPs through ``tb.host.lean_driver`` (random
rx idle, random tx back-pressure, random doorbell / queue-event back-pressure).  This module
generates the traffic (random choices, the run loop, resets, set-up); every check is made by the
``Scoreboard`` of tb/scenarios/stress_scoreboard.py (expectation queues, matching, the error list),
which checks, for every TLP, against ``tb.models.ref_model.RefModel``:

* every upstream TLP equals the next one the model expects, DW for DW (completion order, header
  fields, status, byte count, lower address, read data in the enabled byte lanes); an upstream TLP
  the model did not expect fails; so does one that never comes (checked at every sync point);
* every doorbell and queue event equals the next one the model expects (none lost, none
  duplicated, none extra);
* idle on rx and back-pressure on tx, doorbell and queue events change at every sync point
  (probabilities from 0 to 0.7 / 0.95);
* at sync points (the pipeline drained): ``reset_req``, ``driver_ok``, ``features_ok`` and
  ``device_status`` against the model.

Mix: valid reads and writes of every width / length / byte-enable pattern to every region of the
memory BAR (common, ISR, device, notify, MSI-X table and PBA, and the gaps) and to configuration
space, plus malformed and unsupported TLPs (length against payload, byte-enable rules, 4 KiB
crossing, payload above MPS, undefined types, prefixes, poisoned, Type 1 / other function /
I/O / locked / atomic requests, messages, unexpected completions, requests outside the BAR,
broken frames: a TLP cut short by a new ``first`` beat, beats without ``first`` outside a TLP).

PCI-cfg window (``window_access``): the capability's bar / offset / length reprogrammed now and
then (valid windows of length 1, 2 and 4 onto common, notify, ISR and device config, and invalid
ones: another bar, length 0 / 3 / 8 / random, misaligned, past a structure, onto the MSI-X
table), ``pci_cfg_data`` read and written with random byte enables; the model answers (data in
the first bytes, side effects such as ISR read-to-clear, doorbells, common-config writes).

Interrupts (``irq_burst``): at drained points 1 to 5 back-end ``irq`` requests (existing queues,
queues past num_queues, configuration changes), back to back or with gaps, half of the time
spread over a stream of requests that leave the interrupt state alone (reads other than ISR, PBA
and config space; doorbells), so that MSI-X writes and INTx messages interleave with their
completions on ``tx``; after that the random traffic goes on (mask / unmask, Function Mask, MSI-X Enable, Bus Master Enable, table
writes, PBA and ISR reads, resets).  The model (``RefModel.irq_request``, ``IrqModel``) gates
them like ``irq_allowed`` (DRIVER_OK, not resetting, queue enabled and not in reset), sets the
ISR bits, resolves the vector (NO_VECTOR and vectors past the table send nothing) and keeps per
vector what may and what must happen, because when a pending message leaves is not predictable
to the cycle: every MSI-X write on the link must match the address and data an entry had while
its vector was deliverable and owed a message (3-DW header below 4 GiB, 4-DW above, requester
ID, byte enables), a masked or Bus-Master-disabled vector must send nothing, and at every drained
point an owed message must have arrived and the PBA (read through the checked path) must show
exactly the pending bits the model allows (a lost event, or a spurious pending bit, fails).  PBA
bits that may be either in the random traffic are not compared.  INTx: Assert/Deassert must
alternate, be no more than the changes of (ISR non-zero, MSI-X off, Interrupt Disable clear),
and match it at drained points; Status.Interrupt Status is checked in every config read.

Power states and stalls (issue 11): PMCSR writes take PowerState 0 most of the time, 3 (D3hot)
and the unsupported 1 and 2 now and then; the model applies the PM rules (D1/D2 discarded, in D3hot
memory and I/O requests are URs, nothing is initiated, the PBA is not read at drained points).
Now and then the doorbell or queue-event port takes nothing for 64 to 600 cycles (less than the
back-end timeout, so nothing is given up).  Longer: *stuck-port episodes* (tb/scenarios/stress_stuck.py,
its docstring has the rules), in a deterministic rotation over the ports the build has (every
one at least once per run, about one episode per 25,000 TLPs): the doorbell, queue-event,
device-config (external back-end) or legacy ``reset_ack`` port stalled past the back-end timeout T
while random traffic goes on, with configuration reads timed on the wires against the bound of
docs/spec-decisions.md, exact ``err_backend_timeout`` counts and DEVICE_NEEDS_RESET, or ``tx`` held
20k to 200k cycles with posted writes passing ``cpl_queue_depth`` + 1 waiting reads; then the
port released (or, for the doorbell and the legacy reset, only after the FLR), an FLR, and the
function checked in its reset state before the checked traffic goes on.  Interrupt requests on many queues and few vectors may find a
vector's message already started: the function pends it again and sends one more, which the
model allows (``RefModel.resolve``; the drained point reads the PBA again until it is owed
nothing).

Resets (all counted; ``RESETS`` line at the end): a virtio device reset (device_status 0) and
queue resets start from the random traffic and are acknowledged by the back-end at a later random
sync point while traffic went on; Function Level Reset and the conventional reset are injected at
random points, half of them with requests in flight (an FLR behind queued requests: their
completions may or may not come (``cpl_dropped_flr`` counts those that did not: 0 so far, the
RTL sends them all), their doorbells and queue events must; a conventional reset in
the middle of an ``rx`` TLP with more queued and answers pending: whatever was not out is lost),
after which the device is set up again (BAR, Memory Space and Bus Master Enable, MSI-X: every
table entry is rewritten after a conventional reset with writes in flight, as the table RAM keeps
its contents) with checked traffic; nothing may hang.

Legacy header (transitional builds: ``transitional=True``, the legacy virtio header in I/O BAR0;
``make stress STRESS_ARGS="--params examples/virtio-net-transitional.json"``): about 15 % of the
requests are I/O requests (``io_access``) mixed into the traffic above: IORd / IOWr to every DW of
the I/O BAR (the header, weighted to notify / status / ISR, the device configuration at byte 20
or 24, the DWs past it) and past the BAR (UR), every byte-enable pattern, data the fields take
(offered guest features, PFNs, queue selects, queue indices, status values, vectors), I/O
Space Enable toggled, malformed (length 2, last BE, TC), poisoned (UR) and digest-carrying I/O
requests, and now and then a Linux-like legacy init (``legacy_init``: reset, features, PFN per
queue, DRIVER_OK), which also stands for the modern init before interrupt bursts half of the
time.  The model (``RefModel.io_read`` / ``io_write``, ``CommonCfgModel.legacy_*``) answers every
completion (read data in the enabled lanes) from the README's register map and rules: legacy
mode and its features in ``driver_features`` at once, the legacy ring layout of a PFN (queue
event ENABLE; PFN 0 on an enabled queue: queue event RESET whatever RING_RESET), legacy
doorbells (queue = value written, before DRIVER_OK for a legacy driver), status 0, ISR
read-clear at byte 19, vectors at 20 only with MSI-X enabled, and the mixing rules (legacy
writes after a modern FEATURES_OK ignored except status 0; an accepted FEATURES_OK ends legacy
mode; legacy used-buffer interrupts before DRIVER_OK, configuration interrupts not).  A legacy
access to a common-configuration field while a device reset is in progress must wait for the
back-end (``send_io``): the pipeline is drained, the access sent, its completion must not come
for 8 to 47 cycles, then the back-end acknowledges.  On every build, at every sync point, the
queue rows the back-end reads on ``qrd_*`` (size, vector, the three ring addresses) and the
``driver_features`` and ``legacy`` outputs are checked against the model.

Back-end DMA (builds with a requester, ``dma_tags`` > 0: the default; ``tb/scenarios/stress_dma.py``
has the rules): a share of the steps of the mix asks for random back-end reads and writes (1 byte to
a few KiB, rarely up to 64 KiB, any alignment, below, across and far above 4 GiB, across 4 KiB
boundaries) with random idle and back-pressure on the four requester streams; the host side answers
every MRd from a host memory with completions split at the RCB and at random legal points,
interleaved between tags, after a random latency, now and then with UR, CA or poisoned data, and now
and then stays silent while every tag is in flight. Every MRd / MWr is checked against the PCIe
request rules, every answer against the data the host sent or the bytes the request wrote, its
status against what the BME changes, FLRs, resets and bad completions of the run allow, and the
ordering rules (``dma_wdone`` OK after the write's MWrs, host completions after earlier back-end
writes, MRds after earlier MWrs). At an FLR pending requests must end without the host's help and
its late completions be discarded; at a conventional reset the back-end is reset too and the late
completions discarded; after either, when DMA was in progress, every tag must be usable at once.
``dma_*`` counts in the STRESS line.  ``make stress COUNT=200000 SEED=20261203`` (revision
10ba944, load average about 11): 200,010 TLPs in 351 s with 1,557 DMA reads and 420 writes
(671,176 bytes), statuses OK 1,778 / UR 13 / CA 11 / POISONED 24 / BME 104 / RESET 24, 23 lost
to conventional resets, 162 late completions discarded (docs/verification.md has the rest).

Figures (shared 2-core machine, load average 4 to 13 from other jobs): the default 1,000,000
TLPs (seed 1438770328) passed in 223 s, 4,489 TLPs/s, with 1,256 MSI-X writes, 1,136 INTx
messages, 10,515 interrupt requests (5,074 not allowed), 13,747 window accesses and 2,215
resets: 152 conventional (81 with requests in flight), 224 FLR (115 in flight), 196 virtio
device resets, 1,643 queue resets.  COUNT=200000 SEED=20261124: 34 s, 453 resets (20 / 47 / 31
/ 355).  Transitional: ``make stress COUNT=300000 SEED=80037363 STRESS_ARGS="--params
examples/virtio-net-transitional.json"`` passed 300,014 TLPs in 41 s (7,355 TLPs/s at a load
average of 3.5) with 30,301 I/O requests served by the legacy header (12,058 reads, 18,243
writes), 982 legacy doorbells (171 before DRIVER_OK), 1,191 PFN enables and 177 PFN queue
resets, 428 legacy inits, 490 device resets through the legacy status (529 legacy accesses
waited for the acknowledge), 2,165 legacy writes ignored after a modern FEATURES_OK, 116 legacy
used-buffer interrupts before DRIVER_OK, 600 I/O Space Enable toggles, 2,583 queue rows
checked; resets: 44 conventional (21 in flight), 64 FLR (30 in flight), 538 virtio, 297 queue,
943 in all (the ``legacy_*`` counts of the STRESS line).

Stuck-port episodes (revision ca58a4a, load average about 13 to 20): ``make stress COUNT=200000
SEED=120301`` passed 200,012 TLPs (383 s) with 9 episodes (3 queue-event, 3 doorbell, 3 tx held,
97,448 cycles in all, 27 doorbells passing waiting reads), 1,210 requests given up, 5 ports
released before the FLR, 9 FLR recoveries, 23 timed configuration reads (longest 1,041 cycles,
T = 1024), 23 s of the wall time in episodes; ``make stress COUNT=100000 SEED=120302
STRESS_ARGS="--params examples/virtio-net-transitional.json"`` passed 100,015 TLPs (312 s) with
5 episodes (2 queue-event, doorbell, tx held 21,441 cycles, legacy reset_ack), 810 requests given
up, 5 FLR recoveries, 18 timed reads (longest 1,034 cycles), 15 s in episodes (that example has
the built-in device configuration: device-config episodes run on the m0 and transitional builds
of tb/integration/test_stress.py).

Not covered (left for later): BAR reprogramming after setup, device-config updates and
DEVICE_NEEDS_RESET from the back-end's ``needs_reset`` input (the configuration-change interrupt
of a DEVICE_NEEDS_RESET comes only from requests given up in stuck-port episodes), requests sent *after*
an FLR request before it completed (software waits 100 ms), interrupt requests while TLPs are in
flight that change or read the interrupt state (the requests are issued at drained points or
beside requests that commute with them, so that the ISR, the gating and the vector lookup are
exact; the messages themselves overlap the traffic that follows).  Legacy header: the
``legacy_guard`` (NTL-01) build; legacy device-config writes reaching an external back-end
before the feature step (LEG-07: the back-end model ignores writes, so only the completion is
checked); a legacy access waiting on a reset with an FLR or a conventional reset behind it (the
stress always acknowledges); queue-reset completions (``qreset_done``) racing a PFN write (they
come at sync points); I/O requests beside interrupt requests.  Stuck-port episodes: no
resets, interrupt bursts or sync points inside an episode; no I/O requests in them except in
``reset_ack`` episodes, and there no legacy device-config accesses on builds with an external
back-end (a known limitation, docs/spec-decisions.md); a queue-event or device-config port is
always released before the FLR (what a back-end that recovers only with ``flr`` sees is not
modelled).
"""
import logging
import os
import random
import time

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import ClockCycles, FallingEdge, with_timeout
from cocotb.utils import get_sim_time
from virtio_pci.tlp.layouts import Space

from tb.env.fabric import CLK_PERIOD_NS, load_desc
from tb.host.lean_driver import LeanDriver
from tb.models.pcie_rules import classify, ref_ops
from tb.models.ref_model import RefModel
from tb.models.virtio_backend import VirtioBackend
from tb.models.virtio_model import LEGACY_ONLY
from tb.scenarios.stress_dma import DmaStress
from tb.scenarios.stress_scoreboard import Scoreboard, StressError
from tb.scenarios.stress_stuck import StuckEpisodes
from tb.tlp.convert import dws_to_beats

__all__ = ["Stress", "StressError"]

BUS, DEV = 0x3A, 0x05
COMPLETER = BUS << 8 | DEV << 3
FILLERS = 6                 # harmless TLPs after config accesses (see _cfg_quiet)


def _dw0(fmt, typ, length, *, tc=0, attr=0, tag=0, td=0, ep=0):
    return (fmt << 29 | typ << 24 | (tag >> 9 & 1) << 23 | tc << 20 | (tag >> 8 & 1) << 19
            | (attr >> 2 & 1) << 18 | td << 15 | ep << 14 | (attr & 3) << 12 | (length & 0x3FF))


class Stress:
    def __init__(self, dut, seed, count, *, log=None):
        self.dut = dut
        self.seed = seed
        self.count = count
        self.rng = random.Random(seed)
        self.log = log or logging.getLogger("cocotb.tb.stress")
        self.desc = load_desc()
        self.width = self.desc.width
        P = self.params = self.desc.params
        self.be = VirtioBackend(dut, self.desc, auto_reset_ack=False, auto_qreset=False,
                                doorbell_stall=0.2, qevent_stall=0.2, seed=seed + 1)
        self.model = RefModel(P, dcfg_bytes=self.be.dcfg)
        self.stats = dict(tlps=0, reads=0, writes=0, cfg=0, pm_writes=0, window=0, bad=0, completions=0,
                          cpl_dropped=0, cpl_dropped_flr=0, doorbells=0, qevents=0,
                          irq_requests=0, irq_repended=0, long_stalls=0, irq_dropped=0, irq_bursts=0, irq_overlapped=0, msix_msgs=0, intx_msgs=0,
                          virtio_resets=0, qresets=0,
                          flr=0, flr_inflight=0, rst=0, rst_inflight=0, syncs=0,
                          io=0, io_reads=0, io_writes=0, legacy_doorbells=0, legacy_qevents=0,
                          legacy_resets=0, legacy_waits=0, legacy_inits=0, io_toggles=0,
                          rows_checked=0)
        # the checking half (tb/scenarios/stress_scoreboard.py); VPCI_STRESS_MUTATE: its
        # self-test (tb/integration/test_stress.py) makes an expectation wrong on purpose
        self.mutate = os.environ.get("VPCI_STRESS_MUTATE", "")
        self.sb = Scoreboard(dut, self.desc, self.model, self.be, self.stats, seed, log=self.log,
                             mutate=self.mutate)
        self.drv = LeanDriver(dut, self.width, self.rng, rx_idle=0.15, tx_stall=0.2,
                              on_tlp=self.sb.on_tx)
        self.tag = 0
        self._stalling = False
        self.virtio_reset_pending = False
        self.qreset_pending = set()
        self.mem_bar_size = self.model.bar_size
        # the modern driver offers what device_feature shows (never the legacy-only bits)
        self.feat = self.desc.features() & ~LEGACY_ONLY
        self.transitional = bool(P.get("transitional"))
        self.io_size = self.model.io_size
        self.nq = P["num_queues"]
        self.nvec = P["msix_vectors"]
        self.regions = self.desc.regions
        # back-end DMA through the requester port, its host side and its checker
        # (tb/scenarios/stress_dma.py; VPCI_STRESS_DMA=0 leaves it out, to compare): the MRds and
        # the MWrs into its host windows go to its checker instead of the scoreboard
        self.dma = None
        if P.get("dma_tags") and os.environ.get("VPCI_STRESS_DMA", "1") != "0":
            self.dma = DmaStress(self)
            sb_on_tx = self.sb.on_tx
            self.drv.on_tlp = lambda dws: self.dma.claims(dws) or sb_on_tx(dws)
        self.no_io = False          # no I/O requests (a stuck episode on another port)
        self.stuck = StuckEpisodes(self)

    # ---------------------------------------------------------------- sending --
    async def send(self, dws, hook=None):
        """Send one TLP; ``hook(dws)`` is called with its (last) completion when it matched."""
        ans = self.model.access(dws)
        self.sb.expect(dws, ans, hook)
        if ans.io:
            self.stats["legacy_doorbells"] += ans.legacy_doorbells
            self.stats["legacy_qevents"] += len(ans.qevents)
        if ans.virtio_reset and ans.io:
            self.stats["legacy_resets"] += 1
        for q, kind in ans.qevents:
            if kind == 1:
                self.qreset_pending.add(q)
        if ans.virtio_reset:
            self.virtio_reset_pending = True
            self.qreset_pending.clear()
        self.stats["tlps"] += 1
        self.sb.sent(dws)
        self.drv.send(dws)
        if self.drv.pending > 16:
            self.drv.low.clear()
            await with_timeout(self.drv.low.wait(), 200_000, "ns")
        self.sb.raise_first()
        return ans

    def next_tag(self):
        self.tag = (self.tag + 1) & 0x3FF
        return self.tag

    def mem(self, write, addr, length, fbe, lbe, data=None, *, tc=None, attr=None, ep=0, td=0,
            fmt64=None, typ=0x00):
        rng = self.rng
        tc = rng.randrange(8) if tc is None else tc
        attr = rng.randrange(8) if attr is None else attr
        if fmt64 is None:
            fmt64 = addr >= 1 << 32 or rng.random() < 0.1
        fmt = (2 if write else 0) | int(fmt64)
        dws = [_dw0(fmt, typ, length, tc=tc, attr=attr, tag=self.next_tag(), td=td, ep=ep),
               rng.randrange(1 << 16) << 16 | (self.tag & 0xFF) << 8 | lbe << 4 | fbe]
        dws += [addr >> 32 & 0xFFFF_FFFF, addr & 0xFFFF_FFFC] if fmt64 else [addr & 0xFFFF_FFFC]
        if write:
            dws += list(data)
        if td:
            dws.append(rng.randrange(1 << 32))
        return dws

    def cfg(self, write, reg, fbe=0xF, data=0, *, typ=0x04, fn=0, tc=0, length=1, bus=BUS):
        dws = [_dw0(2 if write else 0, typ, length, tc=tc, tag=self.next_tag()),
               self.rng.randrange(1 << 16) << 16 | (self.tag & 0xFF) << 8 | fbe,
               bus << 24 | DEV << 19 | fn << 16 | (reg << 2 & 0xFFC)]
        if write:
            dws.append(data)
        return dws

    # ---------------------------------------------------------------- random traffic --
    def rand_be(self, length):
        rng = self.rng
        if length == 1:
            return rng.choice([0xF, 0xF, 0xF, 0x1, 0x3, 0xC, 0x2, 0x4, 0x8, 0x6, 0x0, 0x5, 0xA,
                               0x9, 0x7, 0xE, 0xB, 0xD]), 0
        return rng.randrange(1, 16), rng.randrange(1, 16)

    def rand_region_dw(self):
        """(BAR DW offset, max DWs available to the end of the 4 KiB page)."""
        rng = self.rng
        name = rng.choices(["common", "notify", "isr", "device", "msix_table", "msix_pba", "gap"],
                           [35, 20, 8, 10, 15, 5, 7])[0]
        if name == "gap":
            dw = rng.randrange(self.mem_bar_size // 4)
        else:
            r = self.regions[name]
            live = max(1, (r["length"] + 3) // 4 + 2)
            d = rng.randrange(live) if rng.random() < 0.9 else rng.randrange(r["span"] // 4)
            mult = self.model.mult
            if name == "notify" and mult and rng.random() < 0.7:
                d = rng.randrange(self.nq + 1) * mult // 4      # a queue's doorbell
            dw = r["offset"] // 4 + d
        return dw, 1024 - (dw % 1024)

    def common_data(self, dw):
        """Biased write data for common-config DW ``dw`` (so that the device gets to DRIVER_OK,
        queues get enabled and reset, and doorbells get delivered)."""
        rng = self.rng
        if rng.random() < 0.25:
            return rng.randrange(1 << 32)
        q = rng.randrange(self.nq + 1)
        if dw == 0 or dw == 2:
            return rng.randrange(5)
        if dw == 3:
            return (self.feat >> (32 * self.model.common.gfsel)) & 0xFFFF_FFFF \
                if self.model.common.gfsel < 4 else rng.randrange(1 << 32)
        if dw == 4:
            return rng.choice([0, 1, self.nvec, 0xFFFF]) | rng.randrange(1 << 16) << 16
        if dw == 5:
            st = rng.choice([0x01, 0x03, 0x0B, 0x0F, 0x0F, 0x0F, 0x07, 0x8F, 0x4F])
            return st | q << 16
        if dw == 6:
            return (1 << rng.randrange(12)) | rng.randrange(self.nvec + 1) << 16
        if dw == 7:
            return 1
        if dw == 14:
            return 1 << 16
        return rng.randrange(1 << 32)

    def notify_data(self):
        rng = self.rng
        v = rng.randrange(1 << 32)
        if self.model.mult == 0 and rng.random() < 0.8:
            v = (v & 0xFFFF_0000) | rng.randrange(self.nq + 1)
            v = v | (v & 0xFFFF) << 16 if rng.random() < 0.3 else v
        return v

    async def valid_mem(self, write):
        rng = self.rng
        dw, room = self.rand_region_dw()
        mps_dw = self.model.env().mps // 4
        if rng.random() < 0.7:
            length = 1
        else:
            length = rng.randrange(2, 17) if rng.random() < 0.9 else rng.randrange(2, 65)
        length = min(length, room, mps_dw if write else 1024)
        if length == 1 and rng.random() < 0.5:
            fbe, lbe = self.rand_be(1)
        else:
            fbe, lbe = self.rand_be(length)
        base = self.model.bar_base
        data = None
        if write:
            name, d = self.model.region_of(dw)
            data = []
            for i in range(length):
                if name == "common":
                    data.append(self.common_data(d + i))
                elif name == "notify":
                    data.append(self.notify_data())
                else:
                    data.append(rng.randrange(1 << 32))
            self.stats["writes"] += 1
        else:
            self.stats["reads"] += 1
        await self.send(self.mem(write, base + 4 * dw, length, fbe, lbe, data))

    def cfg_dw_choice(self):
        rng = self.rng
        if rng.random() < 0.85:
            dw = rng.randrange(0x40)
        else:
            dw = rng.randrange(0x400)
        return dw

    async def valid_cfg(self, write):
        rng = self.rng
        m = self.model
        skip = {m.cfg.dword_of("pci_cfg_data"), m.cfg.dword_of("mem_bar_lo"),
                m.cfg.dword_of("mem_bar_hi")}
        if self.transitional:
            skip.add(m.cfg.dword_of("io_bar"))
        while True:
            dw = self.cfg_dw_choice()
            if dw not in skip:
                break
        fbe = rng.choice([0xF, 0xF, 0x1, 0x2, 0x4, 0x8, 0x3, 0xC, 0x0, 0x5, 0xA, 0x7])
        data = rng.randrange(1 << 32)
        if write:
            if dw == m.cfg.dword_of("pcie_devctl"):
                data &= ~(1 << 15)              # FLR only as a deliberate injection
                if rng.random() < 0.7:
                    data = (data & ~(7 << 5)) | rng.choice([0, 1, 2]) << 5
            if dw == m.cfg.dword_of("command") and rng.random() < 0.9:
                data |= 0x2                     # mostly keep Memory Space enabled
            if dw == m.cfg.dword_of("command") and self.transitional and rng.random() < 0.85:
                data |= 0x1                     # and I/O Space
            if dw == m.cfg.dword_of("msix_control") and rng.random() < 0.5:
                data &= 0x3FFF_FFFF
            if dw == m.cfg.dword_of("pm_csr"):
                # PowerState: mostly D0, D3hot now and then, the unsupported D1 / D2 too
                data = (data & ~3) | rng.choice([0, 0, 0, 0, 1, 2, 3, 3])
                self.stats["pm_writes"] += 1
        self.stats["cfg"] += 1
        await self.send(self.cfg(write, dw, fbe, data))
        await self._cfg_quiet()

    async def _cfg_quiet(self):
        """Config writes change what the depacketizer decides for later TLPs (Memory Space
        Enable, MPS) and error bits are set when a TLP is received, ahead of older operations
        still in the pipeline: a few harmless TLPs keep such races out of the comparison."""
        for _ in range(FILLERS):
            await self.send(self.cfg(False, 0))

    async def bad_tlp(self):
        rng = self.rng
        m = self.model
        base = m.bar_base
        dw, room = self.rand_region_dw()
        addr = base + 4 * dw
        mps = m.env().mps
        self.stats["bad"] += 1
        k = rng.randrange(19)
        if k == 11 and self.no_io:
            k = 12
        if k == 0:      # outside the BAR
            out = (base + m.bar_size + 4 * rng.randrange(1 << 16)) if rng.random() < 0.5 else \
                (base - 4 * rng.randrange(1, 1 << 16)) % (1 << 64)
            w = rng.random() < 0.5
            n = rng.randrange(1, 5)
            await self.send(self.mem(w, out, n, *self.rand_be(n),
                                     [rng.randrange(1 << 32) for _ in range(n)]))
        elif k == 1:    # length against payload
            n = rng.randrange(1, 5)
            d = self.mem(True, addr, n, *self.rand_be(n), [rng.randrange(1 << 32) for _ in range(n)])
            if rng.random() < 0.5:
                d.append(rng.randrange(1 << 32))
            else:
                d.pop()
            await self.send(d)
        elif k == 2:    # read carrying payload
            d = self.mem(False, addr, 1, 0xF, 0)
            d.append(rng.randrange(1 << 32))
            await self.send(d)
        elif k == 3:    # byte-enable rules
            n = rng.randrange(1, 4)
            if n == 1:
                fbe, lbe = rng.randrange(16), rng.randrange(1, 16)
            else:
                fbe, lbe = rng.choice([(0, rng.randrange(16)), (rng.randrange(1, 16), 0)])
            w = rng.random() < 0.5
            await self.send(self.mem(w, addr, n, fbe, lbe, [0] * n))
        elif k == 4:    # 4 KiB crossing
            pg = (addr & ~0xFFF) + 0xFFC - 4 * rng.randrange(4)
            n = rng.randrange(6, 10)
            w = rng.random() < 0.5
            await self.send(self.mem(w, pg, n, 0xF, 0xF, [0] * n))
        elif k == 5:    # payload above MPS
            n = min(1024, mps // 4 + rng.randrange(1, 5))
            a = addr & ~0xFFF
            await self.send(self.mem(True, a, n, 0xF, 0xF, [rng.randrange(1 << 32) for _ in range(n)]))
        elif k == 6:    # undefined fmt/type
            while True:
                fmt, typ = rng.randrange(4), rng.randrange(32)
                if classify(fmt, typ) is None:
                    break
            hdr = 4 if fmt & 1 else 3
            d = [_dw0(fmt, typ, 1, tag=self.next_tag())] + [rng.randrange(1 << 32) for _ in range(hdr - 1)]
            if fmt & 2:
                d.append(rng.randrange(1 << 32))
            await self.send(d)
        elif k == 7:    # TLP prefix
            d = [0x4 << 29 | rng.randrange(1 << 24)] + self.mem(False, addr, 1, 0xF, 0)
            await self.send(d)
        elif k == 8:    # poisoned memory write (claimed: dropped, non-fatal)
            n = rng.randrange(1, 3)
            await self.send(self.mem(True, addr, n, *self.rand_be(n), [0x1] * n, ep=1))
        elif k == 9:    # poisoned config write: UR completion, the register keeps its value
            await self.send(self._ep(self.cfg(True, rng.randrange(0x40), 0xF, rng.randrange(1 << 32))))
            await self._cfg_quiet()
        elif k == 10:   # type 1 config / other function
            w = rng.random() < 0.5
            if rng.random() < 0.5:
                d = self.cfg(w, rng.randrange(0x40), 0xF, 0, typ=0x05)
            else:
                d = self.cfg(w, rng.randrange(0x40), 0xF, 0, fn=rng.randrange(1, 8))
            await self.send(d)
            await self._cfg_quiet()
        elif k == 11:   # I/O request (outside the I/O BAR, or no I/O BAR)
            w = rng.random() < 0.5
            d = [_dw0(2 if w else 0, 0x02, 1, tag=self.next_tag()),
                 rng.randrange(1 << 16) << 16 | (self.tag & 0xFF) << 8 | 0xF,
                 rng.randrange(1 << 16) << 2]
            if w:
                d.append(rng.randrange(1 << 32))
            await self.send_io(d)
        elif k == 12:   # locked read
            await self.send(self.mem(False, addr, 1, 0xF, 0, typ=0x01))
        elif k == 13:   # messages
            code = rng.randrange(256)
            r = rng.randrange(8)
            if rng.random() < 0.5:
                d = [_dw0(0b001, 0x10 | r, 0), rng.randrange(1 << 16) << 16 | code,
                     rng.randrange(1 << 32), rng.randrange(1 << 32)]
            else:
                d = [_dw0(0b011, 0x10 | r, 1), rng.randrange(1 << 16) << 16 | code,
                     rng.randrange(1 << 32), rng.randrange(1 << 32), rng.randrange(1 << 32)]
            await self.send(d)
        elif k == 14:   # unexpected completion
            data = rng.random() < 0.5
            d = [_dw0(0b010 if data else 0, 0x0A, 1), rng.randrange(1 << 32), rng.randrange(1 << 32)]
            if d[2] >> 16 == self.model.completer_id:
                d[2] ^= 1 << 16     # another function's: it must not complete a back-end read
            if data:
                d.append(rng.randrange(1 << 32))
            await self.send(d)
        elif k == 15:   # atomics
            typ = rng.choice([0x0C, 0x0D, 0x0E])
            n = rng.choice([1, 2, 4, 8])
            await self.send(self.mem(True, addr & ~0x1F, n, 0xF, 0xF if n > 1 else 0,
                                     [rng.randrange(1 << 32) for _ in range(n)], typ=typ))
        elif k == 16:   # config with length != 1 or TC != 0
            if rng.random() < 0.5:
                d = self.cfg(False, 0, tc=rng.randrange(1, 8))
            else:
                d = self.cfg(False, 0, length=2)
            await self.send(d)
            await self._cfg_quiet()
        elif k == 17:   # valid read with a digest (TD)
            await self.send(self.mem(False, addr, 1, 0xF, 0, td=1))
        else:           # broken frames
            await self.broken_frame(addr)

    async def broken_frame(self, addr):
        """A TLP cut short by the next ``first`` beat, or a fragment without ``first``."""
        rng = self.rng
        w = self.width
        lanes = w // 32
        if rng.random() < 0.5:
            n = lanes + rng.randrange(1, 2 * lanes)          # at least two beats
            beats = dws_to_beats(self.mem(True, addr & ~0xFFF, n, 0xF, 0xF,
                                          [rng.randrange(1 << 32) for _ in range(n)]), w)
            cut = beats[:rng.randrange(1, len(beats))]
            cut[-1] = cut[-1][:3] + (0,)
        else:
            nb = rng.randrange(1, 3)
            cut = [(rng.randrange(1 << w), (1 << rng.randrange(1, lanes + 1)) - 1, 0, int(i == nb - 1))
                   for i in range(nb)]
        self.model.broken_frame()
        self.stats["tlps"] += 1
        self.drv.send_beats(cut)
        if not cut[-1][3]:
            # the cut must come from a new `first` beat: beats without `first` right after it
            # would continue the open TLP (a well-formed TLP again when the lengths add up)
            await self.send(self.cfg(False, 0))

    @staticmethod
    def _ep(d):
        d[0] |= 1 << 14
        return d

    # ---------------------------------------------------------------- sequences --
    async def driver_init(self):
        """A well-behaved driver init sequence (through the checked path): FEATURES_OK, queues
        enabled, DRIVER_OK, so that doorbells and queue resets get exercised."""
        base = self.model.bar_base + self.regions["common"]["offset"]

        async def wr(dw, v, be=0xF):
            await self.send(self.mem(True, base + 4 * dw, 1, be, 0, [v], fmt64=None))

        await wr(5, 0x03, 0x1)
        for sel in range(4):
            await wr(2, sel)
            await wr(3, (self.feat >> (32 * sel)) & 0xFFFF_FFFF)
        await wr(5, 0x0B, 0x1)
        await wr(4, self.rand_vector(), 0x3)            # config_msix_vector
        for q in range(self.nq):
            await wr(5, q << 16, 0xC)
            await wr(6, self.rand_vector() << 16, 0xC)  # queue_msix_vector
            if self.rng.random() < 0.8:
                await wr(7, 1, 0x3)
        await wr(5, 0x0F, 0x1)

    def rand_vector(self):
        """Mostly a vector of the table, sometimes NO_VECTOR or one past the table."""
        r = self.rng.random()
        if r < 0.8:
            return self.rng.randrange(self.nvec)
        return 0xFFFF if r < 0.9 else self.rng.randrange(self.nvec, 0x10000)

    async def msix_setup(self, rewrite=False, enable=None):
        """A driver's MSI-X setup: table entries (32- and 64-bit addresses), some vectors
        unmasked, MSI-X Enable (sometimes Function Mask) or, 40% of the time, INTx only.
        ``rewrite``: every entry is written (the table RAM is not reset by a conventional reset,
        so after one with writes in flight its contents are unknown to the model)."""
        rng = self.rng
        m = self.model
        base = m.bar_base + self.regions["msix_table"]["offset"]
        for v in range(self.nvec):
            # every entry distinct (the data names its vector): entries left at their reset value
            # (address 0, data 0) would make messages of different vectors indistinguishable to
            # the scoreboard, which with 64 vectors mis-attributed them (issue 11 item 5)
            if rewrite or rng.random() < 0.5 or m.entry(v) == (0, 0):
                hi = 0 if rng.random() < 0.5 else rng.randrange(1, 1 << 32)
                lo = rng.randrange(1 << 32) & ~3 if rng.random() < 0.95 else rng.randrange(1 << 32)
                data = (rng.randrange(1 << 32) & ~0xFFF) | v
                await self.send(self.mem(True, base + 16 * v, 3, 0xF, 0xF, [lo, hi, data]))
            if enable or rng.random() < 0.7:
                await self.send(self.mem(True, base + 16 * v + 12, 1, 0xF, 0, [0]))
        fm = 0 if enable else int(rng.random() < 0.15)
        en = int(rng.random() < 0.6) if enable is None else int(enable)
        await self.send(self.cfg(True, m.cfg.dword_of("msix_control"), 0x8,
                                 (en << 7 | fm << 6) << 24))
        await self._cfg_quiet()

    async def setup(self, rewrite_msix=False):
        """Program the BAR, Memory Space and Bus Master Enable (after conventional reset / FLR),
        then MSI-X (``msix_setup``)."""
        m = self.model
        big = self.rng.random() < 0.5
        base = (0x0000_0040_0000_0000 if big else 0xC000_0000) + \
            self.rng.randrange(16) * m.bar_size
        await self.send(self.cfg(False, 0))
        await self.send(self.cfg(True, m.cfg.dword_of("mem_bar_lo"), 0xF, base & 0xFFFF_FFFF))
        await self.send(self.cfg(True, m.cfg.dword_of("mem_bar_hi"), 0xF, base >> 32))
        cmd = 0x0006
        if self.transitional:
            io = self.rng.randrange(1, 0x10000 // self.io_size) * self.io_size
            await self.send(self.cfg(True, m.cfg.dword_of("io_bar"), 0xF, io | 1))
            cmd |= 0x0001
        await self.send(self.cfg(True, m.cfg.dword_of("command"), 0x3, cmd))
        await self._cfg_quiet()
        if m.bar_base != base:
            raise StressError(f"model BAR {m.bar_base:#x} after programming {base:#x}")
        if self.transitional and m.io_base != io:
            raise StressError(f"model I/O BAR {m.io_base:#x} after programming {io:#x}")
        await self.msix_setup(rewrite_msix)

    async def _drain(self):
        """Wait until every request was accepted, then let the scoreboard wait for and check
        every upstream TLP, doorbell and queue event expected so far."""
        t0 = get_sim_time("ns")
        await with_timeout(self.drv.idle.wait(), 400_000, "ns")
        await self.sb.settle(t0)

    async def _drain_irq(self):
        """Interrupts at a drained point: every message a deliverable vector owes must come; then
        with tx always ready every message already started leaves; the PBA is read and every
        pending bit checked and known again (RefModel.resolve)."""
        m = self.model
        for _ in range(8):
            limit = 500
            while m.missing_msix() and limit:
                await ClockCycles(self.dut.clk, 8)
                limit -= 1
            stall = self.drv.tx_stall
            self.drv.tx_stall = 0
            await ClockCycles(self.dut.clk, 24)
            self.drv.tx_stall = stall
            pba = None
            rcv_before = list(m.irq.rcv)
            # the PBA is a memory read: not with Memory Space off or in D3hot (an UR)
            if m.command & 2 and m.cfg.d0 and not self.sb.errors:
                got = []
                n = (self.nvec + 31) // 32
                await self.send(self.mem(False, m.bar_base + self.regions["msix_pba"]["offset"],
                                         n, 0xF, 0xF if n > 1 else 0), hook=got.append)
                await self._drain()
                if got:
                    d = got[0]
                    pba = sum(d[3 + i] << (32 * i) for i in range(n))
            self.sb.check_irq(pba, rcv_before)
            # vectors pended again after their message started (RefModel.resolve) owe a message:
            # wait for it and read the PBA again (also when one came during the PBA read)
            if not m.missing_msix() and not m.irq.unresolved:
                break
            self.stats["irq_repended"] += 1
        for v in m.missing_msix():
            self.sb.fail(f"MSI-X message for vector {v} never came (pended again, still owed)")

    async def quiesce(self, check=True):
        """Wait until every request was accepted and answered and every doorbell / queue event
        the model expects arrived, and every interrupt message owed; fail when something is
        missing or extra."""
        await self._drain()
        await self._drain_irq()
        self.sb.check_streams()
        if check:
            self.sb.check_outputs()
        self.stats["syncs"] += 1
        self.sb.raise_first()

    async def irq_burst(self):
        """Back-end interrupt requests at a drained point: 1 to 5, back to back or with gaps;
        mostly existing queues, some configuration changes, some queues past num_queues."""
        rng = self.rng
        c = self.model.common
        if not c.resetting and not c.status & 0x04 and rng.random() < 0.7:
            await self.any_init()               # requests are only taken after DRIVER_OK
        if rng.random() < 0.08:
            await self.msix_setup()             # MSI-X on or off (INTx), new entries, unmasks
        elif not self.model.command & 0x4 and rng.random() < 0.5:
            await self.send(self.cfg(True, self.model.cfg.dword_of("command"), 0x1, 0x06))
            await self._cfg_quiet()             # Bus Master Enable back on
        await self.quiesce()
        n = rng.randrange(1, 6)
        self.stats["irq_bursts"] += 1
        reqs = []
        for _ in range(n):
            config = rng.random() < 0.2
            r = rng.random()
            q = rng.randrange(self.nq) if r < 0.9 else rng.randrange(self.nq, 1 << 16)
            reqs.append((q, config, rng.random() < 0.4, rng.randrange(12)))
        if rng.random() < 0.5:
            await self._irq_requests(reqs)
        else:
            # the same requests spread over cycles in which requests that leave the interrupt
            # state alone (reads other than ISR / PBA / config space, doorbells) are in flight:
            # MSI-X writes and INTx messages interleave with their completions on tx
            self.stats["irq_overlapped"] += 1
            task = cocotb.start_soon(self._irq_requests(reqs))
            for _ in range(rng.randrange(2, 24)):
                await self.neutral_tlp()
            await task
        await self.be.irq_idle()
        await ClockCycles(self.dut.clk, 4)

    async def _irq_requests(self, reqs):
        """Offer ``reqs`` ((queue, config, gap?, gap cycles)) on the ``irq`` port, in order."""
        for q, config, gap, cycles in reqs:
            self.sb.irq_request(q, config)
            self.stats["irq_requests"] += 1
            self.sb.mark(f"irq queue {q} config {int(config)}")
            self.be.irq(queue=q, config=config)
            if gap:
                await self.be.irq_idle()
                await ClockCycles(self.dut.clk, cycles)

    async def neutral_tlp(self):
        """A request that does not touch what interrupt delivery depends on or shows (so it
        commutes with ``irq`` requests): a read of common / device / notify / MSI-X table / a
        gap, or a doorbell."""
        rng = self.rng
        while True:
            dw, room = self.rand_region_dw()
            name, _ = self.model.region_of(dw)
            if name not in ("isr", "msix_pba"):
                break
        base = self.model.bar_base
        if name == "notify" and rng.random() < 0.5:
            fbe = rng.choice([0xF, 0x3, 0xC])
            await self.send(self.mem(True, base + 4 * dw, 1, fbe, 0, [self.notify_data()]))
            return
        n = min(room, rng.randrange(1, 9))
        await self.send(self.mem(False, base + 4 * dw, n, *self.rand_be(n)))

    async def window_access(self):
        """A PCI-cfg window access (VIRTIO 4.1.4.9): now and then the capability's bar, offset
        and length are reprogrammed (valid windows onto every structure and width, and invalid
        ones: other bar, length 0 / 3 / 8, misaligned, past a structure, onto the MSI-X table),
        then pci_cfg_data is read or written with random byte enables."""
        rng = self.rng
        m = self.model
        cfg = m.cfg
        self.stats["window"] += 1
        if rng.random() < 0.3:
            ln = rng.choice([1, 2, 4, 4, 4, 0, 3, 8, rng.randrange(1 << 32)])
            if rng.random() < 0.75:
                name = rng.choice(["common", "common", "notify", "isr", "device"])
                r = self.regions[name]
                span = max(r["length"], 1) if rng.random() < 0.9 else r["length"] + 8
                off = r["offset"] + rng.randrange(span)
                if ln in (1, 2, 4) and rng.random() < 0.9:
                    off &= ~(ln - 1)
                if name == "notify" and self.model.mult and rng.random() < 0.5:
                    off = r["offset"] + rng.randrange(self.nq + 1) * self.model.mult
            else:
                off = rng.choice([rng.randrange(self.mem_bar_size), rng.randrange(1 << 32),
                                  self.regions["msix_table"]["offset"]])
            bar = self.params["mem_bar"] if rng.random() < 0.85 else rng.randrange(256)
            await self.send(self.cfg(True, cfg.dword_of("pci_cfg_bar"), 0x1, bar))
            await self.send(self.cfg(True, cfg.dword_of("pci_cfg_offset"), 0xF, off))
            await self.send(self.cfg(True, cfg.dword_of("pci_cfg_length"), 0xF, ln))
        fbe = rng.choice([0xF, 0xF, 0xF, 0x1, 0x3, 0xC, 0x0, 0x5, 0x8])
        dw = cfg.dword_of("pci_cfg_data")
        if rng.random() < 0.5:
            await self.send(self.cfg(False, dw, fbe))
        else:
            data = rng.randrange(1 << 32)
            if rng.random() < 0.5:          # something a register takes: a select, a queue
                data = rng.randrange(self.nq + 1) | rng.randrange(4) << 16
            await self.send(self.cfg(True, dw, fbe, data))

    def sweep(self):
        """New idle / back-pressure probabilities for every stream (a sweep over the run)."""
        rng = self.rng
        self.drv.rx_idle = rng.choice([0.0, 0.0, 0.1, 0.3, 0.7])
        self.drv.tx_stall = rng.choice([0.0, 0.0, 0.2, 0.5, 0.9])
        self.be.doorbell_sink.stall = rng.choice([0.0, 0.2, 0.6, 0.95])
        self.be.qevent_sink.stall = rng.choice([0.0, 0.3, 0.9])
        if rng.random() < 0.15 and not self._stalling:
            # a long stretch in which one back-end port takes nothing at all (requests behind it
            # wait), shorter than the back-end timeout, so nothing is given up and the model
            # stays exact (a port stuck for longer: tb/unit/test_stuck_backend.py)
            port = rng.choice(["doorbell", "qevent"])
            limit = self.params.get("backend_timeout") or max(1024, 2 * self.params["num_queues"])
            cycles = rng.randrange(64, max(65, min(limit // 2, 600)))
            self.stats["long_stalls"] += 1
            cocotb.start_soon(self._long_stall(port, cycles))

    async def _long_stall(self, port, cycles):
        self._stalling = True
        sink = {"doorbell": self.be.doorbell_sink, "qevent": self.be.qevent_sink}[port]
        keep, sink.stall = sink.stall, 1.0
        await ClockCycles(self.dut.clk, cycles)
        sink.stall = keep
        self._stalling = False

    async def error_status_check(self):
        """Read the error status bits (PCI Status, PCIe Device Status) through the checked path
        and, now and then, clear them (write 1 to clear)."""
        m = self.model
        st, dev = m.cfg.dword_of("status"), m.cfg.dword_of("pcie_devsta")
        await self.send(self.cfg(False, st))
        await self.send(self.cfg(False, dev))
        if self.rng.random() < 0.5:
            await self.send(self.cfg(True, st, 0xC, 0xF900_0000))
            await self.send(self.cfg(True, dev, 0x4, 0x000F_0000))
        await self._cfg_quiet()

    async def sync_point(self):
        """Drain, then let the back-end complete what it was asked for (virtio reset, queue
        resets) at a point unrelated to when it was asked; new stream sweep point."""
        await self.quiesce()
        if self.dma is not None:
            await self.dma.drain()
        self.sweep()
        await self.error_status_check()
        await self._drain()         # the model answered those before the acknowledge below
        if not self.model.common.resetting:
            await self.sb.check_rows()
        if self.virtio_reset_pending:
            # the model first: the acknowledge clears the ISR, and a Deassert_INTA may follow
            # within the cycles below
            self.model.virtio_reset_done()
            self.sb.mark("virtio reset acknowledged (sync point)")
            await self.be.ack_reset()
            await ClockCycles(self.dut.clk, 4)
            self.virtio_reset_pending = False
            self.stats["virtio_resets"] += 1
            self.qreset_pending.clear()
        for q in sorted(self.qreset_pending):
            if self.rng.random() < 0.7:
                self.be.complete_qreset(q)
                await self.be.qreset_src.idle.wait()
                await ClockCycles(self.dut.clk, 4)
                self.model.qreset_done(q)
                self.qreset_pending.discard(q)
                self.stats["qresets"] += 1
        self.sb.check_outputs()

    # ---------------------------------------------------------------- legacy header --
    def io_tlp(self, write, dw, be, data=0, *, addr=None, length=1, lbe=0, tc=0, td=0, ep=0):
        """An IORd / IOWr to DW ``dw`` of I/O BAR0 (or to ``addr``); Attr random (it has no
        meaning for I/O), address bits 1:0 (reserved) sometimes set."""
        if addr is None:
            addr = (self.model.io_base or 0) + 4 * dw
        rng = self.rng
        attr = rng.randrange(8) if rng.random() < 0.1 else 0
        d = [_dw0(2 if write else 0, 0x02, length, tc=tc, attr=attr, tag=self.next_tag(), td=td,
                  ep=ep),
             rng.randrange(1 << 16) << 16 | (self.tag & 0xFF) << 8 | lbe << 4 | be,
             (addr & 0xFFFF_FFFC) | (rng.randrange(4) if rng.random() < 0.05 else 0)]
        if write:
            d += [data] * length
        if td:
            d.append(rng.randrange(1 << 32))
        return d

    async def send_io(self, dws):
        """Send an I/O request.  One that reaches a common-configuration field of the legacy
        header while a device reset is in progress waits for the back-end's acknowledge (README,
        legacy.py): the pipeline is drained, the request sent, it must not complete within a
        random number of cycles, then the back-end acknowledges and it goes through (the model
        applies the reset first, since the request executes after it)."""
        m = self.model
        ops, _ = ref_ops(dws, m.env())
        op = ops[0] if ops else None
        served = op is not None and op["space"] == Space.IO
        if served:
            self.stats["io"] += 1
            self.stats["io_writes" if op["write"] else "io_reads"] += 1
        if self.stuck.active is not None:       # a stuck reset_ack: given up, not waited for
            return await self.send(dws)
        if not (served and m.common.resetting and m.io_waits(op["addr"], op["be"])):
            return await self.send(dws)
        await self._drain()
        m.virtio_reset_done()
        self.virtio_reset_pending = False
        self.qreset_pending.clear()
        mark = self.sb.expected_so_far()
        ans = await self.send(dws)
        await ClockCycles(self.dut.clk, self.rng.randrange(8, 48))
        if self.sb.answered_since(mark) and op["be"]:
            self.sb.fail(f"legacy access {[hex(d) for d in dws]} completed during a device reset "
                       f"(before the back-end's acknowledge)")
        self.sb.mark("virtio reset acknowledged (legacy access waiting)")
        await self.be.ack_reset()
        await ClockCycles(self.dut.clk, 4)
        self.stats["virtio_resets"] += 1
        self.stats["legacy_waits"] += 1
        return ans

    def legacy_data(self, dw):
        """Biased write data for legacy header DW ``dw``."""
        rng = self.rng
        c = self.model.common
        if rng.random() < 0.15:
            return rng.randrange(1 << 32)
        q = rng.randrange(self.nq + 1)
        if dw == 1:
            return c.host_features & rng.choice([0xFFFF_FFFF, rng.randrange(1 << 32)])
        if dw == 2:
            return rng.choice([0, 0, rng.randrange(1, 1 << 20), rng.randrange(1, 1 << 20),
                               rng.randrange(1 << 32)])
        if dw == 3:
            return q << 16 | rng.randrange(1 << 16)
        if dw == 4:
            st = rng.choice([0x01, 0x03, 0x07, 0x07, 0x07, 0x0F, 0x83, 0x47, 0x00,
                             rng.randrange(256)])
            return rng.randrange(1 << 8) << 24 | st << 16 | q
        if dw == 5:
            return self.rand_vector() << 16 | self.rand_vector()
        return rng.randrange(1 << 32)

    async def io_access(self):
        """A random legacy-header access: every DW of the I/O BAR (header, device configuration
        at 20 / 24, past it, past the BAR), every byte-enable pattern, reads and writes with data
        the fields take; now and then I/O Space Enable toggled or a malformed I/O request."""
        rng = self.rng
        m = self.model
        r = rng.random()
        if r < 0.02:                         # toggle I/O Space Enable
            self.stats["io_toggles"] += 1
            on = 0 if m.command & 1 and rng.random() < 0.5 else 1
            await self.send(self.cfg(True, m.cfg.dword_of("command"), 0x3,
                                     (m.command & ~1) | on))
            await self._cfg_quiet()
            return
        n = self.io_size // 4
        if r < 0.05:        # malformed (length 2, last BE, TC), poisoned write (UR), digest
            k = rng.randrange(5)
            w = k == 3 or rng.random() < 0.5
            d = self.io_tlp(w, rng.randrange(n), rng.randrange(16), self.legacy_data(4),
                            length=2 if k == 0 else 1, lbe=rng.randrange(1, 16) if k == 1 else 0,
                            tc=rng.randrange(1, 8) if k == 2 else 0, ep=int(k == 3),
                            td=int(k == 4))
            await self.send_io(d)
            return
        r = rng.random()
        if r < 0.8:     # the header, notify / status / ISR (DW 4) most
            dw = rng.choices(range(8), [1, 3, 4, 3, 7, 3, 2, 2])[0]
        elif r < 0.97:
            dw = rng.randrange(n)
        else:
            dw = n + rng.randrange(64)       # past the BAR: not ours (UR)
        write = rng.random() < 0.55
        if rng.random() < 0.5:
            be = rng.randrange(16)
        elif dw == 4:
            be = rng.choice([0x3, 0x3, 0x3, 0x3, 0x4, 0x4, 0x8, 0x1, 0xC, 0xF])
        else:
            be = rng.choice([0xF, 0xF, 0x3, 0xC, 0x1, 0x8])
        if dw == 4 and write and be & 0x4 and rng.random() < 0.7:
            be &= ~0x4 if rng.random() < 0.5 else 0xF     # fewer device resets
        data = self.legacy_data(dw) if write else 0
        await self.send_io(self.io_tlp(write, dw, be, data))

    async def legacy_init(self):
        """The init sequence of Linux's virtio_pci_legacy through the I/O BAR: reset (status 0),
        ACKNOWLEDGE | DRIVER, host features read, guest features written, per queue: select,
        size read, PFN written (sometimes not), MSI-X vectors when enabled, DRIVER_OK."""
        m = self.model
        rng = self.rng
        self.stats["legacy_inits"] += 1
        if not m.command & 1:
            await self.send(self.cfg(True, m.cfg.dword_of("command"), 0x3, m.command | 1))
            await self._cfg_quiet()

        async def io(write, dw, be, data=0):
            await self.send_io(self.io_tlp(write, dw, be, data))

        await io(True, 4, 0x4, 0)
        await io(True, 4, 0x4, 0x01 << 16)
        await io(True, 4, 0x4, 0x03 << 16)
        await io(False, 0, 0xF)
        await io(True, 1, 0xF, m.common.host_features & rng.choice([0xFFFF_FFFF,
                                                                     rng.randrange(1 << 32)]))
        msix = m.cfg.field("msix_enable")
        if msix:
            await io(True, 5, 0x3, self.rand_vector())
        for q in range(self.nq):
            await io(True, 3, 0xC, q << 16)
            await io(False, 3, 0x3)
            if msix:
                await io(True, 5, 0xC, self.rand_vector() << 16)
            if rng.random() < 0.85:
                await io(True, 2, 0xF, rng.randrange(1, 1 << 20))
        await io(True, 4, 0x4, 0x07 << 16)

    async def any_init(self):
        """A modern driver init, or on a transitional device half of the time a legacy one."""
        if self.transitional and self.rng.random() < 0.5:
            await self.legacy_init()
        else:
            await self.driver_init()

    async def flr(self, inflight=None, after_request=None, drained=False):
        """Function Level Reset, half of the time with the requests before it still in flight
        (their completions may or may not be sent: PCIe 6.6.2; their doorbells and queue events
        must still come, as the operations are executed in order before the FLR).
        ``after_request``: awaited once the FLR was sent (a stuck port released); ``drained``:
        the caller drained the pipeline (a stuck port still holds a doorbell)."""
        if inflight is None:
            inflight = self.rng.random() < 0.5
        if self.dma is not None:
            await self.dma.before_flr()
        if inflight:
            self.sb.all_optional()
            self.stats["flr_inflight"] += 1
        elif not drained:
            await self.quiesce()
        dropped = self.stats["cpl_dropped"]
        self.sb.mark(f"FLR (in flight {int(inflight)})")
        m = self.model
        dw = m.cfg.dword_of("pcie_devctl")
        cur = m.cfg.read(dw)
        ans = await self.send(self.cfg(True, dw, 0x2, cur | 1 << 15))
        if not ans.flr:
            raise StressError("the model did not see the FLR request")
        m.reset(conventional=False)
        if self.mutate == "stuck_flr" and after_request:          # a wrong reset state: NEEDS_RESET kept
            m.common.status |= 0x40
        self.virtio_reset_pending = False
        self.qreset_pending.clear()
        if after_request:
            await after_request()
        await self.quiesce(check=False)
        self.stats["cpl_dropped_flr"] += self.stats["cpl_dropped"] - dropped
        await ClockCycles(self.dut.clk, 8)
        self.be._pending_qresets.clear()
        self.stats["flr"] += 1
        if self.dma is not None:
            await self.dma.after_flr()
        await self.setup()
        if self.dma is not None:
            await self.dma.after_setup()

    async def conventional_reset(self):
        """Conventional reset, half of the time with requests in flight: the TLP on ``rx`` is cut,
        queued ones are never sent, completions, doorbells, queue events and interrupt messages
        not out by then are lost; the state afterwards is the reset state (the MSI-X table RAM
        keeps its contents, so setup writes every entry again)."""
        if self.dma is not None:
            await self.dma.before_reset()
        inflight = self.rng.random() < 0.5
        self.sb.mark(f"conventional reset (in flight {int(inflight)})")
        if inflight:
            self.sb.all_optional()
            self.drv.abort()
            await ClockCycles(self.dut.clk, self.rng.randrange(1, 3))
            self.stats["rst_inflight"] += 1
        else:
            await self.quiesce()
        self.dut.rst.value = 1
        if self.dma is not None:
            self.dma.at_reset()
        await ClockCycles(self.dut.clk, self.rng.randrange(1, 8))
        self.be.conventional_reset()
        self.dut.rst.value = 0
        # a tx beat offered in the last reset cycle is transferred at the reset edge and may
        # complete a TLP: forget the partial TLP only once the tx coroutine took that beat
        # (both wake at that edge, in no fixed order: seed 2142346909 saw a 15-DW completion
        # whose last beat came at the reset edge reported as a 3-DW TLP of zeros)
        await FallingEdge(self.dut.clk)
        self.drv.reset_tx()
        await ClockCycles(self.dut.clk, 2)
        self.drv.reset_tx()
        # whatever was not out before the reset never comes
        self.sb.forget_all()
        self.model.reset(conventional=True)
        self.virtio_reset_pending = False
        self.qreset_pending.clear()
        self.be._pending_qresets.clear()
        self.stats["rst"] += 1
        await self.setup(rewrite_msix=inflight)
        if self.dma is not None:
            await self.dma.after_reset()

    # ---------------------------------------------------------------- main --
    async def run(self):
        dut = self.dut
        Clock(dut.clk, CLK_PERIOD_NS, unit="ns").start()
        dut.rst.value = 1
        await ClockCycles(dut.clk, 8)
        dut.rst.value = 0
        await ClockCycles(dut.clk, 2)
        wall0 = time.time()
        rng = self.rng
        await self.setup()
        await self.driver_init()
        # every run starts with MSI-X on, every vector unmasked and one request per queue and a
        # configuration change, so that each run (the short ones of tb/integration/test_stress.py too)
        # delivers MSI-X writes
        await self.msix_setup(enable=True)
        await self.quiesce()
        await self._irq_requests([(q, False, False, 0) for q in range(self.nq)]
                                 + [(0, True, False, 0)])
        await self.be.irq_idle()                # (the ISR bits are set before the next request)
        await ClockCycles(self.dut.clk, 4)
        next_sync = rng.randrange(50, 400)
        while self.stats["tlps"] < self.count:
            r = rng.random()
            if self.transitional and rng.random() < 0.15:
                if rng.random() < 0.01:
                    await self.legacy_init()
                else:
                    await self.io_access()
            elif r < 0.34:
                await self.valid_mem(False)
            elif r < 0.78:
                await self.valid_mem(True)
            elif r < 0.82:
                await self.valid_cfg(rng.random() < 0.5)
            elif r < 0.84:
                await self.window_access()
            elif r < 0.947:
                await self.bad_tlp()
            elif r < 0.95:
                await self.irq_burst()
            elif r < 0.951:
                await self.driver_init()
            elif r < 0.9513:
                # virtio reset under load: device_status 0, acknowledged at a later sync point
                base = self.model.bar_base + self.regions["common"]["offset"]
                await self.send(self.mem(True, base + 20, 1, 0x1, 0, [0]))
            elif r < 0.9516:
                await self.flr()
            elif r < 0.9518:
                await self.conventional_reset()
            elif self.dma is not None:
                await self.dma.step()
            if self.stats["tlps"] >= next_sync:
                await self.sync_point()
                if rng.random() < 0.5:
                    await self.irq_burst()
                next_sync = self.stats["tlps"] + rng.randrange(50, 600)
                if self.stuck.due():
                    await self.stuck.run()
                if not self.model.common.status & 0x04 and rng.random() < 0.3:
                    await self.any_init()
        await self.stuck.finish()
        await self.sync_point()
        await self.quiesce()
        wall = time.time() - wall0
        self.stats["wall_s"] = round(wall, 1)
        self.stats["tlps_per_s"] = round(self.stats["tlps"] / wall) if wall else 0
        self.stats["sim_ns"] = get_sim_time("ns")
        if self.transitional:
            self.stats.update({f"legacy_{k}": v for k, v in sorted(self.model.legacy_counts.items())})
        if self.drv.errors:
            raise StressError(f"{self.drv.errors[0]} (seed {self.seed})")
        self.sb.raise_first()
        return self.stats
