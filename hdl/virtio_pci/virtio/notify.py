"""Notification structure: doorbells (VIRTIO 1.3 sections 4.1.4.4 and 4.1.5.2, 2.9).

A write into the notify region becomes one event on the ``doorbell`` stream.  The queue is
decoded from the address when ``notify_off_multiplier`` is not 0 (the written value is a hint,
DESIGN.md section 7), from the written value when it is 0.  A 32-bit write carries
NOTIFICATION_DATA (vq index or notif-config data in 15:0, next_off in 30:16, next_wrap in 31);
the whole value is passed on.  Only the enabled byte lanes of a write count (a narrow write
leaves undefined data in the others).  Doorbells for queues that do not exist, are not enabled, or come
before DRIVER_OK are dropped (NTF-D3) and counted; every other doorbell is delivered exactly once:
when the stream is not ready the write waits and so does ``rx`` (never dropped, never
duplicated).  Reads return 0 with no side effect (NTF-D4).

Transitional devices: a bus address with its top bit set is the legacy header's queue notify
register (routed here by ``legacy.py``): the queue is the value written whatever the multiplier,
and a legacy driver's doorbells count before DRIVER_OK (``legacy_live``, LEG-08).

Timing: the doorbell event is valid the cycle after the write's access, two cycles after the
write's last beat on ``rx``.
"""
from amaranth.hdl import Cat, Const, Module, Mux, Signal
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from ..regbus import RegBusSignature, byte_mask

__all__ = ["Notify", "Doorbell"]


class Doorbell(data.Struct):
    queue: 16
    value: 32        # the value written (16-bit writes: zero extended)
    wide: 1          # a 32-bit (NOTIFICATION_DATA) write


class Notify(wiring.Component):
    def __init__(self, params):
        self._p = params
        # the region spans more than one page when num_queues * notify_off_multiplier does
        # (e.g. one 4 KiB doorbell page per queue): DW address bits of the whole span
        span_dw = params.regions["notify"].span // 4
        self.addr_width = max(1, (span_dw - 1).bit_length()) + params.transitional
        super().__init__({
            "bus": In(RegBusSignature(self.addr_width)),
            "legacy_live": In(1),
            "doorbell": Out(stream.Signature(Doorbell)),
            "chk_queue": Out(16),      # the doorbell's queue, looked up in common cfg's flags
            "chk_enabled": In(1),
            "driver_ok": In(1),
            "dropped": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        p = self._p
        bus = self.bus
        db = self.doorbell
        mult = p.notify_off_multiplier
        nq = p.num_queues

        m.d.comb += bus.rdata.eq(0)
        free = ~db.valid | db.ready
        m.d.comb += bus.ready.eq(free)
        with m.If(db.ready):
            m.d.sync += db.valid.eq(0)

        be = bus.be
        # only the enabled byte lanes carry data (a one-byte write leaves garbage in the others)
        wd = Signal(32)
        m.d.comb += wd.eq(bus.wdata & byte_mask(be))
        # byte offset of the doorbell inside the DW, value aligned down to bit 0
        lo_half = be[0] | be[1]
        value = Signal(32)
        wide = Signal()
        m.d.comb += [
            wide.eq(be == 0b1111),
            value.eq(Mux(wide, wd, Mux(lo_half, wd[:16], wd[16:]))),
        ]
        queue = Signal(17)
        legacy = bus.addr[-1] if p.transitional else Const(0)
        addr = bus.addr[:-1] if p.transitional else bus.addr
        aligned = Const(1)
        if mult == 0:
            m.d.comb += queue.eq(value[:16])
        else:
            shift = mult.bit_length() - 1
            offset = Cat(Const(0, 1), ~lo_half, addr)   # byte offset inside the region
            m.d.comb += queue.eq(Mux(legacy, value[:16], offset >> shift))
            aligned = legacy | ((offset & (mult - 1)) == 0)
        ok = Signal()
        m.d.comb += self.chk_queue.eq(queue[:16])
        enabled = self.chk_enabled
        live = self.driver_ok | (legacy & self.legacy_live)
        m.d.comb += ok.eq((queue < nq) & enabled & live & (be != 0) & aligned)
        with m.If(bus.en & bus.ready & bus.write):
            with m.If(ok):
                m.d.sync += [db.valid.eq(1), db.payload.queue.eq(queue), db.payload.value.eq(value),
                             db.payload.wide.eq(wide)]
            with m.Else():
                m.d.comb += self.dropped.eq(1)
        return m
