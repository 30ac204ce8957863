"""Python reference model of the register semantics of the virtio structures, for scoreboards.

The model implements the specification choices documented in ``hdl/virtio_pci/virtio/*.py``
(DESIGN.md section 7) at DW granularity: ``read(dw, be)`` returns the DW a memory read returns,
``write(dw, be, data)`` applies a write with byte enables, where a narrow write changes only the
enabled bytes of a read-write field (the bytes of disabled lanes are never looked at), and returns
the back-end events the write causes.  Events that the back-end completes later (virtio reset,
queue reset) are applied with ``reset_done()`` and ``qreset_done(q)``.

Common configuration (VIRTIO 1.3 4.1.4.3), choices modelled:

* selects 0..3 of the feature windows; other selects read 0, their writes are ignored;
* ``driver_feature`` reads back what was written; writes are ignored once FEATURES_OK is set;
  FEATURES_OK is refused (reads 0) for unoffered bits, a missing VERSION_1 or a back-end veto, and
  sticks until reset once accepted;
* ``device_status``: writing 0 starts a reset, during which the register reads the old status
  with DEVICE_NEEDS_RESET and every write is ignored; other values are taken as written (bits 4
  and 5 are dropped, DEVICE_NEEDS_RESET is device-owned);
* vectors below the table size are stored, anything else stores NO_VECTOR;
* ``queue_size`` takes powers of two up to the maximum (any non-zero value up to it with
  RING_PACKED), only while the queue is disabled; addresses likewise; the vector at any time;
* ``queue_enable``: a write whose resulting value is 1 enables a disabled, existing queue; 0 and
  anything else is ignored; ``queue_reset``: a resulting 1 on an enabled queue with RING_RESET
  negotiated starts a queue reset;
* selects >= num_queues read size 0, vector NO_VECTOR, enable 0, notify_off 0, addresses 0;
* ``config_generation`` increments on the first device-config change after the driver last read
  it (a read that includes byte 0x15).

Legacy view of a transitional device (README "Transitional devices: the legacy header", the
register map of ``virtio/legacy.py``'s docstring, the legacy rules of ``virtio/common_cfg.py``'s
docstring), the common-configuration fields of the I/O BAR header: ``legacy_read(dw, be, msix)``
and ``legacy_write(dw, be, data, msix)`` for header DWs 0-3, the status byte of DW 4 and, with
MSI-X enabled, the vector DW 5 (the router, ISR, notify and device configuration are
``tb/models/ref_model.py``'s):

* host features: device feature bits 0-31 plus ANY_LAYOUT (27), legacy-only bits included; the
  modern ``device_feature`` never shows the legacy-only bits (NOTIFY_ON_EMPTY, ANY_LAYOUT);
* guest features: ignored once FEATURES_OK or DRIVER_OK is set; otherwise the register (driver
  feature word 0) takes the enabled bytes, keeps only offered bits, words 1-3 are cleared and the
  driver is legacy (``legacy``): its features are negotiated at once;
* queue address (PFN): the value is formed from the enabled lanes (disabled lanes 0, as for the
  other action registers, and the PFN of a disabled queue reads 0 anyway); non-zero on a
  disabled, existing queue that is not being reset enables it with the legacy layout of its size
  N (desc PFN*4096, driver +16*N, device at the next 4096 boundary after the driver area's 6+2*N
  bytes) and asks for queue event ENABLE; 0 on an enabled queue not being reset starts a queue
  reset (queue event RESET) whether or not RING_RESET was negotiated; reads the PFN (desc / 4096)
  of an enabled queue, else 0;
* queue size reads the selected queue's size (0 past num_queues), queue select shares the modern
  register; status: 0 resets the device, other values keep FEATURES_OK (bit 3) and
  DEVICE_NEEDS_RESET as they are; the vector fields share the modern ones (NO_VECTOR past the
  table);
* once a modern FEATURES_OK is set, every legacy write is ignored except a status of 0; an
  accepted modern FEATURES_OK clears ``legacy``; a device reset clears it;
* a legacy driver's doorbells and used-buffer notifications are allowed before DRIVER_OK
  (``legacy_live``); configuration-change notifications still need DRIVER_OK.
"""
from dataclasses import dataclass, field

