"""The host side of back-end DMA in the lean driver's world (no root complex): a completer for
the memory reads the function sends, for the randomised stress (tb/scenarios/stress_dma.py).

PCI Express Base Specification 5.0, 2.3.1.1 (a read is answered by one or more completions, split
at Read Completion Boundaries, each at most Max_Payload_Size, in address order; Byte Count and
Lower Address), 2.4.1 (completions of different tags in any order), 2.3.2 (UR / CA completion
status), 2.7.2 (poisoned data).

``DmaCompleter(drv, mem, rng, period_ns)``: ``request(req, on_data=, bad=)`` takes one MRd
(``tb.models.dma_model.parse_request``); after a random latency (``lat``, cycles) its completions
are sent on ``rx`` through ``drv`` (``tb.host.lean_driver.LeanDriver.send``), each ending at an
RCB (64 bytes) or at the end of the request and carrying at most ``mps`` bytes, the split of each
read chosen at random among "at every RCB", "as few as MPS allows" and "at random legal points";
the completions of different reads are interleaved at random, with random gaps.  Data comes from
``mem`` (``PagedMemory``) when the completion is made; ``on_data(addr, data)`` is told what each
good completion carried.

``bad = (kind, k)``: the read's k-th completion (or its last, if it has fewer) is bad: ``"ur"`` /
``"ca"`` a completion without data with that status, which ends the read; ``"poison"`` a CplD
with EP set and garbage data (the completions after it still follow, consistent, and the function
discards them as unexpected: ``"zombie"``).  Every completion of such a read is put on ``bad`` as
``(dws, kind, last)`` (kind None before the bad one; ``last`` the read's state on its last one,
to ``release`` once sent) instead of being sent, for the owner to send from its own coroutine,
because these completions set error bits the reference model must learn at the right place in
the ``rx`` order.

``outstanding``: tag -> state of every read whose final completion was not handed on yet (the
tags the function must not use again).  ``pause`` stops all answers (an FLR or a reset is being
handled); ``hold`` answers nothing while counting reads in ``held`` (a burst that must have every
tag in flight at once); ``silent_until`` (ns) keeps the host silent for a while (every tag can
fill up).  ``abandon(mps)`` gives the rest of every outstanding read as completions with garbage
data (what a host answering late, after an FLR or a reset, would send) and forgets them all.
"""
import collections

import cocotb
from cocotb.triggers import Event, First, Timer
from cocotb.utils import get_sim_time

from tb.models.dma_model import completion, completion_size

__all__ = ["DmaCompleter"]

RCB = 64
UR, CA = 1, 4           # Completion Status field values


class _Read:
    __slots__ = ("req", "next", "left", "due", "mode", "bad", "n", "on_data", "poisoned")

    def __init__(self, req, due, mode, bad, on_data):
        self.req = req
        self.next = req.start
        self.left = req.nbytes
        self.due = due
        self.mode = mode
        self.bad = bad
        self.n = 0
        self.on_data = on_data
        self.poisoned = False


