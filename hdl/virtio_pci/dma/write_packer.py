"""Write packer of the requester: write chunks and their data become MWr TLPs.

PCI Express Base Specification 5.0: 2.2.7 (memory write header), 2.2.5 (byte enables), 2.2.2
(payload <= Max_Payload_Size), 2.4.1 (posted writes leave in issue order), 7.5.1.1.3 (Bus Master
Enable); requirements DMA-01, 03, 05, 06, 15, 16.

``dma_wdata`` beats (bytes packed from bit 0, ``dma/layouts.py``) go into a FIFO of
``2 * MPS_max / (W/8) + 4`` beats.  A chunk (``WriteChunk`` from the request engine) starts only
when every beat it needs is in the FIFO (store and forward: a back-end that withholds data never
holds a half-sent TLP on ``tx``); the TLP's beats then leave one per cycle: header DWs in lanes
0..2 (3) and the payload shifted to its DW position by a two-beat byte window over the last three data beats
(a chunk may start in the beat where the previous chunk of its request ended).  Bus Master Enable
is checked when a chunk starts: clear, this chunk and the rest of its request are not sent (their
data is consumed) and the request's ``dma_wdone`` says BME.  An FLR answers every write request
accepted before it and not yet finished with RESET (chunks already started finish on ``tx``).

``dma_wdone``: one status per write request, in request order, pushed the cycle the last beat of
its last MWr is accepted by ``tx`` (or when its dropped data has been consumed).  The request
engine accepts a write request only while ``wr_credit`` says that its answer has room, so the
packer never waits for the back-end to take ``dma_wdone``.

Ordering counters for the completion barrier (``dma/ordering.py``), modulo 256:
``n_ready`` counts write requests that were accepted *and* whose last data beat was accepted;
``n_done`` counts write requests answered on ``dma_wdone`` (all their MWrs accepted by ``tx``).

Timing: the first beat of a chunk's MWr is valid 1 cycle after the chunk and its data are
present (output register); back-to-back chunks leave without idle beats when MPS-aligned.
"""
from amaranth.hdl import Cat, Const, Module, Mux, Signal, signed
from amaranth.lib import data, fifo, stream, wiring
from amaranth.lib.wiring import In, Out
from amaranth.utils import exact_log2

from ..skid import SkidBuffer
from ..tlp.layouts import beat_layout, tlp_stream
from .layouts import DmaStatus, DmaWriteBeat
from .request_engine import WriteChunk, request_header

__all__ = ["WritePacker"]

#: dma_wdone answers the packer can hold (write requests in flight at most)
WDONE_DEPTH = 4


