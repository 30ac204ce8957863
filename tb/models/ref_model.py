"""Python reference model of the front-end's externally visible semantics, for the stress
scoreboard (tb/scenarios/stress.py, DESIGN.md section 9).

Independent of the RTL structure: it works on raw request DWs (the stream convention of
tb.tlp.convert) and answers with the exact completion DWs the link must carry, the doorbells and
queue events the back-end must see, and the error bits the configuration space must show.

Data sources:

* PCIe receive rules (classification, UR, malformed, poisoned, completion splitting): the
  independent decoder ``tb/models/pcie_rules.py``;
* configuration space: reset values and RW / RW1C masks of
  ``virtio_pci.config.capabilities.build_config_image(params)`` (Initiate FLR is a strobe that reads
  0; Status.Interrupt Status is dynamic: ISR non-zero while MSI-X is disabled);
* power management, from the PCI PM rules rather than the image's RW mask (``ConfigModel``):
  PowerState takes D0 and D3hot, which every function supports, and D1 / D2 only when PMC
  advertises them (PCI PM 1.2 3.2.4: a write of an unsupported state is discarded); in D3hot
  (PCIe 5.3.1.4.1) memory and I/O requests are Unsupported Requests, the PCI-cfg window reaches
  nothing, and no MSI-X write or INTx assertion is initiated (``d0``);
* the PCI-cfg window (``pci_cfg_data``, VIRTIO 4.1.4.9, the rules of
  ``virtio/pci_cfg_window.py``'s docstring): a write stores the enabled bytes and, through a valid
  window, writes the first ``length`` bytes of the data to the BAR; a read through a valid window
  returns the ``length`` bytes at ``offset`` in the first bytes, anything else reads 0;
* interrupts (``irq_request``): the ``irq_allowed`` gating, ISR bits, and MSI-X delivery as a set
  of allowed outcomes per vector (``IrqModel``), since when a pending message leaves relative to
  later requests is not predictable to the cycle; INTx Assert/Deassert from the ISR;
* common configuration: ``tb/models/virtio_model.py``; ISR (read with byte 0 clears), device
  configuration (read-only register file / the back-end model's bytes), notify doorbells (the
  rules of ``virtio/notify.py``'s docstring), MSI-X table (byte-enabled entries, Mask bit 0 of
  Vector Control, reset to masked) and PBA (read-only).

* the legacy header of a transitional device in I/O BAR0 (README "Transitional devices: the
  legacy header", ``virtio/legacy.py``'s register map): ``io_read`` / ``io_write`` route each
  byte of a DW to its field: DWs 0-3 (features, queue address, size, select), DW 4 (queue
  notify in bytes 0-1, status in byte 2, ISR in byte 3: read clears it), DW 5 the two MSI-X
  vectors while MSI-X is enabled, and the device configuration from byte 20 (MSI-X disabled) or
  24 (enabled) to the end of the BAR (0 past the device configuration); the common-config fields
  are ``CommonCfgModel.legacy_*``.  A legacy doorbell names its queue in the value written and
  counts before DRIVER_OK for a legacy driver.  The BAR is decoded from the config image's
  ``io_bar`` and I/O Space Enable (the I/O rules of ``pcie_rules``).

``access(dws)`` returns an ``Answer``: expected upstream TLPs (as (dws, care-masks)), doorbells
``(queue, value, wide)``, queue events ``(queue, kind)``, and flags (``virtio_reset``, ``flr``).
"""
from collections import Counter
from dataclasses import dataclass, field

from virtio_pci.config.capabilities import build_config_image
from virtio_pci.params import VirtioPciParams
from virtio_pci.tlp.layouts import Space

from tb.models.pcie_rules import Env, decode_header, ref_ops
from tb.host.virtio_driver import NO_VECTOR
from tb.models.virtio_model import CommonCfgModel

__all__ = ["RefModel", "Answer", "cpl_dws", "IrqModel"]

