"""Legacy virtio header in I/O BAR0 of a transitional device (VIRTIO 1.3 sections 4.1.4.10,
4.1.5.1.1.1, 2.7.2 legacy ring layout, 6.3; the 2013 virtio-pci layout draft), and the
non-transitional guard of section 4.1.4.11 (NTL-01).

Legacy header (little-endian, any access width; I/O requests are single-DW with byte enables)::

    0x00  host features    32  RO   device feature bits 0-31 (ANY_LAYOUT always offered, LEG-09)
    0x04  guest features   32  RW   driver feature bits 0-31; bits 32-63 read as not accepted
    0x08  queue address    32  RW   page frame number (4096-byte pages) of the selected queue
    0x0C  queue size       16  RO   the selected queue's size (0: no such queue)
    0x0E  queue select     16  RW
    0x10  queue notify     16  WO   value = queue index, into the same doorbell stream
    0x12  device status     8  RW   0 resets the device
    0x13  ISR status        8  RO   reading clears it
    0x14  config vector    16  RW   } present only while MSI-X is enabled
    0x16  queue vector     16  RW   }
    0x14 / 0x18  device-specific configuration (LEG-03)

The header is a view of the state the modern interface uses: ``LegacyHeader`` is a router that
turns each access into accesses on the register buses of the common configuration (its legacy
view, DW address bit 10 set), the ISR, the notify block (legacy doorbell, address top bit set) and
the device configuration, with no extra latency (the sub-block's read data passes straight
through).  A DW access to 0x10 may touch notify, status and ISR at once: it waits until every
block involved is ready and makes all accesses in one cycle.  The semantics of each field are
implemented where the state lives (``common_cfg.py``, ``notify.py``).

While a device reset requested through the status register is in progress, legacy accesses to
the common configuration wait (``resetting``): a legacy driver expects the reset to be done when
its write of 0 completes and goes on without polling (Linux reads the status once to flush the
write).  The back-end's ``reset_ack`` ends the wait.

``LegacyGuard`` is the non-transitional variant (NTL-01): the I/O BAR0 holds no header, reads 0
and ignores writes, but a single-byte write of 0 at offset 18 (the legacy status register)
raises ``mute``: from then every BAR reads 0 and ignores writes, until FLR or conventional reset,
so that a buggy legacy driver fails gracefully.
"""
from amaranth.hdl import Cat, Const, Module, Mux, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from ..regbus import RegBusSignature

__all__ = ["LegacyHeader", "LegacyGuard", "LEGACY_VIEW", "HDR_DW", "HDR_DW_MSIX"]

#: DW address bit that selects the common configuration's legacy view
LEGACY_VIEW = 1 << 10
#: DW offset of the device configuration without / with MSI-X enabled (20 / 24 bytes)
HDR_DW = 5
HDR_DW_MSIX = 6
STATUS_DW = 0x10 >> 2


class LegacyHeader(wiring.Component):
    """Ports
    -----
    bus : the I/O BAR's register bus from the dispatcher (DW address inside the BAR).
    common, isr, notify, device : register buses into those blocks (shared with the modern path
        through ``regbus_mux``); ``notify`` has its address top bit set (legacy doorbell).
    msix_enable : In, MSI-X Enable of the MSI-X capability (header length 24 instead of 20).
    resetting : In, a device reset is in progress (legacy accesses to common config wait).
    device_access : Out, a legacy device-configuration access is being made this cycle (the device
        configuration accepts legacy writes before the feature step, LEG-07).
    """

    def __init__(self, io_addr_width, notify_addr_width):
        self._naw = notify_addr_width
        super().__init__({
            "bus": In(RegBusSignature(io_addr_width)),
            "common": Out(RegBusSignature(11)),
            "isr": Out(RegBusSignature(10)),
            "notify": Out(RegBusSignature(notify_addr_width)),
            "device": Out(RegBusSignature(10)),
            "msix_enable": In(1),
            "resetting": In(1),
            "device_access": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        bus = self.bus
        a = bus.addr
        be = bus.be
        hdr = Mux(self.msix_enable, HDR_DW_MSIX, HDR_DW)

        to_dev = Signal()
        to_common = Signal()
        to_isr = Signal()
        to_notify = Signal()
        m.d.comb += [
            to_dev.eq(a >= hdr),
            to_common.eq((a < STATUS_DW) | ((a == STATUS_DW) & be[2])
                         | ((a == HDR_DW) & self.msix_enable)),
            to_isr.eq((a == STATUS_DW) & be[3] & ~bus.write),
            to_notify.eq((a == STATUS_DW) & bus.write & (be[0] | be[1])),
        ]
        c_rdy = ~to_common | (self.common.ready & ~self.resetting)
        i_rdy = ~to_isr | self.isr.ready
        n_rdy = ~to_notify | self.notify.ready
        d_rdy = ~to_dev | self.device.ready
        m.d.comb += bus.ready.eq(c_rdy & i_rdy & n_rdy & d_rdy)

        c, i, n, d = self.common, self.isr, self.notify, self.device
        m.d.comb += [
            c.en.eq(bus.en & to_common & ~self.resetting & i_rdy & n_rdy),
            c.addr.eq(LEGACY_VIEW | a),
            c.write.eq(bus.write),
            c.be.eq(Mux(a == STATUS_DW, be & 0b0100, be)),
            c.wdata.eq(bus.wdata),
            i.en.eq(bus.en & to_isr & c_rdy),
            i.addr.eq(0),
            i.be.eq(0b0001),
            n.en.eq(bus.en & to_notify & c_rdy),
            n.addr.eq(1 << (self._naw - 1)),
            n.write.eq(1),
            n.be.eq(be & 0b0011),
            n.wdata.eq(bus.wdata),
            d.en.eq(bus.en & to_dev),
            d.addr.eq(a - hdr),
            d.write.eq(bus.write),
            d.be.eq(be),
            d.wdata.eq(bus.wdata),
            self.device_access.eq(d.en),
        ]

        # read data: the sub-blocks hold theirs until their next access, and so do these flags
        c_d, i_d, d_d = Signal(), Signal(), Signal()
        with m.If(bus.en & bus.ready):
            m.d.sync += [c_d.eq(to_common & ~bus.write), i_d.eq(to_isr), d_d.eq(to_dev & ~bus.write)]
        m.d.comb += bus.rdata.eq(Mux(c_d, c.rdata, 0) | Mux(i_d, Cat(Const(0, 24), i.rdata[:8]), 0)
                                 | Mux(d_d, d.rdata, 0))
        return m


class LegacyGuard(wiring.Component):
    """NTL-01: ``mute`` rises on a single-byte I/O write of 0 to BAR0 offset 18 and stays high
    until reset (put it under the FLR reset).  The I/O BAR otherwise reads 0 and ignores writes."""

    def __init__(self, io_addr_width):
        super().__init__({
            "bus": In(RegBusSignature(io_addr_width)),
            "mute": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        bus = self.bus
        m.d.comb += [bus.ready.eq(1), bus.rdata.eq(0)]
        trigger = (bus.en & bus.write & (bus.addr == STATUS_DW) & (bus.be == 0b0100)
                   & (bus.wdata[16:24] == 0))
        with m.If(trigger):
            m.d.sync += self.mute.eq(1)
        return m
