"""Intel P-Tile Avalon-ST hard IP adapter (P-Tile Avalon Streaming IP for PCI Express User Guide,
UG 683059: "Avalon-ST RX/TX Interface", "TX Flow Control Interface", "Configuration Output
Interface (tl_cfg)", "Configuration Intercept Interface (EP Only)").

Interface facts used here (one segment: the 128-bit and 256-bit modes; 512-bit is two segments
and is refused):

* ``rx_st_hdr``/``tx_st_hdr`` carry the 3- or 4-DW TLP header, DW0 in bits 127:96 (the header
  bytes in wire order, big-endian; a 3-DW header leaves bits 31:0 zero).  ``rx_st_data``/
  ``tx_st_data`` carry only the payload, DW *i* of a beat in bits 32i+31:32i, little-endian
  bytes; the first payload DW is in the ``sop`` beat.  ``rx_st_empty``: unused DWs of the ``eop``
  beat.  So header and payload are *not* contiguous as on the core's TLP port: the adapter
  realigns them by 3 or 4 DWs each way.
* ``rx_st_ready`` has a ready latency of 27 cycles: beats keep coming for up to 27 cycles after
  it falls, so it is held high only while the receive buffer has room for ``RX_READY_LATENCY + 4``
  more beats.  ``tx_st_ready`` has a ready latency of 3: ``tx_st_valid`` may be high in a cycle only
  if ``tx_st_ready`` was high three cycles earlier, and then the beat is taken.
* ``tx_cdts_limit``/``tx_cdts_limit_tdm_idx``: the link partner's credit limits, time-multiplexed
  (0 PH, 1 NPH, 2 CPLH, 4 PD, 5 NPD, 6 CPLD), header limits in the low 12 bits, data limits 16 bits,
  counting up and rolling over.  ``CreditGate`` holds a TLP until the PCIe rule
  ``(limit - (consumed + needed)) mod 2^n <= 2^(n-1)`` allows it (PCIe Base 2.6.1.2); a limit that
  reads 0 is the link partner's infinite advertisement (an initial allocation of 0).
* ``tl_cfg_add``/``tl_cfg_ctl`` cycle through the configuration state; address 0x01 carries the
  bus number in bits 7:0 and the device number in bits 12:8 (used for completer IDs).
* CII: the IP presents every configuration request on ``cii_req`` (address in DWs on
  ``cii_addr``, ``cii_wr`` and little-endian ``cii_dout`` for writes, ``cii_hdr_first_be``) and
  holds it while the application keeps ``cii_halt`` high; in the cycle ``cii_halt`` falls it takes
  ``cii_override_en``/``cii_override_din``: for a read, the completion data; for a write, the data
  written to its own register.  ``cii_req`` may stay high for some cycles after that (EMIB
  latency): a new request is a new *rising* edge.

Configuration space: "whole soft space" mode.  ``CiiBridge`` turns each CII request into a
CfgRd0/CfgWr0 TLP on the core's rx stream (completer ID from tl_cfg, requester ID = the
function's own ID, tag ``CII_TAG``), removes the core's completion for it from the tx stream and
answers the IP: reads return the core's data (override), writes go to both the core and the IP's
own register (no override), so Memory Space / Bus Master Enable and the BARs of the IP, which
routes memory requests to us, follow the host.  Everything else (BAR decode, FLR, MPS, MSI-X) is
the core's own, as with the raw TLP port.  docs/ptile.md says how to configure the IP to match.

FLR ("Function Level Reset (FLR)"): the host's Device Control write reaches the core through the
CII and starts the core's FLR.  It also lands in the IP's register at the same offset; where that
is the IP's own Device Control, the IP starts its FLR too: it pulses ``flr_rcvd_pf[0]`` and, until
the application pulses ``flr_completed_pf[0]``, answers non-posted requests to the function with
UR and discards its posted requests and completions.  The adapter pulses ``flr_completed_pf[0]``
once both the IP's pulse and the core's own FLR were seen, or ``FLR_TIMEOUT`` cycles after an IP
FLR the core never saw (``FlrHandshake``, link/flr.py).
"""
from amaranth.hdl import Cat, Const, Module, Mux, Signal
from amaranth.lib import data, wiring
from amaranth.lib.fifo import SyncFIFOBuffered
from amaranth.lib.wiring import In, Out, connect, flipped
from amaranth.utils import ceil_log2

