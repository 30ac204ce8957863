"""The virtio-pci endpoint function: composition only (DESIGN.md section 2).

rx -> Depacketizer -> Dispatcher -> {ConfigSpace, virtio structures, MSI-X} -> BeatPacker
   -> TxArbiter -> tx.  Function Level Reset (PCIe capability Initiate FLR) returns the
configuration space and all virtio state to reset values the cycle after the CfgWr that asked for
it; the CfgWr's own completion is already in flight and still leaves.
"""
from amaranth.hdl import Module, ResetInserter, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out, connect

from .params import VirtioPciParams
from .config.config_space import ConfigSpace
from .tlp.depacketizer import Depacketizer
from .tlp.dispatcher import Dispatcher, Target
from .tlp.layouts import Space, tlp_stream
from .tlp.packer import BeatPacker
from .tlp.tx_arbiter import TxArbiter
from .virtio.zero_region import ZeroRegion

__all__ = ["VirtioPciEndpoint"]


class VirtioPciEndpoint(wiring.Component):
    """Top level.  Ports: ``rx`` and ``tx`` TLP streams (see ``tlp.layouts``), ``flr`` (Out,
    one-cycle pulse when a Function Level Reset starts), and error event pulses."""

    def __init__(self, params=None):
        self.params = params or VirtioPciParams()
        w = self.params.data_width
        super().__init__({
            "rx": In(tlp_stream(w)),
            "tx": Out(tlp_stream(w)),
            "flr": Out(1),
            "err_malformed": Out(1),
            "err_ur": Out(1),
            "err_unexpected_cpl": Out(1),
        })

    def targets(self):
        p = self.params
        out = [Target("cfg", Space.CFG, 0, 1024)]
        for r in p.regions.values():
            out.append(Target(r.name, Space.MEM, r.offset // 4, r.span // 4))
        return out

    def elaborate(self, platform):
        m = Module()
        p = self.params

        flr_rst = Signal()
        m.submodules.depkt = depkt = Depacketizer(p)
        m.submodules.dispatch = dispatch = Dispatcher(depkt.addr_width, self.targets())
        m.submodules.packer = packer = BeatPacker(p.data_width)
        m.submodules.arbiter = arbiter = TxArbiter(p.data_width, 1)
        cfg = ConfigSpace(p)
        m.submodules.cfg = ResetInserter(flr_rst)(cfg)

        wiring.connect(m, rx=wiring.flipped(self.rx), depkt=depkt.rx)
        connect(m, depkt.op, dispatch.op)
        connect(m, dispatch.chunk, packer.chunk)
        connect(m, packer.tx, arbiter.src0)
        connect(m, arbiter.tx, wiring.flipped(self.tx))
        connect(m, dispatch.bus("cfg"), cfg.bus)
        for r in p.regions.values():
            blk = ZeroRegion(dispatch.bus(r.name).signature.addr_width)
            m.submodules[f"r_{r.name}"] = ResetInserter(flr_rst)(blk)
            connect(m, dispatch.bus(r.name), blk.bus)

        m.d.comb += [
            dispatch.completer_id.eq(depkt.completer_id),
            depkt.mem_bar_base.eq(cfg.mem_bar_base),
            depkt.io_bar_base.eq(cfg.io_bar_base),
            depkt.mem_enable.eq(cfg.command[1]),
            depkt.io_enable.eq(cfg.command[0]),
            depkt.mps.eq(cfg.mps),
            cfg.set_ur_detected.eq(depkt.err_ur),
            cfg.set_fatal_detected.eq(depkt.err_malformed),
            cfg.set_parity_error.eq(depkt.err_poisoned),
            self.err_malformed.eq(depkt.err_malformed),
            self.err_ur.eq(depkt.err_ur),
            self.err_unexpected_cpl.eq(depkt.err_unexpected_cpl),
        ]
        m.d.sync += flr_rst.eq(cfg.flr)
        m.d.comb += self.flr.eq(flr_rst)
        return m
