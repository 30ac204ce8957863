"""A virtio-pci legacy driver model that follows Linux (virtio_pci_legacy.c, virtio_pci_legacy_dev.c,
virtio_pci_common.c, virtio.c) as it drives a transitional device through its I/O BAR0 header
(VIRTIO 1.3 4.1.4.10, 4.1.5.1.1.1, 2.7.2 legacy interface; Linux takes this path with
``virtio_pci.force_legacy=1`` or when the modern probe finds no common capability).

Layered like ``tb.host.virtio_driver.VirtioPciDriver`` (and sharing its ``Transcript``, ``VirtQueue``,
``Status`` and ``NO_VECTOR``):

* transport access: ``io_read``/``io_write`` (the legacy header through the root complex's I/O
  space, at the address it assigned to BAR0), ``cfg_read``/``cfg_write``; every access is recorded
  with the legacy register's name;
* ``probe()``: vp_legacy_probe: Device ID 0x1000..0x103F, Revision ID 0 (VIRTIO_PCI_ABI_VERSION),
  BAR0 an I/O BAR, virtio type from the Subsystem Device ID; pci_set_master;
* ``reset()``: vp_reset: status 0, then one status read to flush the write (no polling: a legacy
  device is reset when the write completes);
* ``add_status()``, ``get_features()`` (32 host feature bits), ``finalize_features()`` (the
  transport-bit filter, BUG_ON for bits above 31, one guest-features write; there is no
  FEATURES_OK step);
* ``setup_vq()``: select, read QUEUE_NUM (0: no queue), read QUEUE_PFN (non-zero: already
  active), the legacy ring layout (descriptors, avail ring, padding to 4096, used ring), QUEUE_PFN
  = address >> 12, then with MSI-X the queue vector and its read-back (NO_VECTOR: -EBUSY, the
  queue is deactivated again); ``del_vq()``: vector NO_VECTOR, an ISR read to flush, QUEUE_PFN 0;
* ``kick()``: 16-bit write of the queue index at offset 16; ``isr()``: the read-clear byte 19;
* ``config_read``/``config_write``: byte by byte at 20, or 24 while MSI-X is enabled (vp_get/vp_set).

Interrupt setup (MSI-X vectors or INTx) is the environment's, as in Linux's vp_find_vqs:
``tb.env.legacy.legacy_find_vqs``.
"""
from dataclasses import dataclass

from cocotb.utils import get_sim_time

from tb.host.access import host_access
from tb.host.virtio_driver import NO_VECTOR, CfgAccess, DriverError, Status, Transcript, VirtQueue

__all__ = ["LegacyVirtioDriver", "Leg", "LEGACY_NAMES", "legacy_ring_layout", "VRING_ALIGN"]

VRING_ALIGN = 4096          # VIRTIO_PCI_VRING_ALIGN
QUEUE_ADDR_SHIFT = 12       # VIRTIO_PCI_QUEUE_ADDR_SHIFT


class Leg:
    """Legacy header offsets (include/uapi/linux/virtio_pci.h)."""
    HOST_FEATURES = 0x00
    GUEST_FEATURES = 0x04
    QUEUE_PFN = 0x08
    QUEUE_NUM = 0x0C
    QUEUE_SEL = 0x0E
    QUEUE_NOTIFY = 0x10
    STATUS = 0x12
    ISR = 0x13
    MSI_CONFIG_VECTOR = 0x14
    MSI_QUEUE_VECTOR = 0x16

    @staticmethod
    def config_off(msix_enabled):
        """VIRTIO_PCI_CONFIG_OFF: the device configuration follows the header."""
        return 24 if msix_enabled else 20


#: (offset, size) -> register name (the vector fields only exist while MSI-X is enabled)
LEGACY_NAMES = {
    (0x00, 4): "host_features", (0x04, 4): "guest_features", (0x08, 4): "queue_pfn",
    (0x0C, 2): "queue_num", (0x0E, 2): "queue_sel", (0x10, 2): "queue_notify",
    (0x12, 1): "status", (0x13, 1): "isr", (0x14, 2): "msi_config_vector",
    (0x16, 2): "msi_queue_vector",
}

#: bits 28..41 Linux's vring_transport_features keeps for a legacy device (VERSION_1 and the rest
#: of the 1.0 bits cannot be above bit 31 here)
LINUX_TRANSPORT_KEEP = {28, 29}


def legacy_ring_layout(pfn, num):
    """(desc, avail, used) bus addresses of a split ring of ``num`` entries at page ``pfn``
    (vring_init with VIRTIO_PCI_VRING_ALIGN: desc 16*num, avail 6+2*num, used page aligned)."""
    desc = pfn << QUEUE_ADDR_SHIFT
    avail = desc + 16 * num
    used = (avail + 6 + 2 * num + VRING_ALIGN - 1) & ~(VRING_ALIGN - 1)
    return desc, avail, used


@dataclass
class LegacyVq(VirtQueue):
    pfn: int = 0


