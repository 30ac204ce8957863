"""Python reference model of the front-end's externally visible semantics, for the stress
scoreboard (tb/stress.py, DESIGN.md section 9).

Independent of the RTL structure: it works on raw request DWs (the stream convention of
tb.tlp_convert) and answers with the exact completion DWs the link must carry, the doorbells and
queue events the back-end must see, and the error bits the configuration space must show.

Data sources:

* PCIe receive rules (classification, UR, malformed, poisoned, completion splitting): the
  independent decoder ``tb/unit/pcie_rules.py``;
* configuration space: reset values and RW / RW1C masks of
  ``virtio_pci.config.capabilities.build_config_image(params)`` (Initiate FLR is a strobe that reads
  0; Status.Interrupt Status is dynamic, 0 here because the stress drives no interrupts);
* common configuration: ``tb/virtio_model.py``; ISR (read with byte 0 clears), device
  configuration (read-only register file / the back-end model's bytes), notify doorbells (the
  rules of ``virtio/notify.py``'s docstring), MSI-X table (byte-enabled entries, Mask bit 0 of
  Vector Control, reset to masked) and PBA (read-only).

``access(dws)`` returns an ``Answer``: expected upstream TLPs (as (dws, care-masks)), doorbells
``(queue, value, wide)``, queue events ``(queue, kind)``, and flags (``virtio_reset``, ``flr``).
"""
from dataclasses import dataclass, field

from virtio_pci.config.capabilities import build_config_image
from virtio_pci.params import VirtioPciParams
from virtio_pci.tlp.layouts import Space

from .unit.pcie_rules import Env, decode_header, ref_ops
from .virtio_model import CommonCfgModel

__all__ = ["RefModel", "Answer", "cpl_dws"]

DATA_MASK = 0xFFFF_FFFF


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
        v = self.regs[dw]
        v = (v & ~(bm & rw)) | (data & bm & rw)
        v &= ~(data & bm & rw1c) & DATA_MASK
        self.regs[dw] = v

    def field(self, name):
        f = self.fields[name]
        return (self.regs[f.dword] >> f.bit) & ((1 << f.width) - 1)

    def set_bit(self, name, bit):
        f = self.fields[name]
        self.regs[f.dword] |= 1 << (f.bit + bit)

    def dword_of(self, name):
        return self.fields[name].dword


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
        self.reset(conventional=True)

    # ---- resets ----
    def reset(self, conventional=False):
        """Conventional reset (everything) or FLR (config space, virtio state)."""
        self.cfg.reset()
        self.common = CommonCfgModel.from_params(self.dparams)
        self.isr = 0
        self.mask = (1 << self.nvec) - 1
        if conventional:
            self.completer_id = 0

    def virtio_reset_done(self):
        self.common.reset_done()
        self.isr = 0

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

    def env(self):
        return Env(bar_base=self.bar_base, bar_size=self.bar_size,
                   mem_enable=self.command >> 1 & 1, mps_code=self.cfg.field("mps"),
                   mps_supported=self.p.max_payload_supported)

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
        return 0     # notify, PBA (nothing pending: no interrupts), gaps

    def mem_write(self, dw, be, data, ans):
        name, d = self.region_of(dw)
        if name == "common":
            for ev in self.common.write(d, be, data):
                if ev[0] == "reset":
                    ans.virtio_reset = True
                elif ev[0] == "enable":
                    ans.qevents.append((ev[1], 0))
                elif ev[0] == "qreset":
                    ans.qevents.append((ev[1], 1))
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
        driver_ok = bool(c.status & 0x04) and not c.resetting
        if aligned and queue < self.nq and c.queues[queue].enabled and driver_ok:
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
                if op["write"]:
                    self._cfg_write(op["addr"], op["be"], op["data"], ans)
                    ans.tlps.append((cpl_dws(op["cpl"], self.completer_id), None))
                else:
                    v = self.cfg.read(op["addr"])
                    ans.tlps.append((cpl_dws(op["cpl"], self.completer_id, [v]),
                                     [DATA_MASK] * 3 + [DATA_MASK]))
                    ans.cfg_read_dw = op["addr"]
                continue
            if op["space"] != Space.MEM:
                raise AssertionError(f"unexpected space {op['space']} (no I/O BAR in the stress)")
            dw = op["addr"]
            if op["write"]:
                self.mem_write(dw, op["be"], op["data"], ans)
                continue
            v = self.mem_read(dw, op["be"])
            if op["cpl_start"]:
                cur = (op["cpl"], [], [])
            cur[1].append(v)
            cur[2].append(bytemask(op["be"]))
            if op["cpl_end"]:
                ans.tlps.append((cpl_dws(cur[0], self.completer_id, cur[1]),
                                 [DATA_MASK] * 3 + cur[2]))
                cur = None
        self._error_bits(errs, h, ops)
        return ans

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
