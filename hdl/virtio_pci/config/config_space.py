"""Configuration space registers generated from the ``ConfigImage`` data.

PCI Local Bus 3.0 section 6, PCI Express Base 4.0 section 7 (configuration space, RW/RO/RW1C
attributes), VIRTIO 1.3 section 4.1.4.

Every dword with a read-write or write-1-to-clear bit becomes a register with that reset value;
every other dword is a constant; dwords that the image leaves zero (all of the extended space from
0x100 on, apart from the empty list header) read 0.  Writes honour the byte enables and the masks
(CAP-D2: read-only bits never change).  ``rdata`` is valid the cycle after the access.

Power management (PCI Bus Power Management 1.2 section 3.2.4, PCIe Base 5.3.1): the function
supports D0 and D3hot only (PMC advertises neither D1 nor D2), so a write of PowerState 1 or 2 is
discarded and the field keeps its state (the other bits of that write apply).  ``d3hot`` is high
while PowerState is 3; the top level then refuses memory and I/O requests (Unsupported Request)
and initiates no requests (MSI-X messages stay pending, INTx is deasserted); configuration
requests are served in every state.  No_Soft_Reset is 1: D3hot -> D0 keeps every register.
FLR and conventional reset return the function to D0.
"""
from amaranth.hdl import Cat, Const, Module, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from ..regbus import RegBusSignature, byte_mask
from .capabilities import build_config_image

__all__ = ["ConfigSpace"]


