"""Cycle engine of the benchmark: a lean TLP driver and monitor that runs on any simulator.

The engine is written once against a two-method port interface, ``io.get(name)`` (the value of a
top-level port sampled at the current clock edge) and ``io.set(name, value)`` (drive an input from
after this edge on).  ``sim.bench.cocotb_bench`` runs it on the Verilator model, ``sim.bench.
amaranth_bench`` on Amaranth's simulator.  At every rising edge the simulator side calls
``Engine.sample()`` (transfers of that edge), advances the scenario by one step, then calls
``Engine.drive()`` (inputs for the next cycle).

Stream timing follows ``amaranth.lib.stream``: a beat moves at an edge where ``valid`` and ``ready``
are both high.  Every edge has a number (``Engine.cycle``); the figures are differences of edge
numbers:

* latency: edge of the first beat of the answer (``tx`` transfer, or ``doorbell`` transfer) minus
  the edge of the request's last beat on ``rx``; with every sink ready.
* throughput: TLPs per cycle over a back-to-back run of N requests: (N - 1) / (edges from the
  first beat of the first request to the first beat of the last one) on rx, the same for the
  answers, and the smaller of the two is the figure (``scenarios.throughput``).

Python runs once per edge and reads only what it needs (``tx__payload`` only on a transfer), so the
same engine measures how fast cocotb can drive the model.  Scenarios are generators: each
``yield`` waits for the next edge.  Everything received is checked (count, order, tags, status,
doorbell queue and value): a lost, duplicated or reordered answer raises ``BenchError``.
"""
import random
from collections import deque

from tb.tlp.convert import beats_to_dws, dws_to_beats, pack_beat, unpack_beat

__all__ = ["Engine", "BenchError", "SINK_MODES"]

#: back-pressure modes of a throughput run: probability that each sink is ready in a cycle
SINK_MODES = {
    "ready": {"tx": 1.0, "doorbell": 1.0},        # every sink always ready
    "tx_bp": {"tx": 0.5, "doorbell": 1.0},        # random back-pressure on tx (the link)
    "db_bp": {"tx": 1.0, "doorbell": 0.5},        # random back-pressure on the doorbell port
}


class BenchError(AssertionError):
    pass


class RxTlp:
    __slots__ = ("first", "last")

    def __init__(self):
        self.first = None      # edge of the first beat's transfer
        self.last = None       # edge of the last beat's transfer


class TxTlp:
    __slots__ = ("first", "last", "beats")

    def __init__(self, first):
        self.first = first
        self.last = None
        self.beats = []