class WritePacker(wiring.Component):
    """Ports
    -----
    wdata : In stream of ``DmaWriteBeat`` (the back-end's ``dma_wdata``).
    cmd : In stream of ``WriteChunk`` (request engine).
    tx : Out TLP stream of MWr requests (registered).
    wdone : Out stream of ``DmaStatus`` (the back-end's ``dma_wdone``).
    wr_accept : In pulse, the request engine accepted a write request.
    wr_credit : Out, one more write request may be accepted.
    busy : Out, a write chunk is queued or being sent (MRds wait: ordering).
    n_ready, n_done : Out(8), ordering counters (see above), registered (one cycle late).
    bme, flr, requester_id : In, from config space.
    """

    def __init__(self, width, max_payload):
        if width not in (64, 128, 256):
            raise ValueError(f"TLP data width must be 64, 128 or 256, not {width!r}")
        if max_payload not in (128, 256, 512, 1024, 2048, 4096):
            raise ValueError(f"max payload must be a power of two in 128..4096, not {max_payload!r}")
        self.width = width
        self.max_payload = max_payload
        self.depth = 2 * max_payload // (width // 8) + 4
        super().__init__({
            "wdata": In(stream.Signature(DmaWriteBeat(width))),
            "cmd": In(stream.Signature(WriteChunk)),
            "tx": Out(tlp_stream(width)),
            "wdone": Out(stream.Signature(DmaStatus)),
            "wr_accept": In(1),
            "wr_credit": Out(1),
            "busy": Out(1),
            "n_ready": Out(8),
            "n_done": Out(8),
            "bme": In(1),
            "flr": In(1),
            "requester_id": In(16),
        })

    def elaborate(self, platform):
        m = Module()
        W = self.width
        B = W // 8
        L = W // 32
        bshift = exact_log2(B)

        # ---- data FIFO -----------------------------------------------------------------------
        m.submodules.fifo = q = fifo.SyncFIFOBuffered(width=W + 1, depth=self.depth)
        m.d.comb += [q.w_data.eq(Cat(self.wdata.payload.data, self.wdata.payload.last)),
                     q.w_en.eq(self.wdata.valid), self.wdata.ready.eq(q.w_rdy)]
        X = q.r_data[:W]
        pop = Signal()
        m.d.comb += q.r_en.eq(pop)

        # ---- request accounting ----------------------------------------------------------------
        n_acc = Signal(8)          # write requests accepted by the engine
        n_last = Signal(8)         # last data beats accepted
        n_done = Signal(8)         # answered on wdone
        m.submodules.done_q = dq = fifo.SyncFIFOBuffered(width=3, depth=WDONE_DEPTH)
        m.d.comb += [self.wdone.valid.eq(dq.r_rdy), self.wdone.payload.eq(dq.r_data),
                     dq.r_en.eq(self.wdone.ready)]
        with m.If(self.wr_accept):
            m.d.sync += n_acc.eq(n_acc + 1)
        with m.If(self.wdata.valid & self.wdata.ready & self.wdata.payload.last):
            m.d.sync += n_last.eq(n_last + 1)
        inflight = Signal(8)
        m.d.comb += inflight.eq(n_acc - n_done)
        m.d.comb += self.wr_credit.eq(inflight + dq.level < WDONE_DEPTH)
        acc_d = Signal(8)
        last_d = Signal(8)
        m.d.comb += [acc_d.eq(n_acc - n_done), last_d.eq(n_last - n_done)]
        # registered for the completion barrier (Fmax): one cycle late, so the barrier waits a
        # cycle longer for a write that just finished, and a completion (at least two cycles
        # behind its host request) still sees every write ready before that request arrived
        m.d.sync += [self.n_ready.eq(n_done + Mux(acc_d < last_d, acc_d, last_d)),
                     self.n_done.eq(n_done)]

        # FLR: every write request accepted before it and not yet answered is answered RESET
        abort_until = Signal(8)
        abort = Signal()
        with m.If(self.flr & (inflight != 0)):
            m.d.sync += [abort.eq(1), abort_until.eq(n_acc)]
        with m.Elif(abort & (n_done == abort_until)):
            m.d.sync += abort.eq(0)

        # ---- chunk state -------------------------------------------------------------------------
        cmd = self.cmd
        c = Signal(WriteChunk)
        hdr = [Signal(32, name=f"mwr_hdr{i}") for i in range(4)]
        h_dw = Signal(3)           # header DWs (3 or 4)
        busy = Signal()            # sending the chunk in ``c``
        dropping = Signal()        # consuming the rest of a refused request's data
        t = Signal(range(4096 // 4 // L + 3))  # TLP beat being produced
        nbeats_m1 = Signal.like(t)
        last_keep = Signal(L)
        e = Signal(range(B))       # window offset: output = bytes [e, e + B) of Cat(H, X)
        pay_beat = Signal.like(t)  # first TLP beat that carries payload
        chunk_last = Signal(14)    # index of the chunk's last data beat in its request
        popped = Signal(14)        # data beats of the current request popped so far
        H = Signal(W)              # data beat popped - 1
        H2 = Signal(W)             # data beat popped - 2
        req_status = Signal(DmaStatus)
        # ---- output register, then a skid buffer to ``tx`` ---------------------------------------
        # The skid buffer's ``i.ready`` is a register: ``tx.ready`` does not reach the beat
        # production below (Fmax).  The end of a request and its status go through the buffer
        # with the beat, so that ``dma_wdone`` and ``n_done`` still count a write when its last
        # beat is accepted by ``tx`` itself (DMA-15, DMA-16), not when it enters the buffer.
        tx = tlp_stream(W).create(path=("tx_reg",))
        out_end = Signal()         # the beat in tx_reg is the last of its request
        out_status = Signal(DmaStatus)
        m.submodules.out_skid = skid = SkidBuffer(data.StructLayout({
            "beat": beat_layout(W), "end": 1, "status": DmaStatus}))
        m.d.comb += [
            skid.i.valid.eq(tx.valid), skid.i.payload.beat.eq(tx.payload),
            skid.i.payload.end.eq(out_end), skid.i.payload.status.eq(out_status),
            tx.ready.eq(skid.i.ready),
            self.tx.valid.eq(skid.o.valid), self.tx.payload.eq(skid.o.payload.beat),
            skid.o.ready.eq(self.tx.ready),
        ]
        m.d.comb += self.busy.eq(cmd.valid | busy | tx.valid | self.tx.valid)
        load = Signal()
        m.d.comb += load.eq(~tx.valid | tx.ready)
        with m.If(tx.valid & tx.ready):
            m.d.sync += tx.valid.eq(0)
        push_tx = self.tx.valid & self.tx.ready & skid.o.payload.end
        push_drop = Signal()
        m.d.comb += [dq.w_en.eq(push_tx | push_drop),
                     dq.w_data.eq(Mux(push_tx, skid.o.payload.status, req_status))]
        with m.If(dq.w_en):
            m.d.sync += n_done.eq(n_done + 1)

        # header of the command offered now (latched when the chunk starts)
        dws, is4 = request_header(m, write=1, addr=cmd.payload.addr, n=cmd.payload.n,
                                  attr=cmd.payload.attr, tag=0, requester_id=self.requester_id)
        cp = cmd.payload
        hd = Mux(is4, 4, 3)
        # c_bytes = 4h + a - offset: TLP byte q carries request byte q - c_bytes
        c_bytes = Signal(signed(18))
        m.d.comb += c_bytes.eq(hd * 4 + cp.addr[:2] - cp.offset)
        neg = Signal(signed(18))
        m.d.comb += neg.eq(-c_bytes)
        length_dw = Signal(11)
        m.d.comb += length_dw.eq(((cp.addr[:12] + cp.n - 1) >> 2) - cp.addr[2:12] + 1)
        total_dw = Signal(12)
        m.d.comb += total_dw.eq(length_dw + hd)
        c_last = Signal(17)
        m.d.comb += c_last.eq((cp.offset + cp.n - 1) >> bshift)
        last_out = Signal()        # the last beat of the chunk in ``c`` is produced this cycle
        # every data beat of the chunk is in the FIFO: c_last - popped_next + 1 <= level - pop,
        # with popped_next = 0 when the request ends this cycle (last_out & c.last), else
        # popped + pop.  Written so that ``pop`` and ``last_out`` (the end of the beat production
        # above, the deepest logic here) only select between comparisons of registers (Fmax):
        # when the request goes on, pop cancels out.
        lvl = Signal(signed(18))
        m.d.comb += lvl.eq(q.level)
        h_go_on = c_last + 1 <= popped + lvl
        h_new0 = c_last + 1 <= lvl
        h_new1 = c_last + 2 <= lvl
        have_data = Mux(last_out & c.last, Mux(pop, h_new1, h_new0), h_go_on)
        refuse = abort | ~self.bme | (req_status != DmaStatus.OK)

        # consuming a refused request's data
        with m.If(dropping):
            with m.If(popped <= chunk_last):
                m.d.comb += pop.eq(q.r_rdy)
                with m.If(q.r_rdy):
                    m.d.sync += popped.eq(popped + 1)
            with m.Elif(~tx.valid & ~self.tx.valid):
                # answered after any earlier request's last MWr left (wdone in order)
                m.d.comb += push_drop.eq(1)
                m.d.sync += [dropping.eq(0), popped.eq(0), req_status.eq(DmaStatus.OK)]

        # sending: beat t of the TLP
        # registers that follow t (Fmax: no adder or comparator of t before the beat production's
        # decisions): pneed = t + K, the data beats that must have been popped for TLP beat t
        # (K = 1 - c_bytes // B, fixed per chunk); has_pay = t >= pay_beat; nxt_pay = t + 1 >=
        # pay_beat; is_last = t == nbeats_m1
        pneed = Signal(signed(18))
        has_pay = Signal()
        nxt_pay = Signal()
        is_last = Signal()
        ahead = Signal()
        m.d.comb += ahead.eq(popped > pneed)
        with m.If(busy):
            with m.If(has_pay & (popped < pneed)):
                # alignment: pop a beat the window no longer needs (no output this cycle)
                m.d.comb += pop.eq(q.r_rdy)
                with m.If(q.r_rdy):
                    m.d.sync += [H2.eq(H), H.eq(X), popped.eq(popped + 1)]
            with m.Elif(load & (~has_pay | q.r_rdy | (popped > chunk_last) | ahead)):
                # one beat ahead (the previous chunk of the request ended in the beat this
                # chunk starts in): the window is the two beats before X
                win = Mux(ahead, Cat(H2, H), Cat(H, X))
                shifted = Signal(W)
                with m.Switch(e):
                    for k in range(B):
                        with m.Case(k):
                            m.d.comb += shifted.eq(win[8 * k:8 * k + W])
                lanes = []
                for j in range(L):
                    dw_i = t * L + j
                    hsel = Signal(32, name=f"hdr_lane{j}")
                    with m.Switch(dw_i):
                        for k in range(4):
                            with m.Case(k):
                                m.d.comb += hsel.eq(hdr[k])
                    lanes.append(Mux(dw_i < h_dw, hsel, shifted[32 * j:32 * j + 32]))
                m.d.sync += [
                    tx.valid.eq(1),
                    tx.payload.data.eq(Cat(*lanes)),
                    tx.payload.keep.eq(Mux(is_last, last_keep, (1 << L) - 1)),
                    tx.payload.first.eq(t == 0),
                    tx.payload.last.eq(is_last),
                    out_end.eq(is_last & c.last),
                    out_status.eq(req_status),
                    t.eq(t + 1),
                    pneed.eq(pneed + 1),
                    has_pay.eq(nxt_pay),
                    nxt_pay.eq(t + 2 >= pay_beat),
                    is_last.eq(t + 1 == nbeats_m1),
                ]
                # pop X when the next beat needs it, or at the end of the request
                nxt_needs = ~is_last & nxt_pay & (popped <= pneed)
                end_pop = is_last & c.last & (popped <= c.req_beats_m1)
                with m.If((nxt_needs | end_pop) & q.r_rdy):
                    m.d.comb += pop.eq(1)
                    m.d.sync += [H2.eq(H), H.eq(X), popped.eq(popped + 1)]
                with m.If(is_last):
                    m.d.comb += last_out.eq(1)
                    m.d.sync += busy.eq(0)
                    with m.If(c.last):
                        m.d.sync += popped.eq(0)
        # the chunk start
        # (after the sending block: a chunk may start in the cycle the previous one's last beat
        # is produced, so back-to-back MWrs leave without an idle cycle)
        with m.If((~busy | last_out) & ~dropping & cmd.valid):
            with m.If(refuse):
                # this request is not sent any more: consume its data, answer when done
                with m.If(req_status == DmaStatus.OK):
                    m.d.sync += req_status.eq(Mux(abort, DmaStatus.RESET, DmaStatus.BME))
                m.d.comb += cmd.ready.eq(1)
                with m.If(cp.last):
                    m.d.sync += [dropping.eq(1), chunk_last.eq(cp.req_beats_m1)]
            with m.Elif(have_data):
                pb = (hd * 4 + cp.addr[:2]) >> bshift
                nb_m1 = (total_dw - 1) >> exact_log2(L)
                m.d.comb += cmd.ready.eq(1)
                m.d.sync += [
                    busy.eq(1), c.eq(cp), t.eq(0), h_dw.eq(hd),
                    nbeats_m1.eq(nb_m1),
                    last_keep.eq(Mux(total_dw[:exact_log2(L)] == 0, (1 << L) - 1,
                                     (Const(1, L + 1) << total_dw[:exact_log2(L)]) - 1)),
                    e.eq(neg[:bshift]),
                    pay_beat.eq(pb),
                    chunk_last.eq(c_last),
                    # the registers that follow t, for t = 0
                    pneed.eq((neg >> bshift) + 1),
                    has_pay.eq(pb == 0),
                    nxt_pay.eq(pb <= 1),
                    is_last.eq(nb_m1 == 0),
                ]
                m.d.sync += [h.eq(d) for h, d in zip(hdr, dws)]

        return m
