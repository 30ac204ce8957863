"""Interrupt delivery: virtio events to MSI-X messages, PBA bits, ISR bits and INTx messages.

VIRTIO 1.3 sections 4.1.5.3 and 4.1.5.4 (used-buffer and configuration-change notifications),
4.1.4.5 (ISR); PCI Local Bus 3.0 section 6.8.2 (MSI-X: Function Mask, per-vector Mask, Pending
Bits); PCI Express Base 4.0 section 2.2.8.1 (Assert_INTA / Deassert_INTA messages).

* An event (a queue's used-buffer notification, or a configuration change) sets its ISR bit when
  it must: bit 1 for every configuration change (ISR-02), bit 0 only while MSI-X is disabled
  (ISR-03; with MSI-X the ISR is unused, DESIGN.md section 7).
* With MSI-X enabled the event's vector (config_msix_vector or the queue's queue_msix_vector, read
  when the event arrives) selects a table entry.  NO_VECTOR or a vector past the table sends
  nothing (MSX-05, MSX-10, MSX-11).  A deliverable vector (Function Mask clear, its Mask bit clear,
  Bus Master Enable set) is sent as a memory write with the entry's address and data: a 3-DW header
  when the upper address is 0, 4-DW otherwise.  Otherwise, or while the sender is busy, the
  vector's pending bit is set; pending deliverable vectors are sent round robin (starting after the
  vector sent last, so a vector whose events never stop starves no other) before any new event,
  each once, and sending a vector clears its pending bit: a message covers every event of its
  vector that arrived before it was started (MSX-D1).  A configuration change signalled by
  common_cfg (``config_event``) marks the configuration vector pending at once.
* With MSI-X disabled, INTx follows the ISR: Assert_INTA is sent when ISR becomes non-zero and
  Interrupt Disable is clear, Deassert_INTA when that stops being true (a read clearing the ISR,
  Interrupt Disable set, MSI-X enabled) (ISR-04, ISR-05).

Timing: from a request accepted (or a ``config_event``) at cycle 0, with nothing pending and the
sender free, the MSI-X write's first chunk is offered on the chunk port at cycle 2 and its first
beat on the endpoint's ``tx`` at cycle 3.  ``req`` is always ready: events are never lost,
repeated events for a pending vector coalesce as the PCI rules allow.
"""
from amaranth.hdl import Cat, Const, Module, Mux, Signal
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from ..tlp.layouts import FmtType, MsgCode
from ..tlp.packer import ChunkLayout
from ..virtio.common_cfg import NO_VECTOR

__all__ = ["InterruptController", "IrqRequest"]


class IrqRequest(data.Struct):
    """An interrupt request: a used-buffer notification for ``queue``, or a configuration change
    when ``config`` is set."""
    queue: 16
    config: 1

MSG_LOCAL = 0x34     # Msg, routing 100b: local, terminate at receiver (INTx messages)


