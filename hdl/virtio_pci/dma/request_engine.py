"""Request engine of the requester: back-end requests split into PCIe memory requests.

PCI Express Base Specification 5.0: 2.2.7 (memory request header, 4 KiB rule), 2.2.4.1
(3-DW header below 4 GiB, 4-DW at and above), 2.2.5 (First/Last DW byte enables), 2.2.6.2
(Requester ID and tags), 7.5.3.4 (Max_Payload_Size, Max_Read_Request_Size, Extended Tag, Relaxed
Ordering and No Snoop enables), 7.5.1.1.3 (Bus Master Enable); requirements DMA-01..08, DMA-18.

One back-end request (``DmaRequest``) at a time becomes a sequence of chunks:

* a read is split at multiples of ``R = min(MRRS, max_read)`` bytes (``max_read`` is the size of
  one tag's slot in the read buffer, ``VirtioPciParams.dma_max_read``); a write at multiples of
  MPS.  Both are powers of two up to 4096 that divide 4096, so no chunk crosses a 4 KiB boundary,
  and every chunk lies inside one naturally aligned block of its size.  MPS and MRRS are taken
  when the request is accepted: a change of Device Control applies from the next request;
* a read chunk takes a tag from the tag pool, leaves as an MRd TLP (``mrd``), is announced to the
  completion reassembly (``issue``) and queued for the read-out in request order (``order``);
* a write chunk is handed to the write packer (``wcmd``), which sends it once its data is in.

Refusals: a read asked for while Bus Master Enable is clear, or whose remaining chunks are cut
off by BME being cleared or by an FLR, is queued for the read-out as one chunk without a tag
(status BME, resp. RESET); nothing is sent for it.  Write chunks always go to the write packer,
which checks BME when a chunk is about to leave (writes must not leave after BME was cleared).

An MRd in the output register that the tx arbiter has not presented on ``tx`` yet (``mrd_held``
clear) when an FLR comes is withdrawn in that cycle: it would otherwise leave after the FLR, with
Bus Master Enable clear (PCIe 7.5.1.1.3, DMA-19).  ``withdraw_valid`` / ``withdraw_tag`` tell the
completion reassembly that no completion can come for that tag, so it is freed at once instead of
being quarantined.  An MRd already presented stays (stream rules) and leaves; its tag is
quarantined like that of any MRd that left.

Ordering: MRds are not issued while the write packer holds unsent write chunks (a read does not
pass a posted write of the same requester, PCIe 2.4.1 row B column 2).

Timing: ``req`` is accepted when the engine is idle (``req.ready`` depends on internal state
only, never on ``req.valid``; a write also needs ``wr_credit``); the first MRd
beat is valid 2 cycles after the request was accepted (DESIGN.md section 8: <= 3), one MRd every
two cycles after that (W >= 128; every three at W = 64) while tags last; one write chunk per cycle into ``wcmd``.
"""
from amaranth.hdl import Cat, Const, Module, Mux, Signal
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out
from amaranth.utils import exact_log2

from ..tlp.layouts import FmtType, HdrDW0, ReqDW1, tlp_stream
from .layouts import DmaRequest, DmaStatus

__all__ = ["RequestEngine", "WriteChunk", "ReadChunk", "IssueInfo", "request_header",
           "split_chunks", "byte_enables", "size_code_bytes"]


def size_code_bytes(code):
    """Device Control MPS / MRRS code -> bytes (codes 6 and 7 are reserved: 128)."""
    return 128 << code if code <= 5 else 128


def split_chunks(addr, length, boundary):
    """Python reference: (address, length) of the chunks of [addr, addr+length) split at
    multiples of ``boundary``."""
    out = []
    end = addr + length
    while addr < end:
        n = min(end - addr, boundary - addr % boundary)
        out.append((addr, n))
        addr += n
    return out


def byte_enables(addr, n):
    """Python reference: (length in DWs, First DW BE, Last DW BE) of [addr, addr+n) (PCIe 2.2.5)."""
    first_dw, last_dw = addr >> 2, (addr + n - 1) >> 2
    length = last_dw - first_dw + 1
    fbe = (0xF << (addr & 3)) & 0xF
    lbe = 0xF >> (3 - ((addr + n - 1) & 3))
    if length == 1:
        return 1, fbe & lbe, 0
    return length, fbe, lbe