from ..tlp.layouts import FmtType, tlp_stream
from .cdc import AdaptedEndpoint, block_members, forward_block_ports
from .cfg_inject import CfgInjector
from .flr import FlrHandshake

__all__ = ["PTileRx", "PTileTx", "CreditGate", "CiiBridge", "PTileAdapter", "PTileEndpoint",
           "RX_READY_LATENCY", "TX_READY_LATENCY", "CII_TAG", "FcType"]

RX_READY_LATENCY = 27
TX_READY_LATENCY = 3
#: tag of the configuration requests the CII bridge injects
CII_TAG = 0xCF


class FcType:
    """``tx_cdts_limit_tdm_idx`` values (P-Tile UG, TX Flow Control Interface)."""
    PH, NPH, CPLH, PD, NPD, CPLD = 0, 1, 2, 4, 5, 6


#: link cycles after which an FLR of the IP that the core never saw is answered (link/flr.py)
FLR_TIMEOUT = 1024


def _check_width(width):
    if width not in (128, 256):
        raise ValueError(f"P-Tile adapter width must be 128 or 256 (one segment), not {width!r}")


def _hdr_dws(hdr):
    """The four header DWs of a 128-bit P-Tile header bus, DW0 first."""
    return [hdr[96 - 32 * i:128 - 32 * i] for i in range(4)]


def _tlp_sizes(dw0):
    """(header DWs 3|4, payload DWs) of a TLP from its DW0 (as drawn: Fmt in bits 31:29)."""
    fmt = dw0[29:32]
    length = dw0[0:10]
    has_data = fmt[1]
    hlen = Mux(fmt[0], 4, 3)
    plen = Mux(has_data, Mux(length == 0, 1024, length), 0)
    return hlen, plen


def _keep(n, lanes):
    """Keep mask of the first ``n`` lanes (``n`` >= lanes: all).  The shift takes only the low
    bits of ``n`` that a count below ``lanes`` has: shifting by all of an 11-bit DW count made a
    2,057-bit shifter and subtractor (which synthesis trims, but whose every bit Amaranth's
    combinational-loop check walked: 84 of the 91 s ``make verilog`` took for P-Tile at W=256)."""
    return Mux(n >= lanes, (1 << lanes) - 1,
               (Const(1, lanes + 1) << n[:ceil_log2(lanes)]) - 1)


