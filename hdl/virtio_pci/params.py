"""Validated, frozen parameters of the virtio-pci endpoint (DESIGN.md section 6).

Everything the RTL needs to know at elaboration time lives here: identity, queue and
vector counts, offered features, TLP width and the BAR layout.  The BAR layout is
computed from the other parameters (``regions``) so that tests and the port JSON read
offsets from one place instead of hard-coding them.
"""
from dataclasses import dataclass, replace
import json

__all__ = ["VirtioPciParams", "Region", "DEVICE_TYPES", "TRANSITIONAL_IDS", "Feature"]


class Feature:
    """Transport feature bit numbers (VIRTIO 1.3 chapter 6)."""
    NOTIFY_ON_EMPTY = 24
    ANY_LAYOUT = 27
    RING_INDIRECT_DESC = 28
    RING_EVENT_IDX = 29
    VERSION_1 = 32
    ACCESS_PLATFORM = 33
    RING_PACKED = 34
    IN_ORDER = 35
    ORDER_PLATFORM = 36
    SR_IOV = 37
    NOTIFICATION_DATA = 38
    NOTIF_CONFIG_DATA = 39
    RING_RESET = 40
    ADMIN_VQ = 41


#: transport bits this front-end cannot honour: bit 30 (UNUSED), SR_IOV (no SR-IOV extended
#: capability), ADMIN_VQ (no admin virtqueues), reserved 25, 26, 31 and 42..49 (VIRTIO 1.3 ch. 6)
UNSUPPORTED_FEATURES = sum(1 << b for b in (25, 26, 30, 31, Feature.SR_IOV, Feature.ADMIN_VQ,
                                             *range(42, 50)))
#: legacy-only transport bits: only a transitional device may offer them
LEGACY_ONLY_FEATURES = (1 << Feature.NOTIFY_ON_EMPTY) | (1 << Feature.ANY_LAYOUT)

#: virtio device type -> (name, PCI class code)
DEVICE_TYPES = {
    1: ("net", 0x020000),
    2: ("blk", 0x010000),
    3: ("console", 0x078000),
    4: ("entropy", 0x00FF00),
    5: ("balloon", 0x050000),
    8: ("scsi", 0x010000),
    9: ("9p", 0x000200),
    16: ("gpu", 0x038000),
    18: ("input", 0x098000),
    19: ("vsock", 0x088000),
    26: ("fs", 0x018000),
}

#: virtio device type -> transitional PCI Device ID (4.1.2.1)
TRANSITIONAL_IDS = {1: 0x1000, 2: 0x1001, 5: 0x1002, 3: 0x1003, 8: 0x1004, 4: 0x1005, 9: 0x1009}

PAGE = 0x1000


@dataclass(frozen=True)
class Region:
    """One structure inside a BAR: ``name`` at byte ``offset`` of BAR ``bar``, ``length`` bytes
    advertised, ``span`` bytes decoded (page aligned)."""
    name: str
    bar: int
    offset: int
    length: int
    span: int

    @property
    def end(self):
        return self.offset + self.span


def _pow2(n):
    return n > 0 and n & (n - 1) == 0


