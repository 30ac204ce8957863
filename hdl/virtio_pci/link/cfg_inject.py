"""A configuration request from a hard IP's side channel, as a TLP into the core (PCIe Base 2.2.7:
CfgRd0 / CfgWr0 request header; 2.2.9: completion header).

Both vendor adapters answer configuration accesses that the IP hands to the application on a side
channel (P-Tile: the Configuration Intercept Interface; UltraScale+: the configuration-extension
interface) with the core's own configuration space, by the same means: ``CfgInjector`` turns the
captured access into a one-beat CfgRd0 / CfgWr0 (3-DW header, plus one data DW for a write) that
joins ``rx_in`` into ``rx_out`` at a TLP boundary, and takes the core's completion for it (its
requester ID and ``tag``) off ``tx_in`` before ``tx_out``, so nothing else sees either.

Ports: ``start`` (one-cycle pulse, only while ``busy`` is low) captures ``write``, ``addr`` (DW
number), ``be`` (first byte enables), ``wdata`` and ``rid`` (the requester ID the request carries:
the function's own ID, so that the completion comes back to it).  ``busy`` is high from the
cycle after ``start`` until the answer.  ``answer`` pulses for one cycle, the cycle after the
completion was taken off ``tx_in``, with ``rdata``: the completion's data for a successful CplD,
else 0; ``is_write``: the captured request was a write.  One request at a time.
"""
from amaranth.hdl import Cat, Const, Module, Mux, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from ..tlp.layouts import FmtType, tlp_stream

__all__ = ["CfgInjector"]


class CfgInjector(wiring.Component):
    def __init__(self, width, tag):
        self.width = width
        self.tag = tag
        super().__init__({
            "rx_in": In(tlp_stream(width)),
            "rx_out": Out(tlp_stream(width)),
            "tx_in": In(tlp_stream(width)),
            "tx_out": Out(tlp_stream(width)),
            "start": In(1),
            "write": In(1),
            "addr": In(10),
            "be": In(4),
            "wdata": In(32),
            "rid": In(16),
            "busy": Out(1),
            "is_write": Out(1),
            "answer": Out(1),
            "rdata": Out(32),
        })

    def elaborate(self, platform):
        m = Module()
        lanes = self.width // 32
        wr = self.is_write
        addr = Signal(10)
        wdata = Signal(32)
        be = Signal(4)
        rid = Signal(16)
        pending = Signal()        # captured, not yet injected
        with m.If(self.start & ~self.busy):
            m.d.sync += [wr.eq(self.write), addr.eq(self.addr), wdata.eq(self.wdata),
                         be.eq(self.be), rid.eq(self.rid), pending.eq(1), self.busy.eq(1)]

        # ---- the injected TLP: one beat ----
        ft = Mux(wr, FmtType.CFGWR0, FmtType.CFGRD0)
        inj = Cat(Cat(Const(1, 10), Const(0, 14), ft),
                  Cat(be, Const(0, 4), Const(self.tag, 8), rid),
                  Cat(Const(0, 2), addr, Const(0, 4), rid), wdata,
                  Const(0, self.width - 128))

        # ---- rx merge at TLP boundaries ----
        rin, rout = self.rx_in, self.rx_out
        in_tlp = Signal()          # a TLP from rx_in is half through
        with m.If(pending & ~in_tlp & ~(rin.valid & ~rin.payload.first)):
            m.d.comb += [rout.valid.eq(1), rout.payload.data.eq(inj),
                         rout.payload.keep.eq(Mux(wr, 0b1111, 0b0111)),
                         rout.payload.first.eq(1), rout.payload.last.eq(1)]
            with m.If(rout.ready):
                m.d.sync += pending.eq(0)
        with m.Else():
            m.d.comb += [rout.valid.eq(rin.valid), rout.payload.eq(rin.payload),
                         rin.ready.eq(rout.ready)]
            with m.If(rin.valid & rin.ready):
                m.d.sync += in_tlp.eq(~rin.payload.last)

        # ---- tx filter: the completion of the injected request ----
        tin, tout = self.tx_in, self.tx_out
        d = [tin.payload.data[32 * k:32 * k + 32] for k in range(min(lanes, 4))]
        cft = d[0][24:32]
        is_cpl = (cft == FmtType.CPL) | (cft == FmtType.CPLD)
        mine = (tin.payload.first & is_cpl & (d[2][16:32] == rid) & (d[2][8:16] == self.tag)
                & self.busy & ~pending)
        out_tlp = Signal()
        m.d.sync += self.answer.eq(0)
        with m.If(mine & ~out_tlp):
            m.d.comb += tin.ready.eq(1)
            with m.If(tin.valid):
                ok = (cft == FmtType.CPLD) & (d[1][13:16] == 0)
                m.d.sync += [self.rdata.eq(Mux(ok, d[3], 0)), self.answer.eq(1),
                             self.busy.eq(0)]
        with m.Else():
            m.d.comb += [tout.valid.eq(tin.valid), tout.payload.eq(tin.payload),
                         tin.ready.eq(tout.ready)]
            with m.If(tin.valid & tin.ready):
                m.d.sync += out_tlp.eq(~tin.payload.last)
        return m
