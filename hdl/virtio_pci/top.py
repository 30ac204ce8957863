"""The virtio-pci endpoint function: composition only (DESIGN.md section 2).

rx -> Depacketizer -> PciCfgWindow -> Dispatcher -> {ConfigSpace, CommonCfg, Isr, device config,
Notify, MSI-X table/PBA} -> BeatPacker -> TxArbiter -> tx.

Transitional devices (``params.transitional``) add the legacy header in I/O BAR0
(``virtio/legacy.py``), which reaches common cfg, ISR, notify and the device configuration through
the same register blocks as the modern interface (``regbus_mux``).  ``legacy_guard`` adds the
NTL-01 I/O BAR0 of a non-transitional device instead.

Power states (PCI PM 1.2, PCIe Base 5.3.1.4.1): in D3hot (``ConfigSpace.d3hot``) memory and I/O
requests are Unsupported Requests (the BAR decode is off, as with Memory / I/O Space Enable
clear), the PCI-cfg window reaches nothing, and the function initiates no requests: MSI-X
messages wait as pending bits (like Bus Master Enable clear) and INTx is deasserted (like
Interrupt Disable).  ``bus_master_allowed`` (Bus Master Enable and D0) is the gate for every
request the function initiates.

Function Level Reset (PCIe capability Initiate FLR) returns the configuration space and all
virtio state to reset values the cycle after the CfgWr that asked for it; that CfgWr's own
completion is already in the pipeline and still leaves.  The back-end sees ``flr`` for one cycle.
"""
from amaranth.hdl import Cat, Const, Module, Mux, ResetInserter, Signal, unsigned
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out, connect, flipped

from .params import VirtioPciParams
from .dma.layouts import dma_signatures
from .dma.ordering import CompletionBarrier
from .dma.requester import Requester
from .config.config_space import ConfigSpace, HardIpStatus
from .irq.interrupts import InterruptController, IrqRequest
from .irq.msix_table import MsixTable
from .tlp.depacketizer import Depacketizer
from .tlp.dispatcher import Dispatcher, Target
from .tlp.layouts import Space, tlp_stream
from .tlp.packer import BeatPacker, MessagePacker
from .tlp.tx_arbiter import TxArbiter
from .regbus import regbus_mux
from .virtio.common_cfg import CommonCfg, QueueEvent, QueueRow
from .virtio.device_cfg import DcfgRequest, DcfgUpdate, DeviceCfgPort, DeviceCfgRegFile
from .skid import SkidBuffer
from .virtio.isr import Isr
from .virtio.legacy import LegacyGuard, LegacyHeader
from .virtio.notify import Doorbell, Notify
from .virtio.pci_cfg_window import PciCfgWindow

__all__ = ["VirtioPciEndpoint", "IrqRequest"]


