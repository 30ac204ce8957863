"""Configuration space image built as Python data at elaboration time.

PCI Local Bus 3.0 section 6 (type-0 header), PCI Express Base 4.0 section 7.5 (PCI Express,
Power Management and MSI-X capabilities), VIRTIO 1.3 section 4.1.4 (virtio vendor capabilities).

``build_config_image(params)`` returns a ``ConfigImage``: the reset value of every byte, which
bits are read-write and which are write-1-to-clear, named fields the RTL connects to, and the list
of capabilities (for the port JSON and for tests).  It is plain data and is unit-tested as data;
``ConfigSpace`` turns it into registers.
"""
from dataclasses import dataclass, field


__all__ = ["ConfigImage", "Capability", "build_config_image", "CapId", "CfgType",
           "CONFIG_SPACE_SIZE"]

CONFIG_SPACE_SIZE = 4096


class CapId:
    PM = 0x01
    MSI = 0x05
    VENDOR = 0x09
    PCIE = 0x10
    MSIX = 0x11


class CfgType:
    """virtio_pci_cap.cfg_type (VIRTIO 1.3 4.1.4)."""
    COMMON = 1
    NOTIFY = 2
    ISR = 3
    DEVICE = 4
    PCI_CFG = 5
    SHARED_MEMORY = 8
    VENDOR = 9


@dataclass
class Capability:
    cap_id: int
    offset: int
    length: int
    name: str
    cfg_type: int = None      # virtio capabilities only
    bar: int = None
    bar_offset: int = None
    bar_length: int = None

    def to_dict(self):
        d = {"name": self.name, "cap_id": self.cap_id, "config_offset": self.offset,
             "cap_len": self.length}
        if self.cfg_type is not None:
            d.update(cfg_type=self.cfg_type, bar=self.bar, offset=self.bar_offset,
                     length=self.bar_length)
        return d


@dataclass
class Field:
    """A named bit field: ``width`` bits at bit ``lsb`` of byte ``offset``."""
    offset: int
    width: int
    lsb: int = 0

    @property
    def dword(self):
        return self.offset // 4

    @property
    def bit(self):
        """First bit of the field inside its dword."""
        return (self.offset % 4) * 8 + self.lsb


