"""Common configuration structure (VIRTIO 1.3 section 4.1.4.3, 2.1 device status, 2.2 feature
bits, 2.4 device reset, 2.6.1 virtqueue reset).

The 64-byte 1.3 layout at spec offsets.  Decisions where the specification leaves a choice
(DESIGN.md section 7, each also listed in the README):

* Feature windows for selects 0-3 (128 offered bits); other selects read 0 and ignore writes.
  ``driver_feature`` reads back the bits written (offered or not); FEATURES_OK validates them:
  unoffered bits, a missing VERSION_1, a missing prerequisite (transport and device-type rules
  of ``feature_rules.py``: VIRTIO 1.3 chapter 6, 5.1.3.1) or the back-end's ``features_veto``
  refuse it (the bit reads back 0, the other bits of that write are kept).  Once FEATURES_OK is set,
  feature writes are ignored and FEATURES_OK cannot be cleared except by reset.
* Writing 0 to ``device_status`` asks the back-end to reset (``reset_req``); until ``reset_ack`` the
  register reads the old status with DEVICE_NEEDS_RESET set (never 0) and every other write to
  the structure is ignored; on ``reset_ack`` every field takes its reset value in one cycle.
  DRIVER_OK (the ``driver_ok`` output, which gates doorbells) drops when the reset is requested.
* ``config_generation`` increments on the first device-config change after the driver last read
  it (a sticky "changed" flag), so it differs whenever a change happened, however many.  Only a
  read that returns byte 0x15 clears the flag.
* Narrow writes change only the enabled bytes of a field; for ``queue_enable`` and
  ``queue_reset`` the value is formed from the enabled lanes (disabled lanes count as 0).
* Per-queue parameters live in block RAM, indexed by ``queue_select``.  The three per-queue flags
  (row written since reset, enabled, being reset) live in a small RAM with asynchronous read
  ports (distributed / LUT RAM on an FPGA), one per lookup (queue_select, the doorbell check,
  the interrupt check, ``qreset_done``, the back-end's two read ports), so nothing per queue is a
  flip-flop and no lookup is a wide multiplexer.  A reset clears the flags by a sweep, one queue
  per cycle: ``num_queues`` cycles after a conventional reset, an FLR or the back-end's
  ``reset_ack``, during which the structure holds its register bus (``ready`` low: requests wait,
  none is lost) and the back-end read ports show no queue as existing.  A ``qreset_done`` waits a
  cycle when the driver changes a queue's flags in the same cycle (one write port).  A queue's size and addresses are latched
  by ``queue_enable = 1`` and ignore writes while it is enabled; the MSI-X vector may be remapped
  at any time.  ``queue_enable = 0`` is ignored.  ``queue_size`` accepts only powers of two (any
  non-zero value once RING_PACKED is negotiated) up to the queue's maximum.  Selects beyond
  ``num_queues`` read ``queue_size`` 0, ``queue_msix_vector`` NO_VECTOR and ignore writes.
  A ``qreset_done`` for a queue that is not resetting is ignored.
* Interrupt requests are checked here (``irq_allowed``): none before DRIVER_OK or during a device
  reset, used-buffer notifications only for an enabled queue that is not being reset.
* Vector fields accept vectors below the MSI-X table size; anything else stores NO_VECTOR.

Transitional devices (``params.transitional``) also answer the legacy header's view of the same
state (bus DW addresses with bit 10 set, routed here by ``legacy.py``; VIRTIO 1.3 4.1.4.10, 2.7.2):

* Host features are device feature bits 0-31 with ANY_LAYOUT added (LEG-09); NOTIFY_ON_EMPTY, when
  offered, appears here only (device_feature never shows legacy-only bits: to a modern driver they
  are reserved, FEA-03). A guest-features write, accepted until FEATURES_OK or DRIVER_OK is set,
  stores the bits also offered (the rest read back 0, so the UNUSED bit 30 changes nothing), clears
  driver feature bits 32-127 (LEG-04) and marks the driver legacy (``legacy``, LEG-06): its features
  are in force at once (there is no FEATURES_OK step), doorbells and used-buffer notifications are
  allowed before DRIVER_OK (LEG-08). A modern driver whose FEATURES_OK is accepted (it needs
  VERSION_1) clears ``legacy``.
* Queue address: a non-zero page frame number enables the selected queue with the legacy ring
  layout of its (maximum) size (LEG-10): descriptors at PFN*4096, the driver area right after the
  16*size bytes of descriptors, the device area at the next 4096 boundary after the driver area's
  6+2*size bytes; a queue event ENABLE follows as for ``queue_enable``.  0 on an enabled queue
  resets it (queue event RESET, completed by ``qreset_done``, as the modern ``queue_reset``); a
  PFN written to an enabled queue is ignored.  Reads give the PFN of an enabled queue, else 0.
* Queue size is read only (the maximum, or the size a modern driver set); queue select, the
  status (no FEATURES_OK in legacy: bit 3 is kept as it is, 0 resets as in the modern register),
  and the two MSI-X vector fields share the modern registers.
* Once a modern driver's FEATURES_OK is accepted, legacy writes are ignored except a status of 0
  (a legacy driver taking over resets the device first): they would otherwise clear DRIVER_OK,
  move queue_select, remap vectors or reset and re-enable the modern driver's queues.
"""
from amaranth.hdl import Cat, Const, Module, Mux, Signal, unsigned
from amaranth.lib import data, memory, stream, wiring, enum
from amaranth.lib.wiring import In, Out