class VirtioPciEndpoint(wiring.Component):
    """Top level.  Every port is described (with bit ranges) in the JSON of ``make verilog``.

    Link side: ``rx``/``tx`` TLP streams (see ``tlp.layouts``).
    Back-end side (DESIGN.md section 4):
      doorbell        Out stream {queue, value, wide}: one per accepted notify write.
      qevent          Out stream {queue, kind}: queue enabled (kind 0) / queue reset requested (1).
      qreset_done     In stream of queue numbers: that queue's reset is complete.
      qrd_addr/qrd_data/qrd_exists  read port into the queue table (data the cycle after addr).
      device_status, driver_features, features_ok, driver_ok : negotiated state.
      features_veto   In: refuse the feature set when the driver sets FEATURES_OK.
      reset_req/reset_ack : virtio device reset handshake (device_status reads non-zero until ack).
      needs_reset     In pulse: set DEVICE_NEEDS_RESET.
      irq             In stream of IrqRequest.
      config_changed  In pulse (external device-config back-ends; the register file makes its own).
      dcfg_req/dcfg_resp (external) or dcfg_update (register file): device configuration.
      flr             Out pulse: a Function Level Reset started.
      bus_master_allowed  Out: Bus Master Enable is set and the function is in D0, so it may
                      initiate requests (MSI-X writes, DMA); registered.
      power_state     Out: PMCSR PowerState (0 = D0, 3 = D3hot; 1 and 2 are never taken).
      err_backend_timeout  Out pulse: a request waited ``params.stall_limit`` cycles for a
                      back-end port and was given up (or was given up at once because that port
                      is still stuck): a doorbell or device-config write dropped, a read
                      answered with 0; DEVICE_NEEDS_RESET is set (tlp/dispatcher.py).
      legacy          Out: the driver negotiated through the legacy header (transitional devices,
                      LEG-06): no VERSION_1, legacy ring layout and guest-native device config.
      dma_req, dma_wdata (In streams), dma_rdata, dma_wdone (Out streams): the requester port
                      (back-end DMA, ``dma/layouts.py`` and ``dma/requester.py``); absent when
                      ``params.dma_tags`` is 0.
      err_cpl_timeout Out pulse: a back-end read timed out (Completion Timeout).
    Hard-IP mode (``params.hard_ip``, config/config_space.py):
      hip             In HardIpStatus: the hard IP's configuration state (enables, MSI-X, MPS,
                      MRRS, bus/device number, FLR pulse); completer and requester IDs come from it.
    """

    def __init__(self, params=None):
        self.params = p = params or VirtioPciParams()
        w = p.data_width
        members = {
            "rx": In(tlp_stream(w)),
            "tx": Out(tlp_stream(w)),
            "doorbell": Out(stream.Signature(Doorbell)),
            "qevent": Out(stream.Signature(QueueEvent)),
            "qreset_done": In(stream.Signature(unsigned(16))),
            "qrd_addr": In(16),
            "qrd_data": Out(QueueRow),
            "qrd_exists": Out(1),
            "device_status": Out(8),
            "driver_features": Out(128),
            "features_ok": Out(1),
            "driver_ok": Out(1),
            "features_veto": In(1),
            "reset_req": Out(1),
            "reset_ack": In(1),
            "needs_reset": In(1),
            "irq": In(stream.Signature(IrqRequest)),
            "config_changed": In(1),
            "flr": Out(1),
            "bus_master_allowed": Out(1),
            "power_state": Out(2),
            "legacy": Out(1),
            "err_malformed": Out(1),
            "err_ur": Out(1),
            "err_unexpected_cpl": Out(1),
            "err_backend_timeout": Out(1),
        }
        if p.dma_tags:
            sigs = dma_signatures(w)
            members.update({
                "dma_req": In(sigs["dma_req"]),
                "dma_wdata": In(sigs["dma_wdata"]),
                "dma_rdata": Out(sigs["dma_rdata"]),
                "dma_wdone": Out(sigs["dma_wdone"]),
                "err_cpl_timeout": Out(1),
            })
        if p.hard_ip:
            members["hip"] = In(HardIpStatus)
        if p.device_cfg_backend == "external":
            members["dcfg_req"] = Out(stream.Signature(DcfgRequest))
            members["dcfg_resp"] = In(stream.Signature(unsigned(32)))
        else:
            members["dcfg_update"] = In(stream.Signature(DcfgUpdate))
        super().__init__(members)

    def targets(self):
        p = self.params
        out = [Target("cfg", Space.CFG, 0, 1024)]
        for r in p.regions.values():
            out.append(Target(r.name, Space.MEM, r.offset // 4, r.span // 4))
        if p.has_io_bar:
            out.append(Target("legacy", Space.IO, 0, p.io_bar_size // 4))
        return out

    def _target_index(self, name):
        return [t.name for t in self.targets()].index(name)

    def elaborate(self, platform):
        m = Module()
        p = self.params

        flr_rst = Signal()
        fr = ResetInserter(flr_rst)
        m.submodules.depkt = depkt = Depacketizer(p)
        cfg = ConfigSpace(p)
        window = PciCfgWindow(p, depkt.addr_width, cfg.image.fields["pci_cfg_data"].dword)
        m.submodules.dispatch = dispatch = Dispatcher(depkt.addr_width, self.targets(),
                                                      timeout=p.stall_limit,
                                                      cpl_depth=p.cpl_queue_depth)
        m.submodules.packer = packer = BeatPacker(p.data_width)
        # tx sources: host completions (behind the DMA ordering barrier), interrupt messages,
        # back-end MRds, back-end MWrs
        m.submodules.arbiter = arbiter = TxArbiter(p.data_width, 4 if p.dma_tags else 2)
        common = CommonCfg(p)
        isr = Isr()
        notify = Notify(p)
        dport = DeviceCfgPort()
        msix = MsixTable(p, dispatch.bus("msix_table").signature.addr_width,
                         dispatch.bus("msix_pba").signature.addr_width)
        for name, blk in (("cfg", cfg), ("window", window), ("common", common), ("isr", isr),
                          ("device", dport), ("msix", msix)):
            m.submodules[name] = fr(blk)
        # Notify holds no state but its doorbell output register: it stays out of the FLR reset so
        # that a doorbell already offered to the back-end is not withdrawn (stream rules); the
        # back-end sees ``flr`` and may discard it.
        m.submodules.notify = notify

        connect(m, flipped(self.rx), depkt.rx)
        connect(m, depkt.op, window.i)
        connect(m, window.o, dispatch.op)
        connect(m, dispatch.chunk, packer.chunk)
        if p.dma_tags:
            m.submodules.requester = req = Requester(
                p.data_width, n_tags=p.dma_tags, max_read=p.dma_max_read,
                max_payload=p.max_payload_supported, timeout=p.cpl_timeout_cycles)
            m.submodules.cpl_barrier = barrier = CompletionBarrier(p.data_width)
            connect(m, packer.tx, barrier.i)
            connect(m, barrier.o, arbiter.src0)
            connect(m, req.mrd, arbiter.src2)
            connect(m, req.mwr, arbiter.src3)
            connect(m, flipped(self.dma_req), req.dma_req)
            connect(m, flipped(self.dma_wdata), req.dma_wdata)
            connect(m, req.dma_rdata, flipped(self.dma_rdata))
            connect(m, req.dma_wdone, flipped(self.dma_wdone))
            m.d.comb += [
                barrier.n_ready.eq(req.n_ready), barrier.n_done.eq(req.n_done),
                req.rx_fire.eq(self.rx.valid & self.rx.ready), req.rx_beat.eq(self.rx.payload),
                req.rx_malformed.eq(depkt.err_malformed),
                depkt.cpl_routed.eq(1),
                # PCIe 5.3.1.4.1: no requests in D3hot either (refused with status BME)
                req.bus_master.eq(cfg.command[2] & ~cfg.d3hot),
                req.flr.eq(flr_rst),
                req.mrd_held.eq(arbiter.held[2]),
                req.mps.eq(cfg.mps), req.mrrs.eq(cfg.mrrs), req.ext_tag.eq(cfg.ext_tag),
                req.relaxed_en.eq(cfg.relaxed_en), req.no_snoop_en.eq(cfg.no_snoop_en),
                req.cto_disable.eq(cfg.cto_disable), req.requester_id.eq(depkt.completer_id),
                cfg.set_master_abort.eq(req.got_ur),
                cfg.set_target_abort.eq(req.got_ca),
                cfg.set_master_parity.eq(req.got_poisoned),
                self.err_cpl_timeout.eq(req.err_timeout),
            ]
            req_unexpected, req_malformed, req_timeout = (req.err_unexpected, req.err_malformed,
                                                          req.err_timeout)
        else:
            connect(m, packer.tx, arbiter.src0)
            req_unexpected = req_malformed = req_timeout = 0
        connect(m, arbiter.tx, flipped(self.tx))
        connect(m, dispatch.bus("cfg"), cfg.bus)
        dev_write_enable = common.features_ok
        if p.transitional:
            legacy = LegacyHeader(dispatch.bus("legacy").signature.addr_width, notify.addr_width)
            m.submodules.legacy = fr(legacy)
            connect(m, dispatch.bus("legacy"), legacy.bus)
            regbus_mux(m, common.bus, dispatch.bus("common"), legacy.common)
            regbus_mux(m, isr.bus, dispatch.bus("isr"), legacy.isr)
            regbus_mux(m, notify.bus, dispatch.bus("notify"), legacy.notify)
            regbus_mux(m, dport.bus, dispatch.bus("device"), legacy.device)
            # the legacy header is one dispatcher target in front of four blocks: a device-config
            # access while that port is idle shows it alive even if a reset wait was given up
            m.d.comb += dispatch.alive[self._target_index("legacy")].eq(
                legacy.device_access & dport.idle)
            m.d.comb += [legacy.msix_enable.eq(cfg.msix_enable), legacy.resetting.eq(common.reset_req),
                         notify.legacy_live.eq(common.legacy_live)]
            # a transitional device accepts device-config writes before the feature step (LEG-07)
            dev_write_enable = common.features_ok | legacy.device_access
        else:
            connect(m, dispatch.bus("common"), common.bus)
            connect(m, dispatch.bus("isr"), isr.bus)
            connect(m, dispatch.bus("notify"), notify.bus)
            connect(m, dispatch.bus("device"), dport.bus)
            if p.legacy_guard:
                m.submodules.legacy_guard = guard = fr(LegacyGuard(
                    dispatch.bus("legacy").signature.addr_width))
                connect(m, dispatch.bus("legacy"), guard.bus)
                m.d.comb += dispatch.mute.eq(guard.mute)
        connect(m, dispatch.bus("msix_table"), msix.table)
        connect(m, dispatch.bus("msix_pba"), msix.pba)

        # back-end ports
        connect(m, notify.doorbell, flipped(self.doorbell))
        # a queue event already offered to the back-end survives an FLR of common cfg (stream
        # rules): the skid buffer, outside the FLR reset, holds every offer the back-end refused
        m.submodules.qevent_skid = qskid = SkidBuffer(QueueEvent)
        connect(m, common.qevent, qskid.i)
        connect(m, qskid.o, flipped(self.qevent))
        connect(m, flipped(self.qreset_done), common.qreset_done)
        config_changed = Signal()
        if p.device_cfg_backend == "external":
            connect(m, dport.req, flipped(self.dcfg_req))
            connect(m, flipped(self.dcfg_resp), dport.resp)
            m.d.comb += config_changed.eq(self.config_changed)
        else:
            m.submodules.dcfg = dcfg = fr(DeviceCfgRegFile(p))
            connect(m, dport.req, dcfg.req)
            connect(m, dport.resp, dcfg.resp)
            connect(m, flipped(self.dcfg_update), dcfg.update)
            m.d.comb += config_changed.eq(self.config_changed | dcfg.config_changed)

        bus_master_allowed = Signal()
        m.d.comb += bus_master_allowed.eq(cfg.command[2] & ~cfg.d3hot)

        # interrupt requests -> ISR bits, MSI-X messages / pending bits, INTx messages
        irq = self.irq
        m.d.comb += irq.ready.eq(1)
        fire = irq.valid & common.irq_allowed    # dropped: STS-01, STS-05, VQR-01
        m.d.comb += [common.irq_queue.eq(irq.payload.queue), common.irq_config.eq(irq.payload.config)]
        # not under the FLR reset: an FLR clears its pending bits (``clear``) but lets a message
        # already in the chunk port finish (reset between the two chunks of a 4-DW MWr, it left
        # the packer and the tx arbiter waiting for a last beat forever) and keeps the INTx
        # state, so an asserted INTx is followed by Deassert_INTA instead of staying asserted
        m.submodules.irqc = irqc = InterruptController(p)
        m.submodules.irq_packer = irq_packer = MessagePacker(p.data_width)
        connect(m, irqc.chunk, irq_packer.chunk)
        for i in range(2):
            connect(m, irqc.mask_rd[i], msix.mask_rd[i])
        connect(m, msix.mask_wr, irqc.mask_wr)
        connect(m, irq_packer.tx, arbiter.src1)
        m.d.comb += [
            irqc.req.valid.eq(fire),
            irqc.req.payload.eq(irq.payload),
            irqc.config_event.eq(common.config_notify),
            irqc.msix_enable.eq(cfg.msix_enable),
            irqc.fmask.eq(cfg.msix_fmask),
            # PCIe 5.3.1.4.1: in D3hot the function initiates no requests
            irqc.bme.eq(bus_master_allowed),
            irqc.intx_disable.eq(cfg.command[10] | cfg.d3hot),
            irqc.requester_id.eq(depkt.completer_id),
            irqc.config_vector.eq(common.config_vector),
            common.vrd_addr.eq(irqc.vrd_addr),
            irqc.vrd_vector.eq(common.vrd_vector),
            irqc.pba_addr.eq(msix.pba_addr),
            msix.pba_data.eq(irqc.pba_data),
            msix.pba_ready.eq(irqc.pba_ready),
            msix.lookup_vector.eq(irqc.lookup_vector),
            irqc.lookup_addr.eq(msix.lookup_addr),
            irqc.lookup_data.eq(msix.lookup_data),
            irqc.isr.eq(isr.isr),
            irqc.clear.eq(common.virtio_reset | flr_rst),
            isr.set_queue.eq(irqc.set_isr_queue),
            isr.set_config.eq(irqc.set_isr_config),
            isr.clear.eq(common.virtio_reset),
        ]

        m.d.comb += [
            self.bus_master_allowed.eq(bus_master_allowed),
            self.power_state.eq(Mux(cfg.d3hot, 3, 0)),
            window.enable.eq(~cfg.d3hot),
            window.cap_bar.eq(cfg.pci_cfg_bar),
            window.cap_offset.eq(cfg.pci_cfg_offset),
            window.cap_length.eq(cfg.pci_cfg_length),
            common.chk_queue.eq(notify.chk_queue),
            notify.chk_enabled.eq(common.chk_enabled),
            notify.driver_ok.eq(common.driver_ok),
            dport.write_enable.eq(dev_write_enable),
            self.legacy.eq(common.legacy),
            common.qrd_addr.eq(self.qrd_addr),
            self.qrd_data.eq(common.qrd_data),
            self.qrd_exists.eq(common.qrd_exists),
            common.features_veto.eq(self.features_veto),
            common.reset_ack.eq(self.reset_ack),
            # a back-end port that stopped answering: the device needs a reset (VIRTIO 2.1.2)
            common.needs_reset.eq(self.needs_reset | dispatch.abandon),
            dport.abort.eq(dispatch.abandon),
            dispatch.alive[self._target_index("device")].eq(dport.idle),
            self.err_backend_timeout.eq(dispatch.abandon),
            common.config_changed.eq(config_changed),
            self.device_status.eq(common.device_status),
            self.driver_features.eq(common.driver_features),
            self.features_ok.eq(common.features_ok),
            self.driver_ok.eq(common.driver_ok),
            self.reset_req.eq(common.reset_req),
            cfg.int_status.eq(isr.isr.any() & ~cfg.msix_enable),
            dispatch.completer_id.eq(depkt.completer_id),
            depkt.mem_bar_base.eq(cfg.mem_bar_base),
            depkt.io_bar_base.eq(cfg.io_bar_base),
            # D3hot: memory and I/O requests are Unsupported Requests (PCIe 5.3.1.4.1)
            depkt.mem_enable.eq(cfg.command[1] & ~cfg.d3hot),
            depkt.io_enable.eq(cfg.command[0] & ~cfg.d3hot),
            depkt.mps.eq(cfg.mps),
            cfg.set_ur_detected.eq(depkt.err_ur),
            # a completion inconsistent with its request is handled as a Malformed TLP (PCIe
            # 2.3.2, recommended); a completion timeout is non-fatal (6.2.7)
            cfg.set_fatal_detected.eq(depkt.err_malformed | req_malformed),
            # PCIe 6.2.3.2.4 with Role-Based Error Reporting: a UR answered with a completion and
            # an unexpected completion are advisory non-fatal (reported as correctable); a UR on a
            # posted request and a poisoned write are non-fatal
            cfg.set_correctable_detected.eq((depkt.err_ur & ~depkt.err_ur_posted)
                                            | depkt.err_unexpected_cpl | req_unexpected),
            cfg.set_nonfatal_detected.eq(depkt.err_ur_posted | depkt.err_poisoned | req_timeout),
            cfg.set_parity_error.eq(depkt.err_poisoned),
            self.err_malformed.eq(depkt.err_malformed),
            self.err_ur.eq(depkt.err_ur),
            self.err_unexpected_cpl.eq(depkt.err_unexpected_cpl | req_unexpected),
        ]
        if p.hard_ip:
            self._hard_ip(m, cfg, dispatch, irqc, m.submodules.requester if p.dma_tags else None)
        m.d.sync += flr_rst.eq(cfg.flr)
        m.d.comb += self.flr.eq(flr_rst)
        if p.assertions:
            self._checks(m, dispatch, packer, flr_rst)
        return m

    def _hard_ip(self, m, cfg, dispatch, irqc, req):
        """Hard-IP mode: configuration state and the function's ID from the IP (these comb
        assignments come last, so they replace the soft ones)."""
        own_id = Cat(Const(0, 3), self.hip.device, self.hip.bus)
        m.d.comb += [cfg.hip.eq(self.hip), dispatch.completer_id.eq(own_id),
                     irqc.requester_id.eq(own_id)]
        if req is not None:
            m.d.comb += req.requester_id.eq(own_id)

    def _checks(self, m, dispatch, packer, flr_rst):
        """Simulation assertions (``params.assertions``, hdl/virtio_pci/checks.py)."""
        from .checks import completion_tracker, stream_rules
        stream_rules(m, "tx", self.tx.valid, self.tx.ready, self.tx.payload)
        stream_rules(m, "doorbell", self.doorbell.valid, self.doorbell.ready,
                     self.doorbell.payload)
        stream_rules(m, "qevent", self.qevent.valid, self.qevent.ready, self.qevent.payload)
        if self.params.dma_tags:
            stream_rules(m, "dma_rdata", self.dma_rdata.valid, self.dma_rdata.ready,
                         self.dma_rdata.payload)
            stream_rules(m, "dma_wdone", self.dma_wdone.valid, self.dma_wdone.ready,
                         self.dma_wdone.payload)
        op = dispatch.op
        # the pipeline holds 4 completions besides the dispatcher's completion queue
        completion_tracker(
            m, op.valid & op.ready & op.payload.need_cpl & op.payload.cpl_start,
            packer.tx.valid & packer.tx.ready & packer.tx.payload.first,
            depth=4 + self.params.cpl_queue_depth, width=10)
