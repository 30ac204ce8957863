"""Stuck-port episodes of the randomised stress (issue 11: "stalls each back-end port for long
stretches, and checks that FLR recovers every time"; DESIGN.md section 4, tlp/dispatcher.py).

An episode starts at a drained point of ``Stress`` (tb/scenarios/stress.py) and stalls one port
for longer than the back-end timeout T (``backend_timeout``, automatic max(1024, 2 *
num_queues)) while random traffic goes on, then releases it (or, for the doorbell and the legacy
reset acknowledge, leaves it stuck until after the FLR), makes a Function Level Reset and checks
that the function is back in its reset state; the random traffic after it is checked as always.
Ports, by build: ``doorbell`` and ``qevent`` (every build: the back-end takes nothing), ``dcfg``
(builds with an external device-config back-end, m0 and transitional: a request not taken, or
taken and never answered), ``reset_ack`` (transitional: a device reset through the legacy status
the back-end does not acknowledge) and ``tx`` (the host holds ``tx`` for 20k to 200k cycles).

The outcome is exact, not tolerated: requests execute in arrival order, and what the dispatcher
gives up follows from the port's buffering (``StuckPortModel``): the doorbell port holds one
doorbell in Notify's register, the queue-event port two events (the skid buffer of top.py and
common config's event register); the next access to that structure waits T cycles and is given
up, and so is every later one at once while the port stays stalled; the device-config port gives
up its first access (the request stays offered or unanswered); a legacy access to a common field
during a device reset waits and is given up.  A given-up read completes with data 0, a given-up
write is dropped (no doorbell, no queue event, no register change), ``err_backend_timeout``
pulses once per given-up DW operation (counted exactly), and DEVICE_NEEDS_RESET is set (outside
a device reset), with the configuration-change interrupt it causes after DRIVER_OK (the model
takes it as a back-end ``irq`` config request at that point of the request order).  What is
relaxed: during an episode on a transitional build other than ``reset_ack`` no I/O requests are
sent (a legacy access may touch several blocks at once), no interrupt bursts, sync points or
resets run inside the episode, and the episode's drains do not wait for the held doorbell /
queue events (they are checked once the port is released).

Configuration reads during an episode (``timed_cfg_read``, with ``tx`` always ready and no idle
on ``rx``) are timed from the first cycle their first beat is offered on ``rx`` to the first beat
of their completion on ``tx`` and checked against the bound of docs/spec-decisions.md (Power
states and stuck parties): 3 + one cycle per DW operation ahead (two per TLP at W = 64) + the
completion beats ahead + T once per port found stuck.  ``tx`` held: single-DW reads interleaved
with doorbells; the doorbells behind the first ``cpl_queue_depth`` + 1 reads must be delivered
while ``tx`` is held (posted requests pass non-posted ones, PCIe 2.4.1), no request is given up.
"""
import os
import time

import cocotb
from cocotb.triggers import ClockCycles, FallingEdge, RisingEdge, Timer, with_timeout
from cocotb.utils import get_sim_time

from tb.env.fabric import CLK_PERIOD_NS

from tb.tlp.convert import dws_to_beats, unpack_beat

__all__ = ["StuckEpisodes"]

#: how many events each port holds before the structure behind it stops taking accesses
CAPACITY = {"doorbell": 1, "qevent": 2, "dcfg": 0}
REGION = {"doorbell": "notify", "qevent": "common", "dcfg": "device"}


def _dw_ops(dws):
    """DW operations of a request: its length for a memory request, else one."""
    if dws[0] >> 24 & 0x1F in (0x00, 0x01) and dws[0] >> 29 != 4:
        return (dws[0] & 0x3FF) or 1024
    return 1


