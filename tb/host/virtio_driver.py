"""A virtio-pci modern driver model that follows Linux (virtio_pci_modern_dev.c, virtio_pci_modern.c,
virtio.c; summarised in spec/virtio-pci-conformance.md section 3.1).

Layered like the Linux driver:

* transport access: ``cfg_read``/``cfg_write`` (configuration space through the root complex) and
  ``read``/``write`` (the virtio structures through the memory BAR), every access recorded in a
  ``Transcript`` with time, direction, register name and value;
* ``probe()``: vp_modern_probe: walks the *whole* capability list (the PCI rules: start at 0x34,
  pointers masked with ~3, stop below 0x40, at ID 0xFF or after 48 hops) and takes, per cfg_type,
  the first vendor capability whose ``bar`` is 0..5 and names a BAR with a non-zero size; checks
  each structure as vp_modern_map_capability does (length, alignment, inside the BAR);
* ``reset()``, ``add_status()``, ``get_features()``/``set_features()`` (four feature words, selects
  0..3, as the 128-bit kernels), ``finalize_features()`` (transport-bit filter, VERSION_1 check,
  common-cfg size check, FEATURES_OK and its re-read);
* ``setup_vq()`` (select, size, enable==0 check, size write, desc/driver/device lo then hi, vector
  and its read-back, notify offset and its range check), ``enable_vq()``, ``kick()`` (16-bit write
  of the index, or 32-bit ``next << 16 | index`` with NOTIFICATION_DATA), ``config_read()`` (the
  config_generation loop), ``queue_reset()``/``reenable_vq()`` (RING_RESET);
* ``init()``: the whole probe-to-DRIVER_OK sequence of virtio_dev_probe + vp_modern_find_vqs.

Every poll loop is bounded (Linux polls forever); a device that does not answer fails the test.
"""
from dataclasses import dataclass

from cocotb.triggers import Timer
from cocotb.utils import get_sim_time

__all__ = ["VirtioPciDriver", "VirtQueue", "Transcript", "Status", "COMMON", "NO_VECTOR",
           "DriverError", "FeaturesRefused", "CfgType", "F"]

from tb.host.pcispec import CfgType  # noqa: E402  (one table of cfg_type values in the testbench)
from tb.host.access import host_access  # noqa: E402

NO_VECTOR = 0xFFFF


class Status:
    ACKNOWLEDGE = 0x01
    DRIVER = 0x02
    DRIVER_OK = 0x04
    FEATURES_OK = 0x08
    DEVICE_NEEDS_RESET = 0x40
    FAILED = 0x80


CFG_TYPE_NAMES = {1: "common", 2: "notify", 3: "isr", 4: "device", 5: "pci_cfg", 8: "shm",
                  9: "vendor"}


class F:
    """Transport feature bits (VIRTIO 1.3 chapter 6)."""
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


#: struct virtio_pci_common_cfg (1.3): name -> (offset, size)
COMMON = {
    "device_feature_select": (0x00, 4),
    "device_feature": (0x04, 4),
    "driver_feature_select": (0x08, 4),
    "driver_feature": (0x0C, 4),
    "config_msix_vector": (0x10, 2),
    "num_queues": (0x12, 2),
    "device_status": (0x14, 1),
    "config_generation": (0x15, 1),
    "queue_select": (0x16, 2),
    "queue_size": (0x18, 2),
    "queue_msix_vector": (0x1A, 2),
    "queue_enable": (0x1C, 2),
    "queue_notify_off": (0x1E, 2),
    "queue_desc_lo": (0x20, 4),
    "queue_desc_hi": (0x24, 4),
    "queue_driver_lo": (0x28, 4),
    "queue_driver_hi": (0x2C, 4),
    "queue_device_lo": (0x30, 4),
    "queue_device_hi": (0x34, 4),
    "queue_notif_config_data": (0x38, 2),
    "queue_reset": (0x3A, 2),
    "admin_queue_index": (0x3C, 2),
    "admin_queue_num": (0x3E, 2),
}
_COMMON_BY_OFF = {(off, size): name for name, (off, size) in COMMON.items()}