class Engine:
    def __init__(self, io, params, *, seed=1):
        self.io = io
        self.p = params
        self.w = params.data_width
        self.rng = random.Random(seed)
        self.cycle = -1
        # rx: beats waiting to be driven: (packed value, RxTlp, is_first, is_last)
        self._rx = deque()
        self._rx_cur = None          # beat on the rx port (valid high), or None
        self.rx_tlps = []
        # tx and the back-end ports
        self.tx_tlps = []
        self._tx_open = None
        self.doorbells = []          # (edge, payload)
        self.irq_edges = []          # edges where an irq request was accepted
        self._irq_pending = None
        self.ready_prob = {"tx": 1.0, "doorbell": 1.0}
        self._ready = {"tx": None, "doorbell": None}
        self.backend_model = True    # answer reset_req with a reset_ack pulse
        self._ack = 0
        self.resets_acked = 0
        self._rx_valid = 0
        self._irq_driven = False
        self.ready_log = None        # a list: (edge, tx ready, doorbell ready) of every edge
        self._set_ready("tx", 1)
        self._set_ready("doorbell", 1)
        io.set("qevent__ready", 1)
        io.set("rx__valid", 0)
        io.set("irq__valid", 0)
        io.set("reset_ack", 0)

    # -- driving ------------------------------------------------------------------------------
    def pack(self, dws):
        """The packed rx payload values of one TLP's beats."""
        return [pack_beat(*b, self.w) for b in dws_to_beats(dws, self.w)]

    def send(self, dws=None, *, packed=None):
        """Queue one TLP (DW list, or beats from ``pack``) for rx; returns its RxTlp record
        (edges filled in when its beats move)."""
        rec = RxTlp()
        beats = packed if packed is not None else self.pack(dws)
        n = len(beats)
        for k, b in enumerate(beats):
            self._rx.append((b, rec, k == 0, k == n - 1))
        self.rx_tlps.append(rec)
        return rec

    def irq(self, queue=0, config=0):
        """Offer one interrupt request on the back-end ``irq`` stream."""
        self._irq_pending = queue | (config << 16)

    @property
    def rx_idle(self):
        return self._rx_cur is None and not self._rx

    def _set_ready(self, sink, value):
        if self._ready[sink] != value:
            self._ready[sink] = value
            self.io.set(f"{sink}__ready", value)

    # -- one clock edge -------------------------------------------------------------------------
    def sample(self):
        """Account for the transfers of the edge that just happened (values sampled at it)."""
        io = self.io
        self.cycle = c = self.cycle + 1
        cur = self._rx_cur
        if cur is not None and io.get("rx__ready"):
            _, rec, first, last = cur
            if first:
                rec.first = c
            if last:
                rec.last = c
            self._rx_cur = None
        if self._ready["tx"] and io.get("tx__valid"):
            self._tx_beat(c, io.get("tx__payload"))
        if self._ready["doorbell"] and io.get("doorbell__valid"):
            self.doorbells.append((c, io.get("doorbell__payload")))
        if self.ready_log is not None:
            self.ready_log.append((c, self._ready["tx"], self._ready["doorbell"]))
        if self._irq_driven and io.get("irq__ready"):
            self.irq_edges.append(c)
            self._irq_pending = None
        if self._ack:
            self._ack = 0
            io.set("reset_ack", 0)
        elif self.backend_model and io.get("reset_req"):
            self._ack = 1
            self.resets_acked += 1
            io.set("reset_ack", 1)

    def drive(self):
        """Drive the inputs for the next cycle (after the scenario had its say at this edge)."""
        io = self.io
        if self._rx_cur is None:
            if self._rx:
                self._rx_cur = nxt = self._rx.popleft()
                io.set("rx__payload", nxt[0])
                if not self._rx_valid:
                    self._rx_valid = 1
                    io.set("rx__valid", 1)
            elif self._rx_valid:
                self._rx_valid = 0
                io.set("rx__valid", 0)
        irq_drive = self._irq_pending is not None
        if irq_drive != self._irq_driven:
            self._irq_driven = irq_drive
            if irq_drive:
                io.set("irq__payload", self._irq_pending)
            io.set("irq__valid", int(irq_drive))
        for sink in ("tx", "doorbell"):
            pr = self.ready_prob[sink]
            self._set_ready(sink, 1 if pr >= 1.0 else int(self.rng.random() < pr))

    def _tx_beat(self, c, value):
        data, keep, first, last = unpack_beat(int(value), self.w)
        t = self._tx_open
        if first:
            if t is not None:
                raise BenchError(f"tx: TLP restarted at edge {c} before its last beat")
            self._tx_open = t = TxTlp(c)
        elif t is None:
            raise BenchError(f"tx: beat without first at edge {c}")
        t.beats.append((data, keep, first, last))
        if last:
            t.last = c
            self.tx_tlps.append(t)
            self._tx_open = None

    # -- scenario helpers (generators) ----------------------------------------------------------
    def wait(self, cond, limit=10000, what="condition"):
        for _ in range(limit):
            if cond():
                return
            yield
        raise BenchError(f"timeout after {limit} cycles waiting for {what}")

    def idle(self, n):
        for _ in range(n):
            yield

    def tx_dws(self, t):
        return beats_to_dws(t.beats, self.w)
