"""AMD/Xilinx UltraScale+ PCIE4 integrated block adapter (PG213: "Completer Interface",
"Requester Interface", "Configuration Status Interface", "Configuration Extend Interface",
"Configuration Control Interface": FLR).

Interface facts used here (DWORD-aligned mode, no straddling, 64/128/256-bit AXI4-Stream):

* CQ (IP -> user): a 4-DW descriptor then the payload, contiguous from lane 0.  Descriptor DW0-1:
  address (bits 1:0 AT), DW2: dword count [10:0], request type [14:11], requester ID [31:16];
  DW3: tag [7:0], target function [15:8], BAR ID [18:16], BAR aperture [24:19], TC [27:25],
  attributes [30:28].  ``m_axis_cq_tuser``: first BE [3:0], last BE [7:4], sop [40],
  discontinue [41].  Request types: 0 MRd, 1 MWr, 2 IORd, 3 IOWr, 4 FetchAdd, 5 Swap, 6 CAS,
  7 locked MRd.
* CC (user -> IP): a 3-DW descriptor then the payload.  DW0: lower address [6:0], AT [9:8],
  byte count [28:16], locked read completion [29]; DW1: dword count [10:0], status [13:11],
  poisoned [14], requester ID [31:16]; DW2: tag [7:0], completer ID [23:8], completer ID enable
  [24], TC [27:25], attributes [30:28].  ``s_axis_cc_tuser``: discontinue [0].
* RQ (user -> IP): a 4-DW descriptor then the payload.  DW0-1 address, DW2 dword count [10:0],
  request type [14:11], poisoned [15], requester ID [31:16]; DW3 tag [7:0], completer ID [23:8],
  requester ID enable [24], TC [27:25], attributes [30:28].  ``s_axis_rq_tuser``: first BE [3:0],
  last BE [7:4].
* Status: ``cfg_function_status`` 4 bits per function (Command: I/O, Memory Space, Bus Master
  Enable, Interrupt Disable), ``cfg_max_payload``, ``cfg_max_read_req``,
  ``cfg_interrupt_msix_enable`` / ``_mask`` (bit per function), ``cfg_bus_number``;
  ``cfg_flr_in_process`` rises for an FLR, the user answers with ``cfg_flr_done`` when done.

The endpoint runs in hard-IP mode (``VirtioPciParams(hard_ip="cfg_ext")``): CQ requests become TLPs
with a 4-DW header whose address is the offset inside the BAR (``addr & (2**aperture - 1)``), so the
payload stays where the descriptor put it; the core's completions become CC packets (same payload
position: 3-DW header, 3-DW descriptor); its memory writes (MSI-X messages) become RQ packets.  INTx
messages have no place on RQ (the IP's ``cfg_interrupt_int`` does that): they are dropped and
counted on ``msg_dropped``.  The configuration-extension interface (``cfg_ext_*``) is answered by the
core's configuration space (a CfgRd0/CfgWr0 injected into its rx, the completion taken off tx).

See docs/usplus.md for what this cannot do (the virtio capabilities do not fit PG213's windows).
"""
from amaranth.hdl import Cat, Const, Module, Mux, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out, connect, flipped

from ..config.config_space import HardIpStatus
from ..tlp.layouts import FmtType, tlp_stream
from .cdc import AdaptedEndpoint, block_members, forward_block_ports
from .cfg_inject import CfgInjector
from .flr import FlrHandshake

__all__ = ["UsCq", "UsRc", "UsTx", "TlpMerge", "UsCfg", "UsPlusAdapter", "UsPlusEndpoint", "ReqType", "CFG_EXT_TAG"]

CFG_EXT_TAG = 0xCE


class ReqType:
    MRD, MWR, IORD, IOWR, FETCHADD, SWAP, CAS, MRDLK = range(8)


_REQ_TO_FT = {ReqType.MRD: FmtType.MRD64, ReqType.MWR: FmtType.MWR64, ReqType.IORD: FmtType.IORD,
              ReqType.IOWR: FmtType.IOWR, ReqType.FETCHADD: FmtType.FETCHADD64,
              ReqType.SWAP: FmtType.SWAP64, ReqType.CAS: FmtType.CAS64,
              ReqType.MRDLK: FmtType.MRDLK64}


