"""ISR status (VIRTIO 1.3 section 4.1.4.5).

Bit 0: queue interrupt, bit 1: device configuration change; set by the interrupt logic
(``set_queue``, ``set_config``), cleared by any driver read that enables byte 0 (ISR-05;
a zero-length read has no side effect).  Bits 2-7 read 0, writes are ignored (ISR-D1).
``isr`` shows the current value for INTx and PCI Status.Interrupt Status (ISR-04).
"""
from amaranth.hdl import Cat, Module, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from ..regbus import RegBusSignature

__all__ = ["Isr"]


class Isr(wiring.Component):
    def __init__(self):
        super().__init__({
            "bus": In(RegBusSignature(10)),
            "set_queue": In(1),
            "set_config": In(1),
            "clear": In(1),          # virtio reset
            "isr": Out(2),
            "read_clear": Out(1),    # one-cycle pulse: a driver read cleared the ISR
        })

    def elaborate(self, platform):
        m = Module()
        bus = self.bus
        isr = Signal(2)
        rdata = Signal(32)
        m.d.comb += [bus.ready.eq(1), bus.rdata.eq(rdata), self.isr.eq(isr)]
        rd = bus.en & ~bus.write
        clr = rd & bus.be[0] & (bus.addr == 0)
        with m.If(rd):
            m.d.sync += rdata.eq(Cat(isr, 0) if True else 0)
            with m.If(bus.addr != 0):
                m.d.sync += rdata.eq(0)
        m.d.comb += self.read_clear.eq(clr)
        nxt = Cat(isr[0] & ~clr, isr[1] & ~clr)
        m.d.sync += isr.eq(Cat(nxt[0] | self.set_queue, nxt[1] | self.set_config))
        with m.If(self.clear):
            m.d.sync += isr.eq(0)
        return m
