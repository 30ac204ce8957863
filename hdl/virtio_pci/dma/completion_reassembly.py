"""Completion reassembly of the requester: completions on ``rx`` matched, checked, stored.

PCI Express Base Specification 5.0: 2.2.9 (completion header), 2.3.1.1 (data return for read
requests: Read Completion Boundary splits, Byte Count, Lower Address), 2.3.2 (completion handling:
Unexpected Completion, UR / CA status, malformed completions), 2.7.2 (poisoned data), 2.8
(Completion Timeout), 6.6.2 (FLR); requirements DMA-09..14, DMA-19.

Every completion on ``rx`` (snooped: it never back-pressures ``rx``, the buffer space of a tag is
reserved when its MRd leaves) is looked up by tag in the per-tag state (beats without ``first``
outside a TLP, a fragment the depacketizer drops as malformed, belong to no completion):

* **stray**: tag out of range, T9/T8 set, Requester ID not this function's, the tag has no
  outstanding MRd, or a locked completion (CplLk/CplDLk): discarded, ``err_unexpected``
  (Unexpected Completion, PCIe 2.3.2);
* **live** (outstanding, status not yet decided): Completion Status UR (or a reserved status)
  ends the request with UR (``got_ur``: Received Master Abort), CA with CA (``got_ca``: Received
  Target Abort); a poisoned CplD (EP) with POISONED (``got_poisoned``: Master Data Parity
  Error), its data never written; a CplD must carry the Byte Count still expected and the Lower
  Address of the next expected byte, and no more data than that (its DW count may exceed the
  byte count only by the bytes of its last partial DW); anything else, a Cpl without data for a
  read, or a TLP the depacketizer finds malformed (``rx_malformed``) ends the request with
  MALFORMED (``err_malformed``).  Good data is written to the tag's slot of the ``ReadBuffer``
  at the DW positions of its addresses; the request is complete (OK) when its byte count is
  covered.  Any split is accepted as long as it is consistent (any RCB, any DW count);
* **zombie** (still outstanding, status already decided by an error, a timeout or an FLR):
  discarded and reported as unexpected; a consistent final completion ends the outstanding state.

Timing (Fmax): a completion's effect on its tag's state (status, outstanding, bytes expected) and
its error pulses come one cycle after its last beat; a completion of the same tag whose header
arrives in that cycle sees the effect through a forwarding path.

A request whose status is decided but whose completions may still come stays outstanding (its
tag is not reused) until its final completion or one more completion timeout: a late
completion can never land in a new request's slot.

Completion timeout: a tag outstanding for ``timeout`` cycles (checked by a scanner that visits
one tag per cycle, so the timeout fires between ``timeout`` and ``timeout + n_tags + 1`` cycles
after the MRd) ends with TIMEOUT (``err_timeout``: non-fatal error), unless Completion Timeout
Disable (Device Control 2) is set.  An FLR ends every live request with RESET.  A tag whose MRd
the request engine withdrew at the FLR (it never left: ``withdraw_valid``) is not outstanding any
more, so it is free as soon as the read-out has answered it.

Ports
-----
rx_fire : In, a beat of ``rx`` is accepted this cycle; rx_beat : In, that beat.
rx_malformed : In, the depacketizer's verdict for the TLP whose last beat is accepted this cycle.
issue_valid / issue : In (``IssueInfo``), an MRd leaves (tag taken from the pool this cycle).
withdraw_valid / withdraw_tag : In, at an FLR: that tag's MRd was withdrawn before it left.
q_tag : In; q_done, q_status : Out (combinational), whether the read-out may take tag ``q_tag``
    and with which status.
done_valid / done_tag : In, the read-out has read the tag's slot.
release<i>_valid / release<i>_tag : Out (i = 0, 1), tags that are free again (to the tag pool).
we, waddr, wdata : Out, write port of the ``ReadBuffer``.
requester_id, flr, cto_disable : In.
err_unexpected, err_malformed, err_timeout, got_ur, got_ca, got_poisoned : Out pulses.
"""
from amaranth.hdl import Cat, Const, Module, Mux, Signal, signed
from amaranth.lib import data, memory, wiring
from amaranth.lib.wiring import In, Out
from amaranth.utils import ceil_log2, exact_log2

from ..tlp.layouts import CplDW1, CplDW2, CplStatus, FmtType, HdrDW0, beat_layout
from .layouts import DmaStatus
from .request_engine import IssueInfo

