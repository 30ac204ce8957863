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

__all__ = ["SkidBuffer", "RegisterSlice"]


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


class RegisterSlice(wiring.Component):
    """Pipeline register for a stream: one cycle of latency, full throughput, and neither
    ``valid``/``payload`` nor ``ready`` pass through combinationally (both sides see only flip-flops
    of this block).

    ``o`` is the output register; a second register takes the transfer that arrives in the cycle
    the sink refuses ``o`` (``i.ready`` is registered: it is low only while that register is full).
    A transfer accepted on ``i`` in cycle t is offered on ``o`` from cycle t+1.  Order is kept.
    Used by the pipelined build (``params.pipelined``) to cut the ``ready`` chains and the decode
    paths between the transaction-layer blocks.
    """

    def __init__(self, shape):
        super().__init__({"i": In(stream.Signature(shape)), "o": Out(stream.Signature(shape))})

    def elaborate(self, platform):
        m = Module()
        i, o = self.i, self.o
        full = Signal()
        buf = Signal.like(i.payload)
        m.d.comb += i.ready.eq(~full)
        with m.If(~o.valid | o.ready):
            m.d.sync += [o.valid.eq(full | i.valid), o.payload.eq(Mux(full, buf, i.payload)),
                         full.eq(0)]
        with m.Elif(i.valid & ~full):
            m.d.sync += [full.eq(1), buf.eq(i.payload)]
        return m
