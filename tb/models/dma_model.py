"""Host side of back-end DMA for the tests: memory, a completer with any legal split, requests.

Plain Python (no simulator): PCIe 5.0 2.2.7 (memory requests), 2.3.1.1 (completions split at
Read Completion Boundaries; Byte Count and Lower Address).  TLPs are DW lists in the convention
of ``tb.tlp.convert`` (header DWs as drawn in the spec, payload DWs little-endian).  Used by the
unit tests of the requester (``tb/unit/test_dma_*.py``) and by the cocotb DMA tests, which check
what the RTL sends against it and use it to build bad completions on purpose.
"""
from dataclasses import dataclass, field

__all__ = ["MemReq", "parse_request", "completion", "completion_size", "split_read", "HostMemory", "split_ref",
           "byte_enables_ref", "StatusRef", "PagedMemory"]

CPL, CPLD = 0x0A, 0x4A


class StatusRef:
    """DmaStatus values (hdl/virtio_pci/dma/layouts.py), as plain integers for the tests."""
    OK, UR, CA, POISONED, TIMEOUT, RESET, BME, MALFORMED = range(8)


@dataclass
class MemReq:
    """A decoded MRd/MWr: byte range [start, start + nbytes), header facts, write data bytes."""
    write: bool
    addr: int            # DW-aligned address of the header
    length_dw: int
    fbe: int
    lbe: int
    tag: int
    requester_id: int
    attr: int
    tc: int
    hdr_dw: int
    start: int
    nbytes: int
    data: bytes = b""
    fmt_type: int = 0
    dws: list = field(default_factory=list)


def byte_enables_ref(addr, n):
    first_dw, last_dw = addr >> 2, (addr + n - 1) >> 2
    length = last_dw - first_dw + 1
    fbe = (0xF << (addr & 3)) & 0xF
    lbe = 0xF >> (3 - ((addr + n - 1) & 3))
    return (1, fbe & lbe, 0) if length == 1 else (length, fbe, lbe)


def split_ref(addr, length, boundary):
    out = []
    end = addr + length
    while addr < end:
        n = min(end - addr, boundary - addr % boundary)
        out.append((addr, n))
        addr += n
    return out


def parse_request(dws):
    """Decode an MRd/MWr given as DWs (raises AssertionError on anything else)."""
    ft = dws[0] >> 24
    assert ft in (0x00, 0x20, 0x40, 0x60), f"not a memory request: fmt/type {ft:#04x}"
    hdr = 4 if ft & 0x20 else 3
    length = dws[0] & 0x3FF or 1024
    fbe, lbe = dws[1] & 0xF, dws[1] >> 4 & 0xF
    addr = ((dws[2] << 32) | dws[3]) & ~3 if hdr == 4 else dws[2] & ~3
    lo = (fbe & -fbe).bit_length() - 1 if fbe else 0
    if length == 1:
        hi = fbe.bit_length()
        nbytes = hi - lo if fbe else 1
    else:
        nbytes = (length - 1) * 4 - lo + lbe.bit_length()
    r = MemReq(write=bool(ft & 0x40), addr=addr, length_dw=length, fbe=fbe, lbe=lbe,
               tag=dws[1] >> 8 & 0xFF | (dws[0] >> 19 & 1) << 8 | (dws[0] >> 23 & 1) << 9,
               requester_id=dws[1] >> 16, attr=(dws[0] >> 12 & 3) | (dws[0] >> 18 & 1) << 2,
               tc=dws[0] >> 20 & 7, hdr_dw=hdr, start=addr + lo, nbytes=nbytes, fmt_type=ft,
               dws=list(dws))
    if r.write:
        payload = b"".join(d.to_bytes(4, "little") for d in dws[hdr:hdr + length])
        assert len(dws) == hdr + length, f"MWr has {len(dws) - hdr} payload DWs, length says {length}"
        r.data = payload[lo:lo + nbytes]
    else:
        assert len(dws) == hdr, f"MRd with {len(dws) - hdr} payload DWs"
    return r


