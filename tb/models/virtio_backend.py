"""A back-end model on the RTL's back-end ports (DESIGN.md section 4), for the cocotb tests.

``VirtioBackend(dut, desc)`` plays the device side that sits behind the front-end:

* **virtio reset**: when ``reset_req`` rises it waits ``reset_delay`` cycles and pulses
  ``reset_ack`` (``auto_reset_ack=False`` leaves that to the test: ``await be.ack_reset()``);
  every handshake is recorded in ``resets`` as ``(t_req_ns, t_ack_ns)``.
* **queue events** (``qevent``): every event is recorded in ``qevents``; a queue-reset request is
  completed ``qreset_delay`` cycles later on ``qreset_done`` (``auto_qreset=False``: the test calls
  ``complete_qreset``).  A virtio reset cancels queue resets not yet completed.
* **doorbells**: every transfer on ``doorbell`` is recorded in ``doorbells`` (``Doorbell``); the
  port's ``ready`` is low with probability ``doorbell_stall`` in each cycle with a doorbell
  offered, so back-pressure reaches ``rx``.
* **device configuration**: ``await be.dcfg_write(dw, data, be)`` changes the device config: through
  ``dcfg_update`` with the built-in register file, or in the model's own bytes (``dcfg``) plus a
  ``config_changed`` pulse with the external back-end, whose ``dcfg_req``/``dcfg_resp`` port the
  model answers after ``dcfg_latency`` cycles (``dcfg_requests`` records every request).
* **inputs**: ``needs_reset`` pulse, ``features_veto`` level, ``irq`` requests, ``config_changed``.
* **queue table**: ``await be.read_queue(q)`` reads ``qrd_*``.

Streams follow ``amaranth.lib.stream``: a transfer happens at a rising edge where ``valid`` and
``ready`` are both high; values read right after ``RisingEdge(clk)`` are the ones before the edge.
Python runs per cycle only while a stream is busy.
"""
import logging
import random
from dataclasses import dataclass

import cocotb
from cocotb.queue import Queue
from cocotb.triggers import ClockCycles, Event, RisingEdge, with_timeout
from cocotb.utils import get_sim_time

__all__ = ["VirtioBackend", "Doorbell", "QueueEvent", "unpack_fields", "pack_fields"]

QEVENT_ENABLE = 0
QEVENT_RESET = 1


def unpack_fields(value, fields):
    """A packed struct value as a dict, from the description's ``{name: [lsb, msb]}``."""
    out = {}
    for name, (lsb, msb) in fields.items():
        if "." in name:
            continue
        out[name] = (value >> lsb) & ((1 << (msb - lsb + 1)) - 1)
    return out


def pack_fields(values, fields):
    v = 0
    for name, x in values.items():
        lsb, msb = fields[name]
        width = msb - lsb + 1
        if not 0 <= x < (1 << width):
            raise ValueError(f"{name}={x:#x} does not fit in {width} bits")
        v |= x << lsb
    return v


@dataclass(frozen=True)
class Doorbell:
    time_ns: float
    queue: int
    value: int
    wide: int


@dataclass(frozen=True)
class QueueEvent:
    time_ns: float
    queue: int
    kind: int          # QEVENT_ENABLE or QEVENT_RESET


def _now():
    return get_sim_time("ns")


class _Source:
    """Drives one input stream of the RTL from a queue of packed payloads."""

    def __init__(self, clk, valid, ready, payload):
        self.clk, self.valid, self.ready, self.payload = clk, valid, ready, payload
        self.queue = Queue()
        self.sent = 0
        self.idle = Event()
        self.idle.set()
        valid.value = 0
        self._task = cocotb.start_soon(self._run())

    def put(self, value):
        self.idle.clear()
        self.queue.put_nowait(value)

    def flush(self):
        """A conventional reset: what is queued or offered is gone (the back-end is reset too)."""
        self._task.cancel()
        self.queue = Queue()
        self.valid.value = 0
        self.idle.set()
        self._task = cocotb.start_soon(self._run())

    async def _run(self):
        driven = 0
        while True:
            if self.queue.empty():
                if driven:
                    self.valid.value = driven = 0
                self.idle.set()
            value = await self.queue.get()
            self.payload.value = value
            if not driven:
                self.valid.value = driven = 1
            while True:
                await RisingEdge(self.clk)
                if self.ready.value:
                    break
            self.sent += 1


