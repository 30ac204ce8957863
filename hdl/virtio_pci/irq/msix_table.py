"""MSI-X table and Pending Bit Array storage (PCI Local Bus 3.0 section 6.8.2).

Table entries (message address low/high, data, vector control) live in block RAM and take any
byte enables; the per-vector Mask bits are flip-flops (reset value 1, masked).  The PBA is
read-only: bit *n* is vector *n*'s pending bit, driven by the delivery logic.  Addresses past the
table or PBA read 0 and ignore writes.  ``lookup_*`` is the delivery logic's read port: entry
valid the cycle after ``lookup_vector``.
"""
from amaranth.hdl import Const, Module, Mux, Signal
from amaranth.lib import memory, wiring
from amaranth.lib.wiring import In, Out

from ..regbus import RegBusSignature

__all__ = ["MsixTable"]


class MsixTable(wiring.Component):
    def __init__(self, params, table_addr_width=10, pba_addr_width=10):
        self._n = params.msix_vectors
        super().__init__({
            "table": In(RegBusSignature(table_addr_width)),
            "pba": In(RegBusSignature(pba_addr_width)),
            "pending": In(self._n),
            "masked": Out(self._n),
            "lookup_vector": In(11),
            "lookup_addr": Out(64),
            "lookup_data": Out(32),
            "mask_changed": Out(1),   # one-cycle pulse when any mask bit was written
        })

    def elaborate(self, platform):
        m = Module()
        n = self._n
        vbits = max(1, (n - 1).bit_length())
        t = self.table
        m.submodules.ram = ram = memory.Memory(shape=32, depth=4 * n, init=[])
        wr = ram.write_port(granularity=8)
        rd = ram.read_port()
        m.submodules.lram = lram = memory.Memory(shape=96, depth=n, init=[])
        lwr = lram.write_port(granularity=8)
        lrd = lram.read_port()

        mask = Signal(n, init=(1 << n) - 1)
        vec = t.addr[2:]
        dw = t.addr[:2]
        in_range = vec < n
        m.d.comb += [t.ready.eq(1), rd.addr.eq(t.addr), rd.en.eq(t.en & ~t.write)]
        sel_dw3 = Signal()
        sel_ok = Signal()
        mask_q = Signal()
        with m.If(t.en & ~t.write):
            m.d.sync += [sel_dw3.eq(dw == 3), sel_ok.eq(in_range),
                         mask_q.eq((mask >> vec[:vbits])[0])]
        m.d.comb += t.rdata.eq(Mux(~sel_ok, 0, Mux(sel_dw3, mask_q, rd.data)))

        we = t.en & t.write & in_range
        m.d.comb += [wr.addr.eq(t.addr), wr.data.eq(t.wdata),
                     wr.en.eq(Mux(we & (dw != 3), t.be, 0))]
        # a copy of address+data, one row per vector, for the delivery logic
        m.d.comb += [lwr.addr.eq(vec), lwr.data.eq(t.wdata.replicate(3))]
        with m.Switch(dw):
            for k in range(3):
                with m.Case(k):
                    m.d.comb += lwr.en.eq(Mux(we, t.be << (4 * k), 0))
        with m.If(we & (dw == 3) & t.be[0]):
            bit = Const(1, n) << vec[:vbits]
            m.d.sync += mask.eq(Mux(t.wdata[0], mask | bit, mask & ~bit))
            m.d.comb += self.mask_changed.eq(1)
        m.d.comb += [lrd.addr.eq(self.lookup_vector[:vbits]),
                     self.lookup_addr.eq(lrd.data[:64]), self.lookup_data.eq(lrd.data[64:96]),
                     self.masked.eq(mask)]

        # ---- PBA ----
        b = self.pba
        words = (n + 31) // 32
        prd = Signal(32)
        m.d.comb += [b.ready.eq(1), b.rdata.eq(prd)]
        with m.If(b.en & ~b.write):
            m.d.sync += prd.eq(0)
            for i in range(words):
                with m.If(b.addr == i):
                    m.d.sync += prd.eq(self.pending[32 * i:32 * i + 32])
        return m