class StuckPortModel:
    """The reference model's view of a stalled port (wraps ``RefModel`` methods while an episode
    runs): which accesses are given up, how many, and DEVICE_NEEDS_RESET."""

    def __init__(self, model, port, mutate=""):
        self.m = model
        self.port = port
        self.region = REGION.get(port)
        # self-test: the model thinks each port holds one event more than it does
        self.capacity = CAPACITY.get(port, 0) + (mutate == "stuck_capacity")
        self.held = 0               # events the port's buffers took
        self.gave_up = 0            # DW operations given up (err_backend_timeout pulses)
        self.config_irqs = 0        # configuration-change interrupts DEVICE_NEEDS_RESET caused
        self._orig = {k: getattr(model, k) for k in ("mem_read", "mem_write", "io_read",
                                                     "io_write")}
        model.mem_read, model.mem_write = self.mem_read, self.mem_write
        model.io_read, model.io_write = self.io_read, self.io_write

    def remove(self):
        for k, f in self._orig.items():
            setattr(self.m, k, f)

    @property
    def stuck(self):
        return self.region is not None and self.held >= self.capacity

    def _give_up(self):
        self.gave_up += 1
        c = self.m.common
        if c.resetting or c.status & 0x40:
            return
        if c.status & 0x04:         # config_notify: a configuration-change interrupt
            self.m.irq_request(0, True)
            self.config_irqs += 1
        c.needs_reset()

    def mem_read(self, dw, be):
        if self.stuck and self.m.region_of(dw)[0] == self.region:
            self._give_up()
            return 0
        return self._orig["mem_read"](dw, be)

    def mem_write(self, dw, be, data, ans):
        if self.stuck and self.m.region_of(dw)[0] == self.region:
            self._give_up()
            return
        n_db, n_ev = len(ans.doorbells), len(ans.qevents)
        self._orig["mem_write"](dw, be, data, ans)
        if self.port == "doorbell":
            self.held += len(ans.doorbells) - n_db
        elif self.port == "qevent":
            self.held += len(ans.qevents) - n_ev

    def _io_waits(self, dw, be):
        return self.port == "reset_ack" and self.m.common.resetting and self.m.io_waits(dw, be)

    def io_read(self, dw, be):
        if self._io_waits(dw, be):
            self._give_up()
            return 0
        return self._orig["io_read"](dw, be)

    def io_write(self, dw, be, data, ans):
        if self._io_waits(dw, be):
            self._give_up()
            return
        self._orig["io_write"](dw, be, data, ans)