class _Sink:
    """Accepts one output stream of the RTL; ``stall`` is the probability of ready=0 in a cycle
    where valid is high, ignored while ``calm`` is set (a measurement that needs the port ready
    sets ``calm`` instead of changing ``stall``, which a random stretch may be changing at the
    same time).  ``on_item(payload_int)`` runs for each transfer."""

    def __init__(self, clk, valid, ready, payload, on_item, stall=0.0, rng=None):
        self.clk, self.valid, self.ready, self.payload = clk, valid, ready, payload
        self.on_item = on_item
        self.stall = stall
        self.calm = False
        self.rng = rng or random.Random()
        self.paused = False
        self._task = cocotb.start_soon(self._run())

    def pause(self, paused):
        """Hold ready low from now on (``True``) / release it."""
        self.paused = paused
        if paused:
            self.ready.value = self._rdy = 0

    async def _run(self):
        self._rdy = 1
        self.ready.value = 1
        while True:
            await RisingEdge(self.clk)
            if not self.valid.value:
                if not self._rdy and not self.paused:
                    self.ready.value = self._rdy = 1
                await RisingEdge(self.valid)
                continue
            if self._rdy:
                self.on_item(int(self.payload.value))
            new = 0 if self.paused or (self.stall and not self.calm
                                       and self.rng.random() < self.stall) else 1
            if new != self._rdy:
                self.ready.value = self._rdy = new