class PTileRx(wiring.Component):
    """``rx_st_*`` of the hard IP to the core's TLP stream (header + payload contiguous).

    ``rx_st_ready`` = room for ``RX_READY_LATENCY + 4`` beats in the ``depth``-beat buffer.
    Latency: a beat on ``rx_st`` is offered on ``tlp`` 2 cycles later (buffer write, buffered
    read); one extra beat per TLP when header + payload need one more beat than the payload alone.
    """

    def __init__(self, width, depth=64):
        self._MustUse__silence = True      # until the parameters are known to be valid
        _check_width(width)
        if depth < RX_READY_LATENCY + 8:
            raise ValueError(f"P-Tile rx buffer depth must be at least {RX_READY_LATENCY + 8} "
                             f"beats (ready latency {RX_READY_LATENCY}), not {depth!r}")
        self.width = width
        self._MustUse__silence = False
        self.depth = depth
        lanes = width // 32
        super().__init__({
            "rx_st_data": In(width),
            "rx_st_empty": In((lanes - 1).bit_length()),
            "rx_st_sop": In(1),
            "rx_st_eop": In(1),
            "rx_st_valid": In(1),
            "rx_st_ready": Out(1),
            "rx_st_hdr": In(128),
            "rx_st_tlp_prfx": In(32),
            "rx_st_bar_range": In(3),
            "rx_st_tlp_abort": In(1),
            "tlp": Out(tlp_stream(width)),
        })

    def elaborate(self, platform):
        m = Module()
        w = self.width
        lanes = w // 32
        beat = data.StructLayout({"data": w, "hdr": 128, "sop": 1, "eop": 1})
        m.submodules.buf = buf = SyncFIFOBuffered(width=beat.size, depth=self.depth)
        wbeat = data.View(beat, buf.w_data)
        m.d.comb += [
            wbeat.data.eq(self.rx_st_data), wbeat.hdr.eq(self.rx_st_hdr),
            wbeat.sop.eq(self.rx_st_sop), wbeat.eop.eq(self.rx_st_eop),
            buf.w_en.eq(self.rx_st_valid),
        ]
        m.d.sync += self.rx_st_ready.eq(buf.level < self.depth - (RX_READY_LATENCY + 4))

        ib = data.View(beat, buf.r_data)
        o = self.tlp
        carry = Signal(128)            # payload DWs of the previous beat not yet sent (<= 4)
        hlen_r = Signal(3)             # header DWs of the TLP in flight
        rem = Signal(13)               # DWs of the TLP still to send, this beat included
        extra = Signal()               # one more beat of carried DWs after the eop beat
        hdr = _hdr_dws(ib.hdr)
        hlen, plen = _tlp_sizes(hdr[0])
        h = Mux(ib.sop, hlen, hlen_r)
        total = Mux(ib.sop, hlen + plen, rem)
        dws = [ib.data[32 * i:32 * i + 32] for i in range(lanes)]
        carry_dws = [carry[32 * i:32 * i + 32] for i in range(4)]

        def compose(hlen_const, first):
            """Beat with ``hlen_const`` DWs shifted in front: header (first beat) or carry."""
            front = hdr[:hlen_const] if first else carry_dws[:hlen_const]
            return Cat(*front, *dws[:lanes - hlen_const])

        out_data = Signal(w)
        with m.If(extra):
            m.d.comb += out_data.eq(Mux(hlen_r == 4, Cat(*carry_dws[:4]), Cat(*carry_dws[:3])))
        with m.Elif(ib.sop):
            m.d.comb += out_data.eq(Mux(hlen == 4, compose(4, True), compose(3, True)))
        with m.Else():
            m.d.comb += out_data.eq(Mux(hlen_r == 4, compose(4, False), compose(3, False)))
        cur = Mux(extra, rem, total)
        m.d.comb += [
            o.valid.eq(extra | buf.r_rdy),
            o.payload.data.eq(out_data),
            o.payload.first.eq(~extra & ib.sop),
            o.payload.last.eq(cur <= lanes),
            o.payload.keep.eq(_keep(cur, lanes)),
            buf.r_en.eq(o.ready & ~extra),
        ]
        with m.If(o.valid & o.ready):
            with m.If(extra):
                m.d.sync += extra.eq(0)
            with m.Else():
                # the last h DWs of this beat's payload go in front of the next output beat
                m.d.sync += [
                    carry.eq(Mux(h == 4, Cat(*dws[lanes - 4:]), Cat(*dws[lanes - 3:], Const(0, 32)))),
                    hlen_r.eq(h),
                    rem.eq(total - lanes),
                    extra.eq(ib.eop & (total > lanes)),
                ]
        return m


