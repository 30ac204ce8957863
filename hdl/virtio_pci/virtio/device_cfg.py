"""Device-specific configuration window (VIRTIO 1.3 sections 4.1.4.6 and 2.5).

``DeviceCfgPort`` forwards each DW access of the DEVICE region to the back-end as a request
(``req``: DW address, write, byte enables, data) and completes it when the back-end answers on
``resp`` (one response per request, read data for reads).  A back-end that answers in the same
cycle keeps the 3-cycle read latency; a slower one stalls the request pipeline.  While
``write_enable`` is low (the top level ties it to FEATURES_OK) driver writes are completed without
a request: a driver must not write the device configuration before FEATURES_OK (VIRTIO 3.1.1),
and the robust device ignores such writes (DRV-12).  Reads are always forwarded (DCF-03).

A back-end that does not answer: the dispatcher abandons the access after its timeout and pulses
``abort`` (the bus access then ends without ``ready``; a read completes with 0).  A request the
back-end has not taken yet stays offered, unchanged, until it is taken (stream rules), and the
response to an abandoned request is taken and discarded when it comes; until then the port
takes no new access (the dispatcher abandons those at once) and ``idle`` is low.

``DeviceCfgRegFile`` is the provided back-end: a register file with the parameter object's initial
contents (``device_cfg_init``), readable at any time (DCF-03), read-only to the driver (writes are
acknowledged and ignored, as for the modern virtio-net and virtio-blk layouts), little-endian
(DCF-D1), reading 0 past its size.  Device logic changes it through ``update`` (a DW write with
byte enables), which pulses ``config_changed`` for config_generation and the configuration-change
interrupt.
"""
from amaranth.hdl import Module, Mux, Signal, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from ..regbus import RegBusSignature, byte_mask

__all__ = ["DeviceCfgPort", "DeviceCfgRegFile", "DcfgRequest", "DcfgUpdate"]


class DcfgRequest(data.Struct):
    addr: 10         # DW address inside the device-config structure
    write: 1
    be: 4
    data: 32


class DcfgUpdate(data.Struct):
    addr: 10
    be: 4
    data: 32


class DeviceCfgPort(wiring.Component):
    def __init__(self):
        super().__init__({
            "bus": In(RegBusSignature(10)),
            "req": Out(stream.Signature(DcfgRequest)),
            "resp": In(stream.Signature(unsigned(32))),
            "write_enable": In(1, init=1),
            "abort": In(1),
            "idle": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        bus, req, resp = self.bus, self.req, self.resp
        pending = Signal()     # the request of the current access was taken, no response yet
        held = Signal()        # an abandoned request still offered to the back-end
        orphan = Signal()      # an abandoned request was taken: its response is to be discarded
        held_req = Signal.like(req.payload)
        rdata = Signal(32)
        drop = Signal()
        busy = held | orphan
        m.d.comb += self.idle.eq(~busy)
        m.d.comb += drop.eq(bus.en & bus.write & ~self.write_enable & ~pending & ~busy)
        with m.If(held):
            m.d.comb += [req.valid.eq(1), req.payload.eq(held_req)]
        with m.Else():
            m.d.comb += [
                req.valid.eq(bus.en & ~pending & ~drop & ~orphan),
                req.payload.addr.eq(bus.addr),
                req.payload.write.eq(bus.write),
                req.payload.be.eq(bus.be),
                req.payload.data.eq(bus.wdata),
            ]
        fired = req.valid & req.ready
        live_fired = fired & ~held
        m.d.comb += [
            resp.ready.eq(pending | orphan | req.valid),
            bus.ready.eq(~busy & ((resp.valid & (pending | live_fired)) | drop)),
            bus.rdata.eq(rdata),
        ]
        with m.If(held):
            with m.If(fired):
                m.d.sync += held.eq(0)
                with m.If(~resp.valid):
                    m.d.sync += orphan.eq(1)
        with m.Elif(orphan):
            with m.If(resp.valid):
                m.d.sync += orphan.eq(0)
        with m.Elif(self.abort & bus.en):
            # the dispatcher gives this access up: keep its request offered, or discard the
            # response it is owed
            with m.If(pending & ~resp.valid):
                m.d.sync += [pending.eq(0), orphan.eq(1)]
            with m.Elif(req.valid & ~req.ready):
                m.d.sync += [held.eq(1), held_req.eq(req.payload)]
            with m.Elif(live_fired & ~resp.valid):
                m.d.sync += orphan.eq(1)
        with m.Else():
            with m.If(live_fired & ~resp.valid):
                m.d.sync += pending.eq(1)
            with m.If(resp.valid & resp.ready):
                m.d.sync += [pending.eq(0), rdata.eq(Mux(bus.write, 0, resp.payload))]
        return m


class DeviceCfgRegFile(wiring.Component):
    """Answers requests in the cycle they arrive."""

    def __init__(self, params):
        self._p = params
        super().__init__({
            "req": In(stream.Signature(DcfgRequest)),
            "resp": Out(stream.Signature(unsigned(32))),
            "update": In(stream.Signature(DcfgUpdate)),
            "config_changed": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        p = self._p
        n = p.device_cfg_size // 4
        init = p.device_cfg_init.ljust(p.device_cfg_size, b"\0")
        regs = [Signal(32, init=int.from_bytes(init[4 * i:4 * i + 4], "little"), name=f"dcfg{i}")
                for i in range(n)]
        req, resp, upd = self.req, self.resp, self.update
        rd = Signal(32)
        with m.Switch(req.payload.addr):
            for i in range(n):
                with m.Case(i):
                    m.d.comb += rd.eq(regs[i])
        m.d.comb += [req.ready.eq(resp.ready), resp.valid.eq(req.valid),
                     resp.payload.eq(Mux(req.payload.write, 0, rd))]
        m.d.comb += upd.ready.eq(1)
        with m.If(upd.valid):
            bm = byte_mask(upd.payload.be)
            for i in range(n):
                with m.If(upd.payload.addr == i):
                    nv = (regs[i] & ~bm) | (upd.payload.data & bm)
                    m.d.sync += regs[i].eq(nv)
                    m.d.comb += self.config_changed.eq(nv != regs[i])
        return m