class StuckEpisodes:
    """Schedules and runs the episodes of one ``Stress`` run (``due`` / ``run``)."""

    def __init__(self, st):
        self.st = st
        P = st.params
        self.T = P.get("backend_timeout") or max(1024, 2 * P["num_queues"])
        self.K = P.get("cpl_queue_depth", 8)
        self.max_ops = P.get("max_payload_supported", 512) // 4
        self.ports = ["qevent", "doorbell", "tx"]
        if st.be.external_dcfg:
            self.ports.append("dcfg")
        if st.transitional:
            self.ports.append("reset_ack")
        # a deterministic rotation: every port at least once in any run of 1,000 TLPs or more,
        # about one episode per 25,000 TLPs in long runs (a held tx costs 20k to 200k cycles)
        n = max(len(self.ports), st.count // 25000)
        self.gap = max(150, st.count // (n + 1))
        self.next_at = self.gap // 2
        self.index = 0
        # the scoreboard self-test runs them only for its own mutations (CI time)
        self.enabled = not st.mutate or st.mutate.startswith("stuck_")
        self.active = None          # StuckPortModel of the running episode
        self.pulses = 0
        for k in ["stuck_" + p for p in self.ports] + ["stuck_gave_up", "stuck_released",
                                                        "stuck_flr_recoveries", "cfg_timed",
                                                        "cfg_wait_max", "tx_held_cycles",
                                                        "tx_doorbells_passed", "stuck_wall_s"]:
            st.stats[k] = 0
        cocotb.start_soon(self._count_pulses())

    async def _count_pulses(self):
        """Every cycle ``err_backend_timeout`` is high (sampled at falling edges)."""
        sig = self.st.dut.err_backend_timeout
        clk = self.st.dut.clk
        while True:
            await RisingEdge(sig)
            while True:
                await FallingEdge(clk)
                if not sig.value:
                    break
                self.pulses += 1

    def due(self):
        return self.enabled and self.st.stats["tlps"] >= self.next_at

    async def finish(self):
        """At the end of a run: an episode for every port that had none yet (short runs)."""
        while self.enabled and self.index < len(self.ports):
            await self.run()

    # ---------------------------------------------------------------- the episode --
    async def run(self):
        """One episode, on the next port of the rotation."""
        st = self.st
        port = self.ports[self.index % len(self.ports)]
        self.index += 1
        self.next_at = st.stats["tlps"] + self.gap
        st.stats["stuck_" + port] += 1
        st.sb.mark(f"stuck episode: {port}")
        w0, t0 = time.time(), get_sim_time("ns")
        await self._prepare(port)
        if port == "tx":
            await self._tx_hold()
            released = True
        else:
            released = await self._port_stall(port)
        await self._flr_recovery(port, released)
        st.stats["stuck_wall_s"] = round(st.stats["stuck_wall_s"] + time.time() - w0, 1)
        st.log.info("stuck episode %s: %d cycles, %.1f s", port,
                    (get_sim_time("ns") - t0) // CLK_PERIOD_NS, time.time() - w0)

    async def _prepare(self, port):
        """A drained, configured function in D0 with memory decoding on and, for the doorbell
        port, DRIVER_OK (so that doorbells are taken)."""
        st = self.st
        m = st.model
        await st.quiesce()
        if st.virtio_reset_pending:
            m.virtio_reset_done()
            await st.be.ack_reset()
            await ClockCycles(st.dut.clk, 4)
            st.virtio_reset_pending = False
            st.qreset_pending.clear()
        if not m.cfg.d0:
            dw = m.cfg.dword_of("pm_csr")
            await st.send(st.cfg(True, dw, 0x1, m.cfg.read(dw) & ~3))
            await st._cfg_quiet()
        on = 0x7 if st.transitional else 0x6        # Memory (and I/O) Space, Bus Master
        if m.command & on != on:
            await st.send(st.cfg(True, m.cfg.dword_of("command"), 0x1, (m.command | on) & 0xFF))
            await st._cfg_quiet()
        if port in ("doorbell", "tx") and not m.common.status & 0x04:
            await st.driver_init()
        await st.quiesce()
        self.pulses = 0

    async def _drain(self):
        """Requests accepted and answered; doorbells / queue events held by the port are not
        waited for (checked after the release)."""
        st = self.st
        t0 = get_sim_time("ns")
        await with_timeout(st.drv.idle.wait(), 10 * self.T * CLK_PERIOD_NS + 400_000, "ns")
        await st.sb.settle(t0, streams=False)
        # the DW operations of a posted write accepted last may still be executing
        await ClockCycles(st.dut.clk, 16 + self.max_ops)
        st.sb.raise_first()

    async def _port_stall(self, port):
        st = self.st
        rng = st.rng
        be = st.be
        m = st.model
        keep = (st.drv.tx_stall, st.drv.rx_idle)
        st.drv.tx_stall = 0.0           # answer times are defined with tx ready
        held_dcfg = []
        answer = None
        if port == "doorbell":
            be.doorbell_sink.pause(True)
        elif port == "qevent":
            be.qevent_sink.pause(True)
        elif port == "dcfg":
            if rng.random() < 0.5:
                be.dreq_sink.pause(True)            # the request is never taken
            else:                                   # taken, never answered
                answer = be._answer_dcfg

                async def hold(f):
                    held_dcfg.append(f)
                be._answer_dcfg = hold
        self.active = StuckPortModel(m, port, st.mutate)
        st.no_io = port != "reset_ack"
        # the trigger: requests that fill the port's buffers and one that waits T cycles
        await self._before_trigger(port)
        await self.timed_cfg_read(lambda: self._trigger(port))
        # random traffic while the port stays stalled, with timed configuration reads
        for _ in range(rng.randrange(2, 5)):
            for _ in range(rng.randrange(20, 120)):
                await self._random_request(port)
            await self._drain()
            await self.timed_cfg_read(lambda: self._poke(port))
        await self._drain()
        self._check_given_up(port)
        release = port in ("qevent", "dcfg") or rng.random() < 0.6
        if release:
            st.sb.mark(f"stuck episode: {port} released")
            await self._release(port, held_dcfg)
            st.stats["stuck_released"] += 1
        st.drv.tx_stall, st.drv.rx_idle = keep
        if answer is not None:
            be._answer_dcfg = answer
        return release

    async def _before_trigger(self, port):
        """For the queue-event port: a device reset and a driver up to FEATURES_OK, so that
        queues can be enabled (each gives an ENABLE event)."""
        st = self.st
        m = st.model
        if port == "qevent":
            common = m.bar_base + st.regions["common"]["offset"]
            # a device reset, then queues selected, sized and enabled: ENABLE events
            await st.send(st.mem(True, common + 20, 1, 0x1, 0, [0]))
            await self._drain()
            m.virtio_reset_done()
            st.virtio_reset_pending = False
            st.qreset_pending.clear()
            await st.be.ack_reset()
            await ClockCycles(st.dut.clk, 4 + st.nq)
            await st.quiesce(check=False)
            self.active.held = 0
            for v in (0x01, 0x03):
                await st.send(st.mem(True, common + 20, 1, 0x1, 0, [v]))
            for sel in range(4):
                await st.send(st.mem(True, common + 8, 1, 0xF, 0, [sel]))
                await st.send(st.mem(True, common + 12, 1, 0xF, 0,
                                     [(st.feat >> (32 * sel)) & 0xFFFF_FFFF]))
            await st.send(st.mem(True, common + 20, 1, 0x1, 0, [0x0B]))
            await self._drain()

    async def _trigger(self, port):
        """Fill the stalled port's buffers and make one access wait T cycles; returns the requests
        ahead of the timed read (DW operations, TLPs, completion beats)."""
        st = self.st
        m = st.model
        rng = st.rng
        base = m.bar_base
        if port == "doorbell":
            q = self._live_queue()
            n = rng.randrange(2, 5)
            for _ in range(n):
                await st.send(self._doorbell(q, rng.randrange(1 << 16)))
            return n, n, 0
        if port == "qevent":
            common = base + st.regions["common"]["offset"]
            n = 0
            for q in range(min(st.nq, 4)):
                await st.send(st.mem(True, common + 20, 1, 0xC, 0, [q << 16]))
                await st.send(st.mem(True, common + 28, 1, 0x3, 0, [1]))
                n += 2
            for _ in range(2):                      # given up (after T, then at once)
                await st.send(st.mem(True, common + 20, 1, 0x1, 0, [0x0F]))
                n += 1
            return n, n, 0
        if port == "dcfg":
            dev = base + st.regions["device"]["offset"]
            n = rng.randrange(1, 3)
            for i in range(n):
                await st.send(st.mem(False, dev + 4 * i, 1, 0xF, 0, tc=0))
            w = st.width
            return n, n, n * len(dws_to_beats([0] * 4, w))
        # reset_ack: a device reset through the legacy status, then a legacy status read
        await st.send(st.io_tlp(True, 4, 0x4, 0))
        await st.send(st.io_tlp(False, 4, 0x4))
        return 2, 2, 2 * len(dws_to_beats([0] * 4, st.width))

    def _live_queue(self):
        c = self.st.model.common
        for q in range(self.st.nq):
            if c.queues[q].enabled and c.doorbell_live(False):
                return q
        return None

    def _doorbell(self, q, value):
        st = self.st
        m = st.model
        notify = m.bar_base + st.regions["notify"]["offset"]
        q = q or 0
        if m.mult:
            off = q * m.mult
            lane = off & 2
            return st.mem(True, notify + (off & ~3), 1, 0x3 << lane, 0, [value << (8 * lane)])
        return st.mem(True, notify, 1, 0x3, 0, [q | value << 16])

    async def _poke(self, port):
        """A few requests to the stalled structure (all given up at once) before a timed read."""
        st = self.st
        rng = st.rng
        n = rng.randrange(1, 4)
        beats = 0
        for _ in range(n):
            if port == "doorbell":
                await st.send(self._doorbell(rng.randrange(st.nq), rng.randrange(1 << 16)))
            elif port == "qevent":
                off = st.regions["common"]["offset"] + 4 * rng.randrange(14)
                await st.send(st.mem(True, st.model.bar_base + off, 1, 0xF, 0,
                                     [rng.randrange(1 << 32)]))
            elif port == "dcfg":
                off = st.regions["device"]["offset"] + 4 * rng.randrange(4)
                await st.send(st.mem(True, st.model.bar_base + off, 1, 0xF, 0, [0]))
            else:                           # I/O writes are non-posted: a completion each
                await st.send(st.io_tlp(True, rng.randrange(4), 0xF, rng.randrange(1 << 32)))
                beats += len(dws_to_beats([0] * 4, st.width))
        return n, n, beats

    async def _random_request(self, port):
        """Random traffic of the stress's mix (no resets, interrupt bursts or sync points)."""
        st = self.st
        rng = st.rng
        r = rng.random()
        if port == "reset_ack" and rng.random() < 0.3:
            await st.io_access()
        elif r < 0.34:
            await st.valid_mem(False)
        elif r < 0.78:
            await st.valid_mem(True)
        elif r < 0.82:
            await st.valid_cfg(rng.random() < 0.5)
        elif r < 0.86:
            await st.window_access()
        else:
            await st.bad_tlp()

    async def timed_cfg_read(self, burst):
        """At a drained point: the requests of ``burst()`` (which returns the DW operations,
        TLPs and completion beats it sent; the model says whether one was given up),
        then a CfgRd0 of the Vendor / Device ID, timed on the wires from the first beat of the
        burst offered on ``rx`` to the first beat of the read's completion on ``tx``; fails when
        that takes longer than the bound of docs/spec-decisions.md."""
        st = self.st
        dut = st.dut
        w = st.width
        keep = st.drv.rx_idle
        st.drv.rx_idle = 0.0
        # the bound holds with every back-end port but the stuck one ready: the other ports'
        # random back-pressure (and a random stretch of ready low, ``Stress._long_stall``) is off
        # and what they hold has left, else doorbells / queue events from the traffic before,
        # which ``_drain`` does not wait for, hold rx (seed
        # 1049823869793333832706662581017718768129834710383 on m0 with registered DMA ordering
        # counters: doorbells behind random back-pressure held a timed read 362 cycles)
        calm = [sk for n, sk in (("doorbell", st.be.doorbell_sink), ("qevent", st.be.qevent_sink))
                if n != self.active.port]
        for sk in calm:
            sk.calm = True
        quiet = 0
        while quiet < 8:
            await RisingEdge(dut.clk)
            quiet = 0 if any(int(sk.valid.value) for sk in calm) else quiet + 1
        t = {}
        tag = None
        trace = [] if os.environ.get("VPCI_STUCK_TRACE") else None

        b2, l2 = divmod(2, w // 32)             # beat and lane of the completion's DW2 (tag)

        async def watch():
            cyc = 0
            start = idx = None
            while "ans" not in t:
                await FallingEdge(dut.clk)
                cyc += 1
                if trace is not None:
                    trace.append((cyc, int(dut.rx__valid.value), int(dut.rx__ready.value),
                                  int(dut.tx__valid.value), int(dut.tx__ready.value),
                                  int(dut.tx__payload.value) & 0xFFFFFFFF,
                                  int(dut.err_backend_timeout.value)))
                if "off" not in t and dut.rx__valid.value:
                    t["off"] = cyc
                if "off" in t and dut.tx__valid.value and dut.tx__ready.value:
                    d, _, f, _ = unpack_beat(int(dut.tx__payload.value), w)
                    if f:
                        start, idx = (cyc if d >> 24 & 0xFF == 0x4A else None), 0
                    elif idx is not None:
                        idx += 1
                    if start is not None and idx == b2 and tag is not None \
                            and (d >> (32 * l2 + 8) & 0xFF) == tag:
                        t["ans"] = start
        task = cocotb.start_soon(watch())
        sent = []
        drv_send = st.drv.send
        st.drv.send = lambda d: (sent.append(d), drv_send(d))
        try:
            g0, i0 = self.active.gave_up, self.active.config_irqs
            ops, tlps, beats = await burst()
            if self.active.config_irqs > i0:    # its MSI-X write (or INTx message) may go first
                beats += len(dws_to_beats([0] * 5, w))
            # T once when the burst holds the first request given up in the episode (the port
            # then stays flagged stuck); the legacy target can show ready again in between
            g1 = self.active.gave_up
            stuck_new = g1 > g0 and (g0 == 0 or self.active.port == "reset_ack")
        finally:
            st.drv.send = drv_send
        # each TLP ahead takes one cycle per rx beat or per DW operation, whichever is more
        ahead = sum(max(len(dws_to_beats(d, w)), _dw_ops(d)) for d in sent)
        dws = st.cfg(False, 0)
        tag = st.tag & 0xFF
        own = len(dws_to_beats(dws, w)) - 1         # the read's own beats after its first
        bound = 3 + own + ahead + beats \
            + (self.T if stuck_new and st.mutate != "stuck_bound" else 0)
        await st.send(dws)
        limit = (10 * self.T + 2000) * CLK_PERIOD_NS
        try:
            await with_timeout(task, limit, "ns")
        except Exception:
            task.cancel()
            st.sb.fail(f"configuration read behind a stuck port not answered in "
                       f"{10 * self.T + 2000} cycles")
            st.sb.raise_first()
        st.drv.rx_idle = keep
        for sk in calm:
            sk.calm = False
        took = t["ans"] - t["off"]
        if trace is not None and took > bound:
            for row in trace:
                st.log.error("trace %s", row)
        st.stats["cfg_timed"] += 1
        st.stats["cfg_wait_max"] = max(st.stats["cfg_wait_max"], took)
        st.sb.check_cfg_latency(took, bound, f"behind {len(sent)} TLPs taking {ahead} cycles "
                                f"on rx, {beats} completion beats, port found stuck "
                                f"{int(stuck_new)}, T {self.T}")

    def _check_given_up(self, port):
        st = self.st
        c = st.model.common
        st.stats["stuck_gave_up"] += self.pulses
        st.sb.check_gave_up(port, self.pulses, self.active.gave_up,
                            int(st.dut.device_status.value), c)

    async def _release(self, port, held_dcfg):
        st = self.st
        be = st.be
        if port == "doorbell":
            be.doorbell_sink.pause(False)
        elif port == "qevent":
            be.qevent_sink.pause(False)
        elif port == "dcfg":
            be.dreq_sink.pause(False)
            for f in held_dcfg:             # late answers: discarded by the function
                be.dresp_src.put(0xBAD0_0000 | f["addr"])
        elif port == "reset_ack" and st.model.common.resetting:
            st.model.virtio_reset_done()
            st.virtio_reset_pending = False
            st.qreset_pending.clear()
            await be.ack_reset()
        await ClockCycles(st.dut.clk, 8)
        self.active.remove()
        self.active = None
        st.no_io = False
        # what the port held arrives; every expectation is strict again
        await st.quiesce(check=port != "reset_ack")

    async def _tx_hold(self):
        """``tx`` held by the host: single-DW reads interleaved with doorbells; the doorbells
        behind the first K + 1 reads are delivered while tx is held, nothing is given up."""
        st = self.st
        rng = st.rng
        m = st.model
        common = m.bar_base + st.regions["common"]["offset"]
        q = self._live_queue()
        st.drv.hold_tx(True)
        await ClockCycles(st.dut.clk, 2)
        n = self.K + 2 + rng.randrange(3)
        db0 = st.stats["doorbells"]
        want = 0
        for i in range(n):
            await st.send(st.mem(False, common + 20, 1, 0xC, 0))
            ans = await st.send(self._doorbell(q, 0x100 + i))
            if i <= self.K:
                want += len(ans.doorbells)
        # 20k to 25k cycles in the CI's runs; in longer ones 20k to 40k, a fifth up to 200k
        if st.count <= 100_000:
            held = rng.randrange(20_000, 25_000)
        elif rng.random() < 0.2:
            held = rng.randrange(40_000, 200_000)
        else:
            held = rng.randrange(20_000, 40_000)
        await Timer(held * CLK_PERIOD_NS, "ns")
        st.stats["tx_held_cycles"] += held
        got = st.stats["doorbells"] - db0
        st.stats["tx_doorbells_passed"] += got
        st.sb.check_posted_pass(got, want, self.K, self.pulses)
        st.drv.hold_tx(False)
        await st.quiesce()

    async def _flr_recovery(self, port, released):
        """FLR (with the port still stalled when it was not released: it recovers after the
        FLR), then the function must be in its reset state."""
        st = self.st

        async def after_request():
            if not released:
                await ClockCycles(st.dut.clk, 16)
                st.sb.mark(f"stuck episode: {port} released after the FLR")
                self.active.remove()
                self.active = None
                st.no_io = False
                if port == "doorbell":
                    st.be.doorbell_sink.pause(False)
        if not released:
            await self._drain()
        await st.flr(inflight=False, after_request=after_request, drained=not released)
        self.pulses = 0
        await st.sb.check_reset_state()
        await st.quiesce()
        if self.pulses:
            st.sb.fail(f"{self.pulses} requests given up after the FLR that ended a stuck "
                       f"{port} episode")
        st.stats["stuck_flr_recoveries"] += 1
