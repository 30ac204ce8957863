"""A lean TLP driver for the stress test: no root complex, no cocotbext-pcie objects.

``LeanDriver(dut, width, rng, rx_idle=, tx_stall=, on_tlp=)`` drives ``rx`` beats straight from
DW lists and collects ``tx`` beats into DW lists, one coroutine each:

* ``send(dws)`` queues a TLP (``send_beats`` raw beats, for broken frames) (a list of DWs, header DWs as drawn in the spec, payload DWs
  little-endian: tb.tlp.convert); the rx coroutine inserts idle cycles with probability
  ``rx_idle`` before each beat (``valid`` low) and holds each beat until ``ready``;
* the tx coroutine holds ``ready`` low with probability ``tx_stall`` in each cycle that ``valid``
  is high; every complete TLP goes to ``on_tlp(dws)``.  It also checks the stream rules it can
  see from outside: a TLP starts with ``first``, ends with ``last``, keep is contiguous from lane 0.
* ``on_sent(beats)``, when set, is called with the beats of each TLP the moment its last beat
  was accepted on ``rx`` (the DMA checker of the stress uses it for ordering, DMA-16).
* ``hold_tx(True)`` holds ``tx`` ready low from now on, until ``hold_tx(False)``;
* ``abort()`` and ``reset_tx()`` are for a conventional reset with requests in flight: the TLP
  on ``rx`` is cut at the next edge and the queue forgotten; a ``tx`` TLP cut by the reset is
  dropped.

Both coroutines run Python per cycle only while their stream is busy; randomness comes from the
given ``random.Random``, so a run reproduces from its seed.
"""
import collections

import cocotb
from cocotb.triggers import Event, First, RisingEdge

from tb.tlp.convert import beats_to_dws, dws_to_beats, pack_beat, unpack_beat

__all__ = ["LeanDriver"]


class LeanDriver:
    def __init__(self, dut, width, rng, *, rx_idle=0.2, tx_stall=0.2, on_tlp=None):
        self.dut = dut
        self.clk = dut.clk
        self.width = width
        self.rng = rng
        self.rx_idle = rx_idle
        self.tx_stall = tx_stall
        self.on_tlp = on_tlp or (lambda dws: None)
        self.on_sent = None
        self.queue = collections.deque()
        self._wake = Event()
        self.idle = Event()
        self.idle.set()
        self.low = Event()          # set when the queue has drained to ``low_mark`` TLPs
        self.low_mark = 4
        self.sent = 0
        self.received = 0
        self.errors = []
        self._abort = False
        self._beats = []
        self.tx_held = False
        self._unheld = Event()
        self._rdy = 1
        dut.rx__valid.value = 0
        dut.tx__ready.value = 1
        self._rx = cocotb.start_soon(self._rx_loop())
        self._tx = cocotb.start_soon(self._tx_loop())

    def send(self, dws):
        self.send_beats(dws_to_beats(dws, self.width))

    def send_beats(self, beats):
        """Queue raw beats ``(data, keep, first, last)``: for broken frames."""
        self.queue.append(beats)
        self.idle.clear()
        self._wake.set()

    @property
    def pending(self):
        return len(self.queue)

    def flush_queue(self):
        """Forget TLPs not yet started (before a conventional reset)."""
        self.queue.clear()

    def abort(self):
        """Conventional reset with requests in flight: forget every TLP not yet sent, and stop
        driving the one on ``rx`` now (at the next clock edge, even in the middle of it)."""
        self.queue.clear()
        if not self.idle.is_set():
            self._abort = True

    def hold_tx(self, hold):
        """Hold ``tx`` ready low from now on, also while nothing is offered (the link takes
        nothing: stuck-port episodes of the stress), or release it."""
        self.tx_held = hold
        if hold:
            self.dut.tx__ready.value = self._rdy = 0
            self._unheld.clear()
        else:
            self._unheld.set()

    def reset_tx(self):
        """Forget the beats of a ``tx`` TLP cut short by a conventional reset."""
        self._beats = []

    async def _rx_loop(self):
        dut, clk, w, rng = self.dut, self.clk, self.width, self.rng
        valid = dut.rx__valid
        payload = dut.rx__payload
        ready = dut.rx__ready
        driven = 0
        while True:
            if not self.queue:
                self._abort = False         # nothing on rx to cut (abort() raced with send())
                if driven:
                    valid.value = driven = 0
                self.idle.set()
                self._wake.clear()
                await self._wake.wait()
                await RisingEdge(clk)
                continue
            beats = self.queue.popleft()
            if len(self.queue) <= self.low_mark:
                self.low.set()
            for data, keep, first, last in beats:
                if self.rx_idle and rng.random() < self.rx_idle:
                    if driven:
                        valid.value = driven = 0
                    await RisingEdge(clk)
                    if self._abort:
                        break
                payload.value = pack_beat(data, keep, first, last, w)
                if not driven:
                    valid.value = driven = 1
                while True:
                    await RisingEdge(clk)
                    if ready.value or self._abort:
                        break
                    if self.tx_held:        # behind the held tx: no Python per cycle
                        await First(RisingEdge(ready), self._unheld.wait())
                if self._abort:
                    break
            if self._abort:
                self._abort = False
                self.queue.clear()
                self.low.set()
                if driven:
                    valid.value = driven = 0
                continue
            self.sent += 1
            if self.on_sent is not None:
                self.on_sent(beats)

    async def _tx_loop(self):
        dut, clk, w, rng = self.dut, self.clk, self.width, self.rng
        valid, ready, payload = dut.tx__valid, dut.tx__ready, dut.tx__payload
        self._rdy = 1
        ready.value = 1
        self._beats = []
        while True:
            await RisingEdge(clk)
            if not valid.value:
                if not self._rdy and not self.tx_held:
                    ready.value = self._rdy = 1
                await RisingEdge(valid)
                continue
            if self.tx_held and not self._rdy:
                await self._unheld.wait()       # no Python per cycle while held
                continue
            if self._rdy:
                beats = self._beats
                data, keep, first, last = unpack_beat(int(payload.value), w)
                if bool(first) != (not beats):
                    self.errors.append(f"tx: beat with first={first} after {len(beats)} beats")
                if keep == 0 or keep & (keep + 1):
                    self.errors.append(f"tx: keep {keep:#x} not contiguous from lane 0")
                beats.append((data, keep, first, last))
                if last:
                    dws = beats_to_dws(beats, w)
                    self._beats = []
                    self.received += 1
                    self.on_tlp(dws)
            new = 0 if self.tx_held or (self.tx_stall and rng.random() < self.tx_stall) else 1
            if new != self._rdy:
                ready.value = self._rdy = new