class CreditGate(wiring.Component):
    """Holds each TLP of ``i`` until the link partner has the credits for it (PCIe Base 2.6.1.2),
    from the time-multiplexed ``tx_cdts_limit``.  Posted (MWr, Msg): PH + PD; non-posted (MRd, ...):
    NPH + NPD; completions: CPLH + CPLD.  One data credit = 4 DWs.

    ``consumed``: the credits this adapter has used since reset, per type (for tests).
    A limit reading 0 is infinite.  Latency: none when credits are available (combinational gate
    on the first beat); the limits are registered, so a new limit counts one cycle after its slot.
    """

    TYPES = ("ph", "nph", "cplh", "pd", "npd", "cpld")

    def __init__(self, width):
        self.width = width
        self._MustUse__silence = False
        super().__init__({
            "i": In(tlp_stream(width)),
            "o": Out(tlp_stream(width)),
            "tx_cdts_limit": In(16),
            "tx_cdts_limit_tdm_idx": In(3),
            "consumed": Out(data.StructLayout({t: 12 if t.endswith("h") else 16
                                               for t in self.TYPES})),
        })

    def elaborate(self, platform):
        m = Module()
        i, o = self.i, self.o
        limit = {t: Signal(12 if t.endswith("h") else 16, name=f"limit_{t}") for t in self.TYPES}
        idx = {"ph": FcType.PH, "nph": FcType.NPH, "cplh": FcType.CPLH, "pd": FcType.PD,
               "npd": FcType.NPD, "cpld": FcType.CPLD}
        with m.Switch(self.tx_cdts_limit_tdm_idx):
            for t, k in idx.items():
                with m.Case(k):
                    m.d.sync += limit[t].eq(self.tx_cdts_limit[:len(limit[t])])

        dw0 = i.payload.data[:32]
        ft = dw0[24:32]
        fmt = dw0[29:32]
        length = dw0[0:10]
        dwords = Mux(fmt[1], Mux(length == 0, 1024, length), 0)
        dcred = (dwords + 3) >> 2
        is_cpl = (ft & 0xBE) == FmtType.CPL          # Cpl, CplD, CplLk, CplDLk
        is_posted = (ft[3:8] == 0b10110) | (ft[3:8] == 0b01110) \
            | (ft == FmtType.MWR32) | (ft == FmtType.MWR64)      # Msg/MsgD (type 10rrr), MWr
        kind_h = Mux(is_cpl, 2, Mux(is_posted, 0, 1))

        def ok(hname, dname):
            cons = self.consumed
            hl, dl = limit[hname], limit[dname]
            hc, dc = getattr(cons, hname), getattr(cons, dname)
            h_ok = (hl == 0) | (((hl - (hc + 1)) & 0xFFF) <= 0x800)
            d_ok = (dl == 0) | (dcred == 0) | (((dl - (dc + dcred)) & 0xFFFF) <= 0x8000)
            return h_ok & d_ok

        allowed = Mux(kind_h == 2, ok("cplh", "cpld"), Mux(kind_h == 0, ok("ph", "pd"),
                                                           ok("nph", "npd")))
        in_tlp = Signal()           # past the first beat of a TLP that was let through
        gate = Signal()
        m.d.comb += gate.eq(in_tlp | ~i.payload.first | allowed)
        m.d.comb += [
            o.payload.eq(i.payload),
            o.valid.eq(i.valid & gate),
            i.ready.eq(o.ready & gate),
        ]
        with m.If(i.valid & i.ready):
            m.d.sync += in_tlp.eq(~i.payload.last)
            with m.If(i.payload.first):
                cons = self.consumed
                with m.Switch(kind_h):
                    for k, (hn, dn) in ((0, ("ph", "pd")), (1, ("nph", "npd")),
                                        (2, ("cplh", "cpld"))):
                        with m.Case(k):
                            m.d.sync += [getattr(cons, hn).eq(getattr(cons, hn) + 1),
                                         getattr(cons, dn).eq(getattr(cons, dn) + dcred)]
        return m