class VirtioBackend:
    def __init__(self, dut, desc, *, reset_delay=4, qreset_delay=4, auto_reset_ack=True,
                 auto_qreset=True, doorbell_stall=0.0, qevent_stall=0.0, dcfg_latency=0,
                 dcfg_writable=False, seed=None):
        self.dut = dut
        self.clk = dut.clk
        self.desc = desc
        self.log = logging.getLogger("cocotb.tb.backend")
        self.rng = random.Random(seed if seed is not None else cocotb.RANDOM_SEED)
        self.reset_delay = reset_delay
        self.qreset_delay = qreset_delay
        self.auto_reset_ack = auto_reset_ack
        self.auto_qreset = auto_qreset
        self.dcfg_latency = dcfg_latency
        self.dcfg_writable = dcfg_writable
        self.ports = desc.ports
        self.external_dcfg = "dcfg_req__valid" in self.ports

        self._dcfg_gen = 0
        self.doorbells = []
        self.qevents = []
        self.resets = []
        self.qresets_done = []
        self.dcfg_requests = []
        size = desc.params["device_cfg_size"]
        init = bytes.fromhex(desc.params.get("device_cfg_init", ""))
        self.dcfg = bytearray(init.ljust(size, b"\0"))
        self._doorbell_event = Event()
        self._qevent_event = Event()
        self._reset_event = Event()
        self._pending_qresets = set()

        for name in ("reset_ack", "needs_reset", "features_veto", "config_changed"):
            getattr(dut, name).value = 0
        dut.qrd_addr.value = 0

        self._f_doorbell = self.ports["doorbell__payload"]["fields"]
        self._f_qevent = self.ports["qevent__payload"]["fields"]
        self._f_irq = self.ports["irq__payload"]["fields"]
        self._f_qrd = self.ports["qrd_data"]["fields"]
        self.doorbell_sink = _Sink(self.clk, dut.doorbell__valid, dut.doorbell__ready,
                                   dut.doorbell__payload, self._on_doorbell, doorbell_stall, self.rng)
        self.qevent_sink = _Sink(self.clk, dut.qevent__valid, dut.qevent__ready, dut.qevent__payload,
                                 self._on_qevent, qevent_stall, self.rng)
        self.qreset_src = _Source(self.clk, dut.qreset_done__valid, dut.qreset_done__ready,
                                  dut.qreset_done__payload)
        self.irq_src = _Source(self.clk, dut.irq__valid, dut.irq__ready, dut.irq__payload)
        if self.external_dcfg:
            self._f_dreq = self.ports["dcfg_req__payload"]["fields"]
            self.dresp_src = _Source(self.clk, dut.dcfg_resp__valid, dut.dcfg_resp__ready,
                                     dut.dcfg_resp__payload)
            self.dreq_sink = _Sink(self.clk, dut.dcfg_req__valid, dut.dcfg_req__ready,
                                   dut.dcfg_req__payload, self._on_dcfg_req, 0.0, self.rng)
        else:
            self._f_dupd = self.ports["dcfg_update__payload"]["fields"]
            self.dupd_src = _Source(self.clk, dut.dcfg_update__valid, dut.dcfg_update__ready,
                                    dut.dcfg_update__payload)
        self._reset_task = cocotb.start_soon(self._reset_loop())

    # -- configuration -------------------------------------------------------------------------
    @property
    def doorbell_stall(self):
        return self.doorbell_sink.stall

    @doorbell_stall.setter
    def doorbell_stall(self, p):
        self.doorbell_sink.stall = p

    def pause_doorbells(self, paused=True):
        """Hold ``doorbell.ready`` low until resumed."""
        self.doorbell_sink.pause(paused)

    # -- virtio reset --------------------------------------------------------------------------
    async def _reset_loop(self):
        dut = self.dut
        while True:
            if not dut.reset_req.value:
                await RisingEdge(dut.reset_req)
            t_req = _now()
            self.log.debug("virtio reset requested")
            if self.auto_reset_ack:
                if self.reset_delay:
                    await ClockCycles(self.clk, self.reset_delay)
                await self._pulse(dut.reset_ack)
                self._reset_done(t_req)
            else:
                self._manual_req = t_req
                while True:
                    await RisingEdge(self.clk)
                    if not dut.reset_req.value:
                        break
            # the request falls the cycle after the acknowledge; look again after that edge
            await RisingEdge(self.clk)

    def _reset_done(self, t_req):
        self.resets.append((t_req, _now()))
        self._pending_qresets.clear()
        self._reset_event.set()

    async def ack_reset(self):
        """Acknowledge a pending virtio reset (``auto_reset_ack=False``)."""
        if not self.dut.reset_req.value:
            raise AssertionError("ack_reset: no virtio reset is pending (reset_req is low)")
        await self._pulse(self.dut.reset_ack)
        self._reset_done(getattr(self, "_manual_req", _now()))

    async def wait_reset(self, n=None, timeout_cycles=10000):
        """Wait until ``n`` resets (default: one more than now) have been acknowledged."""
        n = len(self.resets) + 1 if n is None else n
        while len(self.resets) < n:
            self._reset_event.clear()
            await with_timeout(self._reset_event.wait(), timeout_cycles * 4, "ns")

    async def _pulse(self, sig):
        await RisingEdge(self.clk)
        sig.value = 1
        await RisingEdge(self.clk)
        sig.value = 0

    # -- queue events and queue reset ----------------------------------------------------------
    def _on_qevent(self, value):
        f = unpack_fields(value, self._f_qevent)
        ev = QueueEvent(_now(), f["queue"], f["kind"])
        self.qevents.append(ev)
        self._qevent_event.set()
        if ev.kind == QEVENT_RESET:
            self._pending_qresets.add(ev.queue)
            if self.auto_qreset:
                cocotb.start_soon(self._complete_qreset_later(ev.queue))

    async def _complete_qreset_later(self, q):
        if self.qreset_delay:
            await ClockCycles(self.clk, self.qreset_delay)
        if q in self._pending_qresets:
            self.complete_qreset(q)

    def complete_qreset(self, q):
        """Tell the front-end that queue ``q``'s reset is complete (drives ``qreset_done``)."""
        self._pending_qresets.discard(q)
        self.qresets_done.append((_now(), q))
        self.qreset_src.put(q)

    async def wait_qevents(self, n, timeout_cycles=5000):
        while len(self.qevents) < n:
            self._qevent_event.clear()
            await with_timeout(self._qevent_event.wait(), timeout_cycles * 4, "ns")

    # -- doorbells -----------------------------------------------------------------------------
    def _on_doorbell(self, value):
        f = unpack_fields(value, self._f_doorbell)
        self.doorbells.append(Doorbell(_now(), f["queue"], f["value"], f.get("wide", 0)))
        self._doorbell_event.set()

    async def wait_doorbells(self, n, timeout_cycles=5000):
        """Wait until ``n`` doorbells in total have been received."""
        while len(self.doorbells) < n:
            self._doorbell_event.clear()
            await with_timeout(self._doorbell_event.wait(), timeout_cycles * 4, "ns")

    # -- inputs ----------------------------------------------------------------------------------
    async def needs_reset(self):
        """Pulse ``needs_reset`` for one cycle (the device hit an error that needs a reset)."""
        await self._pulse(self.dut.needs_reset)

    def set_veto(self, veto):
        """Level on ``features_veto``: refuse the feature set when the driver sets FEATURES_OK."""
        self.dut.features_veto.value = int(bool(veto))

    async def config_changed(self):
        await self._pulse(self.dut.config_changed)

    def irq(self, queue=0, config=False):
        """Request an interrupt (used-buffer notification for ``queue`` or a config change)."""
        self.irq_src.put(pack_fields({"queue": queue, "config": int(config)}, self._f_irq))

    async def irq_idle(self):
        await self.irq_src.idle.wait()

    # -- device configuration --------------------------------------------------------------------
    async def dcfg_write(self, dw, data, be=0xF):
        """Change device-config DW ``dw`` (enabled bytes of ``data``), as device logic would."""
        for i in range(4):
            if be >> i & 1 and 4 * dw + i < len(self.dcfg):
                self.dcfg[4 * dw + i] = (data >> (8 * i)) & 0xFF
        if self.external_dcfg:
            await self._pulse(self.dut.config_changed)
        else:
            self.dupd_src.put(pack_fields({"addr": dw, "be": be, "data": data}, self._f_dupd))
            await self.dupd_src.idle.wait()
            await RisingEdge(self.clk)

    def dcfg_dword(self, dw):
        return int.from_bytes(self.dcfg[4 * dw:4 * dw + 4].ljust(4, b"\0"), "little")

    def _on_dcfg_req(self, value):
        f = unpack_fields(value, self._f_dreq)
        self.dcfg_requests.append((_now(), f))
        cocotb.start_soon(self._answer_dcfg(f))

    def conventional_reset(self):
        """Called while ``rst`` is high: the back-end is reset with the function, so the device
        config answers it still owed are dropped (else the first request after the reset takes
        one of them as its own answer: stress seed 5001, m0)."""
        self._dcfg_gen += 1
        if self.external_dcfg:
            self.dresp_src.flush()

    async def _answer_dcfg(self, f):
        gen = self._dcfg_gen
        if self.dcfg_latency:
            await ClockCycles(self.clk, self.dcfg_latency)
        if gen != self._dcfg_gen:
            return
        dw = f["addr"]
        if f["write"]:
            if self.dcfg_writable:
                for i in range(4):
                    if f["be"] >> i & 1 and 4 * dw + i < len(self.dcfg):
                        self.dcfg[4 * dw + i] = (f["data"] >> (8 * i)) & 0xFF
            self.dresp_src.put(0)
        else:
            self.dresp_src.put(self.dcfg_dword(dw) if 4 * dw < len(self.dcfg) else 0)

    # -- queue table read port -------------------------------------------------------------------
    async def read_queue(self, q):
        """The back-end's view of queue ``q``: dict of the QueueRow fields plus ``exists``."""
        self.dut.qrd_addr.value = q
        await RisingEdge(self.clk)
        await RisingEdge(self.clk)
        await RisingEdge(self.clk)
        row = unpack_fields(int(self.dut.qrd_data.value), self._f_qrd)
        row["exists"] = int(self.dut.qrd_exists.value)
        return row

    # -- negotiated state --------------------------------------------------------------------------
    def status(self):
        d = self.dut
        return {"device_status": int(d.device_status.value),
                "driver_features": int(d.driver_features.value),
                "features_ok": int(d.features_ok.value), "driver_ok": int(d.driver_ok.value),
                "reset_req": int(d.reset_req.value)}