class InterruptController(wiring.Component):
    """Ports (all inputs are levels sampled every cycle unless stated)
    ------------------------------------------------------------------
    req : In stream of IrqRequest from the back-end, always ready (the caller has already
        dropped requests that are not allowed, see common_cfg.irq_allowed).
    config_event : In pulse: a configuration-change notification is due (common_cfg).
    msix_enable, fmask : MSI-X Enable and Function Mask of the MSI-X capability.
    bme, intx_disable : Command register bits 2 (Bus Master Enable) and 10 (Interrupt Disable).
    requester_id : the function's captured bus/device/function number.
    config_vector : config_msix_vector.
    vrd_addr / vrd_vector : read port into the queue table (queue number of ``req``; vector the
        cycle after).
    masked : per-vector Mask bits of the MSI-X table.
    lookup_vector / lookup_addr, lookup_data : read port into the MSI-X table (entry the cycle
        after).
    pending : Out, the Pending Bit Array.
    isr / set_isr_queue, set_isr_config : the ISR bits, and one-cycle pulses that set them.
    clear : In pulse (virtio reset, Function Level Reset): drop pending bits and a request in
        flight; a message already started finishes, and the INTx state is kept so that an
        asserted INTx is deasserted (the ISR is cleared by the same resets).
    chunk : Out stream of ChunkLayout: the MSI-X write or INTx message TLPs (to a BeatPacker).
    msix_sent : Out pulse, the last chunk of an MSI-X write was accepted.
    intx_asserted : Out, the INTx state the last message announced.
    """

    def __init__(self, params):
        self._p = params
        n = params.msix_vectors
        super().__init__({
            "req": In(stream.Signature(IrqRequest)),
            "config_event": In(1),
            "msix_enable": In(1),
            "fmask": In(1),
            "bme": In(1),
            "intx_disable": In(1),
            "requester_id": In(16),
            "config_vector": In(16),
            "vrd_addr": Out(16),
            "vrd_vector": In(16),
            "masked": In(n),
            "lookup_vector": Out(11),
            "lookup_addr": In(64),
            "lookup_data": In(32),
            "pending": Out(n),
            "isr": In(2),
            "set_isr_queue": Out(1),
            "set_isr_config": Out(1),
            "clear": In(1),
            "chunk": Out(stream.Signature(ChunkLayout)),
            "msix_sent": Out(1),
            "intx_asserted": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        n = self._n = self._p.msix_vectors
        vbits = max(1, (n - 1).bit_length())

        # ---- stage A: accept a back-end request, start the queue-vector read ----
        req = self.req
        m.d.comb += req.ready.eq(1)
        a_valid = Signal()
        a_config = Signal()
        m.d.comb += self.vrd_addr.eq(req.payload.queue)
        m.d.sync += [a_valid.eq(req.valid), a_config.eq(req.payload.config)]
        m.d.comb += [
            self.set_isr_config.eq((req.valid & req.payload.config) | self.config_event),
            self.set_isr_queue.eq(req.valid & ~req.payload.config & ~self.msix_enable),
        ]

        # ---- stage B: resolve the vector; send now or mark pending ----
        vec = Signal(16)
        m.d.comb += vec.eq(Mux(a_config, self.config_vector, self.vrd_vector))
        b_ok = a_valid & self.msix_enable & (vec != NO_VECTOR) & (vec < n)

        pending = Signal(n)
        m.d.comb += self.pending.eq(pending)
        deliverable = Signal(n)
        m.d.comb += deliverable.eq(Mux(self.msix_enable & ~self.fmask & self.bme,
                                       ~self.masked, 0))

        # sender state: one message in flight through the chunk port
        s_valid = Signal()
        s_vec = Signal(vbits)
        s_msg = Signal()             # an INTx message instead of an MSI-X write
        s_msg_code = Signal(8)
        s_second = Signal()          # the 4-DW MSI-X write's data chunk is next
        chunk = self.chunk
        done = chunk.valid & chunk.ready & chunk.payload.last
        free = ~s_valid | done

        b_vec = vec[:vbits]
        b_direct = b_ok & (deliverable >> b_vec)[0]

        # a configuration change from common_cfg (config_changed / needs_reset) marks the
        # configuration vector pending at once; the scan below sends it like any pending vector
        cfg_pend = Signal(n)
        cv = self.config_vector
        with m.If(self.config_event & self.msix_enable & (cv != NO_VECTOR) & (cv < n)):
            m.d.comb += cfg_pend.eq(Const(1, n) << cv[:vbits])

        # pending deliverable vectors are served round robin, starting after the vector sent
        # last, so a vector whose events never stop cannot starve the others
        last_vec = Signal(vbits)
        cand = pending & deliverable
        after = Signal(n)
        m.d.comb += after.eq(cand & Cat(*(last_vec < i for i in range(n))))
        scan_vec = Signal(vbits)
        scan_hit = Signal()
        for c in (cand, after):             # the later assignment wins: "after" first
            for i in reversed(range(n)):
                with m.If(c[i]):
                    m.d.comb += [scan_vec.eq(i), scan_hit.eq(1)]

        intx_want = ~self.msix_enable & ~self.intx_disable & self.isr.any()
        intx_state = Signal()
        m.d.comb += self.intx_asserted.eq(intx_state)

        # Choice when the sender is free: pending vectors first (a new event then waits its turn
        # as a pending bit), else the new event directly (2 cycles to the chunk port), else an
        # INTx change.  A message covers every earlier event of its vector: sending a vector
        # clears its pending bit, also when a new event for it arrives in the same cycle.
        set_pend = Signal(n)
        clr_pend = Signal(n)
        start_vec = Signal(vbits)
        go_scan = free & scan_hit
        go_direct = free & ~scan_hit & b_direct
        with m.If(b_ok & ~go_direct):
            m.d.comb += set_pend.eq(Const(1, n) << b_vec)
        with m.If(go_scan | go_direct):
            m.d.comb += start_vec.eq(Mux(go_scan, scan_vec, b_vec))
            m.d.comb += clr_pend.eq(Const(1, n) << start_vec)
            m.d.sync += [s_valid.eq(1), s_vec.eq(start_vec), s_msg.eq(0), s_second.eq(0),
                         last_vec.eq(start_vec)]
        with m.Elif(free):
            with m.If(intx_want != intx_state):
                m.d.sync += [s_valid.eq(1), s_msg.eq(1), intx_state.eq(intx_want),
                             s_msg_code.eq(Mux(intx_want, MsgCode.ASSERT_INTA,
                                               MsgCode.DEASSERT_INTA))]
            with m.Elif(done):
                m.d.sync += s_valid.eq(0)
        m.d.sync += pending.eq((pending | set_pend | cfg_pend) & ~clr_pend)
        with m.If(self.clear):
            m.d.sync += [pending.eq(0), a_valid.eq(0)]
        m.d.comb += self.lookup_vector.eq(Mux(s_valid & ~done, s_vec, start_vec))

        # ---- the TLP ----
        addr = self.lookup_addr
        four = addr[32:].any()
        rid = self.requester_id
        with m.If(s_msg):
            m.d.comb += [
                chunk.payload.dw[0].eq(MSG_LOCAL << 24),
                chunk.payload.dw[1].eq(Cat(s_msg_code, Const(0, 8), rid)),
                chunk.payload.dw[2].eq(0),
                chunk.payload.dw[3].eq(0),
                chunk.payload.n.eq(4),
                chunk.payload.first.eq(1),
                chunk.payload.last.eq(1),
            ]
        with m.Elif(~s_second):
            m.d.comb += [
                chunk.payload.dw[0].eq(Cat(Const(1, 10), Const(0, 14),
                                           Mux(four, FmtType.MWR64, FmtType.MWR32))),
                chunk.payload.dw[1].eq(Cat(Const(0xF, 4), Const(0, 4), Const(0, 8), rid)),
                chunk.payload.dw[2].eq(Mux(four, addr[32:], Cat(Const(0, 2), addr[2:32]))),
                chunk.payload.dw[3].eq(Mux(four, Cat(Const(0, 2), addr[2:32]), self.lookup_data)),
                chunk.payload.n.eq(4),
                chunk.payload.first.eq(1),
                chunk.payload.last.eq(~four),
            ]
        with m.Else():
            m.d.comb += [chunk.payload.dw[0].eq(self.lookup_data), chunk.payload.n.eq(1),
                         chunk.payload.last.eq(1)]
        m.d.comb += chunk.valid.eq(s_valid)
        with m.If(chunk.valid & chunk.ready & ~chunk.payload.last):
            m.d.sync += s_second.eq(1)
        m.d.comb += self.msix_sent.eq(done & ~s_msg)
        return m

