"""Completion barrier: a completion for a host read does not pass earlier back-end writes.

PCI Express Base Specification 5.0, 2.4.1 (producer-consumer ordering: a completion must not
pass a posted write issued before it, Table 2-40 row D column 2); requirement DMA-16.

Sits between the completion packer and the tx arbiter.  When a completion's first beat is
offered, it takes a snapshot of ``n_ready`` (write requests of the back-end that were accepted
and whose last data beat was accepted, ``WritePacker``) and holds the completion until
``n_done`` (write requests whose MWrs have all been accepted by ``tx``) reaches the snapshot.
Writes whose data the back-end still withholds are not waited for (no stuck back-end wedges
host reads: DESIGN.md section 4), and the writes waited for need nothing but ``tx`` to finish,
so the wait is bounded.  Once a completion's first beat is passed, its other beats follow
unchanged.  Adds no cycle when no write was pending two cycles before (``valid`` passes
combinationally); otherwise the completion leaves two cycles after the writes it waits for
(the decision is made from registers only).
"""
from amaranth.hdl import Module, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from ..tlp.layouts import tlp_stream

__all__ = ["CompletionBarrier"]


class CompletionBarrier(wiring.Component):
    """Ports
    -----
    i : In TLP stream (completions); o : Out TLP stream (to the tx arbiter).
    n_ready, n_done : In(8), the ordering counters of the ``WritePacker`` (modulo 256).
    """

    def __init__(self, width):
        super().__init__({"i": In(tlp_stream(width)), "o": Out(tlp_stream(width)),
                          "n_ready": In(8), "n_done": In(8)})

    def elaborate(self, platform):
        m = Module()
        i, o = self.i, self.o
        armed = Signal()
        target = Signal(8)
        inside = Signal()       # between the first and the last beat of a passed completion
        # Every term of ``ok`` is a register (Fmax: the write counters do not run through the
        # tx arbiter into its sources in the same cycle):
        # * ``quiet``: no write was ready and unanswered two cycles ago (n_ready / n_done are
        #   registers of the write packer, and this is one more).  A completion is offered at
        #   least three cycles after its host request arrived (DESIGN.md 8), so every write
        #   ready before that request is seen;
        # * ``reached``: n_done had reached the snapshot taken when this completion was first
        #   offered, as of the cycle before.
        quiet = Signal()
        reached = Signal()
        m.d.sync += quiet.eq(self.n_ready == self.n_done)
        behind = Signal(8)
        m.d.comb += behind.eq(target - self.n_done)
        m.d.sync += reached.eq(armed & ((behind == 0) | behind[7]))
        offered = Signal()      # the completion was offered on ``o`` and not taken: it stays
        ok = inside | offered | quiet | reached
        with m.If(o.valid & ~o.ready):
            m.d.sync += offered.eq(1)
        with m.If(i.valid & ~inside & ~armed):
            m.d.sync += [armed.eq(1), target.eq(self.n_ready), reached.eq(0)]
        m.d.comb += [o.valid.eq(i.valid & ok), o.payload.eq(i.payload), i.ready.eq(o.ready & ok)]
        with m.If(o.valid & o.ready):
            m.d.sync += [inside.eq(~i.payload.last), armed.eq(0), reached.eq(0), offered.eq(0)]
        return m
