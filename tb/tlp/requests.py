"""The one request builder of the testbench: PCIe requests encoded by cocotbext-pcie, independent
of the RTL's own header layouts (PCIe Base 2.2).

Two forms of the same requests, for the two ways a TLP reaches the RTL:

* ``mem_tlp`` / ``cfg_tlp`` / ``io_tlp``: a cocotbext ``Tlp`` (what the integration environment's
  raw path, ``tb.env.testbench.TB.raw_request``, sends and re-tags);
* ``mem_req`` / ``cfg_req`` / ``io_req`` / ``atomic_req`` / ``msg_req`` / ``cpl_tlp``: the DW list
  of the RTL's stream convention (``tb.tlp.convert``), with a tag of the caller's choosing and
  optionally a TLP digest: what unit tests drive on ``rx`` and what the benchmark replays.

The DW forms are built from the ``Tlp`` forms, so both encode a request the same way.
"""
from cocotbext.pcie.core.tlp import Tlp, TlpType
from cocotbext.pcie.core.utils import PcieId

from tb.tlp.convert import tlp_to_dws

__all__ = ["RAW_REQUESTER", "mem_tlp", "cfg_tlp", "io_tlp",
           "mem_req", "cfg_req", "io_req", "msg_req", "cpl_tlp", "atomic_req"]

#: requester ID of requests the testbench sends itself (the root complex is 00:00.0)
RAW_REQUESTER = PcieId(0, 0, 0)
#: value of the TLP digest DW appended with ``td=True`` (the endpoint never checks it)
DIGEST = 0xD16E57ED


def _dw_bytes(data):
    return bytearray(b"".join((d & 0xFFFF_FFFF).to_bytes(4, "little") for d in data))


def _ids(t, tag, rid, tc, attr, ep):
    t.tag = tag
    t.requester_id = PcieId.from_int(rid) if isinstance(rid, int) else rid
    t.tc = tc
    t.attr = attr
    t.ep = ep


# ---- cocotbext ``Tlp`` forms ----------------------------------------------------------------------
def mem_tlp(write, addr, length_dw=1, *, fbe=0xF, lbe=None, data=None, fmt64=None, locked=False,
            tag=0, rid=RAW_REQUESTER, tc=0, attr=0, ep=False):
    """A memory request (MRd/MWr, or MRdLk with ``locked``) of ``length_dw`` DWs at DW-aligned
    ``addr``; 64-bit format when ``addr`` is above 4 GiB or ``fmt64``.  ``data``: list of DWs for
    writes (default zeros).  ``lbe`` defaults to 0 for one DW, 0xF else."""
    t = Tlp()
    if fmt64 is None:
        fmt64 = addr > 0xFFFF_FFFF
    if locked:
        t.fmt_type = TlpType.MEM_READ_LOCKED_64 if fmt64 else TlpType.MEM_READ_LOCKED
    elif write:
        t.fmt_type = TlpType.MEM_WRITE_64 if fmt64 else TlpType.MEM_WRITE
    else:
        t.fmt_type = TlpType.MEM_READ_64 if fmt64 else TlpType.MEM_READ
    _ids(t, tag, rid, tc, attr, ep)
    t.address = addr & ~3
    t.length = length_dw
    t.first_be = fbe
    t.last_be = (0 if length_dw == 1 else 0xF) if lbe is None else lbe
    if write:
        t.data = _dw_bytes(data if data is not None else [0] * length_dw)
    return t


def _one_dw(fmt_type, address, write, fbe, data, ids):
    """A one-DW request (configuration or I/O): ``address`` DW-aligned, first BE ``fbe``."""
    t = Tlp()
    t.fmt_type = fmt_type
    _ids(t, *ids)
    t.address = address
    t.length = 1
    t.first_be = fbe
    t.last_be = 0
    if write:
        t.data = _dw_bytes([data])
    return t


def cfg_tlp(write, addr, *, dest, fbe=0xF, data=0, type1=False, tag=0, rid=RAW_REQUESTER, tc=0,
            ep=False):
    """A configuration request (CfgRd0/CfgWr0, or type 1) to byte address ``addr`` (DW-aligned,
    0..0xFFC) of function ``dest`` (``PcieId``), with any first byte-enable pattern."""
    kind = {(False, False): TlpType.CFG_READ_0, (True, False): TlpType.CFG_WRITE_0,
            (False, True): TlpType.CFG_READ_1, (True, True): TlpType.CFG_WRITE_1}[
                bool(write), bool(type1)]
    t = _one_dw(kind, addr & 0xFFC, write, fbe, data, (tag, rid, tc, 0, ep))
    t.dest_id = dest
    return t


