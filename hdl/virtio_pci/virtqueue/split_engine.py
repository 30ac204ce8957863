"""Split-virtqueue engine: the device side of split rings (VIRTIO 1.3 section 2.7; requirement
list section 2.19, VQP-01..09).

A back-end component between the endpoint (doorbells, queue table, status, interrupts) and the
requester port (``dma/layouts.py``).  It serves the queues one chain at a time, round robin:

1. read the available ring's ``idx`` (2.7.6) and, while it differs from the queue's
   ``last_avail`` (free-running 16-bit counters, ring slots modulo the size: VQP-01), the head
   in ``ring[last_avail % size]``;
2. walk the chain (2.7.5): read each 16-byte descriptor, follow NEXT, follow one INDIRECT table
   when VIRTIO_F_INDIRECT_DESC is negotiated (2.7.5.3); announce each buffer on ``seg``, move a
   readable buffer's bytes to ``rd`` (DMA reads) and the device's ``wr`` bytes into a writable
   buffer (DMA writes of at most ``chunk_bytes``, collected in a FIFO) (VQP-02, VQP-03);
3. write the used element ``{id, len}`` then the used ``idx`` (2.7.8, VQP-04), wait until the
   requester has sent every write (``dma_wdone``), then decide on the used-buffer notification:
   NO_INTERRUPT in the available ring's flags, or ``used_event`` with VIRTIO_F_EVENT_IDX
   (2.7.7, 2.7.10), and request it on ``irq`` (it leaves after the ring writes: VQP-05, VQP-06).
   With EVENT_IDX, a queue found empty gets ``avail_event = last_avail`` written before the
   engine re-reads ``idx`` once and goes idle (2.7.10).

Ring addresses and the size come from the queue table (``qrd_*``): latched at queue enable by
the endpoint, or computed there from a legacy driver's PFN (transitional devices; VQP-08).

Malformed rings (VQP-07) set DEVICE_NEEDS_RESET (``needs_reset``, one pulse) and stop that
queue until it is reset or re-enabled: an available ``idx`` more than ``size`` ahead, a head or
``next`` out of range, a chain longer than the queue size (this catches loops: the walk is
bounded), a readable buffer after a writable one, INDIRECT without the feature, INDIRECT inside
an indirect table or together with NEXT, an indirect table whose length is 0, not a multiple of 16
or longer than the queue size allows, a queue size of 0, and any DMA error status.

Resets (VQP-09): a queue reset event stops work on that queue at the next buffer boundary
(the device function sees a chain end without ``last``: the next ``first`` starts a new chain),
nothing more is written for it, and ``qreset_done`` follows once every write has been sent.  A
device reset (``reset_req``) or FLR (``flr``) does the same for every queue; ``reset_ack``
pulses once every write has been sent (not after an FLR: the endpoint resets itself).  A queue
ENABLE event starts that queue with fresh indices: 0, or the value last given for that
queue on ``qstart`` (the vDPA ``set_vq_state`` hook a live-migration restore uses; a plain
driver never needs it; the value stays in force until a device reset or FLR).

Ports (all registered state; streams follow ``amaranth.lib.stream`` rules):
  dma_req, dma_wdata (Out) / dma_rdata, dma_wdone (In): the requester's client side.
  doorbell (In stream of Doorbell): always ready; marks the queue as having work.
  qevent (In stream of QueueEvent): always ready.
  qstart (In stream of QueueStart): always ready; the indices the queue's next ENABLE starts at.
  qreset_done (Out stream of queue numbers).
  qrd_addr (Out) / qrd_data, qrd_exists (In): the queue table, data the cycle after the address.
  driver_features (In, 128), driver_ok, legacy (In): work is done while ``driver_ok | legacy``.
  reset_req (In) / reset_ack (Out pulse); flr (In pulse); needs_reset (Out pulse).
  irq (Out stream of IrqRequest): used-buffer notifications.
  seg, rd (Out) / wr (In): the device function (``virtqueue/layouts.py``).
  chains (Out, 32): number of chains returned to the used ring since reset (for benches).
"""
from amaranth.hdl import Cat, Const, Module, Mux, Signal, unsigned
from amaranth.lib import data, fifo, memory, stream, wiring
from amaranth.lib.wiring import In, Out