class DmaCompleter:
    def __init__(self, drv, mem, rng, period_ns, *, completer_id=0x0000):
        self.drv = drv
        self.mem = mem
        self.rng = rng
        self.period = period_ns
        self.completer_id = completer_id
        self.mps = 128
        self.lat = (0, 40)              # latency of a read's first completion, cycles
        self.gap = (0, 8)               # between two completions of one read, cycles
        self.outstanding = {}
        self.active = []                # reads with completions still to make
        self.bad = collections.deque()
        self.pause = False
        self.hold = False
        self.held = 0
        self.silent_until = 0
        self.sent = 0                   # completions handed on (drv or ``bad``)
        self.trace = None               # called with every completion sent (history)
        self.sent_bytes = 0
        self._wake = Event()
        cocotb.start_soon(self._run())

    # -- API ----------------------------------------------------------------------------------
    def request(self, req, *, on_data=None, bad=None):
        rng = self.rng
        lo, hi = self.lat
        due = get_sim_time("ns") + self.period * rng.randint(lo, hi)
        mode = rng.choice(("rcb", "one", "random", "random"))
        st = _Read(req, due, mode, bad, on_data)
        self.outstanding[req.tag] = st
        self.active.append(st)
        if self.hold:
            self.held += 1
        self._wake.set()

    def release(self, st):
        """The last completion of ``st`` is on its way: its tag is free for the function."""
        if self.outstanding.get(st.req.tag) is st:
            del self.outstanding[st.req.tag]

    @property
    def busy(self):
        return bool(self.active or self.bad)

    def wake(self):
        self._wake.set()

    def abandon(self, mps=128):
        """Completions for the rest of every outstanding read (garbage data, consistent byte
        counts and lower addresses), in a random interleaving; then forget every read."""
        rng = self.rng
        streams = []
        for st in self.outstanding.values():
            out = []
            while st.left:
                n = self._size(st, mps, "random")
                data = bytes(b ^ 0xFF for b in self.mem.read(st.next, n))
                out.append(completion(st.req, data=data, lower_addr=st.next & 0x7F,
                                      byte_count=st.left, completer_id=self.completer_id))
                st.next += n
                st.left -= n
            streams.append(out)
        late = []
        while any(streams):
            s = rng.choice([s for s in streams if s])
            late.append(s.pop(0))
        self.outstanding.clear()
        self.active.clear()
        self.bad.clear()
        self.hold = False
        return late

    # -- making completions ---------------------------------------------------------------------
    def _size(self, st, mps, mode):
        return completion_size(st.next, st.left, mps, mode, self.rng)

    def _emit(self, st):
        """Hand on the next completion of ``st``; returns True when it was its last."""
        rng = self.rng
        req = st.req
        bad = st.bad
        kind = None
        final = False
        if bad and bad[0] in ("ur", "ca") and st.n >= bad[1]:
            dws = completion(req, status=UR if bad[0] == "ur" else CA, byte_count=st.left,
                             lower_addr=st.next & 0x7F, completer_id=self.completer_id)
            kind = bad[0]
            final = True
        else:
            n = self._size(st, self.mps, st.mode)
            if bad and bad[0] in ("ur", "ca") and n == st.left:
                # would be the last one: the bad answer takes its place
                st.bad = (bad[0], st.n)
                return self._emit(st)
            data = self.mem.read(st.next, n)
            poison = bool(bad) and bad[0] == "poison" and not st.poisoned and (
                st.n >= bad[1] or n == st.left)
            if poison:
                st.poisoned = True
                kind = "poison"
                payload = bytes(b ^ 0xA5 for b in data)
            else:
                kind = "zombie" if st.poisoned else None
                payload = data
                if st.on_data is not None and not st.poisoned:
                    st.on_data(st.next, data)
            dws = completion(req, data=payload, lower_addr=st.next & 0x7F, byte_count=st.left,
                             ep=poison, completer_id=self.completer_id)
            st.next += n
            st.left -= n
            self.sent_bytes += n
            final = not st.left
        st.n += 1
        self.sent += 1
        if bad:
            # the tag stays outstanding until the owner has sent its last completion
            self.bad.append((dws, kind, st if final else None))
        else:
            self.drv.send(dws)
            if self.trace is not None:
                self.trace(dws)
        if final:
            self.active.remove(st)
            if not bad:
                self.release(st)
        else:
            g0, g1 = self.gap
            st.due = get_sim_time("ns") + self.period * rng.randint(g0, g1)
        return final

    async def _run(self):
        rng = self.rng
        P = self.period
        while True:
            if self.pause or self.hold or not self.active:
                self._wake.clear()
                await self._wake.wait()
                continue
            now = get_sim_time("ns")
            if now < self.silent_until:
                await Timer(int(self.silent_until - now) + P, "ns")
                continue
            if self.drv.pending > 24:
                await Timer(8 * P, "ns")
                continue
            due = [st for st in self.active if st.due <= now]
            if not due:
                t = min(st.due for st in self.active) - now
                self._wake.clear()
                await First(Timer(max(int(t), P), "ns"), self._wake.wait())
                continue
            for _ in range(min(len(due), rng.randint(1, 3))):
                st = rng.choice(due)
                due.remove(st)
                self._emit(st)
            await Timer(P * rng.randint(1, 3), "ns")
