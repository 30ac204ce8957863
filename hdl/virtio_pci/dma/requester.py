"""The requester port: back-end DMA through the front-end (composition only).

PCI Express Base Specification 5.0, 2.2.7, 2.3.1.1, 2.3.2, 2.4.1, 2.8, 6.6.2, 7.5.1.1.3,
7.5.3.4, 7.5.3.16; requirement list section 2.18 (DMA-01..19, DMA-D1).  The back-end contract
of the four streams is in ``dma/layouts.py``; this is how the front-end keeps it.

    dma_req ──► RequestEngine ──► mrd (MRd TLPs) ─────────────────────────────► tx arbiter
                  │  │   ▲ tags                                        
                  │  │  TagPool ◄── tags free again ──┐
                  │  └─► wcmd ─► WritePacker ◄── dma_wdata
                  │               ├─► mwr (MWr TLPs) ───────────────────────► tx arbiter
                  │               └─► dma_wdone
                  ├─► issue ─► CompletionReassembly ◄── completions snooped on rx
                  │               └─► ReadBuffer (one slot per tag, block RAM)
                  └─► order ─► ReadOut ◄── ReadBuffer ──► dma_rdata

Back-end contract, as kept here (the choices the PCIe rules leave open):

* **Splitting** (DMA-02..06): reads at multiples of min(MRRS, ``dma_max_read``), writes at
  multiples of MPS (both never cross 4 KiB); 3-DW headers below 4 GiB, 4-DW at and above; First
  and Last DW byte enables for byte-granular ends; Requester ID = the captured bus/device number
  (function 0); Attr No Snoop / Relaxed Ordering only when asked for and enabled in Device
  Control (DMA-18); Traffic Class 0.
* **Tags** (DMA-07): tags 0..31 while Extended Tag Field Enable is clear, 0..``dma_tags``-1 when
  set; a tag is reused only after its completions are all in (or its quarantine after an error,
  a timeout or an FLR ended) and its slot has been read out.
* **Bus Master Enable** (DMA-01): a read asked for while BME is clear, or the part of it not yet
  sent when BME is cleared, ends with status BME (zeros, nothing sent); a write chunk is checked
  when it is about to leave: from a clear BME on, nothing more of that request leaves, its data
  is consumed, ``dma_wdone`` says BME.  ``bus_master`` is the input that gates it (Command.BME;
  the top level may AND in other conditions, e.g. the power state).
* **Completions** (DMA-09..14): see ``CompletionReassembly``; every request gets exactly one
  answer (``dma_rdata`` final beat or ``dma_wdone``), whatever the link does.
* **Ordering** (DMA-15..17): posted writes leave in request order; an MRd never passes an
  earlier MWr of the back-end; ``dma_wdone`` OK comes only after all MWrs of the request were
  accepted by ``tx``, so an interrupt requested after it leaves after them; completions for host
  reads wait for back-end writes whose request and data were accepted before (``ordering.py``);
  MRds waiting for a tag never hold ``tx``, host completions or MSI-X writes (separate tx
  arbiter sources).  ``dma_req`` is one in-order stream: a read waiting for a free tag delays the
  back-end requests behind it.
* **Reset** (DMA-19): an FLR answers every request accepted before it and not finished with
  RESET (a TLP already on ``tx`` finishes); completions for requests before the FLR are
  discarded as unexpected.  A conventional reset resets the requester with everything else.
"""
from amaranth.hdl import Module
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out, connect, flipped

from ..skid import SkidBuffer
from ..tlp.layouts import beat_layout, tlp_stream
from .completion_reassembly import CompletionReassembly
from .layouts import dma_signatures
from .read_buffer import ReadBuffer
from .read_out import ReadOut
from .request_engine import RequestEngine
from .tag_pool import TagPool
from .write_packer import WritePacker

__all__ = ["Requester"]