def io_tlp(write, addr, *, fbe=0xF, data=0, tag=0, rid=RAW_REQUESTER):
    """An I/O request (IORd/IOWr): one DW at DW-aligned ``addr``, first BE ``fbe``."""
    return _one_dw(TlpType.IO_WRITE if write else TlpType.IO_READ, addr & ~3, write, fbe, data,
                   (tag, rid, 0, 0, False))


# ---- DW-list forms (the RTL's stream convention) --------------------------------------------------
def _dws(t, td=False):
    dws = tlp_to_dws(t)
    if td:
        dws[0] |= 1 << 15
        dws.append(DIGEST)
    return dws


def mem_req(addr, length=1, *, write=False, fbe=0xF, lbe=None, data=None, tag=0, rid=0x0008,
            tc=0, attr=0, td=False, ep=False, force64=False, locked=False):
    """``mem_tlp`` as DWs.  ``length`` in DWs; ``data`` a list of payload DWs (default: a
    pattern that differs per DW and per address)."""
    if write and data is None:
        data = [(0x1000_0001 * (i + 1) + addr) & 0xFFFF_FFFF for i in range(length)]
    return _dws(mem_tlp(write, addr, length, fbe=fbe, lbe=lbe, data=data,
                        fmt64=force64 or addr >= 1 << 32, locked=locked, tag=tag, rid=rid, tc=tc,
                        attr=attr, ep=ep), td)


def cfg_req(reg, *, write=False, data=0, fbe=0xF, bus=1, dev=0, fn=0, type1=False, tag=0,
            rid=0x0000, tc=0, td=False, ep=False):
    """``cfg_tlp`` of DW register ``reg`` (0..1023) of function ``bus:dev.fn``, as DWs."""
    return _dws(cfg_tlp(write, reg * 4, dest=PcieId(bus, dev, fn), fbe=fbe, data=data,
                        type1=type1, tag=tag, rid=rid, tc=tc, ep=ep), td)


def io_req(addr, *, write=False, data=0, fbe=0xF, tag=0, rid=0x0008, td=False):
    """``io_tlp`` as DWs."""
    return _dws(io_tlp(write, addr, fbe=fbe, data=data, tag=tag, rid=rid), td)


def atomic_req(kind, addr, length, *, tag=0, rid=0x0008):
    """An AtomicOp request (``kind``: a cocotbext ``TlpType``) with a zero payload, as DWs."""
    t = Tlp()
    t.fmt_type = kind
    _ids(t, tag, rid, 0, 0, False)
    t.address = addr
    t.first_be = 0xF
    t.last_be = 0xF if length > 1 else 0
    t.data = bytes(4 * length)
    t.length = length
    return _dws(t)


def msg_req(code, *, routing=0b100, data=None, tag=0, rid=0x0008):
    """Msg/MsgD (4-DW header; cocotbext-pcie cannot pack messages, so encoded here from PCIe
    Base 2.2.8: Fmt 001/011, Type 10rrr, DW1 = requester ID, tag, message code)."""
    fmt = 0b011 if data else 0b001
    dw0 = (fmt << 29) | ((0b10000 | routing) << 24) | (len(data) if data else 0)
    return [dw0, (rid << 16) | (tag << 8) | code, 0, 0] + list(data or [])


def cpl_tlp(*, data=None, tag=0, rid=0x0008, cid=0x0100, byte_count=4, status=0):
    """A completion (Cpl, or CplD with ``data``) as DWs: what a requester receives."""
    t = Tlp()
    t.fmt_type = TlpType.CPL_DATA if data else TlpType.CPL
    t.requester_id = PcieId.from_int(rid)
    t.completer_id = PcieId.from_int(cid)
    t.tag = tag
    t.status = status
    t.byte_count = byte_count
    if data:
        t.data = _dw_bytes(data)
        t.length = len(data)
    return tlp_to_dws(t)