def _check_width(width):
    if width not in (64, 128, 256):
        raise ValueError(f"UltraScale+ adapter width must be 64, 128 or 256, not {width!r}")


def axis(width, user):
    """An AXI4-Stream port as plain members (``tdata``, ``tkeep`` per DW, ``tlast``, ``tuser``,
    ``tvalid``, ``tready``), with the IP's direction seen from the user side."""
    return {"tdata": width, "tkeep": width // 32, "tlast": 1, "tuser": user}


class _IpToUser(wiring.Component):
    """A converter from the IP's ``m_axis_<name>`` stream to the core's TLP stream ``tlp``
    (width >= 128: the descriptor is one beat); ``extra``: more members."""

    def __init__(self, width, name, user, extra=()):
        self._MustUse__silence = True      # until the parameters are known to be valid
        _check_width(width)
        if width < 128:
            raise ValueError(f"the {name.upper()} converter needs 128 or 256 bits (descriptor in "
                             f"one beat)")
        self.width = width
        self._MustUse__silence = False
        members = {f"m_axis_{name}_{k}": In(v) for k, v in axis(width, user).items()}
        members[f"m_axis_{name}_tvalid"] = In(1)
        members[f"m_axis_{name}_tready"] = Out(1)
        members["tlp"] = Out(tlp_stream(width))
        members.update(extra)
        super().__init__(members)


class UsCq(_IpToUser):
    """CQ (completer request) AXI4-Stream to the core's TLP stream.  Width >= 128 (the 4-DW
    descriptor is one beat).  Latency: none (combinational rewrite of the first beat)."""

    def __init__(self, width):
        super().__init__(width, "cq", 88)

    def elaborate(self, platform):
        m = Module()
        o = self.tlp
        d = self.m_axis_cq_tdata
        u = self.m_axis_cq_tuser
        first = Signal(init=1)
        dw = [d[32 * k:32 * k + 32] for k in range(4)]
        count = dw[2][0:11]
        rtype = dw[2][11:15]
        ft = Signal(8)
        with m.Switch(rtype):
            for r, f in _REQ_TO_FT.items():
                with m.Case(r):
                    m.d.comb += ft.eq(f)
            with m.Default():
                m.d.comb += ft.eq(FmtType.MRD64 | 0x1F)      # reserved type: the core answers UR
        aperture = dw[3][19:25]
        addr = Cat(dw[0], dw[1])
        off = addr & ((Const(1, 65) << aperture) - 1)[:64]
        attr = dw[3][28:31]
        hdr0 = Cat(count[0:10], Const(0, 2), attr[0:2], Const(0, 2), Const(0, 2), attr[2],
                   Const(0, 1), dw[3][25:28], Const(0, 1), ft)
        hdr1 = Cat(u[0:4], u[4:8], dw[3][0:8], dw[2][16:32])
        hdr2 = off[32:64]
        hdr3 = Cat(Const(0, 2), off[2:32])
        m.d.comb += [
            o.valid.eq(self.m_axis_cq_tvalid),
            self.m_axis_cq_tready.eq(o.ready),
            o.payload.data.eq(Mux(first, Cat(hdr0, hdr1, hdr2, hdr3, d[128:]), d)),
            o.payload.keep.eq(self.m_axis_cq_tkeep),
            o.payload.first.eq(first),
            o.payload.last.eq(self.m_axis_cq_tlast),
        ]
        with m.If(o.valid & o.ready):
            m.d.sync += first.eq(self.m_axis_cq_tlast)
        return m


class UsTx(wiring.Component):
    """The core's tx TLPs to CC (completions) and RQ (memory requests: MSI-X messages and back-end
    DMA).  Completions of any length keep their payload lanes (3-DW header -> 3-DW descriptor).
    Memory reads become a 4-DW RQ descriptor; memory writes a 4-DW descriptor and the payload
    from lane 4: in place after a 4-DW header, moved up one DW after a 3-DW header (one DW held
    from beat to beat, and one more output beat when it is left over after the core's last beat).
    Messages (INTx) have no place on RQ: they are dropped and counted on ``msg_dropped``.
    Latency: one register stage on each output.  ``requester_id``: the function's ID for RQ
    descriptors (requester ID enable 0: the IP inserts its own)."""

    def __init__(self, width):
        self._MustUse__silence = True      # until the parameters are known to be valid
        _check_width(width)
        if width != 256:
            raise ValueError(f"the UltraScale+ tx converter needs 256 bits (an RQ descriptor and a "
                             f"64-bit MSI-X write in one beat), not {width!r}")
        self.width = width
        self._MustUse__silence = False
        members = {"tlp": In(tlp_stream(width)), "requester_id": In(16), "msg_dropped": Out(1)}
        for name, user in (("cc", 33), ("rq", 62)):
            members.update({f"s_axis_{name}_{k}": Out(v) for k, v in axis(width, user).items()})
            members[f"s_axis_{name}_tvalid"] = Out(1)
            members[f"s_axis_{name}_tready"] = In(1)
        super().__init__(members)

    def elaborate(self, platform):
        m = Module()
        i = self.tlp
        lanes = self.width // 32
        d = i.payload.data
        dw = [d[32 * k:32 * k + 32] for k in range(lanes)]
        ft = dw[0][24:32]
        is_cpl = (ft & 0xBE) == FmtType.CPL
        is_mwr = (ft == FmtType.MWR32) | (ft == FmtType.MWR64)
        is_mrd = (ft == FmtType.MRD32) | (ft == FmtType.MRD64)
        length = dw[0][0:10]
        count = Mux(length == 0, 1024, length)
        dcount = Mux(ft[6], count, 0)
        kind = Signal(2)          # 0 CC, 1 RQ, 2 drop; latched at the first beat
        kind_r = Signal(2)
        with m.If(i.payload.first):
            m.d.comb += kind.eq(Mux(is_cpl, 0, Mux(is_mwr | is_mrd, 1, 2)))
        with m.Else():
            m.d.comb += kind.eq(kind_r)
        with m.If(i.valid & i.ready):
            m.d.sync += kind_r.eq(kind)

        # ---- CC: 3-DW header -> 3-DW descriptor, payload in place ----
        status = dw[1][13:16]
        bc12 = dw[1][0:12]
        bc13 = Mux(bc12 == 0, 4096, bc12)                 # a 0 byte count means 4096 in a TLP
        cc0 = Cat(dw[2][0:7], Const(0, 1), Const(0, 2), Const(0, 6), bc13[:13], ft[0],
                  Const(0, 2))
        cc1 = Cat(dcount, status, dw[0][14], Const(0, 1), dw[2][16:32])
        cc2 = Cat(dw[2][8:16], dw[1][16:32], Const(1, 1), dw[0][20:23],
                  Cat(dw[0][12:14], dw[0][18]), Const(0, 1))
        # ---- RQ: MRd / MWr header -> 4-DW descriptor ----
        is64 = ft[5]
        addr = Mux(is64, Cat(dw[3], dw[2]), Cat(dw[2], Const(0, 32)))
        rq0, rq1 = addr[0:32] & ~Const(3, 32), addr[32:64]
        rq2 = Cat(count, Mux(is_mwr, Const(ReqType.MWR, 4), Const(ReqType.MRD, 4)), Const(0, 1),
                  self.requester_id)
        rq3 = Cat(dw[1][8:16], Const(0, 16), Const(0, 1), dw[0][20:23],
                  Cat(dw[0][12:14], dw[0][18]), Const(0, 1))
        shift = Signal()          # 3-DW MWr: the payload moves up one DW
        held = Signal(32)         # its DW that did not fit the previous output beat
        left = Signal(11)         # its payload DWs not yet sent
        extra = Signal()          # one more output beat: ``held`` alone
        user_r = Signal(8)

        def keep_of(n):
            return ((Const(1, lanes + 1) << n) - 1)[:lanes]

        for name, k in (("cc", 0), ("rq", 1)):
            valid = getattr(self, f"s_axis_{name}_tvalid")
            ready = getattr(self, f"s_axis_{name}_tready")
            with m.If(~valid | ready):
                m.d.sync += valid.eq(0)
        take = Signal()
        cc_free = ~self.s_axis_cc_tvalid | self.s_axis_cc_tready
        rq_free = ~self.s_axis_rq_tvalid | self.s_axis_rq_tready
        m.d.comb += take.eq(Mux(kind == 0, cc_free, Mux(kind == 1, rq_free, 1)))
        m.d.comb += i.ready.eq(take & ~extra)
        rq = [self.s_axis_rq_tvalid, self.s_axis_rq_tdata, self.s_axis_rq_tkeep,
              self.s_axis_rq_tlast, self.s_axis_rq_tuser]

        def rq_beat(data, keep, last, user):
            return [rq[0].eq(1), rq[1].eq(data), rq[2].eq(keep), rq[3].eq(last), rq[4].eq(user)]

        with m.If(extra):
            with m.If(rq_free):
                m.d.sync += rq_beat(held, 1, 1, user_r)
                m.d.sync += extra.eq(0)
        with m.Elif(i.valid & take):
            with m.Switch(kind):
                with m.Case(0):
                    m.d.sync += [
                        self.s_axis_cc_tvalid.eq(1),
                        self.s_axis_cc_tdata.eq(Mux(i.payload.first,
                                                    Cat(cc0, cc1, cc2, d[96:]), d)),
                        self.s_axis_cc_tkeep.eq(i.payload.keep),
                        self.s_axis_cc_tlast.eq(i.payload.last),
                        self.s_axis_cc_tuser.eq(0),
                    ]
                with m.Case(1):
                    with m.If(i.payload.first):
                        user = Cat(dw[1][0:4], dw[1][4:8])
                        desc = Cat(rq0, rq1, rq2, rq3)
                        here = Mux(count < 4, count, 4)[:3]       # payload DWs in this beat
                        m.d.sync += [user_r.eq(user), shift.eq(is_mwr & ~is64),
                                     held.eq(dw[7]), left.eq(count - here)]
                        with m.If(is_mrd):
                            m.d.sync += rq_beat(desc, 0xF, 1, user)
                        with m.Elif(is64):
                            m.d.sync += rq_beat(Cat(desc, *dw[4:]), keep_of(4 + here),
                                                i.payload.last, user)
                        with m.Else():
                            m.d.sync += rq_beat(Cat(desc, *dw[3:7]), keep_of(4 + here),
                                                count <= 4, user)
                            # a 5-DW payload: its last DW came in lane 7 of this one beat
                            m.d.sync += extra.eq(i.payload.last & (count > 4))
                    with m.Elif(shift):
                        n = Mux(left < lanes, left, lanes)[:4]
                        m.d.sync += rq_beat(Cat(held, *dw[:lanes - 1]), keep_of(n),
                                            left <= lanes, user_r)
                        m.d.sync += [held.eq(dw[lanes - 1]), left.eq(left - n),
                                     extra.eq(i.payload.last & (left > lanes))]
                    with m.Else():
                        m.d.sync += rq_beat(d, i.payload.keep, i.payload.last, user_r)
                with m.Default():
                    m.d.comb += self.msg_dropped.eq(i.payload.first)
        return m


class UsRc(_IpToUser):
    """RC (requester completion) AXI4-Stream to completion TLPs on the core's stream: the 3-DW
    descriptor becomes the 3-DW CplD/Cpl header and the payload keeps its lanes (DWORD-aligned
    mode: payload from DW 3).  Descriptor DW0: lower address [11:0] (the TLP keeps [6:0]), error
    code [15:12], byte count [28:16]; DW1: dword count [10:0], status [13:11], poisoned [14],
    requester ID [31:16]; DW2: tag [7:0], completer ID [23:8], TC [27:25], attributes [30:28].
    Error codes 0..6 describe a completion that arrived on the link (the core checks it again
    itself: stray tag, status, poisoned, length, lower address); codes 8 (the request was ended by
    an FLR) and 9 (the IP's own completion timeout) came from no TLP: they are dropped and counted
    on ``ip_dropped`` (the core's own FLR handling and completion timeout answer those requests).
    Latency: none (combinational rewrite of the first beat)."""

    def __init__(self, width):
        super().__init__(width, "rc", 75, {"ip_dropped": Out(1)})

    def elaborate(self, platform):
        m = Module()
        o = self.tlp
        d = self.m_axis_rc_tdata
        first = Signal(init=1)
        dropping = Signal()
        dw = [d[32 * k:32 * k + 32] for k in range(3)]
        cnt = dw[1][0:11]
        attr = dw[2][28:31]
        ft = Mux(cnt != 0, FmtType.CPLD, FmtType.CPL)
        h0 = Cat(cnt[0:10], Const(0, 2), attr[0:2], dw[1][14], Const(0, 3), attr[2],
                 Const(0, 1), dw[2][25:28], Const(0, 1), ft)
        h1 = Cat(dw[0][16:28], Const(0, 1), dw[1][11:14], dw[2][8:24])
        h2 = Cat(dw[0][0:7], Const(0, 1), dw[2][0:8], dw[1][16:32])
        drop = Mux(first, dw[0][15], dropping)          # error code 8 or 9
        m.d.comb += [
            o.valid.eq(self.m_axis_rc_tvalid & ~drop),
            self.m_axis_rc_tready.eq(o.ready | drop),
            o.payload.data.eq(Mux(first, Cat(h0, h1, h2, d[96:]), d)),
            o.payload.keep.eq(self.m_axis_rc_tkeep),
            o.payload.first.eq(first),
            o.payload.last.eq(self.m_axis_rc_tlast),
            self.ip_dropped.eq(self.m_axis_rc_tvalid & first & drop),
        ]
        with m.If(self.m_axis_rc_tvalid & self.m_axis_rc_tready):
            m.d.sync += [first.eq(self.m_axis_rc_tlast), dropping.eq(drop & ~self.m_axis_rc_tlast)]
        return m


class TlpMerge(wiring.Component):
    """Two TLP streams into one, a whole TLP at a time, round robin when both have one waiting.
    The choice is held while the output waits (stream rules) and until the TLP's last beat."""

    def __init__(self, width):
        super().__init__({"a": In(tlp_stream(width)), "b": In(tlp_stream(width)),
                          "o": Out(tlp_stream(width))})

    def elaborate(self, platform):
        m = Module()
        a, b, o = self.a, self.b, self.o
        locked = Signal()         # mid-TLP, or offered and not yet taken
        sel_r = Signal()
        prefer_b = Signal()
        sel = Signal()
        m.d.comb += sel.eq(Mux(locked, sel_r, Mux(a.valid & b.valid, prefer_b, b.valid)))
        with m.If(sel):
            m.d.comb += [o.valid.eq(b.valid), o.payload.eq(b.payload), b.ready.eq(o.ready)]
        with m.Else():
            m.d.comb += [o.valid.eq(a.valid), o.payload.eq(a.payload), a.ready.eq(o.ready)]
        m.d.sync += sel_r.eq(sel)
        with m.If(o.valid & o.ready):
            m.d.sync += locked.eq(~o.payload.last)
            with m.If(o.payload.last):
                m.d.sync += prefer_b.eq(~sel)
        with m.Elif(o.valid):
            m.d.sync += locked.eq(1)
        return m


class UsCfg(wiring.Component):
    """Configuration status and control ports to ``HardIpStatus``; FLR handshake; the
    configuration-extension interface answered through injected CfgRd0/CfgWr0.

    ``hip`` follows the status ports one cycle later (registered).  FLR: a rising
    ``cfg_flr_in_process[0]`` gives one ``hip.flr`` pulse; ``cfg_flr_done[0]`` pulses once the
    core's FLR took place (``core_flr``, the endpoint's ``flr`` brought into this domain), the
    cycle after it at the earliest (``FlrHandshake``).
    cfg_ext: ``cfg_ext_read_received`` / ``cfg_ext_write_received`` (one-cycle pulses) with the
    register number inside ``windows`` (list of (first, last) DW numbers) become a request to the
    core; a read is answered with ``cfg_ext_read_data_valid`` when the core's completion returns.
    """

    def __init__(self, width, windows=((0x2C, 0x2F), (0x120, 0x13F))):
        self._MustUse__silence = True      # until the parameters are known to be valid
        _check_width(width)
        self.width = width
        self._MustUse__silence = False
        self.windows = tuple(windows)
        super().__init__({
            "rx_in": In(tlp_stream(width)),
            "rx_out": Out(tlp_stream(width)),
            "tx_in": In(tlp_stream(width)),
            "tx_out": Out(tlp_stream(width)),
            "hip": Out(HardIpStatus),
            "own_id": Out(16),
            "cfg_function_status": In(16),
            "cfg_max_payload": In(2),
            "cfg_max_read_req": In(3),
            "cfg_interrupt_msix_enable": In(4),
            "cfg_interrupt_msix_mask": In(4),
            "cfg_bus_number": In(8),
            "cfg_flr_in_process": In(4),
            "cfg_flr_done": Out(4),
            "core_flr": In(1),
            "cfg_ext_read_received": In(1),
            "cfg_ext_write_received": In(1),
            "cfg_ext_register_number": In(10),
            "cfg_ext_function_number": In(8),
            "cfg_ext_write_data": In(32),
            "cfg_ext_write_byte_enable": In(4),
            "cfg_ext_read_data": Out(32),
            "cfg_ext_read_data_valid": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        fs = self.cfg_function_status
        hip = self.hip
        m.d.sync += [
            hip.mem_enable.eq(fs[1]), hip.bus_master.eq(fs[2]), hip.intx_disable.eq(fs[3]),
            hip.msix_enable.eq(self.cfg_interrupt_msix_enable[0]),
            hip.msix_fmask.eq(self.cfg_interrupt_msix_mask[0]),
            hip.mps.eq(self.cfg_max_payload), hip.mrrs.eq(self.cfg_max_read_req),
            hip.bus.eq(self.cfg_bus_number), hip.device.eq(0),
        ]
        m.d.comb += self.own_id.eq(Cat(Const(0, 3), hip.device, hip.bus))
        # ---- FLR ----
        flr_d = Signal()
        rise = self.cfg_flr_in_process[0] & ~flr_d
        m.d.sync += [flr_d.eq(self.cfg_flr_in_process[0]), hip.flr.eq(rise)]
        m.submodules.flr = hs = FlrHandshake()
        m.d.comb += [hs.request.eq(rise), hs.core_flr.eq(self.core_flr),
                     self.cfg_flr_done[0].eq(hs.done)]

        # ---- cfg_ext ----
        reg = self.cfg_ext_register_number
        in_win = Const(0)
        for lo, hi in self.windows:
            in_win = in_win | ((reg >= lo) & (reg <= hi))
        m.submodules.inject = inj = CfgInjector(self.width, CFG_EXT_TAG)
        for n in ("rx_in", "tx_in"):
            connect(m, flipped(getattr(self, n)), getattr(inj, n))
        for n in ("rx_out", "tx_out"):
            connect(m, getattr(inj, n), flipped(getattr(self, n)))
        m.d.comb += [
            inj.start.eq((self.cfg_ext_read_received | self.cfg_ext_write_received) & in_win
                         & (self.cfg_ext_function_number == 0)),
            inj.write.eq(self.cfg_ext_write_received), inj.addr.eq(reg),
            inj.wdata.eq(self.cfg_ext_write_data),
            inj.be.eq(Mux(self.cfg_ext_write_received, self.cfg_ext_write_byte_enable, 0xF)),
            inj.rid.eq(self.own_id),
            self.cfg_ext_read_data_valid.eq(inj.answer & ~inj.is_write),
            self.cfg_ext_read_data.eq(inj.rdata),
        ]
        return m


_CQ = ("m_axis_cq_tdata", "m_axis_cq_tkeep", "m_axis_cq_tlast", "m_axis_cq_tuser",
       "m_axis_cq_tvalid", "m_axis_cq_tready")
_RC = ("m_axis_rc_tdata", "m_axis_rc_tkeep", "m_axis_rc_tlast", "m_axis_rc_tuser",
       "m_axis_rc_tvalid", "m_axis_rc_tready", "ip_dropped")
_TX = tuple(f"s_axis_{n}_{k}" for n in ("cc", "rq")
            for k in ("tdata", "tkeep", "tlast", "tuser", "tvalid", "tready")) + ("msg_dropped",)
_CFG = ("cfg_function_status", "cfg_max_payload", "cfg_max_read_req", "cfg_interrupt_msix_enable",
        "cfg_interrupt_msix_mask", "cfg_bus_number", "cfg_flr_in_process", "cfg_flr_done",
        "cfg_ext_read_received", "cfg_ext_write_received", "cfg_ext_register_number",
        "cfg_ext_function_number", "cfg_ext_write_data", "cfg_ext_write_byte_enable",
        "cfg_ext_read_data", "cfg_ext_read_data_valid")


class UsPlusAdapter(wiring.Component):
    """The PCIE4 ports (IP names) on one side; ``core_rx``/``core_tx`` and ``hip`` (the status for
    the endpoint in hard-IP mode) on the other.  ``pcie_cq_np_req`` is held at 1 (the core takes
    every non-posted request: its rx never drops one)."""

    def __init__(self, width):
        self._MustUse__silence = True      # until the parameters are known to be valid
        _check_width(width)
        self.width = width
        self._MustUse__silence = False
        self.cq = UsCq(width)
        self.tx = UsTx(width)
        self.rc = UsRc(width)
        self.cfg = UsCfg(width)
        self._blocks = ((self.cq, _CQ), (self.rc, _RC), (self.tx, _TX), (self.cfg, _CFG))
        members = block_members(self._blocks)
        members.update({"pcie_cq_np_req": Out(2), "core_rx": Out(tlp_stream(width)),
                        "core_tx": In(tlp_stream(width)), "hip": Out(HardIpStatus),
                        "core_flr": In(1)})
        super().__init__(members)

    def elaborate(self, platform):
        m = Module()
        m.submodules.cq = cq = self.cq
        m.submodules.tx = tx = self.tx
        m.submodules.rc = rc = self.rc
        m.submodules.cfg = cfg = self.cfg
        m.submodules.merge = merge = TlpMerge(self.width)
        forward_block_ports(m, self, self._blocks)
        m.d.comb += [self.pcie_cq_np_req.eq(1), self.hip.eq(cfg.hip),
                     tx.requester_id.eq(cfg.own_id), cfg.core_flr.eq(self.core_flr)]
        connect(m, cq.tlp, merge.a)
        connect(m, rc.tlp, merge.b)
        connect(m, merge.o, cfg.rx_in)
        connect(m, cfg.rx_out, flipped(self.core_rx))
        connect(m, flipped(self.core_tx), cfg.tx_in)
        connect(m, cfg.tx_out, tx.tlp)
        return m


class UsPlusEndpoint(AdaptedEndpoint):
    """``VirtioPciEndpoint`` in hard-IP mode behind the PCIE4 adapter; the IP's ports on ``link``
    (``user_clk``) with ``cdc``, else everything on ``sync``.  Back-end ports as on the endpoint."""

    def __init__(self, params=None, *, cdc=True, cdc_depth=16):
        from ..params import VirtioPciParams
        params = params or VirtioPciParams()
        self._MustUse__silence = True      # until the parameters are known to be valid
        _check_width(params.data_width)
        if params.data_width != 256:
            raise ValueError(f"the UltraScale+ adapter needs data_width 256, not "
                             f"{params.data_width!r}")
        self._MustUse__silence = False
        if params.hard_ip != "cfg_ext":
            params = params.replace(hard_ip="cfg_ext")
        self._compose(params, UsPlusAdapter, cdc=cdc, cdc_depth=cdc_depth, skip=("hip",))
        self.params = params

    def _link_extra(self, m, ep, ad):
        from amaranth.lib.cdc import FFSynchronizer, PulseSynchronizer
        if self.cdc:
            # quasi-static status bits through two flops; the FLR pulse through a pulse synchroniser
            hip_bits = Signal.like(ad.hip.as_value())
            m.submodules.hip_sync = FFSynchronizer(ad.hip.as_value(), hip_bits)
            m.submodules.flr_sync = ps = PulseSynchronizer("link", "sync")
            m.d.comb += [ep.hip.eq(hip_bits), ps.i.eq(ad.hip.flr), ep.hip.flr.eq(ps.o)]
        else:
            m.d.comb += ep.hip.eq(ad.hip)
