"""Read-out of the requester: read data handed to the back-end in request order.

PCI Express Base Specification 5.0, 2.4.1 (completions of different tags may arrive in any
order); requirements DMA-10, DMA-11 (bad data never handed on), DMA-19.  Contract of
``dma_rdata``: ``dma/layouts.py``.

Read chunks (``ReadChunk``) queue in issue order (FIFO of ``n_tags + 2`` entries).  The chunk at
the head leaves when its tag's status is decided (``CompletionReassembly``: complete, error,
timeout or reset) or at once when it was refused: its rows are read from the ``ReadBuffer`` one
per cycle (zeros instead when the chunk's status is not OK, so no stale or poisoned byte of a
slot is ever handed on), then its tag is given back.  A byte aligner turns rows (aligned in the
bus address space) into ``dma_rdata`` beats that start with the request's first byte; bytes past
the request's length in its last beat are zero.  The request's status (the first non-OK status
of its chunks) comes with its last beat.

Timing: one beat per cycle while data is ready; the first beat of a chunk is valid 3 cycles after
its tag's status is decided (query, buffer read, output register); a request whose address is
not W/8-aligned and whose last bytes fit in the row before its end takes one extra cycle.
"""
from amaranth.hdl import Cat, Const, Module, Mux, Signal
from amaranth.lib import data, fifo, stream, wiring
from amaranth.lib.wiring import In, Out
from amaranth.utils import ceil_log2, exact_log2

from .layouts import DmaReadBeat, DmaStatus
from .request_engine import ReadChunk

__all__ = ["ReadOut"]