class LegacyVirtioDriver(CfgAccess):
    """``tb``: a ``tb.env.testbench.TB`` after enumeration.  ``msix_enabled`` follows what the environment
    did to the MSI-X capability (Linux's ``vp_dev->msix_enabled``)."""

    def __init__(self, tb, *, transcript=None):
        self.tb = tb
        self.dev = tb.dev
        self.bus = host_access(tb)
        self.transcript = transcript if transcript is not None else Transcript()
        self.io_base = None
        self.virtio_id = None
        self.msix_enabled = False
        self.device_features = None
        self.features = 0
        self.vqs = {}
        self.num_queues = None

    # ================================================================ transport access
    def _name(self, off, size):
        n = LEGACY_NAMES.get((off, size))
        cfg = Leg.config_off(self.msix_enabled)
        if off >= cfg:
            return f"legacy.config+{off - cfg:#x}"
        if n is None or (off >= 0x14 and not self.msix_enabled):
            return f"legacy+{off:#x}"
        return f"legacy.{n}"

    async def io_read(self, off, size, name=None):
        data = await self.bus.io_read(self.io_base + off, size)
        v = int.from_bytes(data, "little")
        self.transcript.add(get_sim_time("ns"), "io", "R", self.io_base + off, size,
                            name or self._name(off, size), v)
        return v

    async def io_write(self, off, size, value, name=None):
        self.transcript.add(get_sim_time("ns"), "io", "W", self.io_base + off, size,
                            name or self._name(off, size), value)
        await self.bus.io_write(self.io_base + off, value.to_bytes(size, "little"))

    # ================================================================ probe
    async def probe(self):
        """virtio_pci_probe (pci_enable_device) + vp_legacy_probe + pci_set_master."""
        self.transcript.note("legacy probe: identity and I/O BAR0")
        cmd = await self.cfg_read(0x04, 2, "command")
        if cmd & 0x3 != 0x3:
            await self.cfg_write(0x04, 2, cmd | 0x3, "command")
        ids = await self.cfg_read(0x00, 4, "vendor/device id")
        vendor, device = ids & 0xFFFF, ids >> 16
        if vendor != 0x1AF4:
            raise DriverError(f"vendor {vendor:#06x} is not 0x1af4")
        if not 0x1000 <= device <= 0x103F:
            raise DriverError(f"device id {device:#06x}: not a legacy/transitional device (-ENODEV)")
        rev = await self.cfg_read(0x08, 1, "revision id")
        if rev != 0:
            raise DriverError(f"expected ABI version 0, got {rev} (-ENODEV)")
        bar0 = await self.cfg_read(0x10, 4, "bar0")
        if not bar0 & 1 or not self.dev.bar_size[0]:
            raise DriverError(f"BAR0 {bar0:#010x} is not an I/O BAR (pci_request_region fails)")
        self.io_base = self.dev.bar_addr[0]
        self.virtio_id = await self.cfg_read(0x2E, 2, "subsystem id")
        cmd = await self.cfg_read(0x04, 2, "command")
        if not cmd & 0x4:
            await self.cfg_write(0x04, 2, cmd | 0x4, "command")
        return self.io_base

    # ================================================================ status and reset
    async def get_status(self):
        return await self.io_read(Leg.STATUS, 1)

    async def set_status(self, value):
        if value == 0:
            raise ValueError("vp_set_status never writes 0: use reset()")
        await self.io_write(Leg.STATUS, 1, value)

    async def add_status(self, bits):
        await self.set_status(await self.get_status() | bits)

    async def reset(self):
        """vp_reset (legacy): write 0, read the status once to flush; returns what it read."""
        self.transcript.note("reset")
        await self.io_write(Leg.STATUS, 1, 0)
        return await self.get_status()

    # ================================================================ features
    async def get_features(self):
        self.device_features = await self.io_read(Leg.HOST_FEATURES, 4)
        return self.device_features

    async def set_features(self, value):
        if value >> 32:
            raise DriverError(f"BUG_ON: legacy features {value:#x} above bit 31")
        await self.io_write(Leg.GUEST_FEATURES, 4, value)

    async def finalize_features(self, wanted=None, *, linux_filter=True):
        """virtio_dev_probe's feature step for a legacy device: host & driver features, the
        transport filter, one guest-features write, no FEATURES_OK.  Returns the set written."""
        self.transcript.note("features")
        dev = await self.get_features()
        feats = dev if wanted is None else dev & wanted
        if linux_filter:
            for b in range(28, 42):
                if b not in LINUX_TRANSPORT_KEEP:
                    feats &= ~(1 << b)
        await self.set_features(feats)
        self.features = feats
        return feats

    def negotiated(self, bit):
        return bool(self.features >> bit & 1)

    # ================================================================ vectors
    async def config_vector(self, vector):
        """vp_legacy_config_vector: write, read back (the read also flushes the write)."""
        await self.io_write(Leg.MSI_CONFIG_VECTOR, 2, vector)
        return await self.io_read(Leg.MSI_CONFIG_VECTOR, 2)

    async def queue_vector(self, index, vector):
        """vp_legacy_queue_vector."""
        await self.io_write(Leg.QUEUE_SEL, 2, index)
        await self.io_write(Leg.MSI_QUEUE_VECTOR, 2, vector)
        return await self.io_read(Leg.MSI_QUEUE_VECTOR, 2)

    # ================================================================ virtqueues
    async def get_queue_size(self, index):
        await self.io_write(Leg.QUEUE_SEL, 2, index)
        return await self.io_read(Leg.QUEUE_NUM, 2)

    async def get_num_queues(self):
        """A legacy device has no num_queues: the driver knows its queues; the model counts the
        selects with a non-zero QUEUE_NUM (at most 64)."""
        n = 0
        while n < 64 and await self.get_queue_size(n):
            n += 1
        self.num_queues = n
        return n

    async def setup_vq(self, index, *, vector=NO_VECTOR, pfn=None):
        """setup_vq (virtio_pci_legacy.c); returns a LegacyVq."""
        self.transcript.note(f"setup queue {index}")
        await self.io_write(Leg.QUEUE_SEL, 2, index)
        num = await self.io_read(Leg.QUEUE_NUM, 2)
        active = await self.io_read(Leg.QUEUE_PFN, 4)
        if not num or active:
            raise DriverError(f"queue {index} unavailable (num {num}, pfn {active:#x}): -ENOENT")
        pfn = (0x1_0000 + 0x100 * index) if pfn is None else pfn     # 256 MiB + 1 MiB * index
        if pfn >> 32:
            raise DriverError("platform bug: legacy virtio-pci must not be used with RAM above 16TB")
        desc, avail, used = legacy_ring_layout(pfn, num)
        await self.io_write(Leg.QUEUE_PFN, 4, pfn)
        vq = LegacyVq(index, num, desc, avail, used, vector, 0, self.io_base + Leg.QUEUE_NOTIFY,
                      pfn=pfn)
        if vector != NO_VECTOR:
            got = await self.queue_vector(index, vector)
            if got == NO_VECTOR:
                await self.io_write(Leg.QUEUE_PFN, 4, 0)        # out_deactivate
                raise DriverError(f"queue {index}: vector {vector} refused (-EBUSY)")
            vq.vector = got
        self.vqs[index] = vq
        return vq

    async def enable_vq(self, index):
        """Nothing: writing QUEUE_PFN activated the queue (lets generic flows call it)."""

    async def del_vq(self, index):
        """del_vq (virtio_pci_legacy.c): vector NO_VECTOR and an ISR read to flush it (with
        MSI-X), then QUEUE_PFN 0."""
        self.transcript.note(f"delete queue {index}")
        vq = self.vqs.pop(index, None)
        if self.msix_enabled:
            await self.queue_vector(index, NO_VECTOR)
            await self.io_read(Leg.ISR, 1)
        await self.io_write(Leg.QUEUE_SEL, 2, index)
        await self.io_write(Leg.QUEUE_PFN, 4, 0)
        return vq

    async def kick(self, vq, avail_idx=None):
        """vp_notify: the queue index, 16 bits, at offset 16."""
        if avail_idx is not None:
            vq.avail_idx = avail_idx & 0xFFFF
        await self.io_write(Leg.QUEUE_NOTIFY, 2, vq.index, f"legacy.queue_notify[q{vq.index}]")

    async def isr(self):
        """vp_interrupt (INTx): the ISR byte, cleared by the read."""
        return await self.io_read(Leg.ISR, 1)

    # ================================================================ device configuration
    async def config_read(self, off, size):
        """vp_get (legacy): byte reads, little-endian host; no generation counter."""
        base = Leg.config_off(self.msix_enabled)
        v = 0
        for i in range(size):
            v |= await self.io_read(base + off + i, 1) << (8 * i)
        return v

    async def config_write(self, off, size, value):
        base = Leg.config_off(self.msix_enabled)
        for i in range(size):
            await self.io_write(base + off + i, 1, (value >> (8 * i)) & 0xFF)

    # ================================================================ the whole probe
    async def init(self, *, features=None, queues=None, vectors=None, config_vector=None):
        """virtio_pci_probe + virtio_dev_probe + vp_find_vqs + DRIVER_OK with INTx (or with the
        vectors given when the caller enabled MSI-X: ``vectors`` {queue: vector})."""
        await self.probe()
        await self.reset()
        await self.add_status(Status.ACKNOWLEDGE)
        await self.add_status(Status.DRIVER)
        await self.finalize_features(features)
        if config_vector is not None:
            if await self.config_vector(config_vector) == NO_VECTOR and config_vector != NO_VECTOR:
                raise DriverError("config vector refused (-EBUSY)")
        nq = await self.get_num_queues() if queues is None else None
        for q in (range(nq) if queues is None else queues):
            await self.setup_vq(q, vector=(vectors or {}).get(q, NO_VECTOR))
        await self.add_status(Status.DRIVER_OK)
        self.transcript.note("DRIVER_OK")
        return self.vqs
