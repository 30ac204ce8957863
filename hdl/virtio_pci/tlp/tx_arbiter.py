"""Transmit arbiter: several TLP sources share ``tx``, each TLP kept whole.

Round-robin between sources; once a source's beat is presented the grant holds until that TLP's
last beat is accepted, so payloads never change under a stalled ``valid`` (stream rules) and
beats of two TLPs never interleave.  Purely combinational on the data path: it adds no latency.
Sources (in order): completions, MSI-X writes, INTx messages, back-end requests.

``held`` (one bit per source) says the arbiter is locked to that source: its beat was presented
on ``tx`` in an earlier cycle and not taken (``tx`` must keep it), or a TLP of it is between its
first and last beat.  A source whose bit is clear is not on ``tx`` yet (or offered for the first
time this cycle) and may still drop ``valid`` in this cycle (the request engine withdraws an
unsent MRd at an FLR).
"""
from amaranth.hdl import Module, Mux, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from .layouts import tlp_stream

__all__ = ["TxArbiter"]


class TxArbiter(wiring.Component):
    def __init__(self, width, n_sources):
        self._n = n_sources
        members = {f"src{i}": In(tlp_stream(width)) for i in range(n_sources)}
        members["tx"] = Out(tlp_stream(width))
        members["held"] = Out(max(n_sources, 1))
        super().__init__(members)

    def source(self, i):
        return getattr(self, f"src{i}")

    def elaborate(self, platform):
        m = Module()
        n = self._n
        srcs = [self.source(i) for i in range(n)]
        tx = self.tx
        busy = Signal()
        grant = Signal(range(max(n, 2)))
        last_grant = Signal(range(max(n, 2)))

        # round robin: the first valid source after the one granted last
        choice = Signal.like(grant)
        for off in reversed(range(1, n + 1)):
            for g in range(n):
                idx = (g + off) % n
                with m.If((last_grant == g) & srcs[idx].valid):
                    m.d.comb += choice.eq(idx)
        cur = Signal.like(grant)
        m.d.comb += cur.eq(Mux(busy, grant, choice))

        with m.Switch(cur):
            for i, s in enumerate(srcs):
                with m.Case(i):
                    m.d.comb += [tx.valid.eq(s.valid), tx.payload.eq(s.payload),
                                 s.ready.eq(tx.ready)]
        for i in range(n):
            m.d.comb += self.held[i].eq(busy & (grant == i))
        with m.If(tx.valid):
            m.d.sync += [grant.eq(cur), last_grant.eq(cur),
                         busy.eq(~(tx.ready & tx.payload.last))]
        return m
