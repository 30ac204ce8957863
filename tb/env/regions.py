"""The raw-access part of the integration test environment: one DW or several of a virtio
structure by region name and byte offset, with any byte-enable pattern (VIRTIO 1.3 4.1.4), and the
PCI-cfg window (4.1.4.9).

``Regions(env)`` (``env.regions`` of a ``tb.env.testbench.TB``; its methods are reached as
``env.rd``, ``env.wr``, ...): ``rd``/``wr`` (one DW of a structure), ``rd_n``/``wr_n`` (several DWs in
one TLP), ``field_rd``/``field_wr`` (a common-config field with its natural width), ``pcc_*`` (the
PCI-cfg window).  Raw requests go straight into ``rx``; ``env.flush()`` orders them after earlier
root-complex traffic.
"""
from cocotbext.pcie.core.tlp import CplStatus, TlpType


from tb.tlp.requests import mem_tlp
from tb.host.virtio_driver import COMMON

__all__ = ["Regions", "common_dw"]


def common_dw(name):
    """(dw index, byte lane, size) of a common-config field."""
    off, size = COMMON[name]
    return off // 4, off % 4, size


class Regions:
    """Raw access to the structures of the memory BAR of ``env`` (the composed ``TB``)."""

    def __init__(self, env):
        self.env = env

    # -- addresses ----------------------------------------------------------------------------
    def region(self, name):
        return self.env.desc.regions[name]

    def addr(self, region, off=0):
        return self.env.bar_addr + self.env.desc.regions[region]["offset"] + off

    @property
    def pci_cfg_cap(self):
        for c in self.env.desc.caps:
            if c.get("cfg_type") == 5:
                return c["config_offset"]
        raise AssertionError("no PCI-cfg capability in the description")

    # -- raw memory access ----------------------------------------------------------------------
    async def rd(self, region, off, fbe=0xF):
        """Read the DW at byte ``off`` (rounded down) of ``region`` with first BE ``fbe``;
        returns the whole DW of the completion."""
        v = await self.rd_n(region, off, 1, fbe=fbe)
        return v[0]

    async def rd_n(self, region, off, n, fbe=0xF, lbe=None):
        req = mem_tlp(False, self.addr(region, off & ~3), n, fbe=fbe, lbe=lbe)
        cpls = await self.env.raw_request(req)
        data = bytearray()
        for c in cpls:
            assert c.status == CplStatus.SC, f"read {region}+{off:#x}: completion {c!r}"
            assert c.fmt_type == TlpType.CPL_DATA, f"read {region}+{off:#x}: {c!r}"
            data += c.get_data()
        assert len(data) >= 4 * n, f"read {region}+{off:#x}: {len(data)} bytes for {n} DWs"
        return [int.from_bytes(data[4 * i:4 * i + 4], "little") for i in range(n)]

    async def wr(self, region, off, data, fbe=0xF):
        await self.wr_n(region, off, [data], fbe=fbe)

    async def wr_n(self, region, off, data, fbe=0xF, lbe=None):
        req = mem_tlp(True, self.addr(region, off & ~3), len(data), fbe=fbe, lbe=lbe, data=data)
        await self.env.raw_posted(req, extra=4)

    async def field_rd(self, name):
        """A common-config field read with its natural width (raw path)."""
        dw, lane, size = common_dw(name)
        be = ((1 << size) - 1) << lane
        v = await self.rd("common", 4 * dw, fbe=be)
        return (v >> (8 * lane)) & ((1 << (8 * size)) - 1)

    async def field_wr(self, name, value):
        dw, lane, size = common_dw(name)
        be = ((1 << size) - 1) << lane
        await self.wr("common", 4 * dw, value << (8 * lane), fbe=be)

    # -- PCI-cfg window (VIRTIO 4.1.4.9) -------------------------------------------------------
    async def pcc_setup(self, bar, offset, length):
        c = self.pci_cfg_cap
        await self.env.cfg_write_dword(c + 4, bar, fbe=0x1)
        await self.env.cfg_write_dword(c + 8, offset)
        await self.env.cfg_write_dword(c + 12, length)

    async def pcc_read(self, fbe=0xF):
        cpl = await self.env.cfg_read(self.pci_cfg_cap + 16, fbe=fbe)
        assert cpl.status == CplStatus.SC, f"pci_cfg_data read: {cpl!r}"
        return int.from_bytes(cpl.data[:4], "little")

    async def pcc_write(self, data, fbe=0xF):
        await self.env.cfg_write_dword(self.pci_cfg_cap + 16, data, fbe=fbe)
