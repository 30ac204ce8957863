"""What the PCI, PCI Express and VIRTIO specifications fix, written down once for the tests.

Offsets here are the specifications' (type-0 header, capability register layouts, the virtio
capability structures), never the design's: where the design places a capability, a BAR region or
a field is read from the RTL (capability walk) or from the build description (``tb.env.fabric.Desc``).
"""
from dataclasses import dataclass, field

__all__ = ["Hdr", "CapId", "PcieCap", "MsixCap", "PmCap", "VirtioCap", "CfgType", "Cmd", "Sts",
           "DevCtl", "DevSta", "Cap", "walk_capabilities", "VIRTIO_VENDOR_ID",
           "VIRTIO_MODERN_DEVICE_ID_BASE", "TRANSITIONAL_DEVICE_IDS", "MAX_CAP_HOPS"]

VIRTIO_VENDOR_ID = 0x1AF4
VIRTIO_MODERN_DEVICE_ID_BASE = 0x1040
#: VIRTIO 1.3 4.1.2.1: virtio device type -> transitional PCI Device ID
TRANSITIONAL_DEVICE_IDS = {1: 0x1000, 2: 0x1001, 5: 0x1002, 3: 0x1003, 8: 0x1004, 4: 0x1005,
                           9: 0x1009}
#: Linux __pci_find_next_cap_ttl gives up after 48 capabilities
MAX_CAP_HOPS = 48


class Hdr:
    """Type-0 configuration header (PCI Local Bus 3.0 section 6.1)."""
    VENDOR_ID = 0x00
    DEVICE_ID = 0x02
    COMMAND = 0x04
    STATUS = 0x06
    REVISION_ID = 0x08
    CLASS_CODE = 0x09
    CACHE_LINE_SIZE = 0x0C
    LATENCY_TIMER = 0x0D
    HEADER_TYPE = 0x0E
    BIST = 0x0F
    BAR0 = 0x10
    CARDBUS_CIS = 0x28
    SUBSYSTEM_VENDOR_ID = 0x2C
    SUBSYSTEM_ID = 0x2E
    EXPANSION_ROM = 0x30
    CAP_PTR = 0x34
    INTERRUPT_LINE = 0x3C
    INTERRUPT_PIN = 0x3D
    END = 0x40
    EXT_START = 0x100
    SIZE = 0x1000


class Cmd:
    """Command register bits."""
    IO = 1 << 0
    MEM = 1 << 1
    BUS_MASTER = 1 << 2
    SPECIAL_CYCLES = 1 << 3
    MWI = 1 << 4
    VGA_SNOOP = 1 << 5
    PARITY_ERROR_RESPONSE = 1 << 6
    IDSEL_STEPPING = 1 << 7
    SERR = 1 << 8
    FAST_B2B = 1 << 9
    INTX_DISABLE = 1 << 10
    #: bits a PCI Express function may implement as RW (PCIe 4.0 7.5.1.1); the rest are RO 0
    PCIE_RW = IO | MEM | BUS_MASTER | PARITY_ERROR_RESPONSE | SERR | INTX_DISABLE


class Sts:
    """Status register bits."""
    INTERRUPT_STATUS = 1 << 3
    CAP_LIST = 1 << 4
    MASTER_DATA_PARITY_ERROR = 1 << 8
    SIGNALED_TARGET_ABORT = 1 << 11
    RECEIVED_TARGET_ABORT = 1 << 12
    RECEIVED_MASTER_ABORT = 1 << 13
    SIGNALED_SYSTEM_ERROR = 1 << 14
    DETECTED_PARITY_ERROR = 1 << 15
    RW1C = (MASTER_DATA_PARITY_ERROR | SIGNALED_TARGET_ABORT | RECEIVED_TARGET_ABORT
            | RECEIVED_MASTER_ABORT | SIGNALED_SYSTEM_ERROR | DETECTED_PARITY_ERROR)


class CapId:
    PM = 0x01
    MSI = 0x05
    VENDOR = 0x09
    PCIE = 0x10
    MSIX = 0x11


class PmCap:
    PMC = 0x02
    PMCSR = 0x04


