"""TLP formats and the TLP stream port (PCI Express Base Specification, chapter 2.2).

Conventions of the stream port (DESIGN.md section 3), stated once here:

* ``data`` is W bits wide, ``keep`` has one bit per DW (lane), ``first``/``last`` frame a TLP.
* A TLP starts in lane 0 of a beat and its DWs follow contiguously; a beat never holds two TLPs.
* Lane *i* is ``data[32*i:32*i+32]``.  Header DWs carry the value as drawn in the PCIe
  specification (Fmt/Type in bits 31:24 of DW0, i.e. wire byte 0 in bits 31:24).  Payload DWs are
  little-endian: the byte at the lowest address is in bits 7:0.

Every header field is a ``data.Struct`` below; no other module slices header bits by hand.
"""
import enum as py_enum

from amaranth.hdl import unsigned
from amaranth.lib import data, enum, stream

__all__ = [
    "FmtType", "CplStatus", "beat_layout", "tlp_stream", "HdrDW0", "ReqDW1", "CfgDW2", "CplDW1",
    "CplDW2", "MsgCode", "Space", "OpLayout",
]


class FmtType(py_enum.IntEnum):
    """Byte 0 of a TLP (Fmt[2:0] and Type[4:0])."""
    MRD32 = 0x00
    MRD64 = 0x20
    MRDLK32 = 0x01
    MRDLK64 = 0x21
    MWR32 = 0x40
    MWR64 = 0x60
    IORD = 0x02
    IOWR = 0x42
    CFGRD0 = 0x04
    CFGWR0 = 0x44
    CFGRD1 = 0x05
    CFGWR1 = 0x45
    CPL = 0x0A
    CPLD = 0x4A
    CPLLK = 0x0B
    CPLDLK = 0x4B
    FETCHADD32 = 0x4C
    FETCHADD64 = 0x6C
    SWAP32 = 0x4D
    SWAP64 = 0x6D
    CAS32 = 0x4E
    CAS64 = 0x6E
    MSG = 0x30      # 0x30..0x37 by routing
    MSGD = 0x70     # 0x70..0x77
    PREFIX = 0x80   # 0x80..0x9F: TLP prefixes


class CplStatus(enum.Enum, shape=3):
    SC = 0b000
    UR = 0b001
    CRS = 0b010
    CA = 0b100


class MsgCode(py_enum.IntEnum):
    ASSERT_INTA = 0x20
    DEASSERT_INTA = 0x24


class HdrDW0(data.Struct):
    length: 10
    at: 2
    attr: 2
    ep: 1
    td: 1
    th: 1
    ln: 1
    attr2: 1
    t8: 1
    tc: 3
    t9: 1
    fmt_type: 8


class ReqDW1(data.Struct):
    first_be: 4
    last_be: 4
    tag: 8
    requester_id: 16


class CfgDW2(data.Struct):
    _rsvd0: 2
    reg: 6
    ext_reg: 4
    _rsvd1: 4
    function: 3
    device: 5
    bus: 8


class CplDW1(data.Struct):
    byte_count: 12
    bcm: 1
    status: CplStatus
    completer_id: 16


class CplDW2(data.Struct):
    lower_addr: 7
    _rsvd: 1
    tag: 8
    requester_id: 16


class MsgDW1(data.Struct):
    code: 8
    tag: 8
    requester_id: 16


def beat_layout(width):
    """Payload of one beat of the TLP stream, ``width`` bits of data."""
    return data.StructLayout({
        "data": unsigned(width),
        "keep": unsigned(width // 32),
        "first": unsigned(1),
        "last": unsigned(1),
    })


def tlp_stream(width):
    """Stream signature of the TLP port (``amaranth.lib.stream`` transfer rules)."""
    return stream.Signature(beat_layout(width))


class Space(enum.Enum, shape=2):
    """Which address space a decoded request operation targets."""
    NONE = 0   # no register access (the request is only answered, e.g. UR)
    CFG = 1    # configuration space, addr = register (DW) number
    MEM = 2    # the memory BAR, addr = DW offset inside the BAR
    IO = 3     # the I/O BAR, addr = DW offset inside the BAR


class CplInfo(data.Struct):
    """What the completion of a non-posted request needs (carried with each operation)."""
    requester_id: 16
    tag: 10            # 10-bit tags: bits 9:8 travel in DW0 T9/T8
    tc: 3
    attr: 3
    status: CplStatus
    byte_count: 12     # remaining byte count at the start of this completion
    lower_addr: 7
    length: 10         # DWs of data in this completion (0 for Cpl)
    has_data: 1
    locked: 1          # answer to a locked read (MRdLk): CplLk/CplDLk (PCIe 2.2.9, Table 2-3)


def OpLayout(addr_width):
    """One DW operation emitted by the depacketizer: requests are split into DW accesses.

    ``cpl_start``/``cpl_end`` frame the DWs that go into one completion TLP; a request that
    needs no data in its answer (write completions, UR/CA) is a single operation with both set.
    """
    return data.StructLayout({
        "space": Space,
        "write": unsigned(1),
        "addr": unsigned(addr_width),
        "be": unsigned(4),
        "data": unsigned(32),
        "need_cpl": unsigned(1),
        "cpl_start": unsigned(1),
        "cpl_end": unsigned(1),
        "cpl": CplInfo,
        # read data returned = (data >> 8*rshift), only the first rlen bytes (0: all four);
        # used by the PCI-cfg window to place BAR bytes in the first bytes of pci_cfg_data
        "rshift": unsigned(2),
        "rlen": unsigned(2),
    })