class WriteChunk(data.Struct):
    """One write chunk for the write packer: ``n`` bytes at ``addr``, ``offset`` bytes into its
    request; ``req_beats_m1`` = index of the request's last ``dma_wdata`` beat; ``last`` marks
    the request's last chunk; ``attr`` the Attr bits (bit 0 No Snoop, bit 1 Relaxed Ordering)."""
    addr: 64
    n: 13
    offset: 16
    req_beats_m1: 13
    last: 1
    attr: 2


class ReadChunk(data.Struct):
    """One read chunk for the read-out, in request order.  ``nrows_m1 + 1`` buffer rows from row
    ``row`` of tag ``tag``'s slot hold its bytes (rows of W/8 bytes aligned in the bus address
    space); ``has_tag`` 0: refused, nothing was sent, ``status`` says why.  ``first``/``last``:
    first/last chunk of its request; ``shift`` = request address mod W/8; ``len_m1``: request
    length - 1."""
    tag: 8
    has_tag: 1
    status: DmaStatus
    row: 9
    nrows_m1: 14
    first: 1
    last: 1
    shift: 5
    len_m1: 16


class IssueInfo(data.Struct):
    """An MRd that leaves now: ``tag``, offset of its first byte in the tag's slot, byte count."""
    tag: 8
    offset: 12
    byte_count: 13


def request_header(m, *, write, addr, n, attr, tag, requester_id):
    """Header DWs (4 Signals, spec drawing order) and ``is4`` of a memory request for ``n`` bytes
    (1..4096) at byte address ``addr``."""
    first_dw = addr[2:12]
    last_byte = Signal(12)
    m.d.comb += last_byte.eq(addr[:12] + n - 1)
    length = Signal(11)
    m.d.comb += length.eq(last_byte[2:12] - first_dw + 1)
    fbe_full = Signal(4)
    with m.Switch(addr[:2]):
        for k in range(4):
            with m.Case(k):
                m.d.comb += fbe_full.eq((0xF << k) & 0xF)
    lbe_full = Signal(4)
    with m.Switch(last_byte[:2]):
        for k in range(4):
            with m.Case(k):
                m.d.comb += lbe_full.eq(0xF >> (3 - k))
    is4 = Signal()
    m.d.comb += is4.eq(addr[32:].any())
    dw0 = Signal(HdrDW0)
    dw1 = Signal(ReqDW1)
    m.d.comb += [
        dw0.length.eq(length[:10]),
        dw0.attr.eq(attr),
        dw0.fmt_type.eq(Mux(write, Mux(is4, FmtType.MWR64, FmtType.MWR32),
                            Mux(is4, FmtType.MRD64, FmtType.MRD32))),
        dw1.first_be.eq(Mux(length == 1, fbe_full & lbe_full, fbe_full)),
        dw1.last_be.eq(Mux(length == 1, 0, lbe_full)),
        dw1.tag.eq(tag),
        dw1.requester_id.eq(requester_id),
    ]
    lo = Cat(Const(0, 2), addr[2:32])
    dws = [dw0.as_value(), dw1.as_value(), Mux(is4, addr[32:64], lo), lo]
    return dws, is4