class PTileTx(wiring.Component):
    """The core's TLP stream to ``tx_st_*`` (header on ``tx_st_hdr``, payload from lane 0 of
    ``tx_st_data``), through ``CreditGate`` and a small buffer that honours the 3-cycle ready
    latency.  Latency: a TLP whose header and payload fit one core beat leaves 2 cycles after it
    was accepted on ``tlp``; longer TLPs wait for their next core beat (realignment by 3 or 4 DWs).
    """

    def __init__(self, width):
        self._MustUse__silence = True      # until the parameters are known to be valid
        _check_width(width)
        self.width = width
        self._MustUse__silence = False
        super().__init__({
            "tlp": In(tlp_stream(width)),
            "tx_st_data": Out(width),
            "tx_st_sop": Out(1),
            "tx_st_eop": Out(1),
            "tx_st_valid": Out(1),
            "tx_st_ready": In(1),
            "tx_st_err": Out(1),
            "tx_st_hdr": Out(128),
            "tx_st_tlp_prfx": Out(32),
            "tx_cdts_limit": In(16),
            "tx_cdts_limit_tdm_idx": In(3),
        })

    def elaborate(self, platform):
        m = Module()
        w = self.width
        lanes = w // 32
        m.submodules.gate = gate = CreditGate(w)
        m.d.comb += [gate.tx_cdts_limit.eq(self.tx_cdts_limit),
                     gate.tx_cdts_limit_tdm_idx.eq(self.tx_cdts_limit_tdm_idx)]
        connect(m, flipped(self.tlp), gate.i)
        i = gate.o

        # realignment: P-Tile payload beat j = core beat j lanes [h:] ++ core beat j+1 lanes [:h]
        beat = data.StructLayout({"data": w, "hdr": 128, "sop": 1, "eop": 1})
        depth = 8
        m.submodules.out = outq = SyncFIFOBuffered(width=beat.size, depth=depth)
        ob = data.View(beat, outq.w_data)
        hdr = Signal(128)
        hlen_r = Signal(3)
        left = Signal(12)               # payload DWs not yet written to the output queue
        held = Signal(w)                # payload DWs (lanes - h) of the previous core beat
        sop_next = Signal()             # the next output beat is the TLP's first
        extra = Signal()                # held DWs still to send after the core's last beat
        dws = [i.payload.data[32 * k:32 * k + 32] for k in range(lanes)]
        held_dws = [held[32 * k:32 * k + 32] for k in range(lanes)]
        hlen, plen = _tlp_sizes(dws[0])

        def after_hdr(h):
            """Lanes h.. of the core beat (its payload DWs), from lane 0."""
            return Cat(*dws[h:lanes]) if h < lanes else Const(0, 32)

        def merged(h):
            """One P-Tile payload beat: the held lanes - h DWs, then lanes 0..h-1 of this beat."""
            return Cat(*held_dws[:lanes - h], *dws[:h])

        space = outq.level < depth - 1
        m.d.comb += i.ready.eq(space & ~extra)
        with m.If(extra):
            # the remaining held DWs alone
            m.d.comb += [ob.data.eq(held), ob.hdr.eq(hdr), ob.sop.eq(sop_next), ob.eop.eq(1),
                         outq.w_en.eq(space)]
            with m.If(space):
                m.d.sync += [extra.eq(0), left.eq(0)]
        with m.Elif(i.valid & space):
            with m.If(i.payload.first):
                h4 = hlen == 4
                hdr_v = Mux(h4, Cat(dws[3], dws[2], dws[1], dws[0]),
                            Cat(Const(0, 32), dws[2], dws[1], dws[0]))
                payload_here = lanes - hlen
                m.d.sync += [hdr.eq(hdr_v), hlen_r.eq(hlen), sop_next.eq(1),
                             held.eq(Mux(h4, after_hdr(4), after_hdr(3))), left.eq(plen)]
                with m.If(plen <= payload_here):
                    # header and every payload DW in this beat: one output beat
                    m.d.comb += [ob.data.eq(Mux(h4, after_hdr(4), after_hdr(3))),
                                 ob.hdr.eq(hdr_v), ob.sop.eq(1), ob.eop.eq(1), outq.w_en.eq(1)]
                    m.d.sync += [sop_next.eq(0), left.eq(0)]
            with m.Else():
                h = hlen_r
                m.d.comb += [ob.data.eq(Mux(h == 4, merged(4), merged(3))), ob.hdr.eq(hdr),
                             ob.sop.eq(sop_next), ob.eop.eq(left <= lanes), outq.w_en.eq(1)]
                m.d.sync += [sop_next.eq(0), left.eq(Mux(left <= lanes, 0, left - lanes)),
                             held.eq(Mux(h == 4, after_hdr(4), after_hdr(3)))]
                # core's last beat but payload DWs remain in ``held``: one more output beat
                with m.If(i.payload.last & (left > lanes)):
                    m.d.sync += extra.eq(1)

        # ready latency 3: valid only in a cycle whose ready, three cycles earlier, was high
        rdy = Signal(TX_READY_LATENCY)
        m.d.sync += rdy.eq(Cat(self.tx_st_ready, rdy[:-1]))
        allowed = rdy[-1]
        rb = data.View(beat, outq.r_data)
        m.d.comb += [
            outq.r_en.eq(allowed),
            self.tx_st_valid.eq(allowed & outq.r_rdy),
            self.tx_st_data.eq(rb.data),
            self.tx_st_hdr.eq(rb.hdr),
            self.tx_st_sop.eq(rb.sop),
            self.tx_st_eop.eq(rb.eop),
            self.tx_st_err.eq(0),
            self.tx_st_tlp_prfx.eq(0),
        ]
        return m