from ..params import LEGACY_ONLY_FEATURES, Feature
from ..regbus import RegBusSignature
from .feature_rules import rules_for

__all__ = ["CommonCfg", "QueueRow", "QueueEvent", "QueueEventKind", "NO_VECTOR", "Status"]

NO_VECTOR = 0xFFFF


class Status:
    ACKNOWLEDGE = 0x01
    DRIVER = 0x02
    DRIVER_OK = 0x04
    FEATURES_OK = 0x08
    DEVICE_NEEDS_RESET = 0x40
    FAILED = 0x80


class QueueRow(data.Struct):
    """Per-queue parameters held in block RAM."""
    size: 16
    vector: 16
    desc: 64
    driver: 64
    device: 64


class QueueFlags(data.Struct):
    """Per-queue flags (flag RAM)."""
    exists: 1        # row written since reset (else the row reads reset values)
    enable: 1
    reset: 1


class QueueEventKind(enum.Enum, shape=1):
    ENABLE = 0
    RESET = 1


class QueueEvent(data.Struct):
    queue: 16
    kind: QueueEventKind




class CommonCfg(wiring.Component):
    """Ports (back-end side; all outputs registered, no latency unless stated)
    ---------------------------------------------------------------------
    bus : the region's register bus (DW address inside the 4 KiB page).
    device_status, features_ok : current status.
    driver_ok : DRIVER_OK, low from the moment a device reset is requested (doorbells and
        notifications stop while the back-end resets).
    driver_features : the 128 feature bits accepted at FEATURES_OK (0 before).
    features_veto : In; sampled when the driver sets FEATURES_OK: 1 refuses the feature set.
    reset_req : Out, high from a write of 0 to device_status until ``reset_ack``.
    reset_ack : In, one-cycle pulse: the back-end finished its reset; the structure resets.
    virtio_reset : Out, one-cycle pulse when the virtio state resets (ISR, MSI-X pending use it).
    needs_reset : In, pulse: set DEVICE_NEEDS_RESET (sticky until reset).
    config_changed : In, pulse: a device-config value changed (for config_generation).
    config_notify : Out, one-cycle pulse: a configuration-change notification is due (a config
        change or DEVICE_NEEDS_RESET being set, while DRIVER_OK; VIRTIO 2.1.2, 3.2.1), in the
        cycle of ``config_changed`` / ``needs_reset``.
    chk_queue / chk_enabled : combinational lookup of a queue's enable flag (the doorbell check).
    qrd_addr / qrd_data / qrd_exists : back-end read port into the queue table; data valid the
        cycle after the address (reset values for a queue never written).
    qevent : Out stream of QueueEvent, one per queue_enable=1 or queue_reset=1 accepted.
    qreset_done : In stream of queue numbers: the back-end finished that queue's reset.
    config_vector : Out, config_msix_vector.
    irq_queue, irq_config / irq_allowed : combinational check of an interrupt request: a
        configuration notification is allowed after DRIVER_OK, a used-buffer notification only
        for an existing queue that is enabled and not being reset (2.1.2, 2.4.1, 2.6.1.1.1).
    vrd_addr / vrd_vector : read port for the MSI-X vector of a queue (1 cycle latency).
    """

    def __init__(self, params):
        self._p = params
        super().__init__({
            "bus": In(RegBusSignature(11 if params.transitional else 10)),
            "legacy": Out(1),
            "legacy_live": Out(1),
            "device_status": Out(8),
            "features_ok": Out(1),
            "driver_ok": Out(1),
            "driver_features": Out(128),
            "features_veto": In(1),
            "reset_req": Out(1),
            "reset_ack": In(1),
            "virtio_reset": Out(1),
            "needs_reset": In(1),
            "config_changed": In(1),
            "config_notify": Out(1),
            "config_generation": Out(8),
            "chk_queue": In(16),
            "chk_enabled": Out(1),
            "qrd_addr": In(16),
            "qrd_data": Out(QueueRow),
            "qrd_exists": Out(1),
            "qevent": Out(stream.Signature(QueueEvent)),
            "qreset_done": In(stream.Signature(unsigned(16))),
            "config_vector": Out(16),
            "irq_queue": In(16),
            "irq_config": In(1),
            "irq_allowed": Out(1),
            "vrd_addr": In(16),
            "vrd_vector": Out(16),
        })

    def elaborate(self, platform):
        m = Module()
        p = self._p
        nq = p.num_queues
        bus = self.bus
        # the legacy-only bits a transitional device may offer (NOTIFY_ON_EMPTY) are offered
        # through the legacy header only: to a modern driver they are reserved bits (FEA-03)
        modern_features = p.features & ~LEGACY_ONLY_FEATURES
        feat = [(modern_features >> (32 * i)) & 0xFFFF_FFFF for i in range(4)]

        # ---- registers ----
        dfsel = Signal(32)
        gfsel = Signal(32)
        gfeat = [Signal(32, name=f"driver_feature{i}") for i in range(4)]
        cfg_vec = Signal(16, init=NO_VECTOR)
        status = Signal(8)
        resetting = Signal()
        gen = Signal(8)
        gen_dirty = Signal()
        qsel = Signal(16)
        legacy = Signal()          # the driver negotiated through the legacy header (LEG-06)
        legacy_host = (p.feature_words[0] | (1 << Feature.ANY_LAYOUT)) if p.transitional else feat[0]

        negotiated = Signal(128)
        m.d.comb += negotiated.eq(Mux(status[3] | legacy, Cat(*gfeat), 0))
        packed = negotiated[Feature.RING_PACKED]
        ring_reset = negotiated[Feature.RING_RESET]

        # ---- queue table ----
        qbits = max(1, (nq - 1).bit_length())
        m.submodules.qram = qram = memory.Memory(shape=QueueRow, depth=nq, init=[])
        qwr = qram.write_port()
        qrd = qram.read_port(transparent_for=(qwr,))
        brd = qram.read_port(transparent_for=(qwr,))
        vrd = qram.read_port(transparent_for=(qwr,))

        # per-queue flags: asynchronous read ports, one write port (driver, qreset_done, sweep)
        m.submodules.qflags = qflags = memory.Memory(shape=QueueFlags, depth=nq, init=[])
        fwr = qflags.write_port()
        f_sel, f_chk, f_irq, f_done, f_qrd, f_vrd = (qflags.read_port(domain="comb")
                                                     for _ in range(6))
        set_enable = Signal()      # the driver enables / resets queue_select's queue this cycle
        set_reset = Signal()
        sweep = Signal(init=1)     # clearing the flags after a reset (init: conventional / FLR)
        sweep_idx = Signal(qbits)

        sel_valid = Signal()
        m.d.comb += sel_valid.eq(qsel < nq)
        default_row = Signal(QueueRow)
        m.d.comb += [default_row.size.eq(p.queue_max_size), default_row.vector.eq(NO_VECTOR)]
        # The queue-table read port answers one cycle after its address.  It is addressed with
        # the value queue_select takes at the end of this cycle (``qsel_next``: the value being
        # written, or 0 on reset), so that an access right after a queue_select write finds the
        # new queue's row (with ``qsel`` it would merge, and write back, the previous queue's
        # row).  Row existence is taken from the flip-flops of this cycle, so a row cleared by a
        # queue or device reset is never resurrected by a write in the next cycle.
        qsel_next = Signal(16)
        m.d.comb += qsel_next.eq(qsel)
        m.d.sync += qsel.eq(qsel_next)
        m.d.comb += qrd.addr.eq(qsel_next[:qbits])
        sel_exists = Signal()
        sel_valid_d = Signal()
        m.d.comb += [f_sel.addr.eq(qsel[:qbits]), sel_exists.eq(f_sel.data.exists)]
        m.d.sync += sel_valid_d.eq(sel_valid)
        row = Signal(QueueRow)      # current row of queue_select (reset values if never written)
        m.d.comb += row.eq(Mux(sel_exists, qrd.data, default_row))
        sel_enabled = Signal()
        sel_resetting = Signal()
        m.d.comb += [sel_enabled.eq(sel_valid & f_sel.data.enable),
                     sel_resetting.eq(sel_valid & f_sel.data.reset)]

        # ---- read ----
        # The read data is formed the cycle after the access from the address latched with it:
        # queue rows need the RAM's one-cycle latency.  It is then held until the next access.
        addr_d = Signal(len(bus.addr))
        be_d = Signal(4)
        with m.If(bus.en & bus.ready):
            m.d.sync += [addr_d.eq(bus.addr), be_d.eq(bus.be)]
        a = addr_d
        live = Signal(32)
        with m.If(a < 16):
            with m.Switch(a[:4]):
                with m.Case(0x00 >> 2):
                    m.d.comb += live.eq(dfsel)
                with m.Case(0x04 >> 2):
                    with m.Switch(dfsel):
                        for i in range(4):
                            with m.Case(i):
                                m.d.comb += live.eq(feat[i])
                with m.Case(0x08 >> 2):
                    m.d.comb += live.eq(gfsel)
                with m.Case(0x0C >> 2):
                    with m.Switch(gfsel):
                        for i in range(4):
                            with m.Case(i):
                                m.d.comb += live.eq(gfeat[i])
                with m.Case(0x10 >> 2):
                    m.d.comb += live.eq(Cat(cfg_vec, Const(nq, 16)))
                with m.Case(0x14 >> 2):
                    shown = Mux(resetting, status | Status.DEVICE_NEEDS_RESET, status)
                    m.d.comb += live.eq(Cat(shown, gen, qsel))
                with m.Case(0x18 >> 2):
                    m.d.comb += live.eq(Cat(Mux(sel_valid_d, row.size, 0),
                                            Mux(sel_valid_d, row.vector, NO_VECTOR)))
                with m.Case(0x1C >> 2):
                    notify_off = qsel if p.notify_off_multiplier else Const(0, 16)
                    m.d.comb += live.eq(Cat(sel_enabled, Const(0, 15),
                                            Mux(sel_valid_d, notify_off, 0)))
                for off, fld in ((0x20, "desc"), (0x28, "driver"), (0x30, "device")):
                    with m.Case(off >> 2):
                        m.d.comb += live.eq(Mux(sel_valid_d, getattr(row, fld)[:32], 0))
                    with m.Case((off >> 2) + 1):
                        m.d.comb += live.eq(Mux(sel_valid_d, getattr(row, fld)[32:], 0))
                with m.Case(0x38 >> 2):
                    notif_data = qsel if p.offers(Feature.NOTIF_CONFIG_DATA) else Const(0, 16)
                    m.d.comb += live.eq(Cat(Mux(sel_valid_d, notif_data, 0),
                                            sel_resetting.as_unsigned(), Const(0, 15)))
                with m.Case(0x3C >> 2):
                    m.d.comb += live.eq(0)    # no admin virtqueues (ADMIN_VQ not offered)
        if p.transitional:
            with m.Elif(a[10]):
                with m.Switch(a[:10]):
                    with m.Case(0):
                        m.d.comb += live.eq(legacy_host)
                    with m.Case(1):
                        m.d.comb += live.eq(gfeat[0])
                    with m.Case(2):
                        m.d.comb += live.eq(Mux(sel_valid_d & sel_enabled, row.desc[12:44], 0))
                    with m.Case(3):
                        m.d.comb += live.eq(Cat(Mux(sel_valid_d, row.size, 0), qsel))
                    with m.Case(4):
                        shown = Mux(resetting, status | Status.DEVICE_NEEDS_RESET, status)
                        m.d.comb += live.eq(Cat(Const(0, 16), shown, Const(0, 8)))
                    with m.Case(5):
                        m.d.comb += live.eq(Cat(cfg_vec, Mux(sel_valid_d, row.vector, NO_VECTOR)))
        # hold the read data until the next access (regbus contract)
        acc_d = Signal()
        acc_rd_d = Signal()
        hold = Signal(32)
        m.d.sync += [acc_d.eq(bus.en & bus.ready), acc_rd_d.eq(bus.en & bus.ready & ~bus.write)]
        rlive = Signal(32)
        m.d.comb += rlive.eq(live)
        m.d.comb += bus.rdata.eq(Mux(acc_rd_d, rlive, hold))
        with m.If(acc_rd_d):
            m.d.sync += hold.eq(rlive)

        # config_generation: reading it clears the sticky flag.  Only a read that returns byte
        # 0x15 counts: a read of device_status or queue_select alone does not show the driver the
        # generation, and clearing the flag then would let 256 changes wrap the counter (CC-05).
        gen_read = acc_rd_d & (addr_d == 0x14 >> 2) & be_d[1]
        with m.If(gen_read):
            m.d.sync += gen_dirty.eq(0)
        with m.If(self.config_changed):
            with m.If(~gen_dirty | gen_read):
                m.d.sync += [gen.eq(gen + 1), gen_dirty.eq(1)]

        # ---- write ----
        ev = self.qevent
        ev_free = ~ev.valid | ev.ready
        with m.If(ev.ready):
            m.d.sync += ev.valid.eq(0)
        m.d.comb += bus.ready.eq(ev_free & ~sweep)

        wr = bus.en & bus.ready & bus.write & ~resetting & (bus.addr < 16)
        be = bus.be
        wd = bus.wdata

        def merge(old, lo_byte, nbytes):
            """``old`` with the enabled bytes of wdata (field at byte ``lo_byte`` of the DW)."""
            out = []
            for i in range(nbytes):
                b = lo_byte + i
                out.append(Mux(be[b], wd[8 * b:8 * b + 8], old[8 * i:8 * i + 8]))
            return Cat(*out)

        def touched(lo_byte, nbytes):
            return Cat(*(be[lo_byte + i] for i in range(nbytes))).any()

        new_row = Signal(QueueRow)
        m.d.comb += new_row.eq(row)
        row_we = Signal()
        n_vectors = p.msix_vectors

        def legal_vector(v):
            return Mux(v < n_vectors, v, NO_VECTOR)

        with m.If(wr):
            with m.Switch(bus.addr[:4]):
                with m.Case(0x00 >> 2):
                    m.d.sync += dfsel.eq(merge(dfsel, 0, 4))
                with m.Case(0x08 >> 2):
                    m.d.sync += gfsel.eq(merge(gfsel, 0, 4))
                with m.Case(0x0C >> 2):
                    with m.If(~status[3]):
                        with m.Switch(gfsel):
                            for i in range(4):
                                with m.Case(i):
                                    m.d.sync += gfeat[i].eq(merge(gfeat[i], 0, 4))
                with m.Case(0x10 >> 2):
                    with m.If(touched(0, 2)):
                        m.d.sync += cfg_vec.eq(legal_vector(merge(cfg_vec, 0, 2)))
                with m.Case(0x14 >> 2):
                    with m.If(be[0]):
                        v = wd[:8]
                        with m.If(v == 0):
                            m.d.sync += resetting.eq(1)
                        with m.Else():
                            ok = Signal()
                            all_feat = Cat(*gfeat)
                            offered = Const(modern_features, 128)
                            checks = [(all_feat & ~offered) == 0, all_feat[Feature.VERSION_1],
                                      ~self.features_veto]
                            # transport and device-type prerequisites (feature_rules.py)
                            req_all, req_any = rules_for(p.device_type)
                            for f, reqs in req_all.items():
                                for r in reqs:
                                    checks.append(~all_feat[f] | all_feat[r])
                            for f, reqs in req_any.items():
                                checks.append(~all_feat[f] | Cat(*(all_feat[r] for r in reqs)).any())
                            m.d.comb += ok.eq(Cat(*checks).all())
                            keep_fok = status[3]
                            set_fok = v[3] & (keep_fok | ok)
                            m.d.sync += status.eq(Cat(v[:3], set_fok | keep_fok, Const(0, 2),
                                                      status[6], v[7]))
                            with m.If(set_fok):
                                m.d.sync += legacy.eq(0)
                    with m.If(be[2] | be[3]):
                        m.d.comb += qsel_next.eq(merge(qsel, 2, 2))
                with m.Case(0x18 >> 2):
                    with m.If(sel_valid):
                        with m.If(touched(0, 2) & ~sel_enabled):
                            sz = merge(row.size, 0, 2)
                            pow2 = (sz & (sz - 1)) == 0
                            legal = (sz != 0) & (sz <= p.queue_max_size) & (packed | pow2)
                            with m.If(legal):
                                m.d.comb += [new_row.size.eq(sz), row_we.eq(1)]
                        with m.If(touched(2, 2)):
                            m.d.comb += [new_row.vector.eq(legal_vector(merge(row.vector, 2, 2))),
                                         row_we.eq(1)]
                with m.Case(0x1C >> 2):
                    # the value written is formed from the enabled byte lanes only (the data of
                    # disabled lanes is undefined); anything but 1 is ignored (DRV-07)
                    with m.If(sel_valid & touched(0, 2) & (merge(Const(0, 16), 0, 2) == 1)
                              & ~sel_enabled & ~sel_resetting & ev_free):
                        m.d.sync += [ev.valid.eq(1), ev.payload.queue.eq(qsel),
                                     ev.payload.kind.eq(QueueEventKind.ENABLE)]
                        m.d.comb += [set_enable.eq(1),
                                     row_we.eq(1)]   # latch the row (marks it existing)
                for off, fld in ((0x20, "desc"), (0x28, "driver"), (0x30, "device")):
                    for half in range(2):
                        with m.Case((off >> 2) + half):
                            with m.If(sel_valid & ~sel_enabled & touched(0, 4)):
                                cur = getattr(row, fld)[32 * half:32 * half + 32]
                                m.d.comb += [getattr(new_row, fld)[32 * half:32 * half + 32]
                                             .eq(merge(cur, 0, 4)), row_we.eq(1)]
                with m.Case(0x38 >> 2):
                    with m.If(touched(2, 2) & (merge(Const(0, 16), 2, 2) == 1) & sel_valid
                              & ring_reset & sel_enabled & ~sel_resetting & ev_free):
                        m.d.sync += [ev.valid.eq(1), ev.payload.queue.eq(qsel),
                                     ev.payload.kind.eq(QueueEventKind.RESET)]
                        m.d.comb += set_reset.eq(1)

        if p.transitional:
            self._legacy_write(m, locals())

        m.d.comb += [qwr.addr.eq(qsel[:qbits]), qwr.data.eq(new_row), qwr.en.eq(row_we & sel_valid)]

        # ---- flag writes: the reset sweep, else the driver, else a queue reset completion ----
        drv_we = sel_valid & (row_we | set_enable | set_reset)
        done = self.qreset_done
        # during a sweep completions are taken and dropped (the reset cleared every queue)
        m.d.comb += [done.ready.eq(sweep | ~drv_we), f_done.addr.eq(done.payload[:qbits])]
        # a completion for a queue that is not resetting (e.g. one that a device reset already
        # cleared and the driver enabled again) is ignored
        done_ok = done.valid & ~sweep & ~drv_we & (done.payload < nq) & f_done.data.reset
        with m.If(sweep):
            m.d.comb += [fwr.addr.eq(sweep_idx), fwr.data.eq(0), fwr.en.eq(1)]
            m.d.sync += sweep_idx.eq(sweep_idx + 1)
            with m.If(sweep_idx == nq - 1):
                m.d.sync += [sweep.eq(0), sweep_idx.eq(0)]
        with m.Elif(drv_we):
            m.d.comb += [fwr.addr.eq(qsel[:qbits]), fwr.en.eq(1),
                         fwr.data.exists.eq(f_sel.data.exists | row_we),
                         fwr.data.enable.eq(f_sel.data.enable | set_enable),
                         fwr.data.reset.eq(f_sel.data.reset | set_reset)]
        with m.Elif(done_ok):
            m.d.comb += [fwr.addr.eq(done.payload[:qbits]), fwr.data.eq(0), fwr.en.eq(1)]

        # ---- device status side effects ----
        with m.If(self.needs_reset & ~resetting):
            m.d.sync += status[6].eq(1)
        m.d.comb += self.config_notify.eq((self.config_changed | (self.needs_reset & ~status[6]))
                                          & status[2] & ~resetting)
        m.d.comb += self.virtio_reset.eq(resetting & self.reset_ack)
        with m.If(resetting & self.reset_ack):
            m.d.comb += qsel_next.eq(0)
            m.d.sync += [
                resetting.eq(0), status.eq(0), dfsel.eq(0), gfsel.eq(0), cfg_vec.eq(NO_VECTOR),
                sweep.eq(1), sweep_idx.eq(0), legacy.eq(0),
                *[g.eq(0) for g in gfeat],
            ]

        # ---- back-end read ports ----
        m.d.comb += [brd.addr.eq(self.qrd_addr[:qbits]), vrd.addr.eq(self.vrd_addr[:qbits])]
        b_exists = Signal()
        b_valid = Signal()
        v_ok = Signal()
        m.d.comb += [f_qrd.addr.eq(self.qrd_addr[:qbits]), f_vrd.addr.eq(self.vrd_addr[:qbits])]
        m.d.sync += [b_exists.eq(f_qrd.data.exists & (self.qrd_addr < nq) & ~sweep),
                     b_valid.eq(self.qrd_addr < nq),
                     v_ok.eq(f_vrd.data.exists & (self.vrd_addr < nq) & ~sweep)]
        m.d.comb += [
            self.qrd_data.eq(Mux(b_exists, brd.data, Mux(b_valid, default_row, 0))),
            self.qrd_exists.eq(b_exists),
            self.vrd_vector.eq(Mux(v_ok, vrd.data.vector, NO_VECTOR)),
        ]

        irq_q = self.irq_queue
        m.d.comb += [f_irq.addr.eq(irq_q[:qbits]), f_chk.addr.eq(self.chk_queue[:qbits]),
                     self.chk_enabled.eq((self.chk_queue < nq) & f_chk.data.enable & ~sweep)]
        q_live = (irq_q < nq) & f_irq.data.enable & ~f_irq.data.reset & ~sweep
        # used-buffer notifications of a legacy driver are allowed before DRIVER_OK (LEG-08)
        m.d.comb += self.irq_allowed.eq(~resetting & (status[2] | (legacy & ~self.irq_config))
                                        & (self.irq_config | q_live))

        m.d.comb += [
            self.device_status.eq(status),
            self.features_ok.eq(status[3]),
            self.driver_ok.eq(status[2] & ~resetting),
            self.driver_features.eq(negotiated),
            self.reset_req.eq(resetting),
            self.config_generation.eq(gen),
            self.config_vector.eq(cfg_vec),
            self.legacy.eq(legacy),
            self.legacy_live.eq(legacy & ~resetting),
        ]
        return m

    def _legacy_write(self, m, v):
        """Writes through the legacy header's view (bus DW address bit 10 set)."""
        bus, be, wd, merge, touched = v["bus"], v["be"], v["wd"], v["merge"], v["touched"]
        status, gfeat, legacy, qsel_next, qsel = (v["status"], v["gfeat"], v["legacy"],
                                                  v["qsel_next"], v["qsel"])
        row, new_row, row_we, ev = v["row"], v["new_row"], v["row_we"], v["ev"]
        sel_valid, sel_enabled, sel_resetting = v["sel_valid"], v["sel_enabled"], v["sel_resetting"]
        set_enable, set_reset, cfg_vec, resetting = (v["set_enable"], v["set_reset"], v["cfg_vec"],
                                                     v["resetting"])
        legal_vector = v["legal_vector"]
        lwr = bus.en & bus.ready & bus.write & ~resetting & bus.addr[10]
        # FEATURES_OK is only ever set by a modern driver (it needs VERSION_1): from then on the
        # legacy header may reset the device (a legacy driver taking over writes status 0) but
        # changes nothing else the modern driver set up
        modern = status[3]
        with m.If(lwr):
            with m.Switch(bus.addr[:10]):
                with m.Case(1):
                    with m.If(~modern & ~status[2] & touched(0, 4)):
                        m.d.sync += [gfeat[0].eq(merge(gfeat[0], 0, 4) & v["legacy_host"]),
                                     *[g.eq(0) for g in gfeat[1:]], legacy.eq(1)]
                with m.Case(2):
                    pfn = Signal(32)
                    m.d.comb += pfn.eq(merge(Const(0, 32), 0, 4))
                    size = row.size
                    # legacy ring layout (2.7.2 legacy interface): desc 16*size bytes, avail ring
                    # 6+2*size bytes, used ring at the next 4096-byte boundary
                    used_pages = ((size << 4) + (size << 1) + 6 + 4095) >> 12
                    with m.If(sel_valid & ~sel_resetting & touched(0, 4) & ~modern):
                        with m.If((pfn != 0) & ~sel_enabled):
                            m.d.comb += [
                                new_row.desc.eq(Cat(Const(0, 12), pfn)),
                                new_row.driver.eq(Cat(Const(0, 12), pfn) + (size << 4)),
                                new_row.device.eq(Cat(Const(0, 12), pfn + used_pages)),
                                row_we.eq(1),
                            ]
                            m.d.comb += set_enable.eq(1)
                            m.d.sync += [ev.valid.eq(1), ev.payload.queue.eq(qsel),
                                         ev.payload.kind.eq(QueueEventKind.ENABLE)]
                        with m.If((pfn == 0) & sel_enabled):
                            m.d.comb += set_reset.eq(1)
                            m.d.sync += [ev.valid.eq(1), ev.payload.queue.eq(qsel),
                                         ev.payload.kind.eq(QueueEventKind.RESET)]
                with m.Case(3):
                    with m.If((be[2] | be[3]) & ~modern):
                        m.d.comb += qsel_next.eq(merge(qsel, 2, 2))
                with m.Case(4):
                    with m.If(be[2]):
                        s = wd[16:24]
                        with m.If(s == 0):
                            m.d.sync += resetting.eq(1)
                        with m.Elif(~modern):
                            m.d.sync += status.eq(Cat(s[:3], status[3], Const(0, 2), status[6], s[7]))
                with m.Case(5):
                    with m.If(touched(0, 2) & ~modern):
                        m.d.sync += cfg_vec.eq(legal_vector(merge(cfg_vec, 0, 2)))
                    with m.If(sel_valid & touched(2, 2) & ~modern):
                        m.d.comb += [new_row.vector.eq(legal_vector(merge(row.vector, 2, 2))),
                                     row_we.eq(1)]
