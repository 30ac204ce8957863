"""PCI configuration access capability window (VIRTIO 1.3 section 4.1.4.9).

Sits on the operation stream between the depacketizer and the dispatcher and rewrites the
configuration accesses to ``pci_cfg_data``:

* a CfgWr updates ``pci_cfg_data`` (byte enables honoured) and, when the window is valid,
  becomes a memory write of ``cap.length`` bytes at ``cap.offset`` using the first bytes of
  ``pci_cfg_data`` (PCC-02);
* a CfgRd, when the window is valid, becomes a memory read of ``cap.length`` bytes at
  ``cap.offset``; those bytes are returned in the first ``cap.length`` bytes of the completion,
  the others read 0 (PCC-03).  Side effects are those of a memory access (an ISR read clears it,
  a notify write rings the doorbell).

A window is valid when ``length`` is 1, 2 or 4, ``offset`` is a multiple of it, ``bar`` is the
memory BAR (the capability's ``bar`` is honoured, DESIGN.md section 7) and the bytes lie inside
one virtio structure (common, notify, ISR, device), and ``enable`` is high (the top level clears it
in D3hot, where the function serves no memory access).  Otherwise a write does nothing beyond storing
``pci_cfg_data`` and a read returns 0 (DRV-14).

Timing: no added latency.  The window's validity and rewritten address, byte enables and lane are
computed from the capability registers into registers (the 32-bit range checks are kept off the
request path); after a configuration write to the capability's ``bar``/``offset``/``length`` DWs
the window holds the next operation for one cycle so that it sees the new values.
"""
from amaranth.hdl import Cat, Const, Module, Mux, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from ..regbus import byte_mask
from ..tlp.layouts import OpLayout, Space

__all__ = ["PciCfgWindow"]


class PciCfgWindow(wiring.Component):
    def __init__(self, params, addr_width, data_dword):
        self._p = params
        self._dw = data_dword
        super().__init__({
            "i": In(stream.Signature(OpLayout(addr_width))),
            "o": Out(stream.Signature(OpLayout(addr_width))),
            "cap_bar": In(8),
            "cap_offset": In(32),
            "cap_length": In(32),
            "enable": In(1, init=1),
            "data": Out(32),
        })

    def elaborate(self, platform):
        m = Module()
        p = self._p
        i, o = self.i, self.o
        op = i.payload
        stored = Signal(32)
        # a write to the capability's bar / offset / length DWs: the registers below are stale
        # for one cycle
        stale = Signal()
        dw = self._dw
        m.d.sync += stale.eq(i.valid & i.ready & (op.space == Space.CFG) & op.write
                             & (op.addr >= dw - 3) & (op.addr < dw))
        m.d.comb += [o.valid.eq(i.valid & ~stale), i.ready.eq(o.ready & ~stale), o.payload.eq(op),
                     self.data.eq(stored)]

        off, ln = self.cap_offset, self.cap_length
        len_ok = (ln == 1) | (ln == 2) | (ln == 4)
        aligned = (off & (ln - 1)) == 0
        inside = Signal()
        for name in ("common", "notify", "isr", "device"):
            r = p.regions[name]
            with m.If((off >= r.offset) & ((off + ln) <= (r.offset + r.length))):
                m.d.comb += inside.eq(1)
        valid = Signal()
        m.d.sync += valid.eq(len_ok & aligned & inside & (self.cap_bar == p.mem_bar))

        hit = (op.space == Space.CFG) & (op.addr == self._dw)
        bm = byte_mask(op.be)
        merged = Signal(32)
        m.d.comb += merged.eq((stored & ~bm) | (op.data & bm))
        lane = Signal(2)
        lenmask = Signal(4)
        waddr = Signal(len(op.addr))
        rlen = Signal(2)
        m.d.sync += [lane.eq(off[:2]), lenmask.eq(Mux(ln == 4, 0b1111, Mux(ln == 2, 0b0011, 0b0001))),
                     waddr.eq(off[2:]), rlen.eq(ln[:2])]
        with m.If(hit):
            with m.If(valid & self.enable):
                m.d.comb += [
                    o.payload.space.eq(Space.MEM),
                    o.payload.addr.eq(waddr),
                    o.payload.be.eq(lenmask << lane),
                    o.payload.data.eq(merged << Cat(Const(0, 3), lane)),
                    o.payload.rshift.eq(lane),
                    o.payload.rlen.eq(rlen),
                ]
            with m.Else():
                m.d.comb += o.payload.space.eq(Space.NONE)
            with m.If(i.valid & i.ready & op.write):
                m.d.sync += stored.eq(merged)
        return m