@dataclass
class ConfigImage:
    size: int = CONFIG_SPACE_SIZE
    init: bytearray = field(default_factory=lambda: bytearray(CONFIG_SPACE_SIZE))
    rw: bytearray = field(default_factory=lambda: bytearray(CONFIG_SPACE_SIZE))
    rw1c: bytearray = field(default_factory=lambda: bytearray(CONFIG_SPACE_SIZE))
    fields: dict = field(default_factory=dict)
    #: inputs ORed into read data (hardware status bits)
    dynamic: dict = field(default_factory=dict)
    #: write-1 strobes that are not stored (e.g. Initiate FLR)
    strobes: dict = field(default_factory=dict)
    caps: list = field(default_factory=list)

    def put(self, offset, nbytes, value, rw=0, rw1c=0, name=None):
        if offset + nbytes > self.size:
            raise ValueError(f"config field at {offset:#x} runs past the config space")
        for i in range(nbytes):
            self.init[offset + i] = (value >> (8 * i)) & 0xFF
            self.rw[offset + i] = (rw >> (8 * i)) & 0xFF
            self.rw1c[offset + i] = (rw1c >> (8 * i)) & 0xFF
        if name:
            self.fields[name] = Field(offset, nbytes * 8)

    def name_field(self, name, offset, width, lsb=0):
        self.fields[name] = Field(offset, width, lsb)

    def dword(self, index):
        """(reset value, rw mask, rw1c mask) of config dword ``index``."""
        sl = slice(4 * index, 4 * index + 4)
        return (int.from_bytes(self.init[sl], "little"), int.from_bytes(self.rw[sl], "little"),
                int.from_bytes(self.rw1c[sl], "little"))

    def read(self, offset, nbytes):
        return int.from_bytes(self.init[offset:offset + nbytes], "little")

    def used_dwords(self):
        """Dword indices whose value is not constant zero (everything else reads 0)."""
        out = []
        for i in range(self.size // 4):
            v, rw, rw1c = self.dword(i)
            dyn = any(f.dword == i for f in self.dynamic.values())
            if v or rw or rw1c or dyn:
                out.append(i)
        return out

    def capability_chain(self):
        """Walk the standard capability list as Linux does (section 1.2 of the requirement list)."""
        out = []
        ptr = self.read(0x34, 1) & ~3
        hops = 0
        while ptr >= 0x40 and hops < 48:
            cap_id = self.read(ptr, 1)
            if cap_id == 0xFF:
                break
            out.append((ptr, cap_id))
            ptr = self.read(ptr + 1, 1) & ~3
            hops += 1
        return out


# command register bits
CMD_IO = 1 << 0
CMD_MEM = 1 << 1
CMD_BME = 1 << 2
CMD_PERR = 1 << 6
CMD_SERR = 1 << 8
CMD_INTX_DISABLE = 1 << 10
# status register bits (upper half of dword 1)
STS_INT = 1 << 3
STS_CAP_LIST = 1 << 4
STS_RW1C = 0xF900      # parity error, signaled/received target abort, master abort, SERR, DPE


def build_config_image(p):
    img = ConfigImage()
    regions = p.regions

    # ---- type-0 header --------------------------------------------------------------------
    img.put(0x00, 2, p.vendor_id, name="vendor_id")
    img.put(0x02, 2, p.device_id, name="device_id")
    img.put(0x04, 2, 0, rw=CMD_IO * p.has_io_bar | CMD_MEM | CMD_BME | CMD_PERR | CMD_SERR
            | CMD_INTX_DISABLE, name="command")
    img.put(0x06, 2, STS_CAP_LIST, rw1c=STS_RW1C, name="status")
    img.name_field("status_int", 0x06, 1, lsb=3)
    img.dynamic["status_int"] = img.fields["status_int"]
    img.put(0x08, 1, p.revision_id, name="revision_id")
    img.put(0x09, 3, p.class_code, name="class_code")
    img.put(0x0C, 1, 0, rw=0xFF, name="cache_line_size")
    img.put(0x0E, 1, 0x00, name="header_type")

    bar_bits = (p.mem_bar_size - 1).bit_length()
    mem_off = 0x10 + 4 * p.mem_bar
    img.put(mem_off, 4, 0b100, rw=(0xFFFF_FFFF << bar_bits) & 0xFFFF_FFFF, name="mem_bar_lo")
    img.put(mem_off + 4, 4, 0, rw=0xFFFF_FFFF, name="mem_bar_hi")
    if p.has_io_bar:
        io_bits = (p.io_bar_size - 1).bit_length()
        img.put(0x10, 4, 0b1, rw=(0xFFFF_FFFF << io_bits) & 0xFFFF_FFFF, name="io_bar")
    img.put(0x2C, 2, p.subsystem_vendor_id, name="subsystem_vendor_id")
    img.put(0x2E, 2, p.subsystem_device_id, name="subsystem_id")
    img.put(0x3C, 1, 0, rw=0xFF, name="interrupt_line")
    img.put(0x3D, 1, 0x01, name="interrupt_pin")           # INTA

    # ---- capability list --------------------------------------------------------------------
    chain = []

    def add(cap_id, length, name, **virtio):
        offset = 0x40 if not chain else chain[-1].offset + ((chain[-1].length + 3) & ~3)
        cap = Capability(cap_id, offset, length, name, **virtio)
        chain.append(cap)
        img.put(offset, 1, cap_id)
        return cap

    pm = add(CapId.PM, 8, "power_management")
    img.put(pm.offset + 2, 2, 0x0003)                       # PMC: version 3, no PME, no D1/D2
    img.put(pm.offset + 4, 2, 1 << 3, rw=0x0003, name="pm_csr")   # PowerState RW, No_Soft_Reset

    ex = add(CapId.PCIE, 0x3C, "pci_express")
    img.put(ex.offset + 2, 2, 0x0002)                       # version 2, PCI Express Endpoint
    devcap = p.mps_supported_code | (1 << 5) | (1 << 15) | (1 << 28)   # ext tag, RBER, FLR
    img.put(ex.offset + 4, 4, devcap, name="pcie_devcap")
    # Device Control: Phantom Functions Enable (bit 9) and Aux Power PM Enable (bit 10) are
    # hardwired to 0 because the function implements neither (PCIe 4.0 7.5.3.4); bit 15 is the
    # Initiate FLR strobe, which reads 0.
    img.put(ex.offset + 8, 2, 0x2810, rw=0x79FF, name="pcie_devctl")
    img.name_field("relaxed_en", ex.offset + 8, 1, lsb=4)
    img.name_field("ext_tag_en", ex.offset + 9, 1, lsb=0)
    img.name_field("no_snoop_en", ex.offset + 9, 1, lsb=3)
    img.name_field("mps", ex.offset + 8, 3, lsb=5)
    img.name_field("mrrs", ex.offset + 9, 3, lsb=4)
    img.name_field("flr", ex.offset + 9, 1, lsb=7)
    img.strobes["flr"] = img.fields["flr"]
    img.put(ex.offset + 0xA, 2, 0, rw1c=0x000F, name="pcie_devsta")
    img.put(ex.offset + 0xC, 4, 0x0000_0011, name="pcie_linkcap")  # 2.5 GT/s, x1
    img.put(ex.offset + 0x10, 2, 0, rw=0x00CB, name="pcie_linkctl")
    img.name_field("rcb", ex.offset + 0x10, 1, lsb=3)
    img.put(ex.offset + 0x12, 2, 0x0011, name="pcie_linksta")
    # Device Capabilities 2: Completion Timeout Disable Supported (bit 4), Completion Timeout
    # Ranges not supported (value 0000b: the timeout is fixed, params.cpl_timeout_cycles);
    # Device Control 2: Completion Timeout Disable (bit 4) read-write (requirement DMA-14)
    img.put(ex.offset + 0x24, 4, 1 << 4, name="pcie_devcap2")
    img.put(ex.offset + 0x28, 2, 0, rw=1 << 4, name="pcie_devctl2")
    img.name_field("cto_disable", ex.offset + 0x28, 1, lsb=4)
    img.put(ex.offset + 0x2C, 4, 0x0000_0002, name="pcie_linkcap2")
    img.put(ex.offset + 0x30, 2, 0x0001, name="pcie_linkctl2")

    mx = add(CapId.MSIX, 12, "msix")
    tbl, pba = regions["msix_table"], regions["msix_pba"]
    img.put(mx.offset + 2, 2, p.msix_vectors - 1, rw=0xC000, name="msix_control")
    img.name_field("msix_enable", mx.offset + 3, 1, lsb=7)
    img.name_field("msix_fmask", mx.offset + 3, 1, lsb=6)
    img.put(mx.offset + 4, 4, tbl.offset | tbl.bar, name="msix_table")
    img.put(mx.offset + 8, 4, pba.offset | pba.bar, name="msix_pba")

    def vcap(cfg_type, region, name, cap_len=16):
        cap = add(CapId.VENDOR, cap_len, name, cfg_type=cfg_type, bar=region.bar,
                  bar_offset=region.offset, bar_length=region.length)
        img.put(cap.offset + 2, 1, cap_len)
        img.put(cap.offset + 3, 1, cfg_type)
        img.put(cap.offset + 4, 1, region.bar)
        img.put(cap.offset + 8, 4, region.offset)
        img.put(cap.offset + 12, 4, region.length)
        return cap

    vcap(CfgType.COMMON, regions["common"], "virtio_common")
    nc = vcap(CfgType.NOTIFY, regions["notify"], "virtio_notify", cap_len=20)
    img.put(nc.offset + 16, 4, p.notify_off_multiplier, name="notify_off_multiplier")
    vcap(CfgType.ISR, regions["isr"], "virtio_isr")
    vcap(CfgType.DEVICE, regions["device"], "virtio_device")
    pc = add(CapId.VENDOR, 20, "virtio_pci_cfg", cfg_type=CfgType.PCI_CFG, bar=0, bar_offset=0,
             bar_length=0)
    img.put(pc.offset + 2, 1, 20)
    img.put(pc.offset + 3, 1, CfgType.PCI_CFG)
    img.put(pc.offset + 4, 1, 0, rw=0xFF, name="pci_cfg_bar")
    img.put(pc.offset + 8, 4, 0, rw=0xFFFF_FFFF, name="pci_cfg_offset")
    img.put(pc.offset + 12, 4, 0, rw=0xFFFF_FFFF, name="pci_cfg_length")
    img.put(pc.offset + 16, 4, 0, name="pci_cfg_data")   # owned by virtio/pci_cfg_window.py

    for a, b in zip(chain, chain[1:]):
        img.put(a.offset + 1, 1, b.offset)
    img.put(0x34, 1, chain[0].offset, name="cap_ptr")
    if chain[-1].offset + chain[-1].length > 0x100:
        raise ValueError("capability list does not fit in the first 256 bytes of config space")
    img.caps = chain
    # extended configuration space (0x100..0xFFC) stays all zero: an empty extended
    # capability list (ID 0, version 0, next 0 at 0x100), every dword readable.
    return img
