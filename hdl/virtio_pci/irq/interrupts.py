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
  when the upper address is 0, 4-DW otherwise.  Otherwise, or while the sender is busy, or while
  another deliverable vector is pending, the vector's pending bit is set; pending deliverable
  vectors are sent before any new event, each once, and sending a vector clears its pending bit: a
  message covers every event of its vector that arrived before it was started (MSX-D1).  A
  configuration change signalled by common_cfg (``config_event``) is an event for the
  configuration vector, like a request with ``config`` set.
* With MSI-X disabled, INTx follows the ISR: Assert_INTA is sent when ISR becomes non-zero and
  Interrupt Disable is clear, Deassert_INTA when that stops being true (a read clearing the ISR,
  Interrupt Disable set, MSI-X enabled) (ISR-04, ISR-05).

Structure (so that the logic grows with the number of 32-vector words, not of vectors): the
pending bits are 32-bit words (vector ``v`` is bit ``v % 32`` of word ``v // 32``, the PBA layout)
in two small RAMs, one per writer lane (back-end requests; configuration events), a word being
the OR of both; a word handed back by the scan goes to whichever RAM is not written in that
cycle.  Each word has a flip-flop flag per RAM: a word whose flags are clear reads as zero, so the
scan and the resets empty words by clearing flags, never by writing the RAM.  A lane reads its
vector's word in the cycle it resolves the vector and, in the next, writes it back whole with the
bit set (nothing when the bit is already set).  Each RAM has two read ports: the lane's, and the
scan's, which also serves PBA reads in the cycles where the scan takes no word.  The Mask bits
are kept the same way in the MSI-X table (irq/msix_table.py).
A summary flip-flop per word says the word may hold a pending vector whose Mask bit is clear (set
by such an event, by a Mask bit cleared in a word with pending bits, by a word handed back with an
unmasked vector in it; the scan clears it).

The scan takes the next word whose summary bit is set, round robin after the word it visited
last, out of the RAMs into a register (the cycle after the take it is selected from directly),
and sends that word's pending deliverable vectors lowest first, one per message; events for the
held word are merged into the register and Mask writes followed, and an event for a vector
already sent in this visit waits for the next visit.  When nothing more of the word can be sent,
what is left (masked vectors, new events) is written back as a whole word.  So every pending
deliverable vector is sent within one round over the words: a vector whose events never stop
starves no other.

Timing: from a request accepted (or a ``config_event``) at cycle 0, with nothing pending and the
sender free, the MSI-X write's first chunk is offered on the chunk port at cycle 2 and its first
beat on the endpoint's ``tx`` at cycle 3 (the vector is resolved in cycle 1 and the write started
at its end; the vector's Mask bit, read from the RAM as it was at that edge, is checked in cycle 2
and a masked vector's write is withdrawn before it is offered and its pending bit set instead).
An event that is not sent at once sets its pending bit at the end of cycle 2; a pending vector is
then taken with its word at the end of cycle 3 and its write started at the end of cycle 4 when
the sender is free (first chunk at cycle 5 instead of 2); further vectors of a held word follow
back to back.  ``req`` is always ready: events are never lost,
repeated events for a pending vector coalesce as the PCI rules allow.
"""
from amaranth.hdl import Cat, Const, Module, Mux, Signal
from amaranth.lib import data, memory, stream, wiring
from amaranth.lib.wiring import In, Out

from ..tlp.layouts import FmtType, MsgCode
from ..tlp.packer import ChunkLayout
from ..virtio.common_cfg import NO_VECTOR
from .msix_table import MaskReadSignature, MaskWriteSignature, VectorWords

__all__ = ["InterruptController", "IrqRequest", "first_set"]


class IrqRequest(data.Struct):
    """An interrupt request: a used-buffer notification for ``queue``, or a configuration change
    when ``config`` is set."""
    queue: 16
    config: 1

MSG_LOCAL = 0x34     # Msg, routing 100b: local, terminate at receiver (INTx messages)


def first_set(bits):
    """(found, index) of the lowest set bit of ``bits``: a binary tree, log2(width) levels."""
    w = len(bits)
    if w == 1:
        return bits[0], Const(0, 0)
    half = 1 << ((w - 1).bit_length() - 1)
    lo, hi = bits[:half], bits[half:]
    fl, il = first_set(lo)
    fh, ih = first_set(hi)
    k = (half - 1).bit_length()
    return fl | fh, Mux(fl, il.as_unsigned() if len(il) else Const(0, k),
                        (Cat(ih, Const(0, k - len(ih))) if len(ih) < k else ih) + half)


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
    mask_rd[0], mask_rd[1] : read ports into the Mask-bit words of the MSI-X table (word the
        cycle after the address; port 0 includes a write at that edge, port 1 does not).
    mask_wr : In, the Mask-bit write the MSI-X table does in this cycle.
    lookup_vector / lookup_addr, lookup_data : read port into the MSI-X table (entry the cycle
        after).
    pba_addr / pba_data, pba_ready : a read port into the Pending Bit Array (32-bit word the cycle
        after the word address; no read while ``pba_ready`` is low, in a cycle where the scan
        takes a word).
    pending_any : Out, some vector is pending (the PBA is non-zero, from one cycle after the event).
    isr / set_isr_queue, set_isr_config : the ISR bits, and one-cycle pulses that set them.
    clear : In pulse (virtio reset, Function Level Reset): drop pending bits and requests in
        flight; a message already started finishes, and the INTx state is kept so that an
        asserted INTx is deasserted (the ISR is cleared by the same resets).
    chunk : Out stream of ChunkLayout: the MSI-X write or INTx message TLPs (to a BeatPacker).
    msix_sent : Out pulse, the last chunk of an MSI-X write was accepted.
    intx_asserted : Out, the INTx state the last message announced.
    """

    def __init__(self, params):
        self._p = params
        self.geo = geo = VectorWords(params.msix_vectors)
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
            "mask_rd": Out(MaskReadSignature(geo)).array(2),
            "mask_wr": In(MaskWriteSignature()),
            "lookup_vector": Out(11),
            "lookup_addr": In(64),
            "lookup_data": In(32),
            "pba_addr": In(geo.wbits),
            "pba_data": Out(32),
            "pba_ready": Out(1),
            "pending_any": Out(1),
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
        n = self._p.msix_vectors
        geo = self.geo
        vbits, WB, NW = geo.vbits, geo.width, geo.count
        ones = Const((1 << WB) - 1, WB)
        word, bit, onehot = geo.word, geo.bit, geo.onehot

        def wbit(w):
            return (Const(1, NW) << w)[:NW]

        clear = self.clear
        global_ok = self.msix_enable & ~self.fmask & self.bme

        # ---- stage A: accept a back-end request (start the queue-vector read) or a
        # configuration event (capture the configuration vector) ----
        req = self.req
        m.d.comb += req.ready.eq(1)
        a_valid = Signal()
        a_config = Signal()
        e_valid = Signal()
        e_vec = Signal(16)
        m.d.comb += self.vrd_addr.eq(req.payload.queue)
        m.d.sync += [a_valid.eq(req.valid), a_config.eq(req.payload.config),
                     e_valid.eq(self.config_event), e_vec.eq(self.config_vector)]
        m.d.comb += [
            self.set_isr_config.eq((req.valid & req.payload.config) | self.config_event),
            self.set_isr_queue.eq(req.valid & ~req.payload.config & ~self.msix_enable),
        ]

        # ---- stage B: the two lanes' vectors; send one now, or hand them to stage C ----
        vr = Signal(16)
        m.d.comb += vr.eq(Mux(a_config, self.config_vector, self.vrd_vector))
        r_ok = a_valid & self.msix_enable & (vr != NO_VECTOR) & (vr < n)
        c_ok = e_valid & self.msix_enable & (e_vec != NO_VECTOR) & (e_vec < n)

        # sender state: one message in flight through the chunk port
        s_valid = Signal()
        s_vec = Signal(vbits)
        s_msg = Signal()             # an INTx message instead of an MSI-X write
        s_msg_code = Signal(8)
        s_second = Signal()          # the 4-DW MSI-X write's data chunk is next
        s_tent = Signal()            # started directly: its Mask bit is checked this cycle
        s_new = Signal()             # an MSI-X write was started at the last edge
        chunk = self.chunk
        done = chunk.valid & chunk.ready & chunk.payload.last

        # ---- stage C registers: the events decided at the last edge ----
        cr_valid, cr_direct = Signal(), Signal()
        ce_valid, ce_direct = Signal(), Signal()
        cr_vec, ce_vec = Signal(vbits), Signal(vbits)
        mw_valid, mw_vec, mw_value = Signal(), Signal(vbits), Signal()   # last cycle's Mask write
        m.d.sync += [mw_valid.eq(self.mask_wr.valid), mw_vec.eq(self.mask_wr.vector[:vbits]),
                     mw_value.eq(self.mask_wr.value)]
        # the Mask bit of the vector started directly (or of the request lane's vector) as it was
        # at the decision edge (port 1 is not transparent: a flip-flop's view), and as it is now
        cm_vec = Mux(cr_valid, cr_vec, ce_vec)
        m_dec = (self.mask_rd[1].data >> bit(cm_vec))[0]
        m_now = Mux(mw_valid & (mw_vec == cm_vec), mw_value, m_dec)
        cancel = s_tent & m_dec      # the direct start was for a masked vector: not sent
        free = ~s_valid | done | cancel

        # ---- pending storage: 32-bit words in two RAMs, one per writer lane (the request lane
        # writes ``pr``, the configuration lane ``pc``; a word the scan hands back goes to
        # whichever is free).  A word reads as zero unless its flag in ``wvr``/``wvc`` is set:
        # the scan and the resets clear words by dropping the flag, never by writing. ----
        m.submodules.pr = pr = memory.Memory(shape=WB, depth=geo.depth, init=[])
        m.submodules.pc = pc = memory.Memory(shape=WB, depth=geo.depth, init=[])
        prw = pr.write_port()
        pcw = pc.write_port()
        wvr = Signal(NW)
        wvc = Signal(NW)
        summ = Signal(NW)            # per word: may hold a pending vector whose Mask bit is clear

        def rport(mem, wp, addr):
            """Transparent read of a pending word: data the cycle after ``addr``, zero when its
            flag is clear (the flag as it is after that edge)."""
            p = mem.read_port(transparent_for=(wp,))
            a_q = Signal(geo.wbits)
            m.d.comb += p.addr.eq(addr)
            m.d.sync += a_q.eq(addr)
            return p.data, a_q

        # ---- the scan: one word at a time is taken out of the RAMs into ``held_p`` (its flags
        # cleared), its pending deliverable vectors are sent lowest first, events for it are
        # merged into it meanwhile, and what is left is written back when done ----
        holding = Signal()
        loading = Signal()           # first cycle of a hold: the word comes from the RAMs
        hw = Signal(geo.wbits)
        held_p = Signal(WB)
        held_m = Signal(WB)
        ptr = Signal(range(WB + 1))  # bits >= ptr are still to be served in this visit
        last_w = Signal(geo.wbits)
        t_r = Signal()               # the taken word's flags (with a write at the take edge)
        t_c = Signal()
        take_w = Signal(geo.wbits)
        take = Signal()
        # one port per RAM for the scan's takes and, in the other cycles, for PBA reads
        t_addr = Signal(geo.wbits)
        m.d.comb += [t_addr.eq(Mux(take, take_w, self.pba_addr)), self.pba_ready.eq(~take)]
        pr_t, pa_q = rport(pr, prw, t_addr)
        pc_t, _ = rport(pc, pcw, t_addr)
        loaded = Mux(t_r, pr_t, 0) | Mux(t_c, pc_t, 0)
        hp0 = Signal(WB)
        hm0 = Signal(WB)
        m.d.comb += [hp0.eq(Mux(loading, loaded, held_p)),
                     hm0.eq(Mux(loading, self.mask_rd[0].data, held_m)),
                     self.mask_rd[0].addr.eq(take_w)]
        above = (ones << ptr)[:WB]
        elig = Signal(WB)
        m.d.comb += elig.eq(Mux(holding, hp0 & ~hm0 & above, 0))
        pick_found, pick_i = first_set(elig)
        pick = Signal(geo.bbits)
        m.d.comb += pick.eq(pick_i)
        held_deliv = holding & (hp0 & ~hm0).any()

        # new events of stage C that will become pending and whose vector is unmasked
        c_pend = (cr_valid & ~cr_direct & ~m_now) | (ce_valid & ~ce_direct)
        pend_first = summ.any() | held_deliv | c_pend

        # Choice when the sender is free: a pending vector first (a new event then waits its turn
        # as a pending bit), else a new event directly (request lane first), else an INTx change.
        go_scan = free & global_ok & pick_found
        go_direct = free & ~go_scan & global_ok & ~pend_first & (r_ok | c_ok)
        d_vec = Mux(r_ok, vr, e_vec)[:vbits]
        start_vec = Signal(vbits)
        scan_vec = Cat(pick, hw) if NW > 1 else pick
        m.d.comb += start_vec.eq(Mux(go_scan, scan_vec, d_vec))
        starting = go_scan | go_direct

        intx_want = ~self.msix_enable & ~self.intx_disable & self.isr.any()
        intx_state = Signal()
        m.d.comb += self.intx_asserted.eq(intx_state)
        m.d.sync += [s_tent.eq(0), s_new.eq(0)]
        with m.If(starting):
            m.d.sync += [s_valid.eq(1), s_vec.eq(start_vec), s_msg.eq(0), s_second.eq(0),
                         s_tent.eq(go_direct), s_new.eq(1)]
        with m.Elif(free):
            with m.If(intx_want != intx_state):
                m.d.sync += [s_valid.eq(1), s_msg.eq(1), intx_state.eq(intx_want),
                             s_msg_code.eq(Mux(intx_want, MsgCode.ASSERT_INTA,
                                               MsgCode.DEASSERT_INTA))]
            with m.Elif(done | cancel):
                m.d.sync += s_valid.eq(0)
        m.d.comb += self.lookup_vector.eq(Mux(s_valid & ~done & ~cancel, s_vec, start_vec))

        m.d.sync += [cr_valid.eq(r_ok), cr_vec.eq(vr[:vbits]), cr_direct.eq(go_direct & r_ok),
                     ce_valid.eq(c_ok), ce_vec.eq(e_vec[:vbits]),
                     ce_direct.eq(go_direct & ~r_ok)]
        m.d.comb += self.mask_rd[1].addr.eq(word(Mux(r_ok, vr, e_vec)[:vbits]))
        # each lane reads the word of its vector in stage B: its pending-bit write in stage C
        # writes that word back whole with the bit set (and none when the bit is already set)
        pr_k, _ = rport(pr, prw, word(vr[:vbits]))
        pc_k, _ = rport(pc, pcw, word(e_vec[:vbits]))

        # ---- stage C: events that were not sent become pending bits.  A message covers every
        # event of its vector decided before it started: an event whose vector was started at
        # the last edge or starts at this one sets nothing. ----
        def lane(valid, direct, vec):
            skip = ((s_new & ~cancel & (s_vec == vec)) | (starting & (start_vec == vec)))
            need = valid & (~direct | cancel) & ~skip
            absorb = need & holding & (hw == word(vec))
            return need, absorb

        need_r, absorb_r = lane(cr_valid, cr_direct, cr_vec)
        need_c, absorb_c = lane(ce_valid, ce_direct, ce_vec)
        r_word, c_word = word(cr_vec), word(ce_vec)
        old_r = Mux((wvr >> r_word)[0], pr_k, 0)
        old_c = Mux((wvc >> c_word)[0], pc_k, 0)
        write_r = need_r & ~absorb_r & ~(old_r >> bit(cr_vec))[0]
        write_c = need_c & ~absorb_c & ~(old_c >> bit(ce_vec))[0]

        # the held word after this cycle: served bit out, merged events in, Mask writes followed
        hp1 = Signal(WB)
        hm1 = Signal(WB)
        m.d.comb += hp1.eq((hp0 & ~Mux(go_scan, onehot(pick), 0))
                           | Mux(absorb_r, onehot(cr_vec), 0) | Mux(absorb_c, onehot(ce_vec), 0))
        mw = self.mask_wr
        mw_vec_now = mw.vector[:vbits]
        mw_held = mw.valid & holding & (word(mw_vec_now) == hw)
        m.d.comb += hm1.eq(Mux(mw_held, Mux(mw.value, hm0 | onehot(mw_vec_now),
                                            hm0 & ~onehot(mw_vec_now)), hm0))
        with m.If(holding):
            m.d.sync += [held_p.eq(hp1), held_m.eq(hm1), loading.eq(0)]
        with m.If(go_scan):
            m.d.sync += ptr.eq(pick + 1)

        # hand the word back when nothing more can be served in this visit
        release = Signal()
        rel_to_r = Signal()
        rel_to_c = Signal()
        leftover = hp1.any()
        with m.If(holding & ~pick_found):
            with m.If(~leftover):
                m.d.comb += release.eq(1)
            with m.Elif(~write_r):
                m.d.comb += [release.eq(1), rel_to_r.eq(1)]
            with m.Elif(~write_c):
                m.d.comb += [release.eq(1), rel_to_c.eq(1)]

        # take the next word with a summary bit, round robin after the word visited last
        after = summ & Cat(*(last_w < i for i in range(NW)))
        f_after, i_after = first_set(after)
        f_any, i_any = first_set(summ)
        m.d.comb += [take.eq((~holding | release) & global_ok & f_any),
                     take_w.eq(Mux(f_after, i_after, i_any))]
        with m.If(release):
            m.d.sync += holding.eq(0)
        with m.If(take):
            m.d.sync += [holding.eq(1), loading.eq(1), hw.eq(take_w), last_w.eq(take_w),
                         ptr.eq(0)]
        # the taken word's content: the flags before this edge or a write at this edge
        m.d.sync += [t_r.eq((wvr >> take_w)[0] | (write_r & (r_word == take_w))),
                     t_c.eq((wvc >> take_w)[0] | (write_c & (c_word == take_w)))]

        # RAM writes, whole words: a lane's word with its bit set, or a word handed back
        m.d.comb += [
            prw.addr.eq(Mux(write_r, r_word, hw)),
            prw.data.eq(Mux(write_r, old_r | onehot(cr_vec), hp1)),
            prw.en.eq(write_r | rel_to_r),
            pcw.addr.eq(Mux(write_c, c_word, hw)),
            pcw.data.eq(Mux(write_c, old_c | onehot(ce_vec), hp1)),
            pcw.en.eq(write_c | rel_to_c),
        ]

        # flags and summary bits
        set_r = Mux(write_r, wbit(r_word), 0) | Mux(rel_to_r, wbit(hw), 0)
        set_c = Mux(write_c, wbit(c_word), 0) | Mux(rel_to_c, wbit(hw), 0)
        take_bit = Mux(take, wbit(take_w), 0)
        # a summary bit is set for a new unmasked pending vector, for a word handed back with an
        # unmasked vector in it, and for any Mask bit cleared in a word that holds pending bits
        # (conservative: the scan clears it again when it finds nothing to send)
        sum_set = Signal(NW)
        unmask = mw.valid & ~mw.value & ~mw_held
        mw_word = word(mw_vec_now)
        m.d.comb += sum_set.eq(
            Mux(write_r & ~m_now, wbit(r_word), 0) | Mux(write_c, wbit(c_word), 0)
            | Mux(release & (hp1 & ~hm1).any(), wbit(hw), 0)
            | Mux(unmask & (((wvr | wvc | set_r | set_c) >> mw_word)[0]), wbit(mw_word), 0))
        m.d.sync += [wvr.eq((wvr | set_r) & ~take_bit), wvc.eq((wvc | set_c) & ~take_bit),
                     summ.eq((summ | sum_set) & ~take_bit)]

        # ---- PBA reads: the held word, or the two RAM words ----
        pword = Mux(holding & (hw == pa_q), hp0,
                    Mux((wvr >> pa_q)[0], pr_t, 0) | Mux((wvc >> pa_q)[0], pc_t, 0))
        m.d.comb += self.pba_data.eq(pword)
        m.d.comb += self.pending_any.eq((wvr | wvc).any() | (holding & hp0.any()))

        with m.If(clear):
            m.d.sync += [a_valid.eq(0), e_valid.eq(0), cr_valid.eq(0), ce_valid.eq(0),
                         wvr.eq(0), wvc.eq(0), summ.eq(0), holding.eq(0), loading.eq(0)]

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
        m.d.comb += chunk.valid.eq(s_valid & ~cancel)
        with m.If(chunk.valid & chunk.ready & ~chunk.payload.last):
            m.d.sync += s_second.eq(1)
        m.d.comb += self.msix_sent.eq(done & ~s_msg)
        return m