class CiiBridge(wiring.Component):
    """Configuration Intercept Interface to configuration TLPs on the core's streams.

    ``rx_in`` (from ``PTileRx``) and the injected CfgRd0/CfgWr0 are merged into ``rx_out`` at TLP
    boundaries; ``tx_in`` (the core's tx) goes to ``tx_out`` except the completions of injected
    requests (requester ID = own ID, tag ``CII_TAG``), which answer the IP.  One request at a time.
    Latency (cycles of this domain): ``cii_halt`` rises with ``cii_req``; it falls, with the data,
    one cycle after the core's completion reaches ``tx_in``.
    """

    def __init__(self, width):
        self._MustUse__silence = True      # until the parameters are known to be valid
        _check_width(width)
        self.width = width
        self._MustUse__silence = False
        super().__init__({
            "rx_in": In(tlp_stream(width)),
            "rx_out": Out(tlp_stream(width)),
            "tx_in": In(tlp_stream(width)),
            "tx_out": Out(tlp_stream(width)),
            "tl_cfg_func": In(3),
            "tl_cfg_add": In(5),
            "tl_cfg_ctl": In(16),
            "cii_req": In(1),
            "cii_hdr_poisoned": In(1),
            "cii_hdr_first_be": In(4),
            "cii_func_num": In(3),
            "cii_wr": In(1),
            "cii_addr": In(10),
            "cii_dout": In(32),
            "cii_override_en": Out(1),
            "cii_override_din": Out(32),
            "cii_halt": Out(1),
            "bus": Out(8),
            "device": Out(5),
        })

    def elaborate(self, platform):
        m = Module()
        with m.If((self.tl_cfg_add == 0x01) & (self.tl_cfg_func == 0)):
            m.d.sync += [self.bus.eq(self.tl_cfg_ctl[0:8]), self.device.eq(self.tl_cfg_ctl[8:13])]
        own_id = Cat(Const(0, 3), self.device, self.bus)

        # ---- request capture: a rising edge of cii_req ----
        m.submodules.inject = inj = CfgInjector(self.width, CII_TAG)
        for n in ("rx_in", "tx_in"):
            connect(m, flipped(getattr(self, n)), getattr(inj, n))
        for n in ("rx_out", "tx_out"):
            connect(m, getattr(inj, n), flipped(getattr(self, n)))
        req_d = Signal()
        m.d.sync += req_d.eq(self.cii_req)
        answered = Signal()       # answered; wait for cii_req to fall
        m.d.comb += [
            inj.start.eq(self.cii_req & ~req_d & ~inj.busy & ~answered),
            inj.write.eq(self.cii_wr), inj.addr.eq(self.cii_addr), inj.wdata.eq(self.cii_dout),
            inj.be.eq(self.cii_hdr_first_be), inj.rid.eq(own_id),
            self.cii_halt.eq(self.cii_req & ~answered & ~inj.answer),
        ]
        with m.If(answered & ~self.cii_req):
            m.d.sync += answered.eq(0)
        # ---- answer: halt low for one cycle with the override ----
        with m.If(inj.answer):
            m.d.comb += [self.cii_override_en.eq(~inj.is_write),
                         self.cii_override_din.eq(inj.rdata)]
            m.d.sync += answered.eq(1)
        return m


#: the hard IP's ports, as the adapter's signature names them (the IP's own names, pX_ prefix off)
_RX_PORTS = ("rx_st_data", "rx_st_empty", "rx_st_sop", "rx_st_eop", "rx_st_valid", "rx_st_ready",
             "rx_st_hdr", "rx_st_tlp_prfx", "rx_st_bar_range", "rx_st_tlp_abort")