class RequestEngine(wiring.Component):
    """Ports
    -----
    req : In stream of ``DmaRequest`` (the back-end's ``dma_req``).
    tag : In stream of free tags (``TagPool.alloc``).
    mrd : Out TLP stream of MRd requests (registered).
    wcmd : Out stream of ``WriteChunk`` for the write packer.
    order : Out stream of ``ReadChunk`` for the read-out.
    issue_valid/issue : Out, pulse with ``IssueInfo`` the cycle an MRd is committed (its tag is
        taken from the pool the same cycle).
    wr_accept : Out pulse, a write request was accepted on ``req``.
    wr_credit : In, the write packer can take one more write request (its ``dma_wdone`` answer
        has room); write requests wait for it.
    wr_busy : In, the write packer holds unsent write chunks; MRds wait (ordering).
    mrd_held : In, the tx arbiter presents the MRd on ``tx`` and must keep it (``TxArbiter.held``).
    withdraw_valid/withdraw_tag : Out, pulse: the MRd with this tag was withdrawn at an FLR.
    bme, flr, mps, mrrs, relaxed_en, no_snoop_en, requester_id : In, from config space.
    """

    def __init__(self, width, max_read, max_payload=4096):
        if width not in (64, 128, 256):
            raise ValueError(f"TLP data width must be 64, 128 or 256, not {width!r}")
        if max_read not in (128, 256, 512, 1024, 2048, 4096):
            raise ValueError(f"maximum read size must be a power of two in 128..4096, not {max_read!r}")
        self.width = width
        self.max_read = max_read
        self.max_payload = max_payload
        super().__init__({
            "req": In(stream.Signature(DmaRequest)),
            "tag": In(stream.Signature(8)),
            "mrd": Out(tlp_stream(width)),
            "wcmd": Out(stream.Signature(WriteChunk)),
            "order": Out(stream.Signature(ReadChunk)),
            "issue_valid": Out(1),
            "issue": Out(IssueInfo),
            "wr_accept": Out(1),
            "wr_credit": In(1),
            "wr_busy": In(1),
            "mrd_held": In(1),
            "withdraw_valid": Out(1),
            "withdraw_tag": Out(8),
            "bme": In(1),
            "flr": In(1),
            "mps": In(3),
            "mrrs": In(3),
            "relaxed_en": In(1),
            "no_snoop_en": In(1),
            "requester_id": In(16),
        })

    def elaborate(self, platform):
        m = Module()
        W = self.width
        B = W // 8
        L = W // 32
        bshift = exact_log2(B)
        S = self.max_read
        req = self.req

        active = Signal()
        write = Signal()
        addr = Signal(64)
        rem = Signal(17)           # bytes left, 1..65536
        offset = Signal(17)        # bytes of the request already handed on
        attr = Signal(2)
        len_m1 = Signal(16)
        shift = Signal(5)
        first = Signal()
        aborted = Signal()         # an FLR cut this read request

        # chunk boundary: MPS for writes, min(MRRS, slot) for reads (bytes, power of two),
        # taken when the request is accepted (a request is split with one boundary)
        mps_b = Signal(13)
        mrrs_b = Signal(13)
        with m.Switch(self.mps):
            for c in range(8):
                with m.Case(c):
                    m.d.comb += mps_b.eq(min(size_code_bytes(c), self.max_payload))
        with m.Switch(self.mrrs):
            for c in range(8):
                with m.Case(c):
                    m.d.comb += mrrs_b.eq(min(size_code_bytes(c), S))
        bsz = Signal(13)
        # bytes from addr to the next boundary: registered (Fmax), since after the first chunk
        # every chunk starts on a boundary, it is the whole boundary from then on
        to_b = Signal(13)

        m.d.comb += req.ready.eq(~active & (~req.payload.write | self.wr_credit))
        with m.If(req.valid & req.ready):
            p = req.payload
            p_bsz = Mux(p.write, mps_b, mrrs_b)
            m.d.sync += [
                active.eq(1), write.eq(p.write), addr.eq(p.addr), rem.eq(p.len_m1 + 1),
                offset.eq(0), len_m1.eq(p.len_m1), first.eq(1), aborted.eq(0),
                shift.eq(p.addr[:bshift]),
                attr.eq(Cat(p.no_snoop & self.no_snoop_en, p.relaxed & self.relaxed_en)),
                bsz.eq(p_bsz), to_b.eq(p_bsz - (p.addr[:12] & (p_bsz - 1))),
            ]
        m.d.comb += self.wr_accept.eq(req.valid & req.ready & req.payload.write)
        with m.If(self.flr & active & ~write):
            m.d.sync += aborted.eq(1)

        n = Signal(13)
        m.d.comb += n.eq(Mux(rem < to_b, rem, to_b))
        last_chunk = Signal()
        m.d.comb += last_chunk.eq(rem == n)

        # ---- MRd output register ----------------------------------------------------------
        mrd = self.mrd
        hdr = [Signal(32, name=f"mrd_hdr{i}") for i in range(4)]
        hdr_is4 = Signal()
        beat_i = Signal()          # second beat of a W=64 header
        n_beats = 2 if L == 2 else 1
        mrd_v = Signal()           # the output register holds an MRd
        mrd_tag = Signal(8)
        withdraw = Signal()
        m.d.comb += [withdraw.eq(mrd_v & self.flr & ~self.mrd_held),
                     mrd.valid.eq(mrd_v & ~withdraw),
                     self.withdraw_valid.eq(withdraw), self.withdraw_tag.eq(mrd_tag)]
        with m.If(withdraw):
            m.d.sync += [mrd_v.eq(0), beat_i.eq(0)]
        # a new MRd is built only into an empty register: the tx arbiter's ready does not reach
        # the tag pool and the per-tag state in the same cycle (Fmax); one MRd every other cycle
        # still asks for 16 to 256 data beats per two cycles
        mrd_free = ~mrd_v
        with m.If(mrd.valid & mrd.ready):
            if n_beats == 2:
                m.d.sync += beat_i.eq(~beat_i)
                with m.If(mrd.payload.last):
                    m.d.sync += mrd_v.eq(0)
            else:
                m.d.sync += mrd_v.eq(0)
        if L == 2:
            m.d.comb += [
                mrd.payload.data.eq(Mux(beat_i, Cat(hdr[2], hdr[3]), Cat(hdr[0], hdr[1]))),
                mrd.payload.keep.eq(Mux(beat_i, Mux(hdr_is4, 0b11, 0b01), 0b11)),
                mrd.payload.first.eq(~beat_i),
                mrd.payload.last.eq(beat_i),
            ]
        else:
            m.d.comb += [
                mrd.payload.data.eq(Cat(*hdr)),
                mrd.payload.keep.eq(Mux(hdr_is4, 0b1111, 0b0111)),
                mrd.payload.first.eq(1),
                mrd.payload.last.eq(1),
            ]

        dws, is4 = request_header(m, write=write, addr=addr, n=n, attr=attr,
                                  tag=self.tag.payload, requester_id=self.requester_id)

        # ---- rows of the read buffer a chunk occupies --------------------------------------
        row = Signal(9)
        m.d.comb += row.eq((addr[:12] & (S - 1)) >> bshift)
        end_addr = Signal(64)     # last byte of the chunk, resp. of the refused remainder
        refuse = Signal()
        m.d.comb += refuse.eq(aborted | ~self.bme)
        m.d.comb += end_addr.eq(addr + Mux(refuse, rem, n) - 1)
        nrows_m1 = Signal(14)
        m.d.comb += nrows_m1.eq(end_addr[bshift:bshift + 14] - addr[bshift:bshift + 14])

        o = Signal(ReadChunk)          # the order entry of this cycle's chunk
        m.d.comb += [
            o.tag.eq(self.tag.payload),
            o.row.eq(row),
            o.nrows_m1.eq(nrows_m1),
            o.first.eq(first),
            o.shift.eq(shift),
            o.len_m1.eq(len_m1),
            o.has_tag.eq(~refuse),
            o.last.eq(refuse | last_chunk),
            o.status.eq(Mux(aborted, DmaStatus.RESET, Mux(refuse, DmaStatus.BME, DmaStatus.OK))),
            self.issue.tag.eq(self.tag.payload),
            self.issue.offset.eq(addr[:12] & (S - 1)),
            self.issue.byte_count.eq(n),
        ]
        w = Signal(WriteChunk)
        m.d.comb += [
            w.addr.eq(addr), w.n.eq(n), w.offset.eq(offset), w.req_beats_m1.eq(len_m1 >> bshift),
            w.last.eq(last_chunk), w.attr.eq(attr),
        ]

        with m.If(self.order.valid & self.order.ready):
            m.d.sync += self.order.valid.eq(0)
        with m.If(self.wcmd.valid & self.wcmd.ready):
            m.d.sync += self.wcmd.valid.eq(0)
        order_free = ~self.order.valid | self.order.ready
        wcmd_free = ~self.wcmd.valid | self.wcmd.ready

        advance = Signal()
        with m.If(active & ~write):
            with m.If(refuse):
                with m.If(order_free):
                    m.d.sync += [self.order.valid.eq(1), self.order.payload.eq(o), active.eq(0)]
            with m.Elif(order_free & mrd_free & self.tag.valid & ~self.wr_busy & ~self.wcmd.valid
                        & ~self.flr):
                m.d.comb += [self.tag.ready.eq(1), self.issue_valid.eq(1), advance.eq(1)]
                m.d.sync += [self.order.valid.eq(1), self.order.payload.eq(o), mrd_v.eq(1),
                             mrd_tag.eq(self.tag.payload), hdr_is4.eq(is4), beat_i.eq(0)]
                m.d.sync += [h.eq(d) for h, d in zip(hdr, dws)]
        with m.If(active & write & wcmd_free):
            m.d.comb += advance.eq(1)
            m.d.sync += [self.wcmd.valid.eq(1), self.wcmd.payload.eq(w)]
        with m.If(advance):
            m.d.sync += [addr.eq(addr + n), rem.eq(rem - n), offset.eq(offset + n), first.eq(0),
                         to_b.eq(bsz)]
            with m.If(last_chunk):
                m.d.sync += active.eq(0)
        return m