class ReadOut(wiring.Component):
    """Ports
    -----
    order : In stream of ``ReadChunk`` (request engine).
    q_tag : Out; q_done, q_status : In, the head chunk's tag and its state (reassembly).
    raddr, ren : Out; rdata : In, read port of the ``ReadBuffer`` (data the cycle after).
    done_valid / done_tag : Out pulse, the slot of that tag has been read.
    rdata_o : Out stream of ``DmaReadBeat`` (the back-end's ``dma_rdata``).
    """

    def __init__(self, width, n_tags, max_read):
        self.width = width
        self.n_tags = n_tags
        self.max_read = max_read
        self.row_bits = max(ceil_log2(n_tags * max_read // (width // 8)), 1)
        super().__init__({
            "order": In(stream.Signature(ReadChunk)),
            "q_tag": Out(8),
            "q_done": In(1),
            "q_status": In(DmaStatus),
            "raddr": Out(self.row_bits),
            "ren": Out(1),
            "rdata": In(width),
            "done_valid": Out(1),
            "done_tag": Out(8),
            "rdata_o": Out(stream.Signature(DmaReadBeat(width))),
        })

    def elaborate(self, platform):
        m = Module()
        W = self.width
        B = W // 8
        bshift = exact_log2(B)
        R = self.max_read // B                 # rows per slot

        m.submodules.q = q = fifo.SyncFIFOBuffered(width=ReadChunk.as_shape().size,
                                                   depth=self.n_tags + 2)
        m.d.comb += [q.w_data.eq(self.order.payload), q.w_en.eq(self.order.valid),
                     self.order.ready.eq(q.w_rdy)]
        head = ReadChunk(q.r_data)
        m.d.comb += self.q_tag.eq(head.tag)

        # ---- stage 0: walk the rows of the chunk in ``cur`` ------------------------------------------
        active = Signal()
        cur = Signal(ReadChunk)
        cur_st = Signal(DmaStatus)
        ri = Signal(14)                        # rows read so far
        s1_valid = Signal()
        s1_zero = Signal()
        s1_st = Signal(DmaStatus)
        s1_first = Signal()                    # first row of the request
        s1_last = Signal()                     # last row of the request
        s1_shift = Signal(5)
        s1_len = Signal(16)
        s1_ready = Signal()
        step = Signal()
        m.d.comb += step.eq(active & (~s1_valid | s1_ready))
        last_row = ri == cur.nrows_m1
        finishing = step & last_row
        head_ok = q.r_rdy & (~head.has_tag | self.q_done)
        take = Signal()
        m.d.comb += take.eq(head_ok & (~active | finishing))
        m.d.comb += q.r_en.eq(take)

        tag_rows = Signal(self.row_bits)
        m.d.comb += tag_rows.eq(cur.tag * R + cur.row + ri)
        m.d.comb += [self.raddr.eq(tag_rows), self.ren.eq(step)]
        with m.If(step):
            m.d.sync += [
                ri.eq(ri + 1),
                s1_valid.eq(1),
                s1_zero.eq(~cur.has_tag | (cur_st != DmaStatus.OK)),
                s1_st.eq(cur_st),
                s1_first.eq(cur.first & (ri == 0)),
                s1_last.eq(cur.last & last_row),
                s1_shift.eq(cur.shift),
                s1_len.eq(cur.len_m1),
            ]
        with m.Elif(s1_ready):
            m.d.sync += s1_valid.eq(0)
        m.d.comb += [self.done_valid.eq(finishing & cur.has_tag), self.done_tag.eq(cur.tag)]
        # (after the row step: a chunk taken in the cycle its predecessor finishes starts at row 0)
        with m.If(take):
            m.d.sync += [active.eq(1), cur.eq(head), ri.eq(0),
                         cur_st.eq(Mux(head.has_tag, self.q_status, head.status))]
        with m.Elif(finishing):
            m.d.sync += active.eq(0)

        # ---- stage 1: byte aligner -------------------------------------------------------------------
        o = self.rdata_o
        load = ~o.valid | o.ready
        with m.If(o.valid & o.ready):
            m.d.sync += o.valid.eq(0)
        A = Signal(W)
        m.d.comb += A.eq(Mux(s1_zero, 0, self.rdata))
        H = Signal(W)
        pend = Signal()                        # H holds a row whose bytes from ``shift`` are due
        tail = Signal()                        # ... and it is the request's last row (flush)
        k = Signal(13)                         # beats of the request already handed on
        st_acc = Signal(DmaStatus)
        shift = Signal(5)
        cur_len = Signal(16)
        st_in = Signal(DmaStatus)
        m.d.comb += st_in.eq(Mux(s1_first | (st_acc == DmaStatus.OK), s1_st, st_acc))
        sh = Mux(s1_first, s1_shift, shift)
        lm1 = Mux(s1_first, s1_len, cur_len)
        n_m1 = Signal(13)
        m.d.comb += n_m1.eq(lm1 >> bshift)

        def window(lo, hi, s):
            out = Signal(W)
            win = Cat(lo, hi)
            with m.Switch(s[:bshift]):
                for v in range(B):
                    with m.Case(v):
                        m.d.comb += out.eq(win[8 * v:8 * v + W])
            return out

        def masked(d, beat_no, len_m1):
            # bytes past the length in the last beat are zero
            keep_n = Signal(range(B + 1))
            m.d.comb += keep_n.eq(Mux(beat_no == (len_m1 >> bshift), len_m1[:bshift] + 1, B))
            mask = Signal(W)
            for b in range(B):
                m.d.comb += mask[8 * b:8 * b + 8].eq(Mux(b < keep_n, 0xFF, 0))
            return d & mask

        def emit(d, beat_no, last, st):
            m.d.sync += [o.valid.eq(1), o.payload.data.eq(masked(d, beat_no, lm1)),
                         o.payload.last.eq(last),
                         o.payload.status.eq(Mux(last, st, DmaStatus.OK))]

        with m.If(tail & load):
            # flush: the last beat of an unaligned request from the held row alone
            d = window(H, Const(0, W), shift)
            m.d.sync += [o.valid.eq(1), o.payload.data.eq(masked(d, k, cur_len)),
                         o.payload.last.eq(1), o.payload.status.eq(st_acc), pend.eq(0),
                         tail.eq(0)]
        m.d.comb += s1_ready.eq(load & ~tail)
        with m.If(s1_valid & s1_ready):
            with m.If(s1_first):
                m.d.sync += [shift.eq(s1_shift), cur_len.eq(s1_len), k.eq(0)]
            m.d.sync += st_acc.eq(st_in)
            kk = Mux(s1_first, 0, k)
            with m.If(sh[:bshift] == 0):
                # aligned request: rows are the beats
                emit(A, kk, s1_last, st_in)
                m.d.sync += k.eq(kk + 1)
            with m.Elif(s1_first):
                m.d.sync += [H.eq(A), pend.eq(1)]
                with m.If(s1_last):
                    # one row only: its bytes from ``shift`` are the whole request
                    emit(window(A, Const(0, W), sh), 0, 1, st_in)
                    m.d.sync += pend.eq(0)
            with m.Else():
                emit(window(H, A, sh), kk, s1_last & (kk == n_m1), st_in)
                m.d.sync += [H.eq(A), k.eq(kk + 1)]
                with m.If(s1_last):
                    with m.If(kk == n_m1):
                        m.d.sync += pend.eq(0)
                    with m.Else():
                        m.d.sync += tail.eq(1)
        return m
