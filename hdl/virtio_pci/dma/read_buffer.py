"""Read buffer of the requester: one slot per tag in block RAM (the read reorder buffer).

PCI Express Base Specification 5.0, 2.3.1.1 (completions of one read return in address order,
those of different tags in any order); requirements DMA-09, DMA-10.

``n_tags`` slots of ``max_read`` bytes; slot ``t`` holds the data of tag ``t``'s MRd at its
address modulo ``max_read``, so a row (W/8 bytes) is aligned in the bus address space.  The
buffer is W/32 banks of 32-bit block RAM: bank ``k`` holds the DWs whose position is ``k``
modulo W/32.  A completion beat, whatever its DW alignment, writes each of its payload DWs to a
different bank in one cycle (``CompletionReassembly`` rotates the lanes); the read-out reads one
row from every bank at once.

Ports
-----
we : In(L), per bank write enable; waddr : In, per bank row; wdata : In(W), per bank DW.
raddr : In, row; ren : In; rdata : Out(W), the row read the cycle after ``ren`` (held while
    ``ren`` is low).
"""
from amaranth.hdl import Cat, Module
from amaranth.lib import data, memory, wiring
from amaranth.lib.wiring import In, Out
from amaranth.utils import ceil_log2

__all__ = ["ReadBuffer"]


class ReadBuffer(wiring.Component):
    def __init__(self, width, n_tags, max_read):
        self.lanes = width // 32
        self.rows = n_tags * max_read // (width // 8)
        self.row_bits = max(ceil_log2(self.rows), 1)
        super().__init__({
            "we": In(self.lanes),
            "waddr": In(data.ArrayLayout(self.row_bits, self.lanes)),
            "wdata": In(width),
            "raddr": In(self.row_bits),
            "ren": In(1),
            "rdata": Out(width),
        })

    def elaborate(self, platform):
        m = Module()
        out = []
        for k in range(self.lanes):
            mem = memory.Memory(shape=32, depth=self.rows, init=[])
            m.submodules[f"bank{k}"] = mem
            wp = mem.write_port()
            rp = mem.read_port()
            m.d.comb += [wp.addr.eq(self.waddr[k]), wp.data.eq(self.wdata[32 * k:32 * k + 32]),
                         wp.en.eq(self.we[k]), rp.addr.eq(self.raddr), rp.en.eq(self.ren)]
            out.append(rp.data)
        m.d.comb += self.rdata.eq(Cat(*out))
        return m
