"""Depacketizer: raw TLP beats in, one decoded DW operation per cycle out.

PCI Express Base Specification 2.2 (TLP formats), 2.3 (handling of received TLPs:
Unsupported Request, malformed TLPs), 2.3.1.1 (data return for read requests: completion
boundaries, byte count and lower address).

Every received TLP is classified from its header and from the number of DWs that actually
arrived.  Requests this function serves are split into DW operations (``OpLayout``):

* a write of N DWs becomes N write operations carrying data and byte enables;
* a read of N DWs becomes N read operations; each carries the bookkeeping of the completion it
  belongs to (completions are split at naturally aligned Max_Payload_Size boundaries, which are
  also read completion boundaries);
* a non-posted request that is not served becomes one operation of space ``NONE`` whose completion
  has status UR; a posted request that is not served is dropped.

Malformed TLPs (length against payload, byte-enable rules, 4 KiB crossing, payload over
Max_Payload_Size, TLP prefixes, undefined types) are dropped without a completion.  Messages
are dropped; an (unsupported) Vendor_Defined Type 0 message also counts as a posted Unsupported
Request (2.2.8.6).  So are broken
frames: beats without ``first`` outside a TLP, and a TLP cut short by a new ``first`` beat (its
``err_malformed`` pulse comes with that beat).

Timing: the first operation of a TLP is valid the cycle after its last beat is accepted on ``rx``.
TLPs that need one operation (single-DW reads and writes, UR answers) are accepted back to back,
one per beat: at W >= 128 a single-DW request takes one cycle.  The remaining operations of a
longer TLP follow one per cycle while ``rx`` is held.  A TLP whose payload spans beats is stored
in a small beat memory and checked before any of it is written (store and forward).
"""
from amaranth.hdl import Cat, Const, Module, Mux, Signal, unsigned
from amaranth.lib import wiring, memory, stream
from amaranth.lib.wiring import In, Out
from amaranth.utils import ceil_log2

from .layouts import (FmtType, CplStatus, HdrDW0, ReqDW1, CfgDW2, Space, OpLayout, tlp_stream)

__all__ = ["Depacketizer", "byte_count_for", "first_be_offset"]

#: Message Code of Vendor_Defined Type 0 (PCIe Table 2-25)
MSG_VENDOR_DEFINED_TYPE0 = 0x7E


def first_be_offset(m, fbe):
    """Offset of the first enabled byte (0 when no byte is enabled)."""
    off = Signal(2)
    with m.Switch(fbe):
        for v in range(16):
            with m.Case(v):
                if v == 0:
                    m.d.comb += off.eq(0)
                else:
                    m.d.comb += off.eq((v & -v).bit_length() - 1)
    return off


def byte_count_for(length, fbe, lbe):
    """Python reference of the PCIe byte count of a memory read (Table 2-37)."""
    n = length or 1024
    if n == 1:
        if fbe == 0:
            return 1
        lo = (fbe & -fbe).bit_length() - 1
        hi = fbe.bit_length() - 1
        return hi - lo + 1
    lo = (fbe & -fbe).bit_length() - 1
    hi = lbe.bit_length()
    return (n - 1) * 4 - lo + hi