from tb.host.virtio_driver import F, NO_VECTOR

#: feature bits that exist only in the legacy interface (VIRTIO 1.3 6.3): offered through the
#: legacy host features only, reserved for a modern driver (FEA-03)
NOTIFY_ON_EMPTY, ANY_LAYOUT = 24, 27
LEGACY_ONLY = 1 << NOTIFY_ON_EMPTY | 1 << ANY_LAYOUT

__all__ = ["CommonCfgModel", "QueueState"]


def _merge(old, be, data, lo_byte, nbytes):
    """``old`` (an ``nbytes`` field at byte ``lo_byte`` of the DW) with the enabled bytes of data."""
    out = old
    for i in range(nbytes):
        b = lo_byte + i
        if be >> b & 1:
            out = (out & ~(0xFF << (8 * i))) | (((data >> (8 * b)) & 0xFF) << (8 * i))
    return out


def _touched(be, lo_byte, nbytes):
    return bool((be >> lo_byte) & ((1 << nbytes) - 1))


@dataclass
class QueueState:
    size: int
    vector: int = NO_VECTOR
    desc: int = 0
    driver: int = 0
    device: int = 0
    enabled: bool = False
    resetting: bool = False


@dataclass
class CommonCfgModel:
    num_queues: int
    queue_max_size: int
    features: int
    msix_vectors: int
    notify_off_multiplier: int
    dfsel: int = 0
    gfsel: int = 0
    gfeat: list = field(default_factory=lambda: [0, 0, 0, 0])
    cfg_vec: int = NO_VECTOR
    status: int = 0
    resetting: bool = False
    gen: int = 0
    gen_dirty: bool = False
    qsel: int = 0
    veto: bool = False
    queues: list = None
    transitional: bool = False
    legacy: bool = False            # the driver wrote the legacy guest features (LEG-06)
    host_features: int = 0          # legacy host features (bits 0-31)

    @classmethod
    def from_params(cls, p):
        feats = p["features"]
        feats = int(feats, 0) if isinstance(feats, str) else feats
        m = cls(p["num_queues"], p["queue_max_size"], feats & ~LEGACY_ONLY, p["msix_vectors"],
                p["notify_off_multiplier"])
        m.transitional = bool(p.get("transitional"))
        m.host_features = (feats & 0xFFFF_FFFF) | 1 << ANY_LAYOUT
        m._reset_queues()
        return m

    def _reset_queues(self):
        self.queues = [QueueState(self.queue_max_size) for _ in range(self.num_queues)]

    # ---- derived ----
    def offers(self, bit):
        return bool(self.features >> bit & 1)

    @property
    def driver_features(self):
        return sum(g << (32 * i) for i, g in enumerate(self.gfeat))

    @property
    def negotiated(self):
        return self.driver_features if self.status & 0x08 or self.legacy else 0

    @property
    def modern(self):
        """A modern driver's FEATURES_OK is set: legacy writes are ignored but status 0."""
        return bool(self.status & 0x08)

    def doorbell_live(self, legacy_header):
        """Doorbells count: DRIVER_OK, or (legacy header) a legacy driver, outside a reset."""
        if self.resetting:
            return False
        return bool(self.status & 0x04) or (legacy_header and self.legacy)

    def irq_live(self, config):
        """Notifications are taken: DRIVER_OK, or a legacy driver's used-buffer ones (LEG-08)."""
        if self.resetting:
            return False
        return bool(self.status & 0x04) or (self.legacy and not config)

    def _q(self):
        return self.queues[self.qsel] if self.qsel < self.num_queues else None

    def _legal_vector(self, v):
        return v if v < self.msix_vectors else NO_VECTOR

    # ---- read ----
    def read(self, dw, be=0xF):
        """The DW a read of common-config DW ``dw`` returns (side effect: config_generation)."""
        if dw == 5 and be & 0b0010:
            self.gen_dirty = False
        q = self._q()
        if dw == 0:
            return self.dfsel
        if dw == 1:
            return (self.features >> (32 * self.dfsel)) & 0xFFFF_FFFF if self.dfsel < 4 else 0
        if dw == 2:
            return self.gfsel
        if dw == 3:
            return self.gfeat[self.gfsel] if self.gfsel < 4 else 0
        if dw == 4:
            return self.cfg_vec | self.num_queues << 16
        if dw == 5:
            shown = self.status | (0x40 if self.resetting else 0)
            return shown | self.gen << 8 | self.qsel << 16
        if dw == 6:
            return (q.size | q.vector << 16) if q else NO_VECTOR << 16
        if dw == 7:
            if not q:
                return 0
            off = self.qsel if self.notify_off_multiplier else 0
            return int(q.enabled) | off << 16
        if 8 <= dw <= 13:
            if not q:
                return 0
            v = getattr(q, ("desc", "driver", "device")[(dw - 8) // 2])
            return (v >> (32 * (dw & 1))) & 0xFFFF_FFFF
        if dw == 14:
            if not q:
                return 0
            data = self.qsel if self.offers(F.NOTIF_CONFIG_DATA) else 0
            return data | int(q.resetting) << 16
        return 0

    # ---- write ----
    def write(self, dw, be, data):
        """Apply a write; returns a list of events: ("reset",), ("enable", q), ("qreset", q)."""
        if self.resetting or not be:
            return []
        ev = []
        q = self._q()
        if dw == 0:
            self.dfsel = _merge(self.dfsel, be, data, 0, 4)
        elif dw == 2:
            self.gfsel = _merge(self.gfsel, be, data, 0, 4)
        elif dw == 3:
            if not self.status & 0x08 and self.gfsel < 4:
                self.gfeat[self.gfsel] = _merge(self.gfeat[self.gfsel], be, data, 0, 4)
        elif dw == 4:
            if _touched(be, 0, 2):
                self.cfg_vec = self._legal_vector(_merge(self.cfg_vec, be, data, 0, 2))
        elif dw == 5:
            if be & 1:
                v = data & 0xFF
                if v == 0:
                    self.resetting = True
                    ev.append(("reset",))
                else:
                    keep = bool(self.status & 0x08)
                    ok = self._features_ok()
                    fok = keep or (bool(v & 0x08) and ok)
                    if fok:
                        self.legacy = False     # a modern driver took over
                    self.status = (v & 0x87) | (0x08 if fok else 0) | (self.status & 0x40)
            if _touched(be, 2, 2):
                self.qsel = _merge(self.qsel, be, data, 2, 2)
        elif dw == 6 and q:
            if _touched(be, 0, 2) and not q.enabled:
                sz = _merge(q.size, be, data, 0, 2)
                packed = bool(self.negotiated >> F.RING_PACKED & 1)
                if sz and sz <= self.queue_max_size and (packed or not sz & (sz - 1)):
                    q.size = sz
            if _touched(be, 2, 2):
                q.vector = self._legal_vector(_merge(q.vector, be, data, 2, 2))
        elif dw == 7 and q:
            if _touched(be, 0, 2) and _merge(0, be, data, 0, 2) == 1 and not q.enabled \
                    and not q.resetting:
                q.enabled = True
                ev.append(("enable", self.qsel))
        elif 8 <= dw <= 13 and q:
            if not q.enabled:
                name = ("desc", "driver", "device")[(dw - 8) // 2]
                half = dw & 1
                cur = (getattr(q, name) >> (32 * half)) & 0xFFFF_FFFF
                new = _merge(cur, be, data, 0, 4)
                full = getattr(q, name) & ~(0xFFFF_FFFF << (32 * half)) | new << (32 * half)
                setattr(q, name, full)
        elif dw == 14 and q:
            rr = bool(self.negotiated >> F.RING_RESET & 1)
            if _touched(be, 2, 2) and _merge(0, be, data, 2, 2) == 1 and rr and q.enabled \
                    and not q.resetting:
                q.resetting = True
                ev.append(("qreset", self.qsel))
        return ev

    def _features_ok(self):
        f = self.driver_features
        return (f & ~self.features) == 0 and bool(f >> F.VERSION_1 & 1) and not self.veto

    # ---- legacy header (transitional devices) ----
    def legacy_read(self, dw, be, msix):
        """The DW a legacy read of header DW ``dw`` (0-3, 4: status in byte 2 only, 5 with MSI-X
        enabled) returns from the common configuration's fields."""
        q = self._q()
        if dw == 0:
            return self.host_features
        if dw == 1:
            return self.gfeat[0]
        if dw == 2:
            return (q.desc >> 12) & 0xFFFF_FFFF if q and q.enabled else 0
        if dw == 3:
            return (q.size if q else 0) | self.qsel << 16
        if dw == 4:
            return (self.status | (0x40 if self.resetting else 0)) << 16
        if dw == 5 and msix:
            return self.cfg_vec | (q.vector if q else NO_VECTOR) << 16
        return 0

    def legacy_write(self, dw, be, data, msix):
        """Apply a legacy write (same DWs as ``legacy_read``); returns the events as ``write``."""
        if self.resetting or not be:
            return []
        ev = []
        q = self._q()
        if dw == 1:
            if not self.status & 0x0C:
                self.gfeat[0] = _merge(self.gfeat[0], be, data, 0, 4) & self.host_features
                self.gfeat[1:] = [0, 0, 0]
                self.legacy = True
        elif dw == 2:
            pfn = _merge(0, be, data, 0, 4)
            if q and not self.modern and not q.resetting:
                if pfn and not q.enabled:
                    n = q.size
                    q.desc = pfn << 12
                    q.driver = q.desc + 16 * n
                    q.device = (q.driver + 6 + 2 * n + 4095) & ~4095
                    q.enabled = True
                    ev.append(("enable", self.qsel))
                elif not pfn and q.enabled:
                    q.resetting = True
                    ev.append(("qreset", self.qsel))
        elif dw == 3:
            if _touched(be, 2, 2) and not self.modern:
                self.qsel = _merge(self.qsel, be, data, 2, 2)
        elif dw == 4:
            if be & 0b0100:
                s = data >> 16 & 0xFF
                if s == 0:
                    self.resetting = True
                    ev.append(("reset",))
                elif not self.modern:
                    self.status = (s & 0x87) | (self.status & 0x48)
        elif dw == 5 and msix and not self.modern:
            if _touched(be, 0, 2):
                self.cfg_vec = self._legal_vector(_merge(self.cfg_vec, be, data, 0, 2))
            if _touched(be, 2, 2) and q:
                q.vector = self._legal_vector(_merge(q.vector, be, data, 2, 2))
        return ev

    # ---- back-end side ----
    def reset_done(self):
        self.resetting = False
        self.legacy = False
        self.status = 0
        self.dfsel = self.gfsel = 0
        self.gfeat = [0, 0, 0, 0]
        self.cfg_vec = NO_VECTOR
        self.qsel = 0
        self._reset_queues()

    def qreset_done(self, qi):
        q = self.queues[qi]
        if q.resetting:
            self.queues[qi] = QueueState(self.queue_max_size)

    def needs_reset(self):
        if not self.resetting:
            self.status |= 0x40

    def config_changed(self):
        if not self.gen_dirty:
            self.gen = (self.gen + 1) & 0xFF
            self.gen_dirty = True