def completion(req, *, status=0, data=None, lower_addr=None, byte_count=None, length_dw=None,
               tag=None, requester_id=None, completer_id=0x0000, ep=False, bcm=False):
    """One completion for ``req`` as DWs.  ``data``: the bytes from the first byte it returns (its
    first DW padded below ``lower_addr & 3``); anything else overrides a header field (to build
    bad completions)."""
    la = req.start & 0x7F if lower_addr is None else lower_addr
    payload = b""
    if data is not None:
        payload = bytes(la & 3) + bytes(data)
        payload += bytes(-len(payload) % 4)
    ln = len(payload) // 4 if length_dw is None else length_dw
    bc = req.nbytes if byte_count is None else byte_count
    dw0 = (CPLD if data is not None else CPL) << 24 | (ln & 0x3FF) | int(ep) << 14 \
        | (req.attr & 3) << 12 | (req.attr >> 2 & 1) << 18 | req.tc << 20
    t = req.tag if tag is None else tag
    dw0 |= (t >> 8 & 1) << 19 | (t >> 9 & 1) << 23
    dw1 = completer_id << 16 | (status & 7) << 13 | int(bcm) << 12 | (bc & 0xFFF)
    rid = req.requester_id if requester_id is None else requester_id
    dw2 = rid << 16 | (t & 0xFF) << 8 | (la & 0x7F)
    dws = [dw0, dw1, dw2]
    dws += [int.from_bytes(payload[i:i + 4], "little") for i in range(0, len(payload), 4)]
    return dws


def completion_size(a, left, mps, mode, rng, rcb=64):
    """Bytes of the next completion of a read whose next byte is ``a`` with ``left`` bytes to
    go (PCIe 2.3.1.1): it ends at an RCB or at the end of the read and carries at most ``mps``
    bytes counting the padding of its first DW; ``mode`` "rcb" (the first legal end), "one" (the
    last) or "random"."""
    end = a + left
    cap = min(end, (a & ~3) + mps)
    ends = list(range((a // rcb + 1) * rcb, cap + 1, rcb))
    if cap == end and (not ends or ends[-1] != end):
        ends.append(end)
    if mode == "rcb":
        e = ends[0]
    elif mode == "one":
        e = ends[-1]
    else:
        e = rng.choice(ends)
    return e - a


def split_read(req, mem, rng, *, rcb=64, mps=256, mode="rcb"):
    """The successful completions of MRd ``req`` reading ``mem`` (a ``HostMemory``), split:
    ``mode`` "one" (as few as MPS allows), "rcb" (at every RCB) or "random" (at random RCB
    boundaries, never above MPS)."""
    out = []
    a, left = req.start, req.nbytes
    while left:
        n = completion_size(a, left, mps, mode, rng, rcb)
        out.append(completion(req, data=mem.read(a, n), lower_addr=a & 0x7F, byte_count=left))
        a += n
        left -= n
    return out


class HostMemory:
    """Sparse byte-addressed host memory (unwritten bytes read as a pattern of the address)."""

    def __init__(self):
        self.bytes = {}

    @staticmethod
    def pattern(a):
        return (a * 7 + (a >> 8) * 13 + (a >> 16) * 29 + 0x5A) & 0xFF

    def read(self, a, n):
        return bytes(self.bytes.get(a + i, self.pattern(a + i)) for i in range(n))

    def write(self, a, data):
        for i, b in enumerate(data):
            self.bytes[a + i] = b


class PagedMemory:
    """Host memory with the interface and contents of ``HostMemory`` (unwritten bytes read as
    ``HostMemory.pattern``), kept in 4 KiB pages of ``bytearray`` so that the long runs of the
    stress (tb/scenarios/stress_dma.py) read and write megabytes quickly."""

    PAGE = 4096

    def __init__(self):
        self.pages = {}

    def _page(self, p):
        pg = self.pages.get(p)
        if pg is None:
            a = p * self.PAGE
            pg = self.pages[p] = bytearray(HostMemory.pattern(a + i) for i in range(self.PAGE))
        return pg

    def read(self, a, n):
        out = bytearray()
        while n:
            p, o = divmod(a, self.PAGE)
            k = min(n, self.PAGE - o)
            out += self._page(p)[o:o + k]
            a += k
            n -= k
        return bytes(out)

    def write(self, a, data):
        data = memoryview(bytes(data))
        i = 0
        while i < len(data):
            p, o = divmod(a + i, self.PAGE)
            k = min(len(data) - i, self.PAGE - o)
            self._page(p)[o:o + k] = data[i:i + k]
            i += k
