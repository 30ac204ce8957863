"""Request dispatcher: DW operations to register blocks, read data to completion chunks.

PCI Express Base 4.0 section 2.2.9 (completion header: completer ID, status, byte count, lower
address) and DESIGN.md section 2 (config handler and MMIO/IO handler).

Two pipeline stages:

* S1 is the operation register of the depacketizer.  Its address is decoded to one target (the
  configuration space, one structure of the memory BAR, or the I/O BAR); the access is made on
  that target's register bus when the target is ready and S2 has room.  Addresses inside the BAR
  that no structure covers read 0 and ignore writes.  While ``mute`` is high (NTL-01) every BAR
  access is treated that way; configuration space is unaffected.
* S2 holds the operation whose read data comes back from the target; it hands the completion
  header and data to the beat packer as one chunk.

Timing: an operation in S1 at cycle t makes its access at t (when not stalled), its completion
chunk is offered at t+1 and its beat is on ``tx`` at t+2.  With the depacketizer's register the
answer to a single-DW read starts 3 cycles after the request's last beat.

Ordering (PCIe Base 2.4.1, Table 2-40: posted requests must be able to pass non-posted ones):
S2 does not hand its chunk to the packer directly but through a completion queue of
``cpl_depth`` chunks (LUT RAM; an empty queue is bypassed, so the latency above is unchanged).
An operation that needs a completion is accepted in S1 only while the queue has room for its
chunk, so S2 never waits and posted writes keep flowing while ``tx`` is held: up to
``cpl_depth`` completion chunks (one per DW read; a single-DW read or any configuration / I/O
request is one chunk) are buffered, beyond that the next non-posted operation waits in S1 and
so does what follows it.  Operations still execute in arrival order; only completions wait.

No stuck party wedges the function (DESIGN.md section 4): with ``timeout`` = T, an operation whose
target keeps ``ready`` low for T cycles (a back-end that does not take a doorbell, an external
device-config back-end that does not answer, a legacy access waiting for a ``reset_ack`` that
never comes) is *abandoned*: it leaves S1 without an access, a read completes with data 0 (status
SC: the completion is already framed when an access of a multi-DW read times out), a write is
dropped, and ``abandon`` pulses (the top level counts it and sets DEVICE_NEEDS_RESET).  That
target is then *stuck*: later operations to it that find it not ready are abandoned at once,
without waiting T again, until it shows life: its ``ready`` is high, or its bit of ``alive`` is
(a request/response target whose ``ready`` needs an access: the device-config port, once the
back-end took and answered the abandoned request; the legacy header, whose accesses reach four
blocks, when it presents a device-config access and that port is idle, so that a reset wait
given up does not give up a healthy device-config back-end).  An operation whose target shows
life in its first cycle waits up to T again.  So every operation leaves S1 within
T cycles, and configuration requests behind back-end accesses always make progress.
"""
from amaranth.hdl import Cat, Const, Module, Mux, Signal
from amaranth.lib import memory, stream, wiring
from amaranth.lib.wiring import In, Out

from ..regbus import RegBusSignature
from .layouts import CplDW1, CplDW2, FmtType, HdrDW0, OpLayout, Space
from .packer import ChunkLayout

__all__ = ["Dispatcher", "Target"]


class Target:
    """A register block reached through the dispatcher.

    ``space``: ``Space.CFG``, ``Space.MEM`` or ``Space.IO``; ``base``/``span``: DW offset and DW
    span inside that space (span a power of two, base aligned to it); ``addr_width``: bits of the
    block's own DW address.
    """

    def __init__(self, name, space, base, span, addr_width=None):
        if span & (span - 1):
            raise ValueError(f"target {name}: span must be a power of two, not {span}")
        if base % span:
            raise ValueError(f"target {name}: base must be aligned to its span")
        self.name = name
        self.space = space
        self.base = base
        self.span = span
        self.addr_width = addr_width or max(1, (span - 1).bit_length())