from ..dma.layouts import DmaReadBeat, DmaRequest, DmaStatus, DmaWriteBeat
from ..irq.interrupts import IrqRequest
from ..params import Feature
from ..virtio.common_cfg import QueueEvent, QueueEventKind, QueueRow
from ..virtio.notify import Doorbell
from .layouts import (AVAIL_F_NO_INTERRUPT, DESC_BYTES, USED_ELEM_BYTES, Descriptor, ReadBeat,
                      Segment, WriteBeat)
from .queue_picker import QueuePicker

__all__ = ["SplitEngine", "QueueStart"]


class QueueIndices(data.Struct):
    last_avail: 16
    used: 16


class QueueStart(data.Struct):
    queue: 16
    idx: 16          # last_avail = used idx = this value at the next ENABLE


class SplitEngine(wiring.Component):
    """See the module docstring.  ``params``: the endpoint's VirtioPciParams (queue count, maximum
    queue size, data width, offered features); ``chunk_bytes``: the largest DMA write of device
    data (a FIFO of ``chunk_bytes / (W/8)`` beats holds it while its length is decided)."""

    MAX_DMA = 1 << 16

    def __init__(self, params, *, chunk_bytes=256):
        self._p = params
        w = params.data_width
        if not 1 <= params.num_queues <= 64:
            raise ValueError(f"the split engine serves 1..64 queues, not {params.num_queues!r}")
        if chunk_bytes % (w // 8) or not w // 8 <= chunk_bytes <= 4096:
            raise ValueError(f"chunk_bytes must be a multiple of {w // 8} in {w // 8}..4096, "
                             f"not {chunk_bytes!r}")
        if params.offers(Feature.RING_PACKED):
            raise ValueError("the split engine does not implement VIRTIO_F_RING_PACKED: "
                             "do not offer it")
        self._chunk_beats = chunk_bytes // (w // 8)
        super().__init__({
            "dma_req": Out(stream.Signature(DmaRequest)),
            "dma_wdata": Out(stream.Signature(DmaWriteBeat(w))),
            "dma_rdata": In(stream.Signature(DmaReadBeat(w))),
            "dma_wdone": In(stream.Signature(DmaStatus)),
            "doorbell": In(stream.Signature(Doorbell)),
            "qevent": In(stream.Signature(QueueEvent)),
            "qstart": In(stream.Signature(QueueStart)),
            "qreset_done": Out(stream.Signature(unsigned(16))),
            "qrd_addr": Out(16),
            "qrd_data": In(QueueRow),
            "qrd_exists": In(1),
            "driver_features": In(128),
            "driver_ok": In(1),
            "legacy": In(1),
            "reset_req": In(1),
            "reset_ack": Out(1),
            "flr": In(1),
            "needs_reset": Out(1),
            "irq": Out(stream.Signature(IrqRequest)),
            "seg": Out(stream.Signature(Segment)),
            "rd": Out(stream.Signature(ReadBeat(w))),
            "wr": In(stream.Signature(WriteBeat(w))),
            "chains": Out(32),
        })

    def elaborate(self, platform):
        m = Module()
        p = self._p
        nq = p.num_queues
        w = p.data_width
        bpb = w // 8                                # bytes per beat
        req, wdata, rdata, wdone = self.dma_req, self.dma_wdata, self.dma_rdata, self.dma_wdone

        feat_indirect = self.driver_features[Feature.RING_INDIRECT_DESC]
        feat_event = self.driver_features[Feature.RING_EVENT_IDX]
        live = self.driver_ok | self.legacy

        # ---- per-queue flags (flip-flops, <= 64 queues) and indices (LUT RAM) ----
        pending = Signal(nq)         # a doorbell (or unfinished work) since the last empty check
        enabled = Signal(nq)
        broken = Signal(nq)          # malformed ring seen: stopped until reset / re-enable
        fresh = Signal(nq)           # enabled since last visit: indices start at 0 / qstart
        custom = Signal(nq)          # a qstart value is in force for the queue
        qdone = Signal(nq)           # a queue reset waits for its qreset_done
        m.submodules.indices = imem = memory.Memory(shape=QueueIndices, depth=nq, init=[])
        irp = imem.read_port(domain="comb")
        iwp = imem.write_port()
        m.submodules.starts = smem = memory.Memory(shape=16, depth=nq, init=[])
        srp = smem.read_port(domain="comb")
        swp = smem.write_port()
        qs = self.qstart
        m.d.comb += [qs.ready.eq(1), swp.addr.eq(qs.payload.queue),
                     swp.data.eq(qs.payload.idx), swp.en.eq(qs.valid & (qs.payload.queue < nq))]
        with m.If(qs.valid & (qs.payload.queue < nq)):
            m.d.sync += custom.bit_select(qs.payload.queue[:max(1, (nq - 1).bit_length())], 1).eq(1)

        m.submodules.picker = picker = QueuePicker(nq)
        cur_q = Signal(16)
        m.d.comb += [picker.candidates.eq(pending & enabled & ~broken), picker.last.eq(cur_q),
                     irp.addr.eq(cur_q), iwp.addr.eq(cur_q), srp.addr.eq(cur_q)]

        # ---- state of the queue being served ----
        row = Signal(QueueRow)
        size_m1 = Signal(16)
        last_avail = Signal(16)
        used_idx = Signal(16)
        avail_idx = Signal(16)
        event_pub = Signal()         # avail_event written during this visit
        head = Signal(16)
        idx = Signal(16)             # descriptor index in the current table
        base = Signal(64)            # current table
        limit = Signal(17)           # entries of the current table (and longest chain in it)
        count = Signal(17)           # descriptors visited in the current table
        indirect = Signal()
        seen_write = Signal()
        first = Signal()
        used_len = Signal(32)
        desc = Signal(Descriptor)
        seg_addr = Signal(64)
        seg_rem = Signal(32)
        abort_q = Signal()           # the queue being served was reset
        more = Signal()              # a chain was returned during this visit: look again
        cut = Signal()               # the readable buffer is cut short (reset): last piece
        flr_seen = Signal()
        outstanding = Signal(16)     # write requests not yet answered on dma_wdone
        werr = Signal()              # a write of this visit ended with an error status
        rdbuf = Signal(128)
        rbeat = Signal(range(max(2, DESC_BYTES // bpb + 1)))
        chains = Signal(32)
        m.d.comb += [self.chains.eq(chains), self.qrd_addr.eq(cur_q)]

        abort = Signal()
        m.d.comb += abort.eq(abort_q | self.reset_req | flr_seen | self.flr | ~live)

        # ---- write data FIFO (one chunk) ----
        cb = self._chunk_beats
        m.submodules.wfifo = wfifo = fifo.SyncFIFOBuffered(width=w, depth=cb + 1)
        chunk_len = Signal(range(cb * bpb + 1))
        chunk_beats = Signal(range(cb + 1))
        beats_left = Signal(range(cb + 1))
        seg_last_seen = Signal()     # the device ended the segment
        drain = Signal()             # the buffer is full: drop the device's bytes until ``last``

        # ---- write completions ----
        m.d.comb += wdone.ready.eq(1)
        inc = Signal()
        dec = wdone.valid
        m.d.sync += outstanding.eq(outstanding + inc - dec)
        with m.If(dec & (wdone.payload != DmaStatus.OK)):
            m.d.sync += werr.eq(1)

        def start_read(addr, nbytes, nxt):
            m.d.comb += [req.valid.eq(1), req.payload.addr.eq(addr),
                         req.payload.len_m1.eq(nbytes - 1), req.payload.write.eq(0)]
            with m.If(req.ready):
                m.d.sync += rbeat.eq(0)
                m.next = nxt

        def read_states(name, addr, nbytes, nxt):
            """``name``: ask for ``nbytes`` (<= 16) at ``addr``; ``name_D``: collect them into
            ``rdbuf``; then state ``nxt`` (``BROKEN`` on an error status)."""
            with m.State(name):
                start_read(addr, nbytes, name + "_D")
            with m.State(name + "_D"):
                m.d.comb += rdata.ready.eq(1)
                with m.If(rdata.valid):
                    if w >= 128:
                        m.d.sync += rdbuf.eq(rdata.payload.data[:128])
                    else:
                        m.d.sync += rdbuf.word_select(rbeat, w).eq(rdata.payload.data)
                    m.d.sync += rbeat.eq(rbeat + 1)
                    with m.If(rdata.payload.last):
                        with m.If(rdata.payload.status != DmaStatus.OK):
                            m.next = "BROKEN"
                        with m.Else():
                            m.next = nxt

        def write_states(name, addr, nbytes, value, nxt):
            """``name``: ask to write ``nbytes`` (<= 8) of ``value`` at ``addr``; ``name_D``:
            its one data beat; then ``nxt`` (completion counted in ``outstanding``)."""
            with m.State(name):
                m.d.comb += [req.valid.eq(1), req.payload.addr.eq(addr),
                             req.payload.len_m1.eq(nbytes - 1), req.payload.write.eq(1)]
                with m.If(req.ready):
                    m.d.comb += inc.eq(1)
                    m.next = name + "_D"
            with m.State(name + "_D"):
                m.d.comb += [wdata.valid.eq(1), wdata.payload.data.eq(value),
                             wdata.payload.last.eq(1)]
                with m.If(wdata.ready):
                    m.next = nxt

        slot = last_avail & size_m1
        used_slot = used_idx & size_m1
        size = row.size
        piece = Signal(17)
        m.d.comb += piece.eq(Mux(seg_rem > self.MAX_DMA, self.MAX_DMA, seg_rem))

        with m.FSM() as fsm:
            with m.State("IDLE"):
                m.d.sync += [abort_q.eq(0), werr.eq(0)]
                m.d.comb += self.qrd_addr.eq(picker.queue)     # the row shows in LOAD
                with m.If(self.reset_req | flr_seen | self.flr):
                    m.next = "RESET"
                with m.Elif(qdone.any()):
                    m.next = "QDONE"
                with m.Elif(picker.valid & live):
                    m.d.sync += [cur_q.eq(picker.queue),
                                 pending.bit_select(picker.queue, 1).eq(0)]
                    m.next = "LOAD"

            with m.State("QDONE"):
                # lowest queue whose reset is waiting; every write has been sent (IDLE)
                pick = Signal(16)
                for i in reversed(range(nq)):
                    with m.If(qdone[i]):
                        m.d.comb += pick.eq(i)
                m.d.comb += [self.qreset_done.valid.eq(1), self.qreset_done.payload.eq(pick)]
                with m.If(self.qreset_done.ready):
                    m.d.sync += qdone.bit_select(pick, 1).eq(0)
                    m.next = "IDLE"

            with m.State("LOAD"):
                # qrd_data shows cur_q's row (address set in IDLE)
                m.d.sync += [row.eq(self.qrd_data), size_m1.eq(self.qrd_data.size - 1),
                             event_pub.eq(0), more.eq(0)]
                with m.If(fresh.bit_select(cur_q, 1)):
                    start = Mux(custom.bit_select(cur_q, 1), srp.data, 0)
                    m.d.sync += [last_avail.eq(start), used_idx.eq(start),
                                 fresh.bit_select(cur_q, 1).eq(0)]
                with m.Else():
                    m.d.sync += [last_avail.eq(irp.data.last_avail), used_idx.eq(irp.data.used)]
                with m.If(self.qrd_data.size == 0):
                    m.next = "BROKEN"
                with m.Else():
                    m.next = "AVAIL_IDX"

            read_states("AVAIL_IDX", row.driver + 2, 2, "AVAIL_IDX_X")
            with m.State("AVAIL_IDX_X"):
                ahead = Signal(16)
                m.d.comb += ahead.eq(rdbuf[:16] - last_avail)
                m.d.sync += avail_idx.eq(rdbuf[:16])
                with m.If(abort):
                    m.next = "END"
                with m.Elif(ahead == 0):
                    with m.If(feat_event & ~event_pub):
                        m.next = "AVAIL_EVENT"
                    with m.Else():
                        m.next = "SAVE"
                with m.Elif(ahead > size):
                    m.next = "BROKEN"
                with m.Else():
                    m.next = "RING"
            # 2.7.10: publish how far the device has read, then look once more
            write_states("AVAIL_EVENT", row.device + 4 + USED_ELEM_BYTES * size, 2, last_avail,
                         "AVAIL_EVENT_W")
            with m.State("AVAIL_EVENT_W"):
                m.d.sync += event_pub.eq(1)
                m.next = "AVAIL_IDX"

            read_states("RING", row.driver + 4 + 2 * slot, 2, "RING_X")
            with m.State("RING_X"):
                h = rdbuf[:16]
                m.d.sync += [head.eq(h), idx.eq(h), base.eq(row.desc), limit.eq(size),
                             count.eq(0), indirect.eq(0), seen_write.eq(0), first.eq(1),
                             used_len.eq(0)]
                with m.If(h >= size):
                    m.next = "BROKEN"
                with m.Else():
                    m.next = "DESC"

            read_states("DESC", base + DESC_BYTES * idx, DESC_BYTES, "DESC_X")
            with m.State("DESC_X"):
                d = Descriptor(rdbuf)
                m.d.sync += [desc.eq(d), count.eq(count + 1), seg_addr.eq(d.addr),
                             seg_rem.eq(d.len)]
                tbl = d.len >> 4
                with m.If(abort):
                    m.next = "END"
                with m.Elif(count >= limit):
                    m.next = "BROKEN"              # longer than the queue / table: a loop
                with m.Elif(d.flags.indirect):
                    with m.If(indirect | ~feat_indirect | d.flags.next | (d.len == 0)
                              | (d.len[:4] != 0) | (tbl > size)):
                        m.next = "BROKEN"
                    with m.Else():
                        m.d.sync += [base.eq(d.addr), limit.eq(tbl), idx.eq(0), count.eq(0),
                                     indirect.eq(1)]
                        m.next = "DESC"
                with m.Elif(~d.flags.write & seen_write):
                    m.next = "BROKEN"
                with m.Else():
                    m.d.sync += seen_write.eq(seen_write | d.flags.write)
                    m.next = "SEG"

            with m.State("SEG"):
                sg = self.seg
                m.d.comb += [sg.valid.eq(1), sg.payload.queue.eq(cur_q), sg.payload.id.eq(head),
                             sg.payload.write.eq(desc.flags.write), sg.payload.len.eq(desc.len),
                             sg.payload.first.eq(first), sg.payload.last.eq(~desc.flags.next)]
                with m.If(sg.ready):
                    m.d.sync += [first.eq(0), chunk_len.eq(0), chunk_beats.eq(0),
                                 seg_last_seen.eq(0), drain.eq(0)]
                    with m.If(desc.flags.write):
                        m.next = "WR_COLLECT"
                    with m.Elif(seg_rem == 0):
                        m.next = "NEXT"
                    with m.Else():
                        m.next = "RD_REQ"

            # ---- a readable buffer: DMA reads of <= 64 KiB straight to ``rd`` ----
            with m.State("RD_REQ"):
                m.d.sync += cut.eq(abort)
                start_read(seg_addr, piece, "RD_DATA")
            with m.State("RD_DATA"):
                final = piece == seg_rem
                bad = rdata.payload.status != DmaStatus.OK
                m.d.comb += [self.rd.valid.eq(rdata.valid),
                             self.rd.payload.data.eq(rdata.payload.data),
                             self.rd.payload.last.eq(rdata.payload.last & (final | cut | bad)),
                             rdata.ready.eq(self.rd.ready)]
                with m.If(rdata.valid & self.rd.ready & rdata.payload.last):
                    m.d.sync += [seg_addr.eq(seg_addr + piece), seg_rem.eq(seg_rem - piece)]
                    with m.If(bad):
                        m.next = "BROKEN"
                    with m.Elif(final | cut):
                        m.next = "NEXT"
                    with m.Else():
                        m.next = "RD_REQ"

            # ---- a writable buffer: collect a chunk of the device's bytes, then write it ----
            with m.State("WR_COLLECT"):
                beat = self.wr.payload
                room = Signal(32)
                n = Signal(range(bpb + 1))
                m.d.comb += [room.eq(seg_rem - chunk_len),
                             n.eq(Mux(beat.bytes > room, room, beat.bytes)),
                             self.wr.ready.eq(wfifo.w_rdy),
                             wfifo.w_data.eq(beat.data),
                             wfifo.w_en.eq(self.wr.valid & (n != 0))]
                with m.If(self.wr.valid & wfifo.w_rdy):
                    new_len = chunk_len + n
                    new_beats = chunk_beats + (n != 0)
                    full = new_len == seg_rem
                    m.d.sync += [chunk_len.eq(new_len), chunk_beats.eq(new_beats),
                                 beats_left.eq(new_beats), seg_last_seen.eq(beat.last),
                                 drain.eq(full & ~beat.last)]
                    with m.If(beat.last | (n != bpb) | (new_beats == cb) | full):
                        with m.If(new_len != 0):
                            m.next = "WR_REQ"
                        with m.Elif(beat.last):
                            m.next = "NEXT"
                        with m.Elif(full):
                            m.next = "WR_DRAIN"
            with m.State("WR_REQ"):
                m.d.comb += [req.valid.eq(1), req.payload.addr.eq(seg_addr),
                             req.payload.len_m1.eq(chunk_len - 1), req.payload.write.eq(1)]
                with m.If(req.ready):
                    m.d.comb += inc.eq(1)
                    m.next = "WR_DATA"
            with m.State("WR_DATA"):
                m.d.comb += [wdata.valid.eq(wfifo.r_rdy), wdata.payload.data.eq(wfifo.r_data),
                             wdata.payload.last.eq(beats_left == 1),
                             wfifo.r_en.eq(wdata.ready)]
                with m.If(wdata.valid & wdata.ready):
                    m.d.sync += beats_left.eq(beats_left - 1)
                    with m.If(beats_left == 1):
                        m.d.sync += [seg_addr.eq(seg_addr + chunk_len),
                                     seg_rem.eq(seg_rem - chunk_len),
                                     used_len.eq(used_len + chunk_len),
                                     chunk_len.eq(0), chunk_beats.eq(0)]
                        with m.If(seg_last_seen):
                            m.next = "NEXT"
                        with m.Elif(drain | abort):
                            m.next = "WR_DRAIN"
                        with m.Else():
                            m.next = "WR_COLLECT"
            with m.State("WR_DRAIN"):
                m.d.comb += self.wr.ready.eq(1)
                with m.If(self.wr.valid & self.wr.payload.last):
                    m.next = "NEXT"

            with m.State("NEXT"):
                with m.If(abort):
                    m.next = "END"
                with m.Elif(desc.flags.next):
                    m.d.sync += idx.eq(desc.next)
                    with m.If(desc.next >= limit):
                        m.next = "BROKEN"
                    with m.Else():
                        m.next = "DESC"
                with m.Else():
                    m.next = "USED_ELEM"

            # ---- return the chain: used element, then used idx (2.7.8.2) ----
            write_states("USED_ELEM", row.device + 4 + USED_ELEM_BYTES * used_slot,
                         USED_ELEM_BYTES, Cat(head, Const(0, 16), used_len), "USED_IDX")
            write_states("USED_IDX", row.device + 2, 2, (used_idx + 1)[:16], "WAIT_W")
            with m.State("WAIT_W"):
                with m.If(outstanding == 0):
                    m.d.sync += [last_avail.eq(last_avail + 1), used_idx.eq(used_idx + 1),
                                 chains.eq(chains + 1), more.eq(1)]
                    with m.If(werr):
                        m.next = "BROKEN"
                    with m.Elif(abort):
                        m.next = "END"
                    with m.Elif(feat_event):
                        m.next = "USED_EVENT"
                    with m.Else():
                        m.next = "FLAGS"
            # the notification decision reads the driver's word after the used idx was sent
            read_states("FLAGS", row.driver, 2, "FLAGS_X")
            with m.State("FLAGS_X"):
                with m.If(abort | (rdbuf[:16] & AVAIL_F_NO_INTERRUPT).any()):
                    m.next = "SAVE"
                with m.Else():
                    m.next = "IRQ"
            read_states("USED_EVENT", row.driver + 4 + 2 * size, 2, "USED_EVENT_X")
            with m.State("USED_EVENT_X"):
                # vring_need_event(used_event, new, old) with new = old + 1: used_event == old
                with m.If((rdbuf[:16] == (used_idx - 1)[:16]) & ~abort):
                    m.next = "IRQ"
                with m.Else():
                    m.next = "SAVE"
            with m.State("IRQ"):
                # (a request for a queue reset meanwhile is dropped by the endpoint: VQR-01)
                m.d.comb += [self.irq.valid.eq(1), self.irq.payload.queue.eq(cur_q)]
                with m.If(self.irq.ready):
                    m.next = "SAVE"

            with m.State("SAVE"):
                m.d.comb += [iwp.en.eq(~abort), iwp.data.last_avail.eq(last_avail),
                             iwp.data.used.eq(used_idx)]
                # after a chain, come back: more may be waiting, and with EVENT_IDX the driver
                # may not have notified (avail_event is published only when the ring is empty)
                with m.If(~abort & more):
                    m.d.sync += pending.bit_select(cur_q, 1).eq(1)
                m.next = "END"

            with m.State("BROKEN"):
                # not while resetting: an abandoned request ends with an error status
                with m.If(~abort):
                    m.d.comb += self.needs_reset.eq(1)
                    m.d.sync += broken.bit_select(cur_q, 1).eq(1)
                m.next = "END"

            with m.State("END"):
                # every write of this visit sent before anything else (qreset_done, reset_ack)
                with m.If(outstanding == 0):
                    m.next = "IDLE"

            with m.State("RESET"):
                with m.If(outstanding == 0):
                    m.d.comb += self.reset_ack.eq(self.reset_req)
                    m.d.sync += [pending.eq(0), enabled.eq(0), broken.eq(0), fresh.eq(0), custom.eq(0),
                                 qdone.eq(0), flr_seen.eq(0), chains.eq(0)]
                    m.next = "IDLE"

        # ---- doorbells and queue events (after the FSM: they win over its updates) ----
        db = self.doorbell
        m.d.comb += db.ready.eq(1)
        with m.If(db.valid & (db.payload.queue < nq)):
            m.d.sync += pending.bit_select(db.payload.queue[:max(1, (nq - 1).bit_length())],
                                           1).eq(1)
        ev = self.qevent
        m.d.comb += ev.ready.eq(1)
        eq_ = ev.payload.queue[:max(1, (nq - 1).bit_length())]
        with m.If(ev.valid & (ev.payload.queue < nq)):
            with m.If(ev.payload.kind == QueueEventKind.ENABLE):
                m.d.sync += [enabled.bit_select(eq_, 1).eq(1), fresh.bit_select(eq_, 1).eq(1),
                             broken.bit_select(eq_, 1).eq(0), pending.bit_select(eq_, 1).eq(0)]
            with m.Else():
                m.d.sync += [enabled.bit_select(eq_, 1).eq(0), pending.bit_select(eq_, 1).eq(0),
                             qdone.bit_select(eq_, 1).eq(1)]
                with m.If((ev.payload.queue == cur_q) & ~fsm.ongoing("IDLE")):
                    m.d.sync += abort_q.eq(1)
        with m.If(self.flr):
            m.d.sync += flr_seen.eq(1)
        return m
