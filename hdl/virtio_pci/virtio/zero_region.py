"""A BAR structure that reads 0 and ignores writes (unimplemented space, placeholders)."""
from amaranth.hdl import Module
from amaranth.lib import wiring
from amaranth.lib.wiring import In

from ..regbus import RegBusSignature

__all__ = ["ZeroRegion"]


class ZeroRegion(wiring.Component):
    def __init__(self, addr_width):
        super().__init__({"bus": In(RegBusSignature(addr_width))})

    def elaborate(self, platform):
        m = Module()
        m.d.comb += [self.bus.ready.eq(1), self.bus.rdata.eq(0)]
        return m