class Dispatcher(wiring.Component):
    """``timeout``: cycles an operation may wait for a target before it is abandoned (None: it
    waits for ever).  ``abandon``: Out pulse, an operation was abandoned this cycle.  ``alive``:
    In, one bit per target (in ``targets`` order): that target answers again (clears *stuck*).
    ``cpl_depth``: completion chunks buffered while ``chunk`` is not ready (see above)."""

    def __init__(self, op_addr_width, targets, timeout=None, cpl_depth=8):
        self._targets = list(targets)
        if not 1 <= cpl_depth <= 256:
            raise ValueError(f"completion queue depth must be 1..256 chunks, not {cpl_depth!r}")
        self._cpl_depth = cpl_depth
        if timeout is not None and not 2 <= timeout <= 1 << 20:
            raise ValueError(f"dispatcher timeout must be 2..{1 << 20} cycles, not {timeout!r}")
        self._timeout = timeout
        members = {
            "op": In(stream.Signature(OpLayout(op_addr_width))),
            "chunk": Out(stream.Signature(ChunkLayout)),
            "completer_id": In(16),
            "mute": In(1),
            "abandon": Out(1),
            "alive": In(len(self._targets)),
        }
        for t in self._targets:
            members[f"t_{t.name}"] = Out(RegBusSignature(t.addr_width))
        super().__init__(members)

    def bus(self, name):
        return getattr(self, f"t_{name}")

    def elaborate(self, platform):
        m = Module()
        op = self.op
        o = op.payload
        n = len(self._targets)

        # ---- S1: decode and access ----
        hit = Signal(n)
        for i, t in enumerate(self._targets):
            lo = t.base
            bits = (t.span - 1).bit_length()
            muted = self.mute if t.space != Space.CFG else Const(0, 1)
            m.d.comb += hit[i].eq((o.space == t.space) & ((o.addr >> bits) == (lo >> bits))
                                  & ~muted)
        tgt_ready = Signal()
        m.d.comb += tgt_ready.eq(1)
        for i, t in enumerate(self._targets):
            b = self.bus(t.name)
            m.d.comb += [
                b.addr.eq(o.addr[:t.addr_width]),
                b.write.eq(o.write),
                b.be.eq(o.be),
                b.wdata.eq(o.data),
            ]
            with m.If(hit[i]):
                m.d.comb += tgt_ready.eq(b.ready)

        s2_valid = Signal()
        s2_need = Signal()
        s2_start = Signal()
        s2_end = Signal()
        s2_cpl = Signal(o.cpl.shape())
        s2_tgt = Signal(range(n + 1))
        s2_rshift = Signal(2)
        s2_rlen = Signal(2)
        chunk = stream.Signature(ChunkLayout).create(path=("s2c",))   # S2 -> completion queue
        s2_free = ~s2_valid | ~s2_need | (chunk.valid & chunk.ready)
        # ---- completion queue (see the module docstring) ----
        K = self._cpl_depth
        m.submodules.cplq = cplq = memory.Memory(shape=ChunkLayout, depth=K, init=[])
        q_wr = cplq.write_port()
        q_rd = cplq.read_port(domain="comb")
        q_count = Signal(range(K + 1))
        q_head = Signal(range(K))
        q_tail = Signal(range(K))
        out = self.chunk
        m.d.comb += [
            out.valid.eq((q_count != 0) | chunk.valid),
            q_rd.addr.eq(q_head),
            out.payload.eq(Mux(q_count != 0, q_rd.data, chunk.payload)),
            chunk.ready.eq(q_count < K),
        ]
        enq = chunk.valid & chunk.ready & ~((q_count == 0) & out.ready)
        deq = (q_count != 0) & out.ready
        m.d.comb += [q_wr.addr.eq(q_tail), q_wr.data.eq(chunk.payload), q_wr.en.eq(enq)]
        with m.If(enq):
            m.d.sync += q_tail.eq(Mux(q_tail == K - 1, 0, q_tail + 1))
        with m.If(deq):
            m.d.sync += q_head.eq(Mux(q_head == K - 1, 0, q_head + 1))
        m.d.sync += q_count.eq(q_count + enq - deq)
        # room for the chunk of an operation accepted now (it enters the queue next cycle); S2's
        # chunk counted as queued even when it bypasses, so that tx's ready stays off this path
        cpl_room = Signal()
        m.d.comb += cpl_room.eq(q_count + chunk.valid < K)

        # an operation that needs a completion goes only when its chunk has room (no access before)
        can_issue = Signal()
        m.d.comb += can_issue.eq(s2_free & (~o.need_cpl | cpl_room))

        # ---- bounded wait (see the module docstring) ----
        abandon = Signal()
        if self._timeout is not None:
            T = self._timeout
            waited = Signal(range(T))
            stuck = Signal(n)        # one flag per target
            waiting = op.valid & can_issue & ~tgt_ready
            # a target that shows life in this very cycle (``alive``: e.g. the legacy header
            # presenting a device-config access while that port is idle) is waited for again
            hit_stuck = (hit & stuck & ~self.alive).any()
            m.d.comb += abandon.eq(waiting & ((waited == T - 1) | hit_stuck))
            with m.If(waiting & ~abandon):
                m.d.sync += waited.eq(waited + 1)
            with m.Else():
                m.d.sync += waited.eq(0)
            alive = Signal(n)
            m.d.comb += alive.eq(self.alive | Cat(*(self.bus(t.name).ready
                                                    for t in self._targets)))
            with m.If(abandon):
                m.d.sync += stuck.eq(stuck | hit)
            with m.Else():
                m.d.sync += stuck.eq(stuck & ~alive)
        m.d.comb += self.abandon.eq(abandon)

        m.d.comb += op.ready.eq(can_issue & (tgt_ready | abandon))
        for i, t in enumerate(self._targets):
            m.d.comb += self.bus(t.name).en.eq(op.valid & can_issue & hit[i])

        with m.If(s2_free):
            m.d.sync += s2_valid.eq(0)
        with m.If(op.valid & op.ready):
            m.d.sync += [
                s2_valid.eq(1),
                s2_need.eq(o.need_cpl),
                s2_start.eq(o.cpl_start),
                s2_end.eq(o.cpl_end),
                s2_cpl.eq(o.cpl),
                s2_tgt.eq(n),
                s2_rshift.eq(o.rshift),
                s2_rlen.eq(o.rlen),
            ]
            for i in range(n):
                with m.If(hit[i] & ~abandon):       # abandoned: no target, reads 0
                    m.d.sync += s2_tgt.eq(i)

        # ---- S2: read data and completion chunk ----
        raw = Signal(32)
        with m.Switch(s2_tgt):
            for i, t in enumerate(self._targets):
                with m.Case(i):
                    m.d.comb += raw.eq(self.bus(t.name).rdata)
            with m.Default():
                m.d.comb += raw.eq(0)
        rdata = Signal(32)
        shifted = raw >> Cat(Const(0, 3), s2_rshift)
        lmask = Signal(32)
        with m.Switch(s2_rlen):
            for k, v in ((0, 0xFFFF_FFFF), (1, 0xFF), (2, 0xFFFF), (3, 0xFF_FFFF)):
                with m.Case(k):
                    m.d.comb += lmask.eq(v)
        m.d.comb += rdata.eq(shifted & lmask)

        c = s2_cpl
        h0 = HdrDW0(Signal(32, name="cpl_dw0"))
        h1 = CplDW1(Signal(32, name="cpl_dw1"))
        h2 = CplDW2(Signal(32, name="cpl_dw2"))
        m.d.comb += [
            h0.fmt_type.eq(Mux(c.has_data, Mux(c.locked, FmtType.CPLDLK, FmtType.CPLD),
                               Mux(c.locked, FmtType.CPLLK, FmtType.CPL))),
            h0.tc.eq(c.tc),
            h0.attr.eq(c.attr[:2]),
            h0.attr2.eq(c.attr[2]),
            h0.length.eq(c.length),
            h0.t8.eq(c.tag[8]),
            h0.t9.eq(c.tag[9]),
            h1.completer_id.eq(self.completer_id),
            h1.status.eq(c.status),
            h1.byte_count.eq(c.byte_count),
            h2.requester_id.eq(c.requester_id),
            h2.tag.eq(c.tag[:8]),
            h2.lower_addr.eq(c.lower_addr),
        ]
        m.d.comb += [
            chunk.valid.eq(s2_valid & s2_need),
            chunk.payload.first.eq(s2_start),
            chunk.payload.last.eq(s2_end),
        ]
        with m.If(s2_start):
            m.d.comb += [
                chunk.payload.dw[0].eq(h0.as_value()),
                chunk.payload.dw[1].eq(h1.as_value()),
                chunk.payload.dw[2].eq(h2.as_value()),
                chunk.payload.dw[3].eq(rdata),
                chunk.payload.n.eq(Mux(c.has_data, 4, 3)),
            ]
        with m.Else():
            m.d.comb += [chunk.payload.dw[0].eq(rdata), chunk.payload.n.eq(1)]
        return m
