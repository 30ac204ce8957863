"""Zero-latency skid buffer for a stream (a one-entry buffer that never adds a cycle).

While empty it passes a transfer straight through; when the sink refuses it, it keeps it and
offers it first from the next cycle, and tells the source the transfer was taken (``i.ready`` is
a register: the buffer is empty).  Uses: the sink's ``ready`` no longer reaches the source
combinationally, and an offer the buffer holds survives a reset of the source (the top level
keeps it out of the Function Level Reset, so a queue event already offered to the back-end is
never withdrawn, as the stream rules require).
"""
from amaranth.hdl import Module, Mux, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

__all__ = ["SkidBuffer"]


class SkidBuffer(wiring.Component):
    def __init__(self, shape):
        super().__init__({"i": In(stream.Signature(shape)), "o": Out(stream.Signature(shape))})

    def elaborate(self, platform):
        m = Module()
        i, o = self.i, self.o
        full = Signal()
        buf = Signal.like(i.payload)
        m.d.comb += [
            i.ready.eq(~full),
            o.valid.eq(full | i.valid),
            o.payload.eq(Mux(full, buf, i.payload)),
        ]
        with m.If(full):
            with m.If(o.ready):
                m.d.sync += full.eq(0)
        with m.Elif(i.valid & ~o.ready):
            m.d.sync += [full.eq(1), buf.eq(i.payload)]
        return m
