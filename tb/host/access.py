"""How the host-side models (driver models, the MSI-X host) reach the function: register reads
and writes in memory, I/O and configuration space, with the semantics of cocotbext-pcie's root
complex (``mem_read`` raises on an unsuccessful completion, a failed configuration read returns
all ones, configuration and I/O requests are split per DW).

* ``RootComplexAccess``: through the root complex and its fabric (``rc``, the enumerated function
  ``dev``): real routing, tag management and link model; what `make sim` shows.
* ``RawAccess``: the same requests (same requester ID 00:00.0, same byte enables) injected
  straight into the RTL's ``rx`` through the environment's raw path, completions taken from
  ``tx`` by tag.  It costs a fraction of the fabric's simulation time per access, so the
  integration environment uses it for register traffic after enumeration.  Every request of one
  ``RawAccess`` enters ``rx`` in program order, so posted writes are ordered before later reads
  without a flush.
"""
from cocotbext.pcie.core.tlp import CplStatus, Tlp, TlpType

from tb.tlp.requests import RAW_REQUESTER

__all__ = ["RootComplexAccess", "RawAccess", "host_access"]


class RootComplexAccess:
    """Register accesses through the root complex ``rc`` to the enumerated function ``dev``."""

    def __init__(self, rc, dev):
        self.rc = rc
        self.dev = dev

    async def mem_read(self, addr, length):
        return await self.rc.mem_read(addr, length)

    async def mem_write(self, addr, data):
        await self.rc.mem_write(addr, data)

    async def io_read(self, addr, length):
        return await self.rc.io_read(addr, length)

    async def io_write(self, addr, data):
        await self.rc.io_write(addr, data)

    async def config_read(self, off, length):
        return await self.dev.config_read(off, length)

    async def config_write(self, off, data):
        await self.dev.config_write(off, data)


class RawAccess:
    """The same accesses as requests on the raw path: ``request(tlp)`` sends a non-posted request
    and returns its completions (``tb.env.fabric.Fabric.raw_request``), ``post(dws)`` queues a
    posted one (``RtlBridge.send_dws``); ``dev_id`` is the function's ``PcieId``."""

    #: register traffic only: one completion per read
    MAX_READ = 128

    def __init__(self, request, post, dev_id):
        self.request = request
        self.post = post
        self.dev_id = dev_id

    @staticmethod
    def _req(fmt_type, addr, length):
        t = Tlp()
        t.fmt_type = fmt_type
        t.requester_id = RAW_REQUESTER
        first_pad, _ = t.set_addr_be(addr, length)
        return t, first_pad

    async def _nonposted(self, t):
        cpls = await self.request(t)
        if not cpls or cpls[0].status != CplStatus.SC:
            raise Exception(f"Unsuccessful completion: {cpls!r}")
        return cpls

    async def mem_read(self, addr, length):
        if not 0 < length <= self.MAX_READ or (addr & 0xFFF) + length > 0x1000:
            raise ValueError(f"register read of {length} bytes at {addr:#x}: use the root complex")
        t, first_pad = self._req(TlpType.MEM_READ_64 if addr >> 32 else TlpType.MEM_READ, addr, length)
        data = bytearray()
        for c in await self._nonposted(t):
            if c.status != CplStatus.SC:
                raise Exception(f"Unsuccessful completion: {c!r}")
            data += c.get_data()
        return bytes(data[first_pad:first_pad + length])

    async def mem_write(self, addr, data):
        t = Tlp()
        t.fmt_type = TlpType.MEM_WRITE_64 if addr >> 32 else TlpType.MEM_WRITE
        t.requester_id = RAW_REQUESTER
        t.set_addr_be_data(addr, bytes(data))
        self.post(t)

    @staticmethod
    def _pieces(addr, length):
        """(address, offset in its DW, size) of each one-DW request of an access, as the root
        complex splits configuration and I/O accesses."""
        n = 0
        while n < length:
            first_pad = addr % 4
            size = min(length - n, 4 - first_pad)
            yield addr, n, first_pad, size
            n += size
            addr += size

    def _one_dw(self, fmt_type, addr, size, data=None):
        t = Tlp()
        t.fmt_type = fmt_type
        t.requester_id = RAW_REQUESTER
        if fmt_type in (TlpType.CFG_READ_0, TlpType.CFG_WRITE_0):
            t.dest_id = self.dev_id
        if data is None:
            t.set_addr_be(addr, size)
        else:
            t.set_addr_be_data(addr, bytes(data))
        return t

    async def _reads(self, fmt_type, addr, length, check):
        out = bytearray()
        for a, _, first_pad, size in self._pieces(addr, length):
            cpls = await self.request(self._one_dw(fmt_type, a, size))
            if cpls and cpls[0].status == CplStatus.SC:
                out += cpls[0].get_data()[first_pad:first_pad + size]
            elif check:
                raise Exception(f"Unsuccessful completion: {cpls!r}")
            else:
                out += b"\xff" * size
        return bytes(out)

    async def _writes(self, fmt_type, addr, data, check):
        for a, n, _, size in self._pieces(addr, len(data)):
            cpls = await self.request(self._one_dw(fmt_type, a, size, data[n:n + size]))
            if check and (not cpls or cpls[0].status != CplStatus.SC):
                raise Exception(f"Unsuccessful completion: {cpls!r}")

    async def io_read(self, addr, length):
        return await self._reads(TlpType.IO_READ, addr, length, check=True)

    async def io_write(self, addr, data):
        await self._writes(TlpType.IO_WRITE, addr, data, check=True)

    async def config_read(self, off, length):
        """Failed reads give all ones, as from the root complex."""
        return await self._reads(TlpType.CFG_READ_0, off, length, check=False)

    async def config_write(self, off, data):
        await self._writes(TlpType.CFG_WRITE_0, off, data, check=False)


def host_access(tb):
    """The access path of the environment ``tb``: its ``access`` when it chose one (the raw path
    after enumeration), else its root complex."""
    return getattr(tb, "access", None) or RootComplexAccess(tb.rc, tb.dev)