DATA_MASK = 0xFFFF_FFFF
MSG_LOCAL = 0x34                # Msg, 4-DW header, routed local (INTx messages)
ASSERT_INTA, DEASSERT_INTA = 0x20, 0x24


def bytemask(be):
    return sum(0xFF << (8 * i) for i in range(4) if be >> i & 1)


def cpl_dws(c, completer_id, data=None):
    """The DWs of one completion (``c``: a cpl dict of pcie_rules.ref_ops)."""
    has_data = bool(c["has_data"])
    typ = 0x0B if c.get("locked") else 0x0A
    fmt = 0b010 if has_data else 0b000
    tag = c["tag"]
    attr = c["attr"]
    length = c["length"] & 0x3FF if has_data else 0
    dw0 = (fmt << 29 | typ << 24 | (tag >> 9 & 1) << 23 | c["tc"] << 20 | (tag >> 8 & 1) << 19
           | (attr >> 2 & 1) << 18 | (attr & 3) << 12 | length)
    dw1 = completer_id << 16 | c["status"].value << 13 | (c["byte_count"] & 0xFFF)
    dw2 = c["requester_id"] << 16 | (tag & 0xFF) << 8 | (c["lower_addr"] & 0x7F)
    return [dw0, dw1, dw2] + list(data or [])


@dataclass
class Answer:
    tlps: list = field(default_factory=list)        # [(dws, masks)]
    doorbells: list = field(default_factory=list)   # [(queue, value, wide)]
    qevents: list = field(default_factory=list)     # [(queue, kind)]
    virtio_reset: bool = False
    flr: bool = False
    errors: set = field(default_factory=set)
    posted: bool = False
    io: bool = False                # an I/O request served by the legacy header
    legacy_doorbells: int = 0