class PcieCap:
    """PCI Express capability register offsets (PCIe 4.0 7.5.3)."""
    CAPS = 0x02
    DEVCAP = 0x04
    DEVCTL = 0x08
    DEVSTA = 0x0A
    LINKCAP = 0x0C
    LINKCTL = 0x10
    LINKSTA = 0x12
    SLOTCAP = 0x14
    DEVCAP2 = 0x24
    DEVCTL2 = 0x28
    DEVSTA2 = 0x2A
    LINKCAP2 = 0x2C
    LINKCTL2 = 0x30
    LINKSTA2 = 0x32
    LEN_V2 = 0x3C
    DEVCAP_FLR = 1 << 28
    TYPE_ENDPOINT = 0x0


class DevCtl:
    MPS_SHIFT = 5
    MPS_MASK = 0x7 << 5
    MRRS_SHIFT = 12
    INITIATE_FLR = 1 << 15


class DevSta:
    CORRECTABLE = 1 << 0
    NONFATAL = 1 << 1
    FATAL = 1 << 2
    UNSUPPORTED_REQUEST = 1 << 3


class MsixCap:
    CONTROL = 0x02
    TABLE = 0x04
    PBA = 0x08
    LEN = 12
    ENABLE = 1 << 15
    FUNCTION_MASK = 1 << 14
    TABLE_SIZE_MASK = 0x7FF
    ENTRY_SIZE = 16
    VECTOR_CTRL = 12
    MASKED = 1


class VirtioCap:
    """struct virtio_pci_cap and its extensions (VIRTIO 1.3 4.1.4)."""
    VNDR = 0
    NEXT = 1
    CAP_LEN = 2
    CFG_TYPE = 3
    BAR = 4
    ID = 5
    OFFSET = 8
    LENGTH = 12
    NOTIFY_OFF_MULTIPLIER = 16
    PCI_CFG_DATA = 16
    LEN = 16
    NOTIFY_LEN = 20
    PCI_CFG_LEN = 20
    CAP64_LEN = 24


class CfgType:
    COMMON = 1
    NOTIFY = 2
    ISR = 3
    DEVICE = 4
    PCI_CFG = 5
    SHARED_MEMORY = 8
    VENDOR = 9
    #: minimum cap_len per cfg_type (CAP-01)
    MIN_LEN = {COMMON: 16, NOTIFY: 20, ISR: 16, DEVICE: 16, PCI_CFG: 20, SHARED_MEMORY: 24,
               VENDOR: 16}
    STRUCTURES = (COMMON, NOTIFY, ISR, DEVICE)


@dataclass
class Cap:
    """One capability found by walking the list: ``offset`` in config space, ``cap_id``, and
    its bytes (``raw``, as many as the walker read)."""
    offset: int
    cap_id: int
    raw: bytes = b""
    fields: dict = field(default_factory=dict)

    def byte(self, off):
        return self.raw[off]

    def word(self, off):
        return int.from_bytes(self.raw[off:off + 2], "little")

    def dword(self, off):
        return int.from_bytes(self.raw[off:off + 4], "little")


async def walk_capabilities(read_dword, *, length_of=None):
    """Walk the standard capability list from the Capabilities Pointer with ``read_dword(addr)``
    (an awaitable config read), checking the rules a driver relies on (PCI-D1): pointers at 0x40 or
    above, dword aligned, no loops, at most ``MAX_CAP_HOPS`` entries, list ends with pointer 0.
    Each capability's bytes up to the next dword boundary after ``length_of(cap_id, first_dword)``
    (default: 4) are read.  Returns the list of ``Cap``."""
    caps, seen = [], set()
    ptr = (await read_dword(Hdr.CAP_PTR & ~3)) >> (8 * (Hdr.CAP_PTR & 3)) & 0xFF
    assert ptr & 3 == 0, f"capabilities pointer {ptr:#x} is not dword aligned"
    while ptr:
        assert Hdr.END <= ptr <= 0xFC, f"capability pointer {ptr:#x} outside 0x40..0xFC"
        assert ptr & 3 == 0, f"capability pointer {ptr:#x} is not dword aligned"
        assert ptr not in seen, f"capability list loops back to {ptr:#x}"
        assert len(caps) < MAX_CAP_HOPS, "capability list longer than 48 entries"
        seen.add(ptr)
        first = await read_dword(ptr)
        cap_id, nxt = first & 0xFF, first >> 8 & 0xFF
        n = length_of(cap_id, first) if length_of else 4
        raw = first.to_bytes(4, "little")
        for a in range(ptr + 4, ptr + n, 4):
            raw += (await read_dword(a)).to_bytes(4, "little")
        caps.append(Cap(ptr, cap_id, raw))
        ptr = nxt
    return caps