@dataclass(frozen=True)
class VirtioPciParams:
    device_type: int = 1
    num_queues: int = 3
    queue_max_size: int = 256
    #: offered features, up to 128 bits (VERSION_1 is mandatory)
    features: int = (1 << Feature.VERSION_1) | (1 << Feature.RING_RESET) | (1 << Feature.NOTIFICATION_DATA)
    msix_vectors: int = 4
    notify_off_multiplier: int = 4
    #: TLP stream data width in bits (64, 128 or 256)
    data_width: int = 128
    #: index of the 64-bit memory BAR holding every virtio structure and the MSI-X table
    mem_bar: int = 0
    #: device-specific configuration size in bytes (advertised length of the DEVICE cap)
    device_cfg_size: int = 0x20
    #: initial contents of the register-file device config (bytes, zero padded)
    device_cfg_init: bytes = b""
    subsystem_vendor_id: int = 0x1AF4
    subsystem_id: int = 0x1100
    revision: int = 1
    #: Max_Payload_Size supported, bytes (128..4096)
    max_payload_supported: int = 256
    transitional: bool = False
    #: size of the legacy I/O BAR0 (transitional devices and ``legacy_guard``); a transitional
    #: device's legacy header (24 bytes with MSI-X) and device configuration must fit in it
    io_bar_size: int = 0x40
    #: non-transitional device with an I/O BAR0 that mutes every BAR when a (buggy) legacy
    #: driver writes 0 to its legacy status register (VIRTIO 1.3 4.1.4.11, NTL-01)
    legacy_guard: bool = False
    vendor_id: int = 0x1AF4
    #: "regfile": the built-in device-config register file; "external": request/response port
    device_cfg_backend: str = "regfile"
    #: simulation assertions (hdl/virtio_pci/checks.py); sim/build.py sets it for Verilator
    assertions: bool = False
    #: requester port (back-end DMA, dma/requester.py): tags of its reads (32 are used while
    #: Extended Tag Field Enable is clear, all when it is set); 0 removes the requester
    dma_tags: int = 32
    #: largest MRd the requester sends (bytes, also the read-buffer slot of each tag):
    #: reads are split at min(Max_Read_Request_Size, dma_max_read)
    dma_max_read: int = 512
    #: completion timeout of the requester's reads in cycles (PCIe 2.8: 50 us..50 ms; the
    #: default is 8.4 ms at 125 MHz); Completion Timeout Disable (Device Control 2) turns it off
    cpl_timeout_cycles: int = 1 << 20
    #: cycles a request may wait for a back-end port (doorbell, external device config, a legacy
    #: access waiting for reset_ack) before the function gives it up (tlp/dispatcher.py); 0 picks
    #: max(1024, 2 * num_queues).  It must exceed the queue-flag sweep of num_queues cycles
    backend_timeout: int = 0
    #: None: soft configuration space (the default).  "cfg_ext": hard-IP mode, the vendor hard IP
    #: owns the type-0 header, BARs and its capabilities; the core's configuration space only
    #: answers what the IP forwards (config/config_space.py) and takes its state from ``hip``
    hard_ip: str = None
    #: completion chunks (one per DW read, one per configuration / I/O request) buffered while
    #: tx is held, so that posted requests keep flowing past waiting non-posted ones (PCIe 2.4.1)
    cpl_queue_depth: int = 8

    def __post_init__(self):
        if self.device_type not in DEVICE_TYPES:
            raise ValueError(f"device type must be one of {sorted(DEVICE_TYPES)}, not {self.device_type!r}")
        if not 1 <= self.num_queues <= 32768:
            raise ValueError(f"queue count must be 1..32768, not {self.num_queues!r}")
        if not (_pow2(self.queue_max_size) and self.queue_max_size <= 32768):
            raise ValueError(f"queue maximum size must be a power of two up to 32768, not {self.queue_max_size!r}")
        if not 0 <= self.features < (1 << 128):
            raise ValueError(f"features must fit in 128 bits, not {self.features!r}")
        bad = self.features & UNSUPPORTED_FEATURES
        if not self.transitional:
            bad |= self.features & LEGACY_ONLY_FEATURES
        if bad:
            bits = [i for i in range(128) if bad >> i & 1]
            raise ValueError(f"features must not offer reserved or unimplemented transport bits (FEA-03): {bits}")
        if not self.features >> Feature.VERSION_1 & 1:
            raise ValueError("features must offer VERSION_1 (bit 32)")
        from .virtio.feature_rules import missing_prerequisites
        for f, needs, kind in missing_prerequisites(self.device_type, self.features):
            what = " and ".join(map(str, needs)) if kind == "all" else " or ".join(map(str, needs))
            raise ValueError(f"features offer bit {f} without its prerequisite bit {what} (FEA-01)")
        if not 1 <= self.msix_vectors <= 2048:
            raise ValueError(f"MSI-X vector count must be 1..2048, not {self.msix_vectors!r}")
        m = self.notify_off_multiplier
        if not (m == 0 or (_pow2(m) and m >= 2)):
            raise ValueError(f"notify_off_multiplier must be 0 or an even power of two, not {m!r}")
        if self.features >> Feature.NOTIFICATION_DATA & 1 and m not in (0,) and m % 4:
            raise ValueError(f"notify_off_multiplier must be 0 or a multiple of 4 with NOTIFICATION_DATA, not {m!r}")
        if self.data_width not in (64, 128, 256):
            raise ValueError(f"TLP data width must be 64, 128 or 256, not {self.data_width!r}")
        if self.mem_bar not in (0, 2, 4):
            raise ValueError(f"memory BAR must be 0, 2 or 4 (64-bit BAR pair), not {self.mem_bar!r}")
        if self.transitional and self.mem_bar == 0:
            raise ValueError("a transitional device keeps BAR0 for the legacy I/O header: choose mem_bar 2 or 4")
        if self.transitional and self.device_type not in TRANSITIONAL_IDS:
            raise ValueError(f"device type {self.device_type} has no transitional Device ID")
        if not 4 <= self.device_cfg_size <= PAGE or self.device_cfg_size % 4:
            raise ValueError(f"device config size must be a multiple of 4 in 4..4096, not {self.device_cfg_size!r}")
        if len(self.device_cfg_init) > self.device_cfg_size:
            raise ValueError("device_cfg_init is longer than device_cfg_size")
        if self.max_payload_supported not in (128, 256, 512, 1024, 2048, 4096):
            raise ValueError(f"max payload supported must be a power of two in 128..4096, not {self.max_payload_supported!r}")
        if not self.transitional and self.subsystem_id < 0x40:
            raise ValueError(f"a non-transitional device should have subsystem id >= 0x40 (PCI-07), not {self.subsystem_id:#x}")
        if self.has_io_bar and self.io_bar_size not in (0x20, 0x40, 0x80, 0x100):
            raise ValueError(f"I/O BAR size must be 32..256 bytes, not {self.io_bar_size!r}")
        if self.transitional and 24 + self.device_cfg_size > self.io_bar_size:
            raise ValueError(f"the legacy header (24 bytes with MSI-X) and {self.device_cfg_size} bytes of "
                             f"device configuration do not fit in an I/O BAR of {self.io_bar_size} bytes (LEG-03)")
        if self.legacy_guard and self.transitional:
            raise ValueError("legacy_guard is for non-transitional devices (a transitional one has the legacy header)")
        if self.legacy_guard and self.mem_bar == 0:
            raise ValueError("legacy_guard puts an I/O BAR in BAR0: choose mem_bar 2 or 4")
        for name, what in (("vendor_id", "vendor ID"), ("subsystem_vendor_id", "subsystem vendor ID"),
                           ("subsystem_id", "subsystem ID")):
            if not 0 <= getattr(self, name) <= 0xFFFF:
                raise ValueError(f"{what} must be 0..0xFFFF, not {getattr(self, name):#x}")
        if not 0 <= self.revision <= 0xFF:
            raise ValueError(f"revision must be 0..255, not {self.revision!r}")

        if not 0 <= self.dma_tags <= 256:
            raise ValueError(f"DMA tag count must be 0..256, not {self.dma_tags!r}")
        if self.dma_max_read not in (128, 256, 512, 1024, 2048, 4096):
            raise ValueError(f"DMA maximum read must be a power of two in 128..4096, not {self.dma_max_read!r}")
        if not 16 <= self.cpl_timeout_cycles <= 1 << 30:
            raise ValueError(f"completion timeout must be 16..2**30 cycles, not {self.cpl_timeout_cycles!r}")

        if self.backend_timeout and not (self.num_queues + 16 < self.backend_timeout <= 1 << 20):
            raise ValueError(f"backend_timeout must be 0 (automatic) or {self.num_queues + 17}.."
                             f"{1 << 20} cycles (longer than the {self.num_queues}-cycle queue "
                             f"sweep), not {self.backend_timeout!r}")
        if self.hard_ip not in (None, "cfg_ext"):
            raise ValueError(f"hard_ip must be None or 'cfg_ext', not {self.hard_ip!r}")
        if self.hard_ip and self.has_io_bar:
            raise ValueError("hard-IP mode has no I/O BAR (transitional, legacy_guard): the hard IP "
                             "owns the BARs")
        if not 2 <= self.cpl_queue_depth <= 256:
            raise ValueError(f"cpl_queue_depth must be 2..256 completion chunks, not {self.cpl_queue_depth!r}")
        if self.device_cfg_backend not in ("regfile", "external"):
            raise ValueError(f"device config back-end must be 'regfile' or 'external', not {self.device_cfg_backend!r}")

    @property
    def stall_limit(self):
        """Cycles a request waits for a back-end port before it is abandoned."""
        return self.backend_timeout or max(1024, 2 * self.num_queues)

    # -- identity -------------------------------------------------------------------------
    @property
    def device_id(self):
        if self.transitional:
            return TRANSITIONAL_IDS[self.device_type]
        return 0x1040 + self.device_type

    @property
    def has_io_bar(self):
        return self.transitional or self.legacy_guard

    @property
    def revision_id(self):
        return 0 if self.transitional else self.revision

    @property
    def subsystem_device_id(self):
        return self.device_type if self.transitional else self.subsystem_id

    @property
    def class_code(self):
        return DEVICE_TYPES[self.device_type][1]

    @property
    def mps_supported_code(self):
        return (self.max_payload_supported // 128).bit_length() - 1

    @property
    def feature_words(self):
        return [(self.features >> (32 * i)) & 0xFFFF_FFFF for i in range(4)]

    def offers(self, bit):
        return bool(self.features >> bit & 1)

    # -- BAR layout -----------------------------------------------------------------------
    @property
    def common_cfg_length(self):
        return 0x40

    @property
    def notify_length(self):
        m = self.notify_off_multiplier
        width = 4 if self.offers(Feature.NOTIFICATION_DATA) else 2
        if m == 0:
            return max(width, 4)
        return (self.num_queues - 1) * m + max(width, 4 if m >= 4 else width)

    @property
    def msix_table_length(self):
        return 16 * self.msix_vectors

    @property
    def msix_pba_length(self):
        return 8 * ((self.msix_vectors + 63) // 64)

    @property
    def regions(self):
        """Regions of the memory BAR in address order, each page aligned."""
        spans = [
            ("common", self.common_cfg_length),
            ("isr", 1),
            ("device", self.device_cfg_size),
            ("notify", self.notify_length),
            ("msix_table", self.msix_table_length),
            ("msix_pba", self.msix_pba_length),
        ]
        out = {}
        offset = 0
        for name, length in spans:
            span = max(PAGE, 1 << (length - 1).bit_length())
            offset = (offset + span - 1) // span * span   # naturally aligned
            out[name] = Region(name, self.mem_bar, offset, length, span)
            offset += span
        return out

    @property
    def mem_bar_size(self):
        end = max(r.end for r in self.regions.values())
        return max(PAGE * 4, 1 << (end - 1).bit_length())

    # -- serialisation --------------------------------------------------------------------
    def to_dict(self):
        d = {k: getattr(self, k) for k in self.__dataclass_fields__}
        d["device_cfg_init"] = self.device_cfg_init.hex()
        d["features"] = hex(self.features)
        return d

    @classmethod
    def from_dict(cls, d):
        d = dict(d)
        preset = d.pop("preset", None)
        if preset is not None:
            if preset not in ("virtio_net", "virtio_blk", "virtio_rng"):
                raise ValueError(f"preset must be 'virtio_net', 'virtio_blk' or 'virtio_rng', "
                                 f"not {preset!r}")
            if "mac" in d:
                d["mac"] = bytes.fromhex(d["mac"].replace(":", ""))
            if "features" in d and isinstance(d["features"], str):
                d["features"] = int(d["features"], 0)
            return getattr(cls, preset)(**d)
        if "device_cfg_init" in d and isinstance(d["device_cfg_init"], str):
            d["device_cfg_init"] = bytes.fromhex(d["device_cfg_init"])
        if "features" in d and isinstance(d["features"], str):
            d["features"] = int(d["features"], 0)
        unknown = set(d) - set(cls.__dataclass_fields__)
        if unknown:
            raise ValueError(f"unknown parameters: {', '.join(sorted(unknown))}")
        return cls(**d)

    @classmethod
    def from_file(cls, path):
        with open(path) as f:
            return cls.from_dict(json.load(f))

    def replace(self, **kw):
        return replace(self, **kw)

    # -- presets: the register-file back-end with a real device layout ----------------------
    @classmethod
    def virtio_net(cls, *, mac=b"\x52\x54\x00\x12\x34\x56", queue_pairs=1, mtu=1500, **kw):
        """virtio-net (type 1): RX/TX queue pairs plus the control queue, MAC/STATUS/MTU
        offered and their fields in the device configuration (VIRTIO 1.3 5.1)."""
        from .virtio.device_layouts import net_config
        data, feats = net_config(mac=mac, max_virtqueue_pairs=queue_pairs, mtu=mtu)
        kw.setdefault("num_queues", 2 * queue_pairs + 1)
        kw.setdefault("msix_vectors", kw["num_queues"] + 1)
        kw["features"] = kw.get("features", cls.__dataclass_fields__["features"].default) | feats
        return cls(device_type=1, device_cfg_size=len(data), device_cfg_init=data,
                   device_cfg_backend="regfile", **kw)

    @classmethod
    def virtio_blk(cls, *, capacity=0x10000, blk_size=512, queues=1, **kw):
        """virtio-blk (type 2): ``queues`` request queues, capacity/block size/segment limits
        offered and in the device configuration (VIRTIO 1.3 5.2)."""
        from .virtio.device_layouts import blk_config
        data, feats = blk_config(capacity=capacity, blk_size=blk_size, num_queues=queues)
        kw.setdefault("num_queues", queues)
        kw.setdefault("msix_vectors", max(2, queues + 1))
        kw.setdefault("subsystem_id", 0x1100)
        kw["features"] = kw.get("features", cls.__dataclass_fields__["features"].default) | feats
        return cls(device_type=2, device_cfg_size=len(data), device_cfg_init=data,
                   device_cfg_backend="regfile", **kw)

    @classmethod
    def virtio_rng(cls, **kw):
        """virtio-rng (type 4, VIRTIO 1.3 5.4): one request queue, no device-specific
        configuration (a 4-byte zero window is advertised: the structure needs one), indirect
        descriptors and EVENT_IDX offered (the ring engine implements them).  ``make verilog``
        emits the whole device (``devices/rng.py``) for this type."""
        kw.setdefault("num_queues", 1)
        kw.setdefault("msix_vectors", 2)
        kw.setdefault("queue_max_size", 64)
        kw["features"] = (kw.get("features", cls.__dataclass_fields__["features"].default)
                          | 1 << Feature.RING_INDIRECT_DESC | 1 << Feature.RING_EVENT_IDX)
        return cls(device_type=4, device_cfg_size=4, device_cfg_backend="regfile", **kw)