__all__ = ["CompletionReassembly"]


class CompletionReassembly(wiring.Component):
    def __init__(self, width, n_tags, max_read, timeout):
        if not 1 <= n_tags <= 256:
            raise ValueError(f"tag count must be 1..256, not {n_tags!r}")
        if timeout < 16:
            raise ValueError(f"completion timeout must be at least 16 cycles, not {timeout!r}")
        self.width = width
        self.n_tags = n_tags
        self.max_read = max_read
        self.timeout = timeout
        L = width // 32
        self.row_bits = max(ceil_log2(n_tags * max_read // (width // 8)), 1)
        super().__init__({
            "rx_fire": In(1),
            "rx_beat": In(beat_layout(width)),
            "rx_malformed": In(1),
            "issue_valid": In(1),
            "issue": In(IssueInfo),
            "withdraw_valid": In(1),
            "withdraw_tag": In(8),
            "q_tag": In(8),
            "q_done": Out(1),
            "q_status": Out(DmaStatus),
            "done_valid": In(1),
            "done_tag": In(8),
            "release0_valid": Out(1),
            "release0_tag": Out(8),
            "release1_valid": Out(1),
            "release1_tag": Out(8),
            "release2_valid": Out(1),
            "release2_tag": Out(8),
            "we": Out(L),
            "waddr": Out(data.ArrayLayout(self.row_bits, L)),
            "wdata": Out(width),
            "requester_id": In(16),
            "flr": In(1),
            "cto_disable": In(1),
            "err_unexpected": Out(1),
            "err_malformed": Out(1),
            "err_timeout": Out(1),
            "got_ur": Out(1),
            "got_ca": Out(1),
            "got_poisoned": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        W, n, S = self.width, self.n_tags, self.max_read
        L = W // 32
        lb = exact_log2(L)
        beat = self.rx_beat

        def lane(i):
            return beat.data[32 * i:32 * i + 32]

        # ---- per-tag state -------------------------------------------------------------------
        outst = Signal(n)                      # completions may still arrive
        used = Signal(n)                       # slot not read out yet
        done = Signal(n)                       # status decided
        status = Signal(data.ArrayLayout(DmaStatus, n))
        rem = Signal(data.ArrayLayout(13, n))  # bytes still expected (1..4096)
        exp = Signal(data.ArrayLayout(12, n))  # slot offset of the next expected byte

        tw = ceil_log2(self.timeout + 4 * n + 64) + 1
        now = Signal(tw)
        m.d.sync += now.eq(now + 1)
        m.submodules.stamps = stamps = memory.Memory(shape=tw, depth=n, init=[])
        ts_w = stamps.write_port()
        ts_r = stamps.read_port(transparent_for=(ts_w,))

        # ---- issue -----------------------------------------------------------------------------
        tb_ = max(ceil_log2(n), 1)
        iss = self.issue
        isel = iss.tag[:tb_]
        with m.If(self.issue_valid):
            m.d.sync += [
                outst.bit_select(isel, 1).eq(1), used.bit_select(isel, 1).eq(1),
                done.bit_select(isel, 1).eq(0), status[isel].eq(DmaStatus.OK),
                rem[isel].eq(iss.byte_count), exp[isel].eq(iss.offset),
            ]

        # ---- completion header ------------------------------------------------------------------
        hb = 0 if L >= 4 else 1                 # beat holding header DW2
        in_tlp = Signal()                       # inside a TLP (after its first beat)
        bidx = Signal(range(4096 // 4 // L + 4))
        cur_b = Mux(beat.first, 0, bidx)
        hdr_r = [Signal(32, name=f"cpl_hdr{i}") for i in range(2)]
        # a beat belongs to a TLP when it has ``first`` or follows one that did: beats without
        # ``first`` outside a TLP (a fragment the depacketizer drops as malformed) are no part
        # of the completion before them
        in_frame = beat.first | in_tlp
        with m.If(self.rx_fire):
            m.d.sync += [bidx.eq(cur_b + 1), in_tlp.eq(~beat.last & in_frame)]
            if hb == 1:
                with m.If(beat.first):
                    m.d.sync += [hdr_r[0].eq(lane(0)), hdr_r[1].eq(lane(1))]
        h0 = HdrDW0(lane(0) if hb == 0 else hdr_r[0])
        h1 = CplDW1(lane(1) if hb == 0 else hdr_r[1])
        h2 = CplDW2(lane(2) if hb == 0 else lane(0))
        at_hdr = self.rx_fire & in_frame & (cur_b == hb)
        ft = h0.fmt_type
        is_cpl = (ft == FmtType.CPL) | (ft == FmtType.CPLD)
        # a locked completion (CplLk/CplDLk) never answers an MRd: always unexpected
        any_cpl = is_cpl | (ft == FmtType.CPLLK) | (ft == FmtType.CPLDLK)
        has_data = ft == FmtType.CPLD
        tag = h2.tag
        tag_ok = tag < n if n < 256 else Const(1)
        hsel = tag[:tb_]
        # the commit of the completion before (``p_*``, one cycle behind its last beat) is not in
        # the per-tag state yet: the lookup of a completion of the same tag sees its effect here
        p_valid = Signal()      # a completion ended last cycle and is committed now
        p_tag = Signal(8)
        p_clear = Signal()      # ... ends its tag's outstanding state
        p_setdone = Signal()    # ... decides its request's status
        p_upd = Signal()        # ... counts down its request (rem / exp)
        p_rem = Signal(13)
        p_exp = Signal(12)
        fwd = Signal()
        m.d.comb += fwd.eq(p_valid & (p_tag[:tb_] == hsel))
        matched = Signal()
        m.d.comb += matched.eq(is_cpl & tag_ok & ~h0.t8 & ~h0.t9
                               & (h2.requester_id == self.requester_id)
                               & outst.bit_select(hsel, 1) & ~(fwd & p_clear))
        t_done = done.bit_select(hsel, 1) | (fwd & p_setdone)
        t_rem = Mux(fwd & p_upd, p_rem, rem[hsel])
        t_exp = Mux(fwd & p_upd, p_exp, exp[hsel])
        bc = Signal(13)
        m.d.comb += bc.eq(Mux(h1.byte_count == 0, 4096, h1.byte_count))
        length = Signal(11)
        m.d.comb += length.eq(Mux(h0.length == 0, 1024, h0.length))
        carried = Signal(signed(14))            # bytes from Lower Address to the end of the data
        m.d.comb += carried.eq((length << 2) - h2.lower_addr[:2])
        final = carried >= bc
        consistent = Signal()
        m.d.comb += consistent.eq((bc == t_rem) & (h2.lower_addr == t_exp[:7])
                                  & (~final | (carried - bc < 4)))
        sc = h1.status == CplStatus.SC
        data_ok = Signal()
        m.d.comb += data_ok.eq(matched & ~t_done & sc & has_data & ~h0.ep & consistent)

        # context of the completion being received
        c_kind = Signal(3)      # 0 stray, 1 live, 2 zombie
        c_tag = Signal(8)
        c_res = Signal(DmaStatus)   # status if it ends the request (live)
        c_ends = Signal()           # a live completion that decides the status
        c_final = Signal()          # no completion for this tag follows (consistent final / error)
        c_cons = Signal()
        c_write = Signal()
        c_carried = Signal(14)
        c_gb = Signal(range(n * S // 4 + 16))    # biased DW position of lane 0 of the next beat
        c_left = Signal(12)                     # payload DWs still to write
        c_ur = Signal()
        c_ca = Signal()
        c_poison = Signal()
        c_malf = Signal()
        c_is_cpl = Signal()

        kind = Signal(3)
        res = Signal(DmaStatus)
        ends = Signal()
        fin = Signal()
        ur = Signal()
        ca = Signal()
        poison = Signal()
        malf = Signal()
        m.d.comb += kind.eq(Mux(matched, Mux(t_done, 2, 1), 0))
        with m.If(~sc):
            m.d.comb += [ends.eq(1), fin.eq(1),
                         res.eq(Mux(h1.status == CplStatus.CA, DmaStatus.CA, DmaStatus.UR)),
                         ur.eq(h1.status != CplStatus.CA), ca.eq(h1.status == CplStatus.CA)]
        with m.Elif(~has_data | ~consistent):
            m.d.comb += [ends.eq(1), res.eq(DmaStatus.MALFORMED), malf.eq(1)]
        with m.Elif(h0.ep):
            m.d.comb += [ends.eq(1), res.eq(DmaStatus.POISONED), poison.eq(1), fin.eq(final)]
        with m.Else():
            m.d.comb += [ends.eq(final), res.eq(DmaStatus.OK), fin.eq(final)]

        S_dw = S // 4
        gb0 = Signal.like(c_gb)
        m.d.comb += gb0.eq(hsel * S_dw + (t_exp >> 2) + 5 + hb * L)
        with m.If(at_hdr):
            m.d.sync += [c_kind.eq(kind), c_tag.eq(tag), c_res.eq(res), c_ends.eq(ends),
                         c_final.eq(fin), c_cons.eq(consistent), c_write.eq(data_ok),
                         c_carried.eq(carried.as_unsigned()), c_gb.eq(gb0 + L),
                         c_ur.eq(ur), c_ca.eq(ca), c_poison.eq(poison), c_malf.eq(malf),
                         c_is_cpl.eq(any_cpl)]

        # ---- data into the read buffer ----------------------------------------------------------
        gb = Signal.like(c_gb)
        wr = Signal()
        left = Signal(12)
        lane_lo = Signal(range(L + 1))          # first payload lane in this beat
        with m.If(at_hdr):
            m.d.comb += [gb.eq(gb0), wr.eq(data_ok), left.eq(length),
                         lane_lo.eq(3 - hb * L)]
        with m.Else():
            m.d.comb += [gb.eq(c_gb), wr.eq(c_write & in_tlp & ~beat.first), left.eq(c_left),
                         lane_lo.eq(0)]
        with m.If(self.rx_fire & (cur_b >= hb)):
            m.d.sync += [c_gb.eq(gb + L), c_left.eq(Mux(left > L - lane_lo, left - (L - lane_lo), 0))]
        # lane j carries DW position gb - 8 + j; bank k takes lane (k - gb) mod L
        lane_en = Signal(L)
        for j in range(L):
            m.d.comb += lane_en[j].eq(wr & self.rx_fire & beat.keep[j] & (lane_lo <= j)
                                      & (j < lane_lo + left))
        rot = gb[:lb] if lb else Const(0, 1)
        for k in range(L):
            with m.Switch(rot):
                for r in range(L):
                    with m.Case(r):
                        j = (k - r) % L
                        g = gb + j
                        m.d.comb += [self.we[k].eq(lane_en[j]),
                                     self.waddr[k].eq((g >> lb) - 8 // L),
                                     self.wdata[32 * k:32 * k + 32].eq(lane(j))]

        # ---- commit, one cycle after the last beat (Fmax) -------------------------------------------
        # the last beat registers what the completion does to its tag (from the header beat's
        # decisions, ``c_*``, or this beat's when it is also the header beat); the per-tag state
        # changes in the next cycle, and a completion of the same tag looked up in that cycle
        # sees the change through ``fwd`` above
        last_now = self.rx_fire & in_frame & beat.last & (cur_b >= hb)
        k_now = Mux(at_hdr, kind, c_kind)
        t_now = Mux(at_hdr, tag, c_tag)
        ends_now = Mux(at_hdr, ends, c_ends)
        fin_now = Mux(at_hdr, fin, c_final)
        cons_now = Mux(at_hdr, consistent, c_cons)
        car_now = Mux(at_hdr, carried.as_unsigned(), c_carried)
        bad_now = self.rx_malformed
        c_rem_new = Signal(13)
        c_exp_new = Signal(12)
        with m.If(at_hdr):
            m.d.sync += [c_rem_new.eq(t_rem - carried.as_unsigned()),
                         c_exp_new.eq(t_exp + carried.as_unsigned())]
        p_kind = Signal(3)
        p_res = Signal(DmaStatus)
        p_bad = Signal()
        p_flags = Signal(5)     # ur, ca, poisoned, malformed, is a completion
        live = k_now != 0
        m.d.sync += p_valid.eq(last_now)
        m.d.sync += [
            p_tag.eq(t_now), p_kind.eq(Mux(last_now, k_now, 0)), p_bad.eq(bad_now),
            p_res.eq(Mux(at_hdr, res, c_res)),
            p_flags.eq(Mux(at_hdr, Cat(ur, ca, poison, malf, any_cpl),
                           Cat(c_ur, c_ca, c_poison, c_malf, c_is_cpl))),
            p_clear.eq(live & ~bad_now & fin_now & ((k_now == 1) | cons_now)),
            p_setdone.eq((k_now == 1) & (bad_now | ends_now)),
            p_upd.eq(live & ~bad_now & cons_now & ~fin_now),
            p_rem.eq(Mux(at_hdr, t_rem - carried.as_unsigned(), c_rem_new)),
            p_exp.eq(Mux(at_hdr, t_exp + carried.as_unsigned(), c_exp_new)),
        ]
        commit = p_valid & (p_kind != 0)
        tsel = p_tag[:tb_]
        t_now = p_tag
        clear_out = Signal()
        m.d.comb += clear_out.eq(p_valid & p_clear)
        with m.If(p_valid):
            with m.If(p_kind == 0):
                m.d.comb += self.err_unexpected.eq(~p_bad & p_flags[4])
            with m.Elif(p_kind == 1):
                with m.If(p_bad):
                    m.d.sync += [done.bit_select(tsel, 1).eq(1),
                                 status[tsel].eq(DmaStatus.MALFORMED)]
                with m.Else():
                    m.d.comb += [self.got_ur.eq(p_flags[0]), self.got_ca.eq(p_flags[1]),
                                 self.got_poisoned.eq(p_flags[2]),
                                 self.err_malformed.eq(p_flags[3])]
                    with m.If(p_setdone):
                        m.d.sync += [done.bit_select(tsel, 1).eq(1), status[tsel].eq(p_res)]
            with m.Else():
                # zombie: discarded, reported; a consistent completion still counts down
                m.d.comb += self.err_unexpected.eq(~p_bad)
            with m.If(p_upd & ~p_clear):
                m.d.sync += [rem[tsel].eq(p_rem), exp[tsel].eq(p_exp)]
        with m.If(clear_out):
            m.d.sync += outst.bit_select(tsel, 1).eq(0)

        # ---- completion timeout scanner ------------------------------------------------------------
        scan = Signal(tb_)
        nxt_scan = Signal(tb_)
        age = Signal(tw)
        m.d.comb += age.eq(now - ts_r.data)
        s_out = outst.bit_select(scan, 1)
        s_done = done.bit_select(scan, 1)
        expired = s_out & ~self.cto_disable & (age >= self.timeout)
        hold = Signal()
        m.d.comb += hold.eq(expired & ((commit & (tsel == scan)) | (self.issue_valid & ~s_done)))
        m.d.comb += nxt_scan.eq(Mux(hold, scan, Mux(scan == n - 1, 0, scan + 1)))
        m.d.sync += scan.eq(nxt_scan)
        m.d.comb += [ts_r.addr.eq(nxt_scan), ts_r.en.eq(1)]
        tclear = Signal()
        with m.If(expired & ~hold):
            with m.If(s_done):
                m.d.comb += tclear.eq(1)
                m.d.sync += outst.bit_select(scan, 1).eq(0)
            with m.Else():
                # the request ends; its tag stays quarantined for one more timeout
                m.d.comb += [self.err_timeout.eq(1), ts_w.en.eq(1), ts_w.addr.eq(scan),
                             ts_w.data.eq(now)]
                m.d.sync += [done.bit_select(scan, 1).eq(1), status[scan].eq(DmaStatus.TIMEOUT)]
        with m.If(self.issue_valid):
            m.d.comb += [ts_w.en.eq(1), ts_w.addr.eq(iss.tag), ts_w.data.eq(now)]

        # ---- FLR: every live request ends with RESET; its tag stays quarantined ----------------------
        with m.If(self.flr):
            for t in range(n):
                with m.If(outst[t] & ~done[t]):
                    m.d.sync += [done[t].eq(1), status[t].eq(DmaStatus.RESET)]
        # (after every other update of ``outst``: no completion can come for a withdrawn MRd)
        with m.If(self.withdraw_valid):
            m.d.sync += outst.bit_select(self.withdraw_tag[:tb_], 1).eq(0)

        # ---- read-out interface and tag release ----------------------------------------------------
        qsel = self.q_tag[:tb_]
        m.d.comb += [self.q_done.eq(done.bit_select(qsel, 1)), self.q_status.eq(status[qsel])]
        dsel = self.done_tag[:tb_]
        with m.If(self.done_valid):
            m.d.sync += used.bit_select(dsel, 1).eq(0)
        # a tag is free when it is neither outstanding nor unread
        m.d.comb += [
            self.release0_valid.eq(self.done_valid & (~outst.bit_select(dsel, 1)
                                                      | (clear_out & (tsel == dsel))
                                                      | (tclear & (scan == dsel)))),
            self.release0_tag.eq(self.done_tag),
            self.release1_valid.eq(clear_out & ~used.bit_select(tsel, 1)),
            self.release1_tag.eq(t_now),
            self.release2_valid.eq(tclear & ~used.bit_select(scan, 1)),
            self.release2_tag.eq(scan),
        ]
        return m