#: offsetofend(queue_device_hi): the 1.0 structure Linux requires at least
COMMON_MIN_LEN = 0x38
#: bits 28..41 that Linux's vring_transport_features() keeps (RING_RESET/ADMIN_VQ/SR_IOV are
#: added back by vp_transport_features() when offered / when the SR-IOV capability exists)
LINUX_TRANSPORT_KEEP = {F.RING_INDIRECT_DESC, F.RING_EVENT_IDX, F.VERSION_1, F.ACCESS_PLATFORM,
                        F.RING_PACKED, F.IN_ORDER, F.ORDER_PLATFORM, F.NOTIFICATION_DATA,
                        F.RING_RESET, F.ADMIN_VQ}
PAGE_SIZE = 4096


class DriverError(Exception):
    """The driver model gave up, as Linux would (probe or setup failure)."""


class FeaturesRefused(DriverError):
    """FEATURES_OK did not stick ("device refuses features")."""


@dataclass
class Access:
    time_ns: float
    space: str        # "cfg" or "mem"
    direction: str    # "R" or "W"
    addr: int
    size: int
    name: str
    value: int


class Transcript:
    """Every access of the driver, in order, printable."""

    def __init__(self):
        self.entries = []
        self.notes = []

    def add(self, *a):
        self.entries.append(Access(*a))

    def note(self, text):
        self.entries.append(Access(get_sim_time("ns"), "--", "", 0, 0, text, 0))

    def lines(self):
        out = []
        for e in self.entries:
            if e.space == "--":
                out.append(f"{e.time_ns:10.0f} ns  # {e.name}")
                continue
            w = 2 * e.size
            arrow = "->" if e.direction == "R" else "<-"
            out.append(f"{e.time_ns:10.0f} ns  {e.space:3s} {e.direction} {e.addr:#010x} "
                       f"{e.name:28s} {arrow} {e.value:#0{w + 2}x}")
        return out

    def text(self):
        return "\n".join(self.lines())

    def accesses(self, name=None, direction=None):
        return [e for e in self.entries if e.space != "--"
                and (name is None or e.name == name) and (direction is None or e.direction == direction)]


@dataclass
class Mapping:
    """One virtio structure as the driver mapped it."""
    cfg_type: int
    cap_offset: int
    bar: int
    offset: int
    length: int
    addr: int          # bus address of the structure
    maplen: int        # bytes the driver mapped


@dataclass
class VirtQueue:
    index: int
    size: int
    desc: int
    driver: int
    device: int
    vector: int
    notify_off: int
    notify_addr: int
    avail_idx: int = 0
    notif_config_data: int = None


@dataclass
class VendorCap:
    offset: int
    cap_len: int
    cfg_type: int
    bar: int


class CfgAccess:
    """Configuration reads and writes through the host's access path (``self.bus``), recorded in
    ``self.transcript``; shared by the modern and the legacy driver models."""

    async def cfg_read(self, off, size, name=None):
        data = await self.bus.config_read(off, size)
        v = int.from_bytes(data, "little")
        self.transcript.add(get_sim_time("ns"), "cfg", "R", off, size, name or f"cfg[{off:#05x}]", v)
        return v

    async def cfg_write(self, off, size, value, name=None):
        self.transcript.add(get_sim_time("ns"), "cfg", "W", off, size, name or f"cfg[{off:#05x}]",
                            value)
        await self.bus.config_write(off, value.to_bytes(size, "little"))