class Depacketizer(wiring.Component):
    """Receive side of the transaction layer.

    Ports
    -----
    rx : TLP stream, in
    op : stream of ``OpLayout`` operations, out; the first operation of a TLP is valid one cycle
         after its last beat.
    mem_bar_base : 64-bit base address of the memory BAR (from config space).
    mem_enable, io_enable : Command register Memory/I/O Space enables.
    io_bar_base : 32-bit base of the I/O BAR (transitional devices, ``legacy_guard``).
    mps : Device Control Max_Payload_Size code (0 = 128 bytes).
    completer_id : the bus/device number captured from the last CfgRd0/CfgWr0 (function 0).
    cpl_routed : In, a requester (``dma/``) takes the completions on ``rx`` (it snoops the beats
        and reports unexpected ones itself); when low every completion counts as unexpected.
    err_* : one-cycle pulses per dropped or refused TLP, for error reporting and counters
        (``err_ur_posted``: the UR was a posted request, answered by nobody).
    """

    def __init__(self, params):
        self._p = params
        self._w = params.data_width
        self._lanes = self._w // 32
        self._bar_bits = ceil_log2(params.mem_bar_size)
        self._io_bits = ceil_log2(params.io_bar_size)
        self.addr_width = max(self._bar_bits - 2, 10)
        super().__init__({
            "rx": In(tlp_stream(self._w)),
            "op": Out(stream.Signature(OpLayout(self.addr_width))),
            "mem_bar_base": In(64),
            "io_bar_base": In(32),
            "mem_enable": In(1),
            "io_enable": In(1),
            "mps": In(3),
            "completer_id": Out(16),
            "cpl_routed": In(1),
            "err_malformed": Out(1),
            "err_ur": Out(1),
            "err_ur_posted": Out(1),
            "err_poisoned": Out(1),
            "err_unexpected_cpl": Out(1),
            "msg_dropped": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        p = self._p
        L = self._lanes
        rx = self.rx
        beat = rx.payload

        max_dw = 4 + p.max_payload_supported // 4 + 1
        depth = (max_dw + L - 1) // L
        row_bits = ceil_log2(depth + 1)

        def lane(i):
            return beat.data[32 * i:32 * (i + 1)]

        # ---- beat store (for TLPs whose payload spans beats) -------------------------------
        m.submodules.beats = beats = memory.Memory(shape=unsigned(self._w), depth=depth, init=[])
        wr = beats.write_port()
        rd = beats.read_port(transparent_for=(wr,))

        in_tlp = Signal()          # a TLP has started and its last beat is still to come
        row = Signal(row_bits)     # beats of the current TLP already accepted
        ndw_reg = Signal(range(max_dw * 2 + L + 1))
        overflow = Signal()
        hdr_reg = [Signal(32, name=f"hdr{i}") for i in range(4)]
        d0_reg = {h: Signal(32, name=f"d0_{h}") for h in (3, 4)}

        # a beat with first=1 starts a TLP even if the previous one never saw its last beat
        start = beat.first
        cur_row = Mux(start, 0, row)

        keep_count = Signal(range(L + 1))
        m.d.comb += keep_count.eq(sum(beat.keep[i] for i in range(L)))
        ndw = Signal.like(ndw_reg)
        m.d.comb += ndw.eq(Mux(start, 0, ndw_reg) + keep_count)

        cur_hdr = []
        for i in range(4):
            bi, li = divmod(i, L)
            s = Signal(32, name=f"cur_hdr{i}")
            m.d.comb += s.eq(Mux(cur_row == bi, lane(li), hdr_reg[i]))
            cur_hdr.append(s)
        d0_cur = {}
        for h in (3, 4):
            bi, li = divmod(h, L)
            s = Signal(32, name=f"d0_cur{h}")
            m.d.comb += s.eq(Mux(cur_row == bi, lane(li), d0_reg[h]))
            d0_cur[h] = s

        dw0 = HdrDW0(cur_hdr[0])
        dw1 = ReqDW1(cur_hdr[1])
        cfg = CfgDW2(cur_hdr[2])
        ft = dw0.fmt_type
        is4 = ft[5]
        has_data = ft[6]
        len_dw = Signal(11)
        m.d.comb += len_dw.eq(Mux(dw0.length == 0, 1024, dw0.length))
        expected = Signal(12)
        m.d.comb += expected.eq(Mux(is4, 4, 3) + Mux(has_data, len_dw, 0) + dw0.td)
        d0 = Signal(32)
        m.d.comb += d0.eq(Mux(is4, d0_cur[4], d0_cur[3]))

        addr = Signal(64)
        m.d.comb += addr.eq(Mux(is4, Cat(cur_hdr[3], cur_hdr[2]), cur_hdr[2]))
        addr_dw = addr[2:]

        # ---- classification ----------------------------------------------------------------
        ft_is = lambda *codes: Cat(*(ft == c for c in codes)).any()
        is_mrd = ft_is(FmtType.MRD32, FmtType.MRD64)
        is_mwr = ft_is(FmtType.MWR32, FmtType.MWR64)
        is_io = ft_is(FmtType.IORD, FmtType.IOWR)
        is_cfg0 = ft_is(FmtType.CFGRD0, FmtType.CFGWR0)
        is_cfg1 = ft_is(FmtType.CFGRD1, FmtType.CFGWR1)
        is_lk = ft_is(FmtType.MRDLK32, FmtType.MRDLK64)
        is_atomic = ft_is(FmtType.FETCHADD32, FmtType.FETCHADD64, FmtType.SWAP32, FmtType.SWAP64,
                          FmtType.CAS32, FmtType.CAS64)
        is_msg = (ft[3:8] == 0b00110) | (ft[3:8] == 0b01110)
        is_cpl = ft_is(FmtType.CPL, FmtType.CPLD, FmtType.CPLLK, FmtType.CPLDLK)
        # PCIe 2.2.8.6: an unsupported Vendor_Defined Type 0 message (code 0x7E) is an Unsupported
        # Request (posted: dropped and logged); every other message is dropped silently
        is_vdm0 = is_msg & (Cat(dw1.first_be, dw1.last_be) == MSG_VENDOR_DEFINED_TYPE0)
        is_prefix = ft[7]
        known = is_mrd | is_mwr | is_io | is_cfg0 | is_cfg1 | is_lk | is_atomic | is_msg | is_cpl

        fbe, lbe = dw1.first_be, dw1.last_be
        be_ok = Mux(len_dw == 1, lbe == 0, (lbe != 0) & (fbe != 0))
        single_ok = (dw0.length == 1) & (lbe == 0)
        crosses_4k = (addr[2:12] + len_dw) > 1024
        mps_dw = Signal(11)
        with m.Switch(self.mps):
            for c in range(6):
                with m.Case(c):
                    m.d.comb += mps_dw.eq(min(32 << c, p.max_payload_supported // 4))
            with m.Default():
                m.d.comb += mps_dw.eq(32)
        # 2.2.2: a payload above Max_Payload_Size makes any TLP malformed (completions and
        # messages included), not only memory writes
        too_long = has_data & (len_dw > mps_dw)

        length_ok = (ndw == expected) & ~overflow
        malformed = Signal()
        m.d.comb += malformed.eq(
            is_prefix | ~known | ~length_ok | too_long
            | ((is_mrd | is_mwr) & (~be_ok | crosses_4k))
            | ((is_io | is_cfg0) & (~single_ok | (dw0.tc != 0)))
        )

        bar_hit = Signal()
        m.d.comb += bar_hit.eq(self.mem_enable
                               & (addr[self._bar_bits:] == self.mem_bar_base[self._bar_bits:]))
        io_hit = Signal()
        if p.has_io_bar:
            m.d.comb += io_hit.eq(self.io_enable
                                  & (addr[self._io_bits:32] == self.io_bar_base[self._io_bits:32])
                                  & ~is4)
        poisoned = dw0.ep & has_data
        nonposted = ~(is_mwr | is_msg | is_cpl)

        serve_mem = (is_mrd | is_mwr) & bar_hit & ~poisoned
        serve_io = is_io & io_hit & ~poisoned
        serve_cfg = is_cfg0 & (cfg.function == 0) & ~poisoned
        serve = ~malformed & (serve_mem | serve_io | serve_cfg)
        # addressed to this function (a poisoned request is a poisoned-TLP error, not a UR)
        claimed = ((is_mrd | is_mwr) & bar_hit) | (is_io & io_hit) | (is_cfg0 & (cfg.function == 0))
        answer_ur = ~malformed & ~serve & nonposted

        # bookkeeping of the first completion of a read
        fbe_off = first_be_offset(m, fbe)
        total_bc = Signal(13)
        lbe_bytes = Signal(3)
        with m.Switch(lbe):
            for v in range(16):
                with m.Case(v):
                    m.d.comb += lbe_bytes.eq(v.bit_length())
        fbe_hi = Signal(3)
        with m.Switch(fbe):
            for v in range(16):
                with m.Case(v):
                    m.d.comb += fbe_hi.eq(v.bit_length())
        with m.If(len_dw == 1):
            m.d.comb += total_bc.eq(Mux(fbe == 0, 1, fbe_hi - fbe_off))
        with m.Else():
            m.d.comb += total_bc.eq(((len_dw - 1) << 2) - fbe_off + lbe_bytes)

        mps_mask = Signal(11)
        m.d.comb += mps_mask.eq(mps_dw - 1)
        to_boundary = Signal(11)
        m.d.comb += to_boundary.eq(mps_dw - (addr_dw[:10] & mps_mask))
        first_cpl_len = Signal(11)
        m.d.comb += first_cpl_len.eq(Mux(len_dw < to_boundary, len_dw, to_boundary))

        # ---- operation generation ----------------------------------------------------------
        op = self.op
        can_load = ~op.valid | op.ready
        opl = OpLayout(self.addr_width)
        nxt = Signal(opl)
        n_ops = Signal(11)

        space = Signal(Space)
        op_addr = Signal(self.addr_width)
        with m.If(serve_cfg):
            m.d.comb += [space.eq(Space.CFG), op_addr.eq(Cat(cfg.reg, cfg.ext_reg))]
        with m.Elif(serve_io):
            m.d.comb += [space.eq(Space.IO), op_addr.eq(addr[2:self._io_bits])]
        with m.Elif(serve_mem):
            m.d.comb += [space.eq(Space.MEM), op_addr.eq(addr[2:self._bar_bits])]
        with m.Else():
            m.d.comb += space.eq(Space.NONE)
        is_write = has_data & ~is_msg & ~is_cpl

        m.d.comb += [
            nxt.space.eq(Mux(serve, space, Space.NONE)),
            nxt.write.eq(serve & is_write),
            nxt.addr.eq(op_addr),
            nxt.be.eq(fbe),
            nxt.data.eq(d0),
            nxt.need_cpl.eq(nonposted),
            nxt.cpl.requester_id.eq(dw1.requester_id),
            nxt.cpl.tag.eq(Cat(dw1.tag, dw0.t8, dw0.t9)),
            nxt.cpl.tc.eq(dw0.tc),
            nxt.cpl.attr.eq(Cat(dw0.attr, dw0.attr2)),
        ]
        with m.If(answer_ur):
            m.d.comb += [
                nxt.cpl.status.eq(CplStatus.UR),
                nxt.cpl_end.eq(1),
                # a locked read (always UR here) is a memory read too: its completion carries
                # the read's byte count and lower address, and is a CplLk
                nxt.cpl.byte_count.eq(Mux(is_mrd | is_lk, total_bc, 4)),
                nxt.cpl.lower_addr.eq(Mux(is_mrd | is_lk, Cat(fbe_off, addr_dw[:5]), 0)),
                nxt.cpl.locked.eq(is_lk),
                n_ops.eq(1),
            ]
        with m.Elif(serve_mem & is_mrd):
            m.d.comb += [
                nxt.cpl.status.eq(CplStatus.SC),
                nxt.cpl.has_data.eq(1),
                nxt.cpl.length.eq(first_cpl_len),
                nxt.cpl_end.eq(first_cpl_len == 1),
                nxt.cpl.byte_count.eq(total_bc),
                nxt.cpl.lower_addr.eq(Cat(fbe_off, addr_dw[:5])),
                n_ops.eq(len_dw),
            ]
        with m.Elif(serve_mem & is_mwr):
            m.d.comb += [nxt.cpl_end.eq(1), n_ops.eq(len_dw)]
        with m.Else():
            # config and I/O requests: one DW; reads return CplD, writes Cpl; byte count 4
            m.d.comb += [
                nxt.cpl.status.eq(CplStatus.SC),
                nxt.cpl.has_data.eq(~is_write),
                nxt.cpl.length.eq(Mux(is_write, 0, 1)),
                nxt.cpl_end.eq(1),
                nxt.cpl.byte_count.eq(4),
                n_ops.eq(1),
            ]

        # context of a TLP that needs more than one operation
        e_write = Signal()
        e_space = Signal(Space)
        e_addr = Signal(self.addr_width)
        e_left = Signal(11)           # operations still to emit
        e_lbe = Signal(4)
        e_cpl = Signal(opl.members["cpl"])
        e_cpl_left = Signal(11)       # DWs left in the current completion
        e_bytes_left = Signal(13)
        e_pos = Signal(range(max_dw + L + 1))   # DW position of the next payload DW in the TLP
        e_need = Signal()
        emitting = Signal()

        # beat memory: write every accepted beat, read the payload row needed next
        m.d.comb += [wr.addr.eq(cur_row), wr.data.eq(beat.data),
                     wr.en.eq(rx.valid & rx.ready & (cur_row < depth))]
        hlen = Mux(is4, 4, 3)
        rd_row = Signal(range(depth + 1))
        rd_lane = Signal(range(L))

        with m.If(~emitting):
            # accept beats; the last beat of a TLP needs room in the operation register
            m.d.comb += rx.ready.eq(~beat.last | can_load)
            with m.If(rx.valid & rx.ready):
                m.d.sync += [
                    in_tlp.eq(~beat.last),
                    row.eq(Mux(beat.last, 0, cur_row + 1)),
                    ndw_reg.eq(Mux(beat.last, 0, ndw)),
                    overflow.eq(Mux(beat.last, 0, (overflow & ~start) | (cur_row >= depth))),
                ]
                for i in range(4):
                    bi, li = divmod(i, L)
                    with m.If(cur_row == bi):
                        m.d.sync += hdr_reg[i].eq(lane(li))
                for h in (3, 4):
                    bi, li = divmod(h, L)
                    with m.If(cur_row == bi):
                        m.d.sync += d0_reg[h].eq(lane(li))
                # a `first` beat while a TLP is still open abandons that TLP: it is malformed
                # (counted here, on the beat that cuts it; merged with this TLP's own verdict
                # when this beat is also its last)
                cut = beat.first & in_tlp
                with m.If(~beat.first & ~in_tlp):
                    # a fragment without a start: drop it
                    m.d.comb += self.err_malformed.eq(beat.last)
                    m.d.sync += [in_tlp.eq(0), row.eq(0), ndw_reg.eq(0)]
                    with m.If(op.ready):
                        m.d.sync += op.valid.eq(0)
                with m.Elif(beat.last):
                    m.d.comb += [
                        self.err_malformed.eq(malformed | cut),
                        self.err_ur.eq(~malformed & ((~claimed & ~is_msg & ~is_cpl) | is_vdm0)),
                        self.err_ur_posted.eq(~malformed & ((~claimed & is_mwr) | is_vdm0)),
                        self.err_poisoned.eq(~malformed & poisoned),
                        self.err_unexpected_cpl.eq(~malformed & is_cpl & ~self.cpl_routed),
                        self.msg_dropped.eq(~malformed & is_msg),
                    ]
                    with m.If(serve_cfg & ~malformed):
                        m.d.sync += self.completer_id.eq(Cat(Const(0, 3), cfg.device, cfg.bus))
                    with m.If(serve | answer_ur):
                        # (cpl_start is set here, not as a constant in the comb struct: Yosys
                        # emits a constant bit-slice as an `always @*` with an empty
                        # sensitivity list, which event-driven simulators never evaluate)
                        m.d.sync += [op.valid.eq(1), op.payload.eq(nxt),
                                     op.payload.cpl_start.eq(1)]
                    with m.Else():
                        with m.If(op.ready):
                            m.d.sync += op.valid.eq(0)
                    with m.If(serve & (n_ops > 1)):
                        m.d.sync += [
                            emitting.eq(1),
                            e_write.eq(nxt.write),
                            e_space.eq(nxt.space),
                            e_addr.eq(op_addr + 1),
                            e_left.eq(n_ops - 1),
                            e_lbe.eq(lbe),
                            e_cpl.eq(nxt.cpl),
                            e_cpl_left.eq(first_cpl_len - 1),
                            e_bytes_left.eq(total_bc - ((first_cpl_len << 2) - fbe_off)),
                            e_pos.eq(hlen + 1),
                            e_need.eq(nxt.need_cpl),
                        ]
                with m.Else():
                    m.d.comb += self.err_malformed.eq(cut)
                    with m.If(op.ready):
                        m.d.sync += op.valid.eq(0)
            with m.Elif(op.ready):
                m.d.sync += op.valid.eq(0)
        with m.Else():
            m.d.comb += rx.ready.eq(0)
            with m.If(can_load):
                new_cpl = e_cpl_left == 0
                cpl_len = Mux(e_left < mps_dw, e_left, mps_dw)
                cur_cpl_left = Mux(new_cpl, cpl_len, e_cpl_left)
                m.d.sync += [
                    op.valid.eq(1),
                    op.payload.space.eq(e_space),
                    op.payload.write.eq(e_write),
                    op.payload.addr.eq(e_addr),
                    op.payload.be.eq(Mux(e_left == 1, e_lbe, 0xF)),
                    op.payload.data.eq(rd.data.word_select(rd_lane, 32)),
                    op.payload.need_cpl.eq(e_need),
                    op.payload.cpl_start.eq(~e_write & new_cpl),
                    op.payload.cpl_end.eq(~e_write & (cur_cpl_left == 1)),
                    op.payload.cpl.eq(e_cpl),
                    op.payload.cpl.length.eq(cpl_len),
                    op.payload.cpl.byte_count.eq(e_bytes_left),
                    op.payload.cpl.lower_addr.eq(Cat(Const(0, 2), e_addr[:5])),
                    e_addr.eq(e_addr + 1),
                    e_left.eq(e_left - 1),
                    e_pos.eq(e_pos + 1),
                    e_cpl_left.eq(cur_cpl_left - 1),
                ]
                with m.If(new_cpl):
                    m.d.sync += e_bytes_left.eq(e_bytes_left - (cpl_len << 2))
                with m.If(e_left == 1):
                    m.d.sync += emitting.eq(0)

        # payload row/lane addressing: the read port shows the row of the DW emitted next
        next_pos = Signal.like(e_pos)
        with m.If(emitting):
            m.d.comb += next_pos.eq(Mux(can_load, e_pos + 1, e_pos))
        with m.Else():
            m.d.comb += next_pos.eq(hlen + 1)
        m.d.comb += [
            rd_row.eq(next_pos // L if L > 1 else next_pos),
            rd.addr.eq(rd_row),
            rd.en.eq(1),
        ]
        lane_reg = Signal(range(L))
        m.d.sync += lane_reg.eq(next_pos % L if L > 1 else 0)
        m.d.comb += rd_lane.eq(lane_reg)
        return m