class ConfigSpace(wiring.Component):
    """Ports
    -----
    bus : register bus, 10-bit dword address (0x000..0xFFC).
    command, mem_bar_base, io_bar_base, msix_enable, msix_fmask, mps, mrrs, ext_tag, relaxed_en,
        no_snoop_en (Device Control), cto_disable (Device Control 2), rcb, pci_cfg_* : current
        values of the fields the rest of the endpoint uses (registered, no latency).
    int_status : In, shown in Status bit 3 (Interrupt Status).
    set_* : In, one-cycle pulses that set write-1-to-clear error bits.
    flr : Out, one-cycle pulse when software writes 1 to Initiate Function Level Reset.
    d3hot : Out, PowerState is D3hot (registered: from the cycle after the CfgWr that set it).
    """

    def __init__(self, params):
        self._p = params
        self.image = build_config_image(params)
        super().__init__({
            "bus": In(RegBusSignature(10)),
            "command": Out(16),
            "mem_bar_base": Out(64),
            "io_bar_base": Out(32),
            "msix_enable": Out(1),
            "msix_fmask": Out(1),
            "mps": Out(3),
            "mrrs": Out(3),
            "ext_tag": Out(1),
            "relaxed_en": Out(1),
            "no_snoop_en": Out(1),
            "cto_disable": Out(1),
            "rcb": Out(1),
            "pci_cfg_bar": Out(8),
            "pci_cfg_offset": Out(32),
            "pci_cfg_length": Out(32),
            "pci_cfg_data": Out(32),
            "int_status": In(1),
            "set_signaled_abort": In(1),
            "set_parity_error": In(1),
            "set_master_abort": In(1),
            "set_target_abort": In(1),
            "set_master_parity": In(1),
            "set_ur_detected": In(1),
            "set_fatal_detected": In(1),
            "set_nonfatal_detected": In(1),
            "set_correctable_detected": In(1),
            "flr": Out(1),
            "d3hot": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        img = self.image
        p = self._p
        bus = self.bus
        m.d.comb += bus.ready.eq(1)

        regs = {}
        for i in img.used_dwords():
            init, rw, rw1c = img.dword(i)
            if rw or rw1c:
                regs[i] = Signal(32, init=init, name=f"cfg_{4 * i:03x}")

        def value(i):
            if i in regs:
                return regs[i]
            return Const(img.dword(i)[0], 32)

        def fld(name):
            f = img.fields[name]
            return value(f.dword)[f.bit:f.bit + f.width]

        dynamic = {"status_int": self.int_status}

        # ---- read ----
        rdata = Signal(32)
        with m.If(bus.en & ~bus.write):
            with m.Switch(bus.addr):
                for i in img.used_dwords():
                    with m.Case(i):
                        v = value(i)
                        for name, f in img.dynamic.items():
                            if f.dword == i:
                                v = v | (dynamic[name] << f.bit)
                        m.d.sync += rdata.eq(v)
                with m.Default():
                    m.d.sync += rdata.eq(0)
        m.d.comb += bus.rdata.eq(rdata)

        # ---- write ----
        bm = byte_mask(bus.be)
        pm = img.fields["pm_csr"]
        for i, reg in regs.items():
            _, rw, rw1c = img.dword(i)
            with m.If(bus.en & bus.write & (bus.addr == i)):
                nv = ((reg & ~(bm & rw)) | (bus.wdata & bm & rw)) & ~(bus.wdata & bm & rw1c)
                m.d.sync += reg.eq(nv)
                if i == pm.dword:
                    # PowerState (bits 1:0): D1 and D2 are not supported, so such a write is
                    # discarded (PCI PM 1.2 3.2.4); the rest of the write applies
                    ps = nv[pm.bit:pm.bit + 2]
                    with m.If((ps == 1) | (ps == 2)):
                        m.d.sync += reg[pm.bit:pm.bit + 2].eq(reg[pm.bit:pm.bit + 2])

        # ---- hardware-set error bits (write-1-to-clear) ----
        def set_bits(name, bit_in_field, pulse):
            f = img.fields[name]
            reg = regs[f.dword]
            with m.If(pulse):
                m.d.sync += reg[f.bit + bit_in_field].eq(1)

        set_bits("status", 11, self.set_signaled_abort)
        set_bits("status", 15, self.set_parity_error)
        # requester errors (PCI 3.0 6.2.3, PCIe 7.5.1.1.4): Received Master Abort (a UR
        # completion), Received Target Abort (a CA completion), Master Data Parity Error (a
        # poisoned completion, only while Parity Error Response is enabled)
        set_bits("status", 13, self.set_master_abort)
        set_bits("status", 12, self.set_target_abort)
        set_bits("status", 8, self.set_master_parity & fld("command")[6])
        set_bits("pcie_devsta", 0, self.set_correctable_detected)
        set_bits("pcie_devsta", 1, self.set_nonfatal_detected)
        set_bits("pcie_devsta", 2, self.set_fatal_detected)
        set_bits("pcie_devsta", 3, self.set_ur_detected)

        # ---- strobes ----
        f = img.strobes["flr"]
        m.d.comb += self.flr.eq(bus.en & bus.write & (bus.addr == f.dword)
                                & bus.be[f.bit // 8] & bus.wdata[f.bit])

        # ---- field outputs ----
        bar_bits = (p.mem_bar_size - 1).bit_length()
        m.d.comb += [
            self.command.eq(fld("command")),
            self.mem_bar_base.eq(Cat(Const(0, bar_bits), fld("mem_bar_lo")[bar_bits:],
                                     fld("mem_bar_hi"))),
            self.msix_enable.eq(fld("msix_enable")),
            self.msix_fmask.eq(fld("msix_fmask")),
            self.mps.eq(fld("mps")),
            self.mrrs.eq(fld("mrrs")),
            self.ext_tag.eq(fld("ext_tag_en")),
            self.relaxed_en.eq(fld("relaxed_en")),
            self.no_snoop_en.eq(fld("no_snoop_en")),
            self.cto_disable.eq(fld("cto_disable")),
            self.rcb.eq(fld("rcb")),
            self.pci_cfg_bar.eq(fld("pci_cfg_bar")),
            self.pci_cfg_offset.eq(fld("pci_cfg_offset")),
            self.pci_cfg_length.eq(fld("pci_cfg_length")),
            self.pci_cfg_data.eq(fld("pci_cfg_data")),
            self.d3hot.eq(fld("pm_csr")[:2] == 3),
        ]
        if p.has_io_bar:
            io_bits = (p.io_bar_size - 1).bit_length()
            m.d.comb += self.io_bar_base.eq(Cat(Const(0, io_bits), fld("io_bar")[io_bits:]))
        return m