_TX_PORTS = ("tx_st_data", "tx_st_sop", "tx_st_eop", "tx_st_valid", "tx_st_ready", "tx_st_err",
             "tx_st_hdr", "tx_st_tlp_prfx", "tx_cdts_limit", "tx_cdts_limit_tdm_idx")
_CII_PORTS = ("tl_cfg_func", "tl_cfg_add", "tl_cfg_ctl", "cii_req", "cii_hdr_poisoned",
              "cii_hdr_first_be", "cii_func_num", "cii_wr", "cii_addr", "cii_dout",
              "cii_override_en", "cii_override_din", "cii_halt")


class PTileAdapter(wiring.Component):
    """The hard IP's ports on one side, the core's TLP port on the other (same clock).

    Ports: the P-Tile signals of ``PTileRx``, ``PTileTx`` and ``CiiBridge`` (IP names), the FLR
    handshake of PF0 (``flr_rcvd_pf``, ``flr_completed_pf``: bit 0 used, the others of
    ``flr_completed_pf`` held at 0), plus ``core_rx`` (Out TLP stream to the endpoint's ``rx``),
    ``core_tx`` (In, from its ``tx``) and ``core_flr`` (In, the endpoint's ``flr`` in this domain).
    """

    def __init__(self, width, rx_depth=64):
        self._MustUse__silence = True      # until the parameters are known to be valid
        _check_width(width)
        self.width = width
        self._MustUse__silence = False
        self.rx = PTileRx(width, rx_depth)
        self.tx = PTileTx(width)
        self.cii = CiiBridge(width)
        members = block_members(((self.rx, _RX_PORTS), (self.tx, _TX_PORTS),
                                 (self.cii, _CII_PORTS)))
        members["flr_rcvd_pf"] = In(8)
        members["flr_completed_pf"] = Out(8)
        members["core_rx"] = Out(tlp_stream(width))
        members["core_tx"] = In(tlp_stream(width))
        members["core_flr"] = In(1)
        super().__init__(members)

    def elaborate(self, platform):
        m = Module()
        m.submodules.rx = rx = self.rx
        m.submodules.tx = tx = self.tx
        m.submodules.cii = cii = self.cii
        forward_block_ports(m, self, ((rx, _RX_PORTS), (tx, _TX_PORTS), (cii, _CII_PORTS)))
        connect(m, rx.tlp, cii.rx_in)
        connect(m, cii.rx_out, flipped(self.core_rx))
        connect(m, flipped(self.core_tx), cii.tx_in)
        connect(m, cii.tx_out, tx.tlp)
        m.submodules.flr = hs = FlrHandshake(FLR_TIMEOUT)
        m.d.comb += [hs.request.eq(self.flr_rcvd_pf[0]), hs.core_flr.eq(self.core_flr),
                     self.flr_completed_pf[0].eq(hs.done)]
        return m


class PTileEndpoint(AdaptedEndpoint):
    """``VirtioPciEndpoint`` behind the P-Tile adapter.

    The P-Tile ports (``rx_st_*``, ``tx_st_*``, ``tx_cdts_limit*``, ``tl_cfg_*``, ``cii_*``) are in the
    ``link`` domain (the IP's ``coreclkout_hip``: ``link_clk``/``link_rst`` in the Verilog) when
    ``cdc`` is set, the endpoint and every back-end port (same names as ``VirtioPciEndpoint``'s) in
    ``sync``, with ``TlpCdc`` between; without ``cdc`` everything runs on ``sync``, which must then be
    ``coreclkout_hip``.  ``params.data_width`` must equal the IP's data width (128 or 256).
    """

    def __init__(self, params=None, *, cdc=True, cdc_depth=16):
        from ..params import VirtioPciParams
        self._MustUse__silence = True      # until the parameters are known to be valid
        _check_width((params or VirtioPciParams()).data_width)
        self._MustUse__silence = False
        self._compose(params, PTileAdapter, cdc=cdc, cdc_depth=cdc_depth)
