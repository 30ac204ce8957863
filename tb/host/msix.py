"""The host's view of a function's MSI-X capability, table and PBA, programmed as Linux's PCI
core does (PCI 3.0 6.8.2; VIRTIO 1.3 4.1.5): message targets from the root complex's MSI region
(32-bit addresses: 3-DW writes) or from a second MSI region above 4 GiB (64-bit: 4-DW writes),
and a count of the messages that reached the root complex (``delivered``).
"""
import collections

from cocotbext.pcie.core.msi import MsiRegion

from tb.host.access import host_access

__all__ = ["MsixHost", "MSI64_BASE"]

#: where the second (64-bit) MSI region lives in the root complex's memory space
MSI64_BASE = 0x0000_0040_0000_0000


class MsixHost:
    """The host's view of the function's MSI-X capability (config space) and of the table and
    PBA (memory BAR), as Linux's PCI core programs them, through the environment's access path
    (``tb.host.access``); message targets come from the root complex's MSI regions."""

    def __init__(self, tb):
        self.tb = tb
        self.rc = tb.rc
        self.bus = host_access(tb)
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
        return int.from_bytes(await self.bus.config_read(self.cap + 2, 2), "little")

    async def set_control(self, *, enable=None, fmask=None):
        """Read-modify-write of Message Control (pci_msix_clear_and_set_ctrl)."""
        c = await self.control()
        if enable is not None:
            c = (c | 0x8000) if enable else (c & ~0x8000)
        if fmask is not None:
            c = (c | 0x4000) if fmask else (c & ~0x4000)
        await self.bus.config_write(self.cap + 2, c.to_bytes(2, "little"))

    # -- table and PBA ----------------------------------------------------------------------
    async def _write_dword(self, addr, value):
        await self.bus.mem_write(addr, value.to_bytes(4, "little"))

    async def _read_dword(self, addr):
        return int.from_bytes(await self.bus.mem_read(addr, 4), "little")

    def region_addr(self, name, off=0):
        return self.tb.bar_addr + self.tb.desc.regions[name]["offset"] + off

    def entry_addr(self, v, dw=0):
        return self.region_addr("msix_table", 16 * v + 4 * dw)

    async def write_entry(self, v, addr, data, *, masked=True):
        """Program entry ``v``: Vector Control first with the Mask bit, then address and data,
        then Vector Control (as Linux's msix_prepare_msi_desc / __pci_write_msi_msg)."""
        w = self._write_dword
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
        await self._write_dword(self.entry_addr(v, 3), int(masked))

    async def read_entry(self, v):
        """(address, data, vector control) of entry ``v``."""
        r = self._read_dword
        lo, hi = await r(self.entry_addr(v, 0)), await r(self.entry_addr(v, 1))
        return (hi << 32) | lo, await r(self.entry_addr(v, 2)), await r(self.entry_addr(v, 3))

    async def pba(self):
        """The Pending Bit Array as an integer (memory reads of every QWORD)."""
        words = (self.n + 63) // 64
        v = 0
        for i in range(words):
            data = await self.bus.mem_read(self.region_addr("msix_pba", 8 * i), 8)
            v |= int.from_bytes(data, "little") << (64 * i)
        return v

    def entry_of(self, addr, data):
        for v, ad in self.entries.items():
            if ad == (addr, data):
                return v
        return None
