"""Round-robin choice of the next virtqueue with work (the engine's scheduler; VIRTIO 1.3 2.7).

Combinational: ``queue`` is the lowest candidate above ``last`` if there is one, else the lowest
candidate; ``valid`` when any bit of ``candidates`` is set.  So every queue with work is served
within ``num_queues`` visits, whatever the others do.
"""
from amaranth.hdl import Module, Mux, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

__all__ = ["QueuePicker"]


class QueuePicker(wiring.Component):
    """candidates : In(n), one bit per queue.  last : In(16), the queue served last.
    valid / queue : Out, the pick (combinational, same cycle)."""

    def __init__(self, n):
        if not 1 <= n <= 64:
            raise ValueError(f"queue picker serves 1..64 queues, not {n!r}")
        self._n = n
        super().__init__({"candidates": In(n), "last": In(16), "valid": Out(1), "queue": Out(16)})

    def elaborate(self, platform):
        m = Module()
        n = self._n
        cand = self.candidates
        above = Signal(n)
        for i in range(n):
            m.d.comb += above[i].eq(cand[i] & (self.last < i))
        lo_any = Signal(16)
        lo_above = Signal(16)
        for i in reversed(range(n)):
            with m.If(cand[i]):
                m.d.comb += lo_any.eq(i)
            with m.If(above[i]):
                m.d.comb += lo_above.eq(i)
        m.d.comb += [self.valid.eq(cand.any()), self.queue.eq(Mux(above.any(), lo_above, lo_any))]
        return m