class VirtioPciDriver(CfgAccess):
    """``tb``: a ``tb.env.testbench.TB`` after enumeration (its ``dev`` and access path,
    ``tb.host.access.host_access``, are used).

    ``poll_limit``: reads before a poll loop (reset, queue reset) gives up.  ``poll_delay_ns``:
    time between polls (Linux: ``msleep(1)``; here a few cycles).
    """

    def __init__(self, tb, *, poll_limit=200, poll_delay_ns=40, transcript=None):
        self.tb = tb
        self.dev = tb.dev
        self.bus = host_access(tb)
        self.poll_limit = poll_limit
        self.poll_delay_ns = poll_delay_ns
        self.transcript = transcript if transcript is not None else Transcript()
        self.caps = []                 # every vendor cap in list order
        self.cap_walk = []             # (offset, cap_id) in list order
        self.maps = {}                 # cfg_type -> Mapping
        self.notify_off_multiplier = None
        self.device_features = None
        self.features = 0              # negotiated
        self.vqs = {}
        self.virtio_id = None
        self.num_queues = None

    # ================================================================ transport access
    def _name(self, addr, size):
        for t, mp in self.maps.items():
            if mp.addr <= addr < mp.addr + max(mp.maplen, mp.length):
                off = addr - mp.addr
                if t == CfgType.COMMON:
                    n = _COMMON_BY_OFF.get((off, size))
                    return f"common.{n}" if n else f"common+{off:#x}"
                if t == CfgType.NOTIFY:
                    m = self.notify_off_multiplier
                    if m:
                        return f"notify[off {off // m}]" if off % m == 0 else f"notify+{off:#x}"
                    return "notify"
                return f"{CFG_TYPE_NAMES[t]}+{off:#x}"
        return "mem"

    async def mem_read(self, addr, size, name=None):
        data = await self.bus.mem_read(addr, size)
        v = int.from_bytes(data, "little")
        self.transcript.add(get_sim_time("ns"), "mem", "R", addr, size, name or self._name(addr, size), v)
        return v

    async def mem_write(self, addr, size, value, name=None):
        self.transcript.add(get_sim_time("ns"), "mem", "W", addr, size, name or self._name(addr, size),
                            value)
        await self.bus.mem_write(addr, value.to_bytes(size, "little"))

    async def read(self, cfg_type, off, size):
        mp = self.maps[cfg_type]
        return await self.mem_read(mp.addr + off, size)

    async def write(self, cfg_type, off, size, value):
        mp = self.maps[cfg_type]
        await self.mem_write(mp.addr + off, size, value)

    async def common_read(self, name):
        off, size = COMMON[name]
        return await self.read(CfgType.COMMON, off, size)

    async def common_write(self, name, value):
        off, size = COMMON[name]
        await self.write(CfgType.COMMON, off, size, value)

    async def write64(self, lo_name, value):
        """vp_iowrite64_twopart: low dword, then high dword."""
        await self.common_write(lo_name, value & 0xFFFF_FFFF)
        await self.common_write(lo_name[:-2] + "hi", value >> 32)

    async def _sleep(self):
        await Timer(self.poll_delay_ns, unit="ns")

    # ================================================================ probe
    async def walk_capabilities(self):
        """__pci_find_next_cap_ttl over the whole list; returns [(offset, cap_id)]."""
        status = await self.cfg_read(0x06, 2, "status")
        if not status & 0x10:
            raise DriverError("Status.Capabilities List is 0")
        pos = await self.cfg_read(0x34, 1, "cap_ptr")
        walk = []
        ttl = 48
        while ttl:
            ttl -= 1
            if pos < 0x40:
                break
            pos &= ~3
            ent = await self.cfg_read(pos, 2, f"cap@{pos:#04x}.id/next")
            cap_id = ent & 0xFF
            if cap_id == 0xFF:
                break
            walk.append((pos, cap_id))
            pos = ent >> 8
        else:
            raise DriverError("capability list does not terminate within 48 entries")
        self.cap_walk = walk
        return walk

    async def find_vendor_caps(self):
        """Every virtio vendor capability (ID 0x09) in list order."""
        caps = []
        for pos, cap_id in await self.walk_capabilities():
            if cap_id != 0x09:
                continue
            cap_len = await self.cfg_read(pos + 2, 1, f"cap@{pos:#04x}.cap_len")
            cfg_type = await self.cfg_read(pos + 3, 1, f"cap@{pos:#04x}.cfg_type")
            bar = await self.cfg_read(pos + 4, 1, f"cap@{pos:#04x}.bar")
            caps.append(VendorCap(pos, cap_len, cfg_type, bar))
        self.caps = caps
        return caps

    def find_capability(self, cfg_type):
        """virtio_pci_find_capability: first cap of the type with bar <= 5 and a usable BAR."""
        for c in self.caps:
            if c.cfg_type != cfg_type or c.bar > 5:
                continue
            if self.dev.bar_size[c.bar]:
                return c
        return None

    async def map_capability(self, cap, minlen, align, start, size):
        """vp_modern_map_capability: the checks Linux makes before mapping a structure."""
        pos = cap.offset
        bar = await self.cfg_read(pos + 4, 1, f"cap@{pos:#04x}.bar")
        offset = await self.cfg_read(pos + 8, 4, f"cap@{pos:#04x}.offset")
        length = await self.cfg_read(pos + 12, 4, f"cap@{pos:#04x}.length")
        what = CFG_TYPE_NAMES.get(cap.cfg_type, cap.cfg_type)
        if bar > 5 or not self.dev.bar_size[bar]:
            raise DriverError(f"{what}: bar {bar} is not an assigned BAR")
        if length <= start:
            raise DriverError(f"{what}: bad capability length {length} (start {start})")
        if length - start < minlen:
            raise DriverError(f"{what}: bad capability length {length} < {minlen}")
        length -= start
        if start + offset < offset:
            raise DriverError(f"{what}: map wrap-around {start} + {offset}")
        offset += start
        if offset & (align - 1):
            raise DriverError(f"{what}: offset {offset:#x} not aligned to {align}")
        if offset + minlen > self.dev.bar_size[bar]:
            raise DriverError(f"{what}: {minlen} bytes at {offset:#x} do not fit BAR{bar}")
        maplen = min(length, size)
        mp = Mapping(cap.cfg_type, pos, bar, offset, length, self.dev.bar_addr[bar] + offset, maplen)
        return mp

    async def probe(self):
        """vp_modern_probe."""
        self.transcript.note("probe: identity and capabilities")
        await self.enable_device()
        ids = await self.cfg_read(0x00, 4, "vendor/device id")
        vendor, device = ids & 0xFFFF, ids >> 16
        if vendor != 0x1AF4:
            raise DriverError(f"vendor {vendor:#06x} is not 0x1af4")
        if not 0x1000 <= device <= 0x107F:
            raise DriverError(f"device id {device:#06x} outside 0x1000..0x107f")
        if device < 0x1040:
            self.virtio_id = await self.cfg_read(0x2E, 2, "subsystem id")
        else:
            self.virtio_id = device - 0x1040
        await self.find_vendor_caps()
        common = self.find_capability(CfgType.COMMON)
        if common is None:
            raise DriverError("leaving for legacy driver: no common capability")
        isr = self.find_capability(CfgType.ISR)
        notify = self.find_capability(CfgType.NOTIFY)
        if isr is None or notify is None:
            raise DriverError("missing capabilities (isr or notify)")
        device_cap = self.find_capability(CfgType.DEVICE)
        self.maps[CfgType.COMMON] = await self.map_capability(common, COMMON_MIN_LEN, 4, 0, 0x40)
        self.maps[CfgType.ISR] = await self.map_capability(isr, 1, 1, 0, 1)
        self.notify_off_multiplier = await self.cfg_read(notify.offset + 16, 4,
                                                         f"cap@{notify.offset:#04x}.notify_off_multiplier")
        nlen = await self.cfg_read(notify.offset + 12, 4, f"cap@{notify.offset:#04x}.length")
        noff = await self.cfg_read(notify.offset + 8, 4, f"cap@{notify.offset:#04x}.offset")
        if nlen + noff % PAGE_SIZE <= PAGE_SIZE:
            self.maps[CfgType.NOTIFY] = await self.map_capability(notify, 2, 2, 0, nlen)
        else:
            # per-queue mapping later; keep the structure for address computation
            mp = await self.map_capability(notify, 2, 2, 0, 2)
            mp.maplen = nlen
            self.maps[CfgType.NOTIFY] = mp
        if device_cap is not None:
            self.maps[CfgType.DEVICE] = await self.map_capability(device_cap, 0, 4, 0, PAGE_SIZE)
        pcc = self.find_capability(CfgType.PCI_CFG)
        self.pci_cfg_cap = pcc
        await self.set_master()
        return self.maps

    async def enable_device(self):
        """pci_enable_device: Memory Space enable (I/O too when the function has an I/O BAR)."""
        cmd = await self.cfg_read(0x04, 2, "command")
        new = cmd | 0x2 | (0x1 if self.tb.desc.io_bar else 0)
        if new != cmd:
            await self.cfg_write(0x04, 2, new, "command")

    async def set_master(self):
        """pci_set_master, done by virtio_pci_probe after a successful modern probe."""
        cmd = await self.cfg_read(0x04, 2, "command")
        if not cmd & 0x4:
            await self.cfg_write(0x04, 2, cmd | 0x4, "command")

    # ================================================================ status and reset
    async def get_status(self):
        return await self.common_read("device_status")

    async def set_status(self, value):
        if value == 0:
            raise ValueError("vp_set_status never writes 0: use reset()")
        await self.common_write("device_status", value)

    async def add_status(self, bits):
        """virtio_add_status: read-modify-write."""
        s = await self.get_status()
        await self.set_status(s | bits)

    async def reset(self):
        """vp_reset: write 0, then poll until the device reads 0.  Returns the values read
        while polling (all must be non-zero but the last)."""
        self.transcript.note("reset")
        await self.common_write("device_status", 0)
        seen = []
        for _ in range(self.poll_limit):
            s = await self.get_status()
            seen.append(s)
            if s == 0:
                return seen
            await self._sleep()
        raise DriverError(f"device_status never read 0 after reset (last {seen[-1]:#x})")

    # ================================================================ features
    async def get_features(self, words=4):
        v = 0
        for i in range(words):
            await self.common_write("device_feature_select", i)
            v |= (await self.common_read("device_feature")) << (32 * i)
        return v

    async def set_features(self, value, words=4):
        for i in range(words):
            await self.common_write("driver_feature_select", i)
            await self.common_write("driver_feature", (value >> (32 * i)) & 0xFFFF_FFFF)

    @staticmethod
    def transport_filter(features):
        """vring_transport_features + vp_transport_features: bits 28..41 Linux keeps."""
        out = features
        for b in range(28, 42):
            if b not in LINUX_TRANSPORT_KEEP:
                out &= ~(1 << b)
        return out

    async def finalize_features(self, wanted=None, *, linux_filter=True, check=True):
        """Negotiate ``device_features & wanted`` (all offered by default); return the set.
        Raises FeaturesRefused when FEATURES_OK does not stick."""
        self.transcript.note("features")
        self.device_features = dev = await self.get_features()
        feats = dev if wanted is None else dev & wanted
        if linux_filter:
            feats = self.transport_filter(feats)
        if check:
            if not dev >> F.VERSION_1 & 1:
                raise DriverError("device uses modern interface but does not have VIRTIO_F_VERSION_1")
            common_len = self.maps[CfgType.COMMON].maplen
            if feats >> F.RING_RESET & 1 and common_len < 0x3C:
                raise DriverError("common cfg too short for RING_RESET")
            if feats >> F.ADMIN_VQ & 1 and common_len < 0x40:
                raise DriverError("common cfg too short for ADMIN_VQ")
        await self.set_features(feats)
        await self.add_status(Status.FEATURES_OK)
        status = await self.get_status()
        if not status & Status.FEATURES_OK:
            raise FeaturesRefused(f"device refuses features {feats:#x} (status {status:#x})")
        self.features = feats
        return feats

    def negotiated(self, bit):
        return bool(self.features >> bit & 1)

    # ================================================================ MSI-X vectors
    async def config_vector(self, vector):
        """vp_modern_config_vector: write, read back."""
        await self.common_write("config_msix_vector", vector)
        return await self.common_read("config_msix_vector")

    async def queue_vector(self, index, vector):
        await self.common_write("queue_select", index)
        await self.common_write("queue_msix_vector", vector)
        return await self.common_read("queue_msix_vector")

    # ================================================================ virtqueues
    async def get_num_queues(self):
        self.num_queues = await self.common_read("num_queues")
        return self.num_queues

    async def setup_vq(self, index, *, size=None, desc=None, driver=None, device=None,
                       vector=NO_VECTOR):
        """setup_vq (virtio_pci_modern.c): returns a VirtQueue."""
        self.transcript.note(f"setup queue {index}")
        if self.num_queues is None:
            await self.get_num_queues()
        if index >= self.num_queues:
            raise DriverError(f"queue {index} >= num_queues {self.num_queues}")
        await self.common_write("queue_select", index)
        num = await self.common_read("queue_size")
        enabled = await self.common_read("queue_enable")
        if not num or enabled:
            raise DriverError(f"queue {index} unavailable (size {num}, enable {enabled})")
        if num & (num - 1):
            raise DriverError(f"queue {index}: bad queue size {num}")
        size = num if size is None else size
        base = 0x1_0000_0000 * (index + 1) + 0x1000_0000
        desc = base if desc is None else desc
        driver = base + 16 * size if driver is None else driver
        device = base + 0x10000 if device is None else device
        await self.common_write("queue_size", size)
        await self.write64("queue_desc_lo", desc)
        await self.write64("queue_driver_lo", driver)
        await self.write64("queue_device_lo", device)
        if vector != NO_VECTOR:
            await self.common_write("queue_msix_vector", vector)
            got = await self.common_read("queue_msix_vector")
            if got == NO_VECTOR:
                raise DriverError(f"queue {index}: vector {vector} refused (-EBUSY)")
            vector = got
        off = await self.common_read("queue_notify_off")
        mp = self.maps[CfgType.NOTIFY]
        width = 4 if self.negotiated(F.NOTIFICATION_DATA) else 2
        m = self.notify_off_multiplier
        if off * m + 2 > mp.maplen:
            raise DriverError(f"queue {index}: notify offset {off}*{m} outside the notify region")
        vq = VirtQueue(index, size, desc, driver, device, vector, off, mp.addr + off * m)
        if off * m + width > mp.length:
            raise DriverError(f"queue {index}: {width}-byte doorbell outside the notify region")
        if self.negotiated(F.NOTIF_CONFIG_DATA):
            vq.notif_config_data = await self.common_read("queue_notif_config_data")
        self.vqs[index] = vq
        return vq

    async def enable_vq(self, index):
        await self.common_write("queue_select", index)
        await self.common_write("queue_enable", 1)

    async def kick(self, vq, avail_idx=None):
        """vp_notify / vp_notify_with_data."""
        if avail_idx is not None:
            vq.avail_idx = avail_idx & 0xFFFF
        ident = vq.notif_config_data if vq.notif_config_data is not None else vq.index
        if self.negotiated(F.NOTIFICATION_DATA):
            await self.mem_write(vq.notify_addr, 4, (vq.avail_idx << 16) | ident,
                                 f"notify[q{vq.index}] data")
        else:
            await self.mem_write(vq.notify_addr, 2, ident, f"notify[q{vq.index}]")

    async def queue_reset(self, index):
        """vp_modern_set_queue_reset: write 1, poll queue_reset then queue_enable until 0.
        Returns the queue_reset values read while polling."""
        self.transcript.note(f"queue reset {index}")
        await self.common_write("queue_select", index)
        await self.common_write("queue_reset", 1)
        seen = []
        for _ in range(self.poll_limit):
            v = await self.common_read("queue_reset")
            seen.append(v)
            if v == 0:
                break
            await self._sleep()
        else:
            raise DriverError(f"queue {index}: queue_reset never read 0")
        for _ in range(self.poll_limit):
            if await self.common_read("queue_enable") == 0:
                return seen
            await self._sleep()
        raise DriverError(f"queue {index}: queue_enable never read 0 after queue reset")

    async def reenable_vq(self, vq, *, size=None, desc=None, driver=None, device=None, vector=None):
        """vp_modern_enable_vq_after_reset: check reset and enable read 0, program, enable."""
        await self.common_write("queue_select", vq.index)
        if await self.common_read("queue_reset"):
            raise DriverError("queue reset still in progress (-EBUSY)")
        if await self.common_read("queue_enable"):
            raise DriverError("queue still enabled (-EBUSY)")
        vq.size = size or vq.size
        vq.desc = desc if desc is not None else vq.desc
        vq.driver = driver if driver is not None else vq.driver
        vq.device = device if device is not None else vq.device
        await self.common_write("queue_size", vq.size)
        await self.write64("queue_desc_lo", vq.desc)
        await self.write64("queue_driver_lo", vq.driver)
        await self.write64("queue_device_lo", vq.device)
        if vector is not None:
            vq.vector = vector
        if vq.vector != NO_VECTOR:
            await self.common_write("queue_msix_vector", vq.vector)
            if await self.common_read("queue_msix_vector") == NO_VECTOR:
                raise DriverError("vector refused")
        vq.avail_idx = 0
        await self.common_write("queue_enable", 1)

    # ================================================================ device configuration
    async def config_read(self, off, size, *, max_tries=16):
        """virtio_cread with the generation loop; 8-byte fields as two 4-byte reads.
        Returns (value, tries)."""
        if CfgType.DEVICE not in self.maps:
            raise DriverError("no device configuration structure")
        mp = self.maps[CfgType.DEVICE]
        if off + size > mp.maplen:
            raise DriverError(f"BUG_ON: config read {off}+{size} beyond mapped length {mp.maplen}")
        for tries in range(1, max_tries + 1):
            gen = await self.common_read("config_generation")
            if size == 8:
                v = await self.read(CfgType.DEVICE, off, 4)
                v |= (await self.read(CfgType.DEVICE, off + 4, 4)) << 32
            else:
                v = await self.read(CfgType.DEVICE, off, size)
            if gen == await self.common_read("config_generation"):
                return v, tries
        raise DriverError("config_generation kept changing")

    # ================================================================ the whole probe
    async def init(self, *, features=None, queues=None, sizes=None, vectors=None, config_vector=None,
                   linux_filter=True):
        """register_virtio_device + virtio_dev_probe + vp_modern_find_vqs + DRIVER_OK.

        ``queues``: indices to set up (all by default); ``vectors``: {index: vector};
        ``config_vector``: MSI-X vector for configuration changes (None: not written)."""
        await self.probe()
        await self.reset()
        await self.add_status(Status.ACKNOWLEDGE)
        await self.add_status(Status.DRIVER)
        await self.finalize_features(features, linux_filter=linux_filter)
        if config_vector is not None:
            got = await self.config_vector(config_vector)
            if got == NO_VECTOR and config_vector != NO_VECTOR:
                raise DriverError("config vector refused")
        nq = await self.get_num_queues()
        queues = range(nq) if queues is None else queues
        for q in queues:
            await self.setup_vq(q, size=(sizes or {}).get(q),
                                vector=(vectors or {}).get(q, NO_VECTOR))
        self.transcript.note("enable queues")
        for q in queues:
            await self.enable_vq(q)
        await self.add_status(Status.DRIVER_OK)
        self.transcript.note("DRIVER_OK")
        return self.vqs