class Requester(wiring.Component):
    """Ports
    -----
    dma_req, dma_wdata : In streams; dma_rdata, dma_wdone : Out streams (``dma/layouts.py``).
    mrd, mwr : Out TLP streams (memory reads / writes), for two tx arbiter inputs.
    mrd_held : In, the tx arbiter must keep the MRd it presents (``TxArbiter.held``); an MRd not
        held is withdrawn at an FLR.
    rx_fire, rx_beat, rx_malformed : In, the rx beat accepted this cycle and the depacketizer's
        verdict on the TLP it ends (registered here: completions are handled a cycle later).
    n_ready, n_done : Out, ordering counters for the ``CompletionBarrier``.
    bus_master, flr, mps, mrrs, ext_tag, relaxed_en, no_snoop_en, cto_disable, requester_id :
        In, from config space.
    err_unexpected, err_malformed, err_timeout, got_ur, got_ca, got_poisoned : Out pulses for
        config-space error bits.
    tags_free : Out, free tags below the current limit (registered; tests and bench).
    """

    def __init__(self, width, *, n_tags, max_read, max_payload, timeout):
        self.width = width
        sigs = dma_signatures(width)
        super().__init__({
            "dma_req": In(sigs["dma_req"]),
            "dma_wdata": In(sigs["dma_wdata"]),
            "dma_rdata": Out(sigs["dma_rdata"]),
            "dma_wdone": Out(sigs["dma_wdone"]),
            "mrd": Out(tlp_stream(width)),
            "mrd_held": In(1),
            "mwr": Out(tlp_stream(width)),
            "rx_fire": In(1),
            "rx_beat": In(beat_layout(width)),
            "rx_malformed": In(1),
            "n_ready": Out(8),
            "n_done": Out(8),
            "bus_master": In(1),
            "flr": In(1),
            "mps": In(3),
            "mrrs": In(3),
            "ext_tag": In(1),
            "relaxed_en": In(1),
            "no_snoop_en": In(1),
            "cto_disable": In(1),
            "requester_id": In(16),
            "err_unexpected": Out(1),
            "err_malformed": Out(1),
            "err_timeout": Out(1),
            "got_ur": Out(1),
            "got_ca": Out(1),
            "got_poisoned": Out(1),
            "tags_free": Out(9),
        })
        self._cfg = dict(n_tags=n_tags, max_read=max_read, max_payload=max_payload,
                         timeout=timeout)

    def elaborate(self, platform):
        m = Module()
        c = self._cfg
        w = self.width
        m.submodules.tags = tags = TagPool(c["n_tags"], n_release=3)
        m.submodules.engine = eng = RequestEngine(w, c["max_read"], c["max_payload"])
        m.submodules.wpack = wp = WritePacker(w, c["max_payload"])
        m.submodules.cpl = cpl = CompletionReassembly(w, c["n_tags"], c["max_read"], c["timeout"])
        m.submodules.rbuf = rbuf = ReadBuffer(w, c["n_tags"], c["max_read"])
        m.submodules.rout = rout = ReadOut(w, c["n_tags"], c["max_read"])

        connect(m, flipped(self.dma_req), eng.req)
        connect(m, tags.alloc, eng.tag)
        connect(m, eng.mrd, flipped(self.mrd))
        # write chunks through a skid buffer: the packer's ``cmd.ready`` (its beat counter, data
        # FIFO level) does not reach the engine's chunk arithmetic in the same cycle (Fmax); no
        # added latency while the packer takes chunks as they come
        m.submodules.wcmd_skid = wskid = SkidBuffer(eng.wcmd.payload.shape())
        connect(m, eng.wcmd, wskid.i)
        connect(m, wskid.o, wp.cmd)
        connect(m, flipped(self.dma_wdata), wp.wdata)
        connect(m, wp.tx, flipped(self.mwr))
        connect(m, wp.wdone, flipped(self.dma_wdone))
        connect(m, eng.order, rout.order)
        connect(m, rout.rdata_o, flipped(self.dma_rdata))
        m.d.comb += [
            eng.wr_credit.eq(wp.wr_credit), eng.wr_busy.eq(wp.busy), wp.wr_accept.eq(eng.wr_accept),
            cpl.issue_valid.eq(eng.issue_valid), cpl.issue.eq(eng.issue),
            eng.mrd_held.eq(self.mrd_held),
            cpl.withdraw_valid.eq(eng.withdraw_valid), cpl.withdraw_tag.eq(eng.withdraw_tag),

            rbuf.we.eq(cpl.we), rbuf.waddr.eq(cpl.waddr), rbuf.wdata.eq(cpl.wdata),
            rbuf.raddr.eq(rout.raddr), rbuf.ren.eq(rout.ren), rout.rdata.eq(rbuf.rdata),
            cpl.q_tag.eq(rout.q_tag), rout.q_done.eq(cpl.q_done), rout.q_status.eq(cpl.q_status),
            cpl.done_valid.eq(rout.done_valid), cpl.done_tag.eq(rout.done_tag),
            tags.ext_tag.eq(self.ext_tag),
            self.n_ready.eq(wp.n_ready), self.n_done.eq(wp.n_done),
            self.tags_free.eq(tags.free_count),
        ]
        # the snooped rx beats reach the completion reassembly through a register (Fmax): the
        # endpoint's rx.ready chain does not run into the per-tag state in the same cycle.  Every
        # completion is handled one cycle later; an FLR in that cycle still wins (RESET).
        m.d.sync += [cpl.rx_fire.eq(self.rx_fire), cpl.rx_beat.eq(self.rx_beat),
                     cpl.rx_malformed.eq(self.rx_malformed)]
        for i in range(3):
            m.d.comb += [getattr(tags, f"release{i}_valid").eq(getattr(cpl, f"release{i}_valid")),
                         getattr(tags, f"release{i}_tag").eq(getattr(cpl, f"release{i}_tag"))]
        for blk in (eng, wp):
            m.d.comb += [blk.bme.eq(self.bus_master), blk.flr.eq(self.flr),
                         blk.requester_id.eq(self.requester_id)]
        m.d.comb += [eng.mps.eq(self.mps), eng.mrrs.eq(self.mrrs),
                     eng.relaxed_en.eq(self.relaxed_en), eng.no_snoop_en.eq(self.no_snoop_en),
                     cpl.requester_id.eq(self.requester_id), cpl.flr.eq(self.flr),
                     cpl.cto_disable.eq(self.cto_disable)]
        for name in ("err_unexpected", "err_malformed", "err_timeout", "got_ur", "got_ca",
                     "got_poisoned"):
            m.d.comb += getattr(self, name).eq(getattr(cpl, name))
        return m