class ConfigModel:
    """Configuration space at DW granularity from the config image."""

    def __init__(self, params):
        self.img = build_config_image(params)
        self.fields = self.img.fields
        self.reset()

    def reset(self):
        self.regs = {i: self.img.dword(i)[0] for i in range(self.img.size // 4)}

    def read(self, dw):
        return self.regs.get(dw, 0)

    def write(self, dw, be, data):
        if dw not in self.regs:
            return
        _, rw, rw1c = self.img.dword(dw)
        bm = bytemask(be)
        old = self.regs[dw]
        v = (old & ~(bm & rw)) | (data & bm & rw)
        v &= ~(data & bm & rw1c) & DATA_MASK
        pm = self.fields["pm_csr"]
        if dw == pm.dword and be >> (pm.bit // 8) & 1:
            state = data >> pm.bit & 3
            if state not in self.supported_states():
                state = old >> pm.bit & 3           # PCI PM 1.2 3.2.4: discarded
            v = (v & ~(3 << pm.bit)) | state << pm.bit
        self.regs[dw] = v

    def supported_states(self):
        """D0 and D3hot always; D1 / D2 when PMC (the dword before PMCSR, bits 25 / 26) says."""
        pmc = self.regs[self.fields["pm_csr"].dword - 1] >> 16
        return {0, 3} | ({1} if pmc >> 9 & 1 else set()) | ({2} if pmc >> 10 & 1 else set())

    @property
    def d0(self):
        return self.field("pm_csr") & 3 == 0

    def field(self, name):
        f = self.fields[name]
        return (self.regs[f.dword] >> f.bit) & ((1 << f.width) - 1)

    def set_bit(self, name, bit):
        f = self.fields[name]
        self.regs[f.dword] |= 1 << (f.bit + bit)

    def dword_of(self, name):
        return self.fields[name].dword


class IrqModel:
    """MSI-X delivery as what the function may and must do, per vector.

    Interrupt requests are applied at drained points (every earlier TLP done, nothing in flight),
    so the event itself, its vector, the ISR bits and whether the vector is deliverable at that
    moment are exact.  What is not exact is *when* a message leaves: a deliverable pending vector
    goes out at some cycle after it became deliverable, so a PBA read, a mask write or a reset
    that follows may find it sent or not.  Per vector:

    * ``pend``: the pending bit: 0, 1, or None (unknown: a message may have started);
    * ``owed``: a message must arrive before the next drained point (an event, or an unmask of
      a pending vector, while deliverable; cleared by the first message, or when the vector stops
      being deliverable, which makes ``pend`` unknown);
    * ``maxmsg``: messages that may still arrive (each event or unmask while deliverable adds one,
      so coalescing of several events into one message is allowed, extra messages are not);
    * ``cand_addr`` / ``cand_data``: values the entry's address and data had since then (a message
      carries the entry as it is when the message starts);
    * ``ev`` / ``rcv``: events and messages since the pending bit was last known.

    At a drained point (``resolve``), with the PBA as read: a deliverable vector must be sent and
    not pending, unless it may still send a message (``maxmsg`` > 0: an event arrived after the
    message that covered the earlier ones had started, so the function pends it again): then it
    stays owed and unknown, and the message must come before a later drained point; an owed
    message must have arrived, a known pending bit must be what the PBA
    shows, and an unknown one must be 1 if no message came since its events and 0 if every event
    got its own message; afterwards every bit is known again and no message may come unless a
    new event or an unmask asks for one.  INTx: messages must alternate, be no more than the
    changes of the wanted state (ISR non-zero, MSI-X off, Interrupt Disable clear), and leave
    the line in the wanted state at a drained point.
    """

    def __init__(self, nvec):
        self.nvec = nvec
        self.reset_all()

    def reset_all(self):
        n = self.nvec
        self.pend = [0] * n
        self.owed = [False] * n
        self.maxmsg = [0] * n
        self.ev = [0] * n
        self.rcv = [0] * n
        self.cand_addr = [set() for _ in range(n)]
        self.cand_data = [set() for _ in range(n)]
        self.unresolved = []
        self.deliv = 0
        self.intx_want = False
        self.intx_dut = False          # the state the last INTx message announced
        self.intx_trans = 0
        self.intx_msgs = 0

    def clear(self):
        """Virtio reset or FLR: pending bits dropped (a message already started may finish)."""
        for v in range(self.nvec):
            self.pend[v] = 0
            self.owed[v] = False
            self.ev[v] = self.rcv[v] = 0

    def pba_word(self, i):
        """(value, unknown bits) of PBA DW ``i``."""
        val = unk = 0
        for b in range(32):
            v = 32 * i + b
            if v >= self.nvec:
                break
            if self.pend[v] is None:
                unk |= 1 << b
            elif self.pend[v]:
                val |= 1 << b
        return val, unk


class RefModel:
    def __init__(self, desc_params, dcfg_bytes=None):
        """``desc_params``: the ``parameters`` dict of the JSON description."""
        self.p = VirtioPciParams.from_dict(desc_params)
        self.dparams = desc_params
        self.nvec = self.p.msix_vectors
        self.nq = self.p.num_queues
        self.mult = self.p.notify_off_multiplier
        self.regions = {name: r for name, r in self.p.regions.items()}
        self.bar_size = self.p.mem_bar_size
        self.cfg = ConfigModel(self.p)
        self.dcfg = dcfg_bytes if dcfg_bytes is not None else bytearray(
            self.p.device_cfg_init.ljust(self.p.device_cfg_size, b"\0"))
        self.msix_ram = [0] * (4 * self.nvec)       # RAM: not cleared by any reset
        self.completer_id = 0
        self.err_log = []                           # (seq, dw, bits) of hardware-set bits
        self.seq = 0
        self.irq = IrqModel(self.nvec)
        self.io_size = self.p.io_bar_size if self.p.has_io_bar else 0
        self.transitional = self.p.transitional
        self.legacy_counts = Counter()              # corners of the legacy header reached
        self.win_dw = self.cfg.dword_of("pci_cfg_data")
        self.status_dw = self.cfg.dword_of("status")
        self._dc = 0                                # don't-care bits of the last mem_read
        self.reset(conventional=True)

    # ---- resets ----
    def reset(self, conventional=False):
        """Conventional reset (everything) or FLR (config space, virtio state)."""
        self.cfg.reset()
        self.common = CommonCfgModel.from_params(self.dparams)
        self.isr = 0
        self.mask = (1 << self.nvec) - 1
        self.win_stored = 0
        if conventional:
            self.completer_id = 0
            self.irq.reset_all()        # the INTx state too: no message, the line is deasserted
        else:
            self.irq.clear()            # FLR: pending bits dropped, INTx deasserted by message
        self._irq_update()

    def virtio_reset_done(self):
        self.common.reset_done()
        self.isr = 0
        self.irq.clear()
        self._irq_update()

    def qreset_done(self, q):
        self.common.qreset_done(q)

    # ---- derived ----
    @property
    def bar_base(self):
        lo = self.cfg.field("mem_bar_lo") & ~0xF
        return (self.cfg.field("mem_bar_hi") << 32 | lo) & ~(self.bar_size - 1)

    @property
    def command(self):
        return self.cfg.field("command")

    # ---- interrupts ----
    def deliverable(self):
        """Bit mask of the vectors an MSI-X message may be sent for now."""
        c = self.cfg
        if (c.field("msix_enable") and not c.field("msix_fmask") and self.command >> 2 & 1
                and c.d0):
            return ~self.mask & ((1 << self.nvec) - 1)
        return 0

    def entry(self, v):
        """(message address, data) of table entry ``v`` as a message carries them (address
        bits 1:0 are sent as 0)."""
        r = self.msix_ram
        return (r[4 * v + 1] << 32 | r[4 * v]) & ~3, r[4 * v + 2]

    def intx_want(self):
        return bool(self.isr and not self.cfg.field("msix_enable")
                    and not self.command >> 10 & 1 and self.cfg.d0)

    def _irq_update(self):
        """After any change: vectors that became (not) deliverable, the wanted INTx state."""
        q = self.irq
        new = self.deliverable()
        changed = new ^ q.deliv
        if changed:
            for v in range(self.nvec):
                if not changed >> v & 1:
                    continue
                if new >> v & 1:                # unmasked (or enabled): a pending one must go
                    if q.pend[v] == 1:
                        q.pend[v] = None
                        q.owed[v] = True
                        q.maxmsg[v] += 1
                    elif q.pend[v] is None:
                        q.maxmsg[v] += 1
                    if q.pend[v] is None:
                        a, d = self.entry(v)
                        q.cand_addr[v].add(a)
                        q.cand_data[v].add(d)
                else:                           # masked: sent, or pending (unknown until read)
                    q.owed[v] = False
            q.deliv = new
        w = self.intx_want()
        if w != q.intx_want:
            q.intx_want = w
            q.intx_trans += 1

    def irq_request(self, queue, config):
        """An ``irq`` request at a drained point.  Returns (allowed, vector or None)."""
        c = self.common
        allowed = c.irq_live(config)
        if allowed and not c.status & 0x04:
            self.legacy_counts["irq_before_driver_ok"] += 1
        if not config:
            allowed = allowed and queue < self.nq and c.queues[queue].enabled \
                and not c.queues[queue].resetting
        if not allowed:
            return False, None
        msix = self.cfg.field("msix_enable")
        if config:
            self.isr |= 2
        elif not msix:
            self.isr |= 1
        vec = None
        if msix:
            v = c.cfg_vec if config else c.queues[queue].vector
            if v != NO_VECTOR and v < self.nvec:
                vec = v
                q = self.irq
                q.ev[v] += 1
                if self.deliverable() >> v & 1:
                    q.pend[v] = None
                    q.owed[v] = True
                    q.maxmsg[v] += 1
                    a, d = self.entry(v)
                    q.cand_addr[v].add(a)
                    q.cand_data[v].add(d)
                else:
                    q.pend[v] = 1
        self._irq_update()
        return True, vec

    def msix_message(self, addr, data):
        """An MSI-X write seen on the link: None, or why it is not allowed."""
        q = self.irq
        best = None
        for v in range(self.nvec):
            if q.maxmsg[v] > 0 and addr in q.cand_addr[v] and data in q.cand_data[v]:
                if best is None or (q.owed[v] and not q.owed[best]):
                    best = v
        if best is None:
            why = []
            for v in range(self.nvec):
                a, d = self.entry(v)
                why.append(f"v{v}: may {q.maxmsg[v]} pend {q.pend[v]} deliv {q.deliv >> v & 1} "
                           f"entry {a:#x}/{d:#x}")
            return f"MSI-X write addr {addr:#x} data {data:#x} not allowed now ({'; '.join(why)})"
        q.maxmsg[best] -= 1
        q.rcv[best] += 1
        q.owed[best] = False
        return None

    def intx_message(self, assert_):
        q = self.irq
        if assert_ == q.intx_dut:
            return f"INTx {'Assert' if assert_ else 'Deassert'} while already in that state"
        q.intx_dut = assert_
        q.intx_msgs += 1
        if q.intx_msgs > q.intx_trans:
            return (f"INTx {'Assert' if assert_ else 'Deassert'}: {q.intx_msgs} messages for "
                    f"{q.intx_trans} changes of the wanted state")
        return None

    def missing_msix(self):
        """Vectors that still owe a message while deliverable."""
        q = self.irq
        return [v for v in range(self.nvec) if q.owed[v] and q.deliv >> v & 1]

    def resolve(self, pba, rcv_before=None):
        """At a drained point: ``pba`` the bits read from the PBA (None: not read);
        ``rcv_before``: the per-vector message counts (``irq.rcv``) when the PBA read was sent.
        Returns the list of violations; afterwards every pending bit is known, except those of
        ``irq.unresolved`` (pended again, and a message came while the PBA was being read: it may
        be the one owed, so the PBA must be read again)."""
        q = self.irq
        q.unresolved = []
        errs = []
        for v in range(self.nvec):
            if q.owed[v]:
                errs.append(f"MSI-X message for vector {v} missing (deliverable)")
            if pba is None:             # PBA not readable (Memory Space off): known bits stay
                if q.deliv >> v & 1:
                    q.pend[v] = 0
                continue
            a = pba >> v & 1
            if q.deliv >> v & 1:
                if a and rcv_before is not None and q.rcv[v] > rcv_before[v]:
                    q.pend[v] = None            # the message read as pending may have come since
                    q.unresolved.append(v)
                    continue
                if a and q.maxmsg[v] > 0:
                    # an event came after the message that covered the earlier ones had started:
                    # the function rightly pends the vector again and owes one more message
                    # (issue 11 item 5: many events on few vectors); it must come, so the vector
                    # stays owed and unknown until a later PBA read shows it sent
                    q.pend[v] = None
                    q.owed[v] = True
                    continue
                if a:
                    errs.append(f"PBA bit {v} set while the vector is deliverable")
            elif q.pend[v] is None:
                if q.rcv[v] == 0 and q.ev[v] and not a:
                    errs.append(f"vector {v}: event neither sent nor pending (PBA 0, no message)")
                if q.rcv[v] >= q.ev[v] and a:
                    errs.append(f"vector {v}: pending bit set after {q.rcv[v]} messages for "
                                f"{q.ev[v]} events")
            elif q.pend[v] != a:
                errs.append(f"PBA bit {v} is {a}, model {q.pend[v]}")
            q.pend[v] = a
        for v in range(self.nvec):
            if q.pend[v] is None:       # only without a PBA read: sent or pending, as before
                continue
            q.ev[v] = q.pend[v]
            q.rcv[v] = 0
            q.owed[v] = False
            q.maxmsg[v] = 0
            q.cand_addr[v].clear()
            q.cand_data[v].clear()
        if q.intx_dut != q.intx_want:
            errs.append(f"INTx {'asserted' if q.intx_dut else 'deasserted'}, model wants "
                        f"{'asserted' if q.intx_want else 'deasserted'} (ISR {self.isr:#x})")
        q.intx_msgs = q.intx_trans = 0
        return errs

    @property
    def io_base(self):
        """Base of I/O BAR0 (None without one)."""
        if not self.io_size:
            return None
        return self.cfg.field("io_bar") & ~(self.io_size - 1) & DATA_MASK

    def env(self):
        return Env(bar_base=self.bar_base, bar_size=self.bar_size,
                   mem_enable=self.command >> 1 & self.cfg.d0, mps_code=self.cfg.field("mps"),
                   mps_supported=self.p.max_payload_supported,
                   io_base=self.io_base if self.transitional else None, io_size=self.io_size,
                   io_enable=self.command & self.cfg.d0)

    # ---- legacy header (I/O BAR0 of a transitional device) ----
    def legacy_hdr_dw(self):
        """DW where the device configuration starts (byte 20, or 24 with MSI-X enabled)."""
        return 6 if self.cfg.field("msix_enable") else 5

    def io_waits(self, dw, be):
        """A legacy access that reaches a common-configuration field: it waits while a device
        reset is in progress (DW 4 only when it touches the status byte)."""
        hdr = self.legacy_hdr_dw()
        return dw < 4 or (dw == 4 and bool(be & 0b0100)) or (dw == 5 and hdr == 6)

    def io_read(self, dw, be):
        hdr = self.legacy_hdr_dw()
        c = self.common
        if dw >= hdr:
            off = 4 * (dw - hdr)
            return int.from_bytes(bytes(self.dcfg[off:off + 4]).ljust(4, b"\0"), "little")
        v = c.legacy_read(dw, be, hdr == 6) if dw != 4 or be & 0b0100 else 0
        if dw == 4 and be & 0b1000:          # ISR status at byte 19: reading clears it
            v = (v & 0x00FF_FFFF) | (self.isr & 0xFF) << 24
            self.legacy_counts["isr_cleared"] += bool(self.isr)
            self.isr = 0
        if dw == 5 and hdr == 6:
            self.legacy_counts["vector_reads"] += 1
        return v

    def io_write(self, dw, be, data, ans):
        hdr = self.legacy_hdr_dw()
        c = self.common
        n = self.legacy_counts
        if dw >= hdr:
            n["dcfg_writes"] += 1
            return          # device configuration: read-only register file / back-end
        if dw == 4 and be & 0b0011:           # queue notify (before the status byte)
            wd = data & bytemask(be & 0b0011)
            queue = wd & 0xFFFF
            if queue < self.nq and c.queues[queue].enabled and c.doorbell_live(True):
                ans.doorbells.append((queue, queue, 0))
                ans.legacy_doorbells += 1
                n["doorbells_before_driver_ok"] += not c.status & 0x04
        if dw == 4 and not be & 0b0100:
            return
        if c.modern and not c.resetting and be and not (dw == 4 and not data >> 16 & 0xFF):
            n["ignored_after_features_ok"] += 1
        if dw == 5 and hdr == 6:
            n["vector_writes"] += 1
        events = c.legacy_write(dw, be, data, hdr == 6)
        for ev in events:
            n[f"pfn_{ev[0]}" if dw == 2 else f"status_{ev[0]}"] += 1
        self._common_events(events, ans)

    def _common_events(self, events, ans):
        for ev in events:
            if ev[0] == "reset":
                ans.virtio_reset = True
            elif ev[0] == "enable":
                ans.qevents.append((ev[1], 0))
            elif ev[0] == "qreset":
                ans.qevents.append((ev[1], 1))

    def region_of(self, dw):
        """(region name, DW inside the region) of BAR DW ``dw``; (None, 0) for a gap."""
        for name, r in self.regions.items():
            if r.offset // 4 <= dw < (r.offset + r.span) // 4:
                return name, dw - r.offset // 4
        return None, 0

    # ---- BAR registers ----
    def mem_read(self, dw, be):
        name, d = self.region_of(dw)
        if name == "common":
            return self.common.read(d, be)
        if name == "isr":
            if d != 0:
                return 0
            v = self.isr
            if be & 1:
                self.isr = 0
            return v
        if name == "device":
            if 4 * d >= len(self.dcfg):
                return 0
            return int.from_bytes(bytes(self.dcfg[4 * d:4 * d + 4]).ljust(4, b"\0"), "little")
        if name == "msix_table":
            if d >= 4 * self.nvec:
                return 0
            if d & 3 == 3:
                return self.mask >> (d >> 2) & 1
            return self.msix_ram[d]
        if name == "msix_pba":
            if 32 * d >= self.nvec:
                return 0
            v, self._dc = self.irq.pba_word(d)
            return v
        return 0     # notify, gaps

    def mem_write(self, dw, be, data, ans):
        name, d = self.region_of(dw)
        if name == "common":
            self._common_events(self.common.write(d, be, data), ans)
        elif name == "notify":
            self._doorbell(d, be, data, ans)
        elif name == "msix_table":
            if d >= 4 * self.nvec:
                return
            if d & 3 == 3:
                if be & 1:
                    bit = 1 << (d >> 2)
                    self.mask = (self.mask | bit) if data & 1 else (self.mask & ~bit)
            else:
                bm = bytemask(be)
                self.msix_ram[d] = (self.msix_ram[d] & ~bm) | (data & bm)
                v = d >> 2
                if self.irq.maxmsg[v]:          # a message still to come may carry the new value
                    a, dd = self.entry(v)
                    self.irq.cand_addr[v].add(a)
                    self.irq.cand_data[v].add(dd)
        # isr, device (read-only register file), PBA, gaps: ignored

    def _doorbell(self, d, be, data, ans):
        if not be:
            return
        wd = data & bytemask(be)
        lo_half = bool(be & 0b0011)
        wide = be == 0xF
        value = wd if wide else (wd & 0xFFFF if lo_half else wd >> 16)
        if self.mult == 0:
            queue, aligned = value & 0xFFFF, True
        else:
            off = 4 * d + (0 if lo_half else 2)
            queue, aligned = off // self.mult, off % self.mult == 0
        c = self.common
        if aligned and queue < self.nq and c.queues[queue].enabled and c.doorbell_live(False):
            ans.doorbells.append((queue, value, int(wide)))

    # ---- one request ----
    def access(self, dws):
        """Apply one received TLP; return the ``Answer``."""
        self.seq += 1
        ans = Answer()
        ops, errs = ref_ops(dws, self.env())
        ans.errors = errs
        h = decode_header(dws)
        kind_posted = not ops or ops[0]["need_cpl"] == 0
        ans.posted = kind_posted
        # completer ID capture (CfgRd0/CfgWr0 to function 0 that are served)
        for op in ops:
            if op["space"] == Space.CFG:
                self.completer_id = (dws[2] >> 24 & 0xFF) << 8 | (dws[2] >> 19 & 0x1F) << 3
        cur = None        # (cpl dict, data list, mask list)
        for op in ops:
            if op["space"] == Space.NONE:
                ans.tlps.append((cpl_dws(op["cpl"], self.completer_id), None))
                continue
            if op["space"] == Space.CFG:
                if op["addr"] == self.win_dw:
                    v = self._window(op, ans)
                    if op["write"]:
                        ans.tlps.append((cpl_dws(op["cpl"], self.completer_id), None))
                    else:
                        ans.tlps.append((cpl_dws(op["cpl"], self.completer_id, [v]), None))
                    continue
                if op["write"]:
                    self._cfg_write(op["addr"], op["be"], op["data"], ans)
                    ans.tlps.append((cpl_dws(op["cpl"], self.completer_id), None))
                else:
                    v = self.cfg.read(op["addr"])
                    if op["addr"] == self.status_dw and self.isr \
                            and not self.cfg.field("msix_enable"):
                        v |= 1 << 19                # Status.Interrupt Status
                    ans.tlps.append((cpl_dws(op["cpl"], self.completer_id, [v]),
                                     [DATA_MASK] * 3 + [DATA_MASK]))
                    ans.cfg_read_dw = op["addr"]
                continue
            if op["space"] == Space.IO:
                if op["write"]:
                    self.io_write(op["addr"], op["be"], op["data"], ans)
                    ans.tlps.append((cpl_dws(op["cpl"], self.completer_id), None))
                else:
                    v = self.io_read(op["addr"], op["be"])
                    ans.tlps.append((cpl_dws(op["cpl"], self.completer_id, [v]),
                                     [DATA_MASK] * 3 + [bytemask(op["be"])]))
                ans.io = True
                continue
            if op["space"] != Space.MEM:
                raise AssertionError(f"unexpected space {op['space']}")
            dw = op["addr"]
            if op["write"]:
                self.mem_write(dw, op["be"], op["data"], ans)
                continue
            self._dc = 0
            v = self.mem_read(dw, op["be"])
            if op["cpl_start"]:
                cur = (op["cpl"], [], [])
            cur[1].append(v)
            cur[2].append(bytemask(op["be"]) & ~self._dc)
            if op["cpl_end"]:
                ans.tlps.append((cpl_dws(cur[0], self.completer_id, cur[1]),
                                 [DATA_MASK] * 3 + cur[2]))
                cur = None
        self._error_bits(errs, h, ops)
        self._irq_update()
        return ans

    def window_valid(self):
        c = self.cfg
        off, ln = c.field("pci_cfg_offset"), c.field("pci_cfg_length")
        if ln not in (1, 2, 4) or off % ln or c.field("pci_cfg_bar") != self.p.mem_bar:
            return False
        if not c.d0:                                # D3hot: no memory access (5.3.1.4.1)
            return False
        return any(r.offset <= off and off + ln <= r.offset + r.length
                   for name, r in self.regions.items()
                   if name in ("common", "notify", "isr", "device"))

    def _window(self, op, ans):
        """A configuration access to ``pci_cfg_data``: returns the read data."""
        c = self.cfg
        off, ln = c.field("pci_cfg_offset"), c.field("pci_cfg_length")
        valid = self.window_valid()
        lane = off & 3
        lenmask = {1: 0x1, 2: 0x3, 4: 0xF}.get(ln, 0)
        if op["write"]:
            bm = bytemask(op["be"])
            self.win_stored = (self.win_stored & ~bm) | (op["data"] & bm)
            if valid:
                self.mem_write(off >> 2, lenmask << lane,
                               (self.win_stored << (8 * lane)) & DATA_MASK, ans)
            return 0
        if not valid:
            return 0
        raw = self.mem_read(off >> 2, lenmask << lane)
        return (raw >> (8 * lane)) & ((1 << (8 * ln)) - 1)

    def _cfg_write(self, dw, be, data, ans):
        flr = self.cfg.fields["flr"]
        if dw == flr.dword and be >> (flr.bit // 8) & 1 and data >> flr.bit & 1:
            ans.flr = True
        self.cfg.write(dw, be, data)

    def broken_frame(self):
        """A fragment without ``first`` or a TLP cut short by a new ``first``: dropped as
        malformed (Fatal Error Detected), nothing else happens."""
        self.seq += 1
        self._error_bits({"malformed"}, None, [])

    def _error_bits(self, errs, h, ops):
        """The RW1C bits the function sets for this TLP (top.py: Role-Based Error Reporting)."""
        posted = not ops or ops[0]["need_cpl"] == 0
        kind_np = bool(ops) and ops[0]["space"] == Space.NONE
        bits = []
        if "ur" in errs:
            bits.append(("pcie_devsta", 3))
            bits.append(("pcie_devsta", 0) if kind_np else ("pcie_devsta", 1))
        if "unexpected_cpl" in errs:
            bits.append(("pcie_devsta", 0))
        if "malformed" in errs:
            bits.append(("pcie_devsta", 2))
        if "poisoned" in errs:
            bits.append(("pcie_devsta", 1))
            bits.append(("status", 15))
        del posted
        for name, bit in bits:
            self.cfg.set_bit(name, bit)
            f = self.cfg.fields[name]
            self.err_log.append((self.seq, f.dword, 1 << (f.bit + bit)))
