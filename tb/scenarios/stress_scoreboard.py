"""The checking half of the randomised stress (tb/scenarios/stress.py drives the traffic).

``Scoreboard`` holds what the reference model (``tb.models.ref_model.RefModel``) expects and
matches everything the function sends against it: every upstream TLP (completions DW for DW
under their masks, MSI-X writes and INTx messages against ``IrqModel``), every doorbell and queue
event, the back-end outputs at drained points (``check_outputs``) and the queue rows the back-end
reads (``check_rows``).  The driver (``Stress``) calls ``expect`` for every request it sends,
``settle`` when the pipeline is drained, and the ``check_*`` methods at its sync points; it never
compares anything itself.  Errors are collected in ``errors`` (the first one is raised by the
driver as ``StressError``); ``VPCI_STRESS_HISTORY`` prints that many TLPs / events before the
first error.

Self-test (tb/integration/test_stress.py ``test_stress_scoreboard_fails``): ``VPCI_STRESS_MUTATE``
makes an *expectation* wrong on purpose (``mutate``), so that each check is shown to fail.
"""
import os

from cocotb.triggers import ClockCycles
from cocotb.utils import get_sim_time

from tb.models.virtio_backend import unpack_fields

__all__ = ["Scoreboard", "StressError"]


class StressError(AssertionError):
    pass


class Scoreboard:
    """Expectation queues and checks.  ``stats`` is the driver's counter dict (the scoreboard
    counts completions, messages, doorbells, queue events, dropped completions and rows)."""

    def __init__(self, dut, desc, model, be, stats, seed, *, log, mutate=""):
        self.dut = dut
        self.model = model
        self.be = be
        self.stats = stats
        self.seed = seed
        self.log = log
        self.nq = desc.params["num_queues"]
        self.exp_tlps = []          # (dws, masks, request, hook, optional); list with head index
        self.exp_head = 0
        self.exp_db = []
        self.db_head = 0
        self.exp_qev = []
        self.qev_head = 0
        self.errors = []
        self.last_tlp = []          # history for VPCI_STRESS_HISTORY
        self._f_db = desc.ports["doorbell__payload"]["fields"]
        self._f_qev = desc.ports["qevent__payload"]["fields"]
        be.doorbell_sink.on_item = self.on_doorbell
        self._orig_qev = be.qevent_sink.on_item
        be.qevent_sink.on_item = self.on_qevent
        self.mutate = mutate
        self._mut_n = 0
        if mutate == "errbits":             # the model forgets the error status bits
            model._error_bits = lambda *a: None
        elif mutate == "msix":              # the model expects the wrong message data
            entry = model.entry
            model.entry = lambda v: (entry(v)[0], entry(v)[1] ^ 1)
        elif mutate.startswith("legacy_"):
            self._mutate_legacy(mutate)

    # ---------------------------------------------------------------- errors, history --
    def fail(self, msg):
        full = f"{msg} (seed {self.seed}, TLP #{self.stats['tlps']}, t={get_sim_time('ns')} ns)"
        hist = int(os.environ.get("VPCI_STRESS_HISTORY", "0"))    # TLPs to print before it
        if not self.errors and hist > 0:
            for dws in self.last_tlp[-hist:]:
                self.log.error("  history: %s", dws if isinstance(dws, str)
                               else " ".join(f"{d:08x}" for d in dws))
        self.errors.append(full)
        self.log.error(full)

    def raise_first(self):
        if self.errors:
            raise StressError(self.errors[0])

    def mark(self, what):
        """An event in the history (``VPCI_STRESS_HISTORY``) between the TLPs."""
        self.last_tlp.append(f"{what} at {get_sim_time('ns')} ns")

    def sent(self, dws):
        self.last_tlp.append(dws)
        if len(self.last_tlp) > 200:
            del self.last_tlp[:100]

    # ---------------------------------------------------------------- expectations --
    def expect(self, dws, ans, hook=None):
        """The model's answer ``ans`` to request ``dws``: its upstream TLPs (``hook(dws)`` is
        called with the last one when it matched), doorbells and queue events are expected in
        that order."""
        if self.mutate:
            self._mutate(ans)
        for i, (t, m) in enumerate(ans.tlps):
            self.exp_tlps.append((t, m, dws, hook if i == len(ans.tlps) - 1 else None, False))
        self.exp_db.extend(ans.doorbells)
        self.exp_qev.extend(ans.qevents)

    def irq_request(self, queue, config):
        """The model hears of a back-end interrupt request (``RefModel.irq_request``); returns
        whether it is allowed (counted in ``irq_dropped`` when not)."""
        if self.mutate == "irq_lost":
            return True
        ok, _ = self.model.irq_request(queue, config)
        if not ok:
            self.stats["irq_dropped"] += 1
        return ok

    def expected_so_far(self):
        """A position in the upstream TLP expectations (``answered_since``)."""
        return len(self.exp_tlps)

    def answered_since(self, pos):
        """Whether an upstream TLP expected after position ``pos`` came."""
        return self.exp_head > pos

    def tlps_left(self):
        """Expected upstream TLPs still to come, not counting optional ones (a reset may have
        dropped them)."""
        return sum(1 for e in self.exp_tlps[self.exp_head:] if not e[4])

    def all_optional(self):
        """Every completion still expected may or may not come (a reset with requests in
        flight)."""
        for i in range(self.exp_head, len(self.exp_tlps)):
            self.exp_tlps[i] = self.exp_tlps[i][:4] + (True,)

    def forget_all(self):
        """A conventional reset: whatever was not out before it never comes."""
        self.stats["cpl_dropped"] += len(self.exp_tlps) - self.exp_head
        self.exp_tlps.clear()
        self.exp_head = 0
        self.exp_db.clear()
        self.db_head = 0
        self.exp_qev.clear()
        self.qev_head = 0

    # ---------------------------------------------------------------- matching --
    def on_tx(self, dws):
        """Every upstream TLP (``LeanDriver.on_tlp``)."""
        top = dws[0] >> 24
        if top in (0x40, 0x60):
            self._on_msix(dws)
            return
        if top == 0x34:
            self._on_intx(dws)
            return
        while True:
            if self.exp_head >= len(self.exp_tlps):
                self.fail(f"unexpected upstream TLP {[hex(d) for d in dws]}")
                return
            want, masks, req, hook, optional = self.exp_tlps[self.exp_head]
            self.exp_head += 1
            ok = len(dws) == len(want)
            if ok:
                for i, (g, w) in enumerate(zip(dws, want)):
                    m = 0xFFFF_FFFF if masks is None else masks[i]
                    if (g ^ w) & m:
                        ok = False
                        break
            if ok or not optional:
                break
            self.stats["cpl_dropped"] += 1   # a completion a reset may drop: not sent
        self.stats["completions"] += 1
        if not ok:
            self.fail(f"upstream TLP {[hex(d) for d in dws]} != expected {[hex(d) for d in want]}"
                      f" (masks {masks and [hex(m) for m in masks]}) for request "
                      f"{[hex(d) for d in req]}")
        elif hook:
            hook(dws)

    def _msg_rid(self):
        return self.model.completer_id << 16

    def _on_msix(self, dws):
        self.stats["msix_msgs"] += 1
        d = dws
        if len(d) == 4 and d[0] == 0x4000_0001:
            addr, data = d[2], d[3]
        elif len(d) == 5 and d[0] == 0x6000_0001:
            addr, data = d[2] << 32 | d[3], d[4]
            if not d[2]:
                self.fail(f"MSI-X write with a 4-DW header for a 32-bit address "
                          f"{[hex(x) for x in d]}")
        else:
            self.fail(f"malformed MSI-X write {[hex(x) for x in d]}")
            return
        if d[1] != self._msg_rid() | 0x0F:
            self.fail(f"MSI-X write requester/tag/byte enables {d[1]:#x}, expected "
                      f"{self._msg_rid() | 0x0F:#x}")
        why = self.model.msix_message(addr, data)
        if why:
            self.fail(why)

    def _on_intx(self, d):
        self.stats["intx_msgs"] += 1
        code = d[1] & 0xFF
        if len(d) != 4 or d[0] != 0x3400_0000 or d[2] or d[3] or code not in (0x20, 0x24) \
                or d[1] & 0xFFFF_FF00 != self._msg_rid():
            self.fail(f"malformed INTx message {[hex(x) for x in d]}")
            return
        why = self.model.intx_message(code == 0x20)
        if why:
            self.fail(why)

    def on_doorbell(self, value):
        f = unpack_fields(value, self._f_db)
        got = (f["queue"], f["value"], f.get("wide", 0))
        self.stats["doorbells"] += 1
        if self.db_head >= len(self.exp_db):
            self.fail(f"unexpected doorbell {got}")
            return
        want = self.exp_db[self.db_head]
        self.db_head += 1
        if got != want:
            self.fail(f"doorbell {got} != expected {want}")

    def on_qevent(self, value):
        f = unpack_fields(value, self._f_qev)
        got = (f["queue"], f["kind"])
        self.stats["qevents"] += 1
        if self.qev_head >= len(self.exp_qev):
            self.fail(f"unexpected queue event {got}")
        else:
            want = self.exp_qev[self.qev_head]
            self.qev_head += 1
            if got != want:
                self.fail(f"queue event {got} != expected {want}")
        self._orig_qev(value)

    # ---------------------------------------------------------------- drained points --
    async def settle(self, t0):
        """With every request accepted (the driver waited for that since ``t0`` ns): wait until
        every expected upstream TLP, doorbell and queue event came; fail on a missing TLP, then
        consider the optional ones not sent."""
        limit = 4000
        while limit:
            if (not self.tlps_left() and self.db_head == len(self.exp_db)
                    and self.qev_head == len(self.exp_qev)):
                break
            await ClockCycles(self.dut.clk, 8)
            limit -= 1
        await ClockCycles(self.dut.clk, 16)
        if self.tlps_left():
            w, _, req, _, _ = next(e for e in self.exp_tlps[self.exp_head:] if not e[4])
            self.fail(f"{self.tlps_left()} expected upstream TLPs missing "
                      f"since {t0} ns; first {[hex(x) for x in w]} for {[hex(x) for x in req]}")
        self.stats["cpl_dropped"] += len(self.exp_tlps) - self.exp_head
        self.exp_head = len(self.exp_tlps)

    def check_irq(self, pba, rcv_before):
        """The interrupt state at a drained point (``RefModel.resolve``: owed messages, PBA bits
        read through the checked path, or ``None`` when it could not be read)."""
        for e in self.model.resolve(pba, rcv_before):
            self.fail(e)

    def check_streams(self):
        """At a drained point: no doorbell or queue event missing; the queues are compacted."""
        if self.db_head != len(self.exp_db):
            self.fail(f"doorbells missing: {self.exp_db[self.db_head:][:8]}")
        if self.qev_head != len(self.exp_qev):
            self.fail(f"queue events missing: {self.exp_qev[self.qev_head:][:8]}")
        del self.exp_tlps[:self.exp_head]
        self.exp_head = 0
        del self.exp_db[:self.db_head]
        self.db_head = 0
        del self.exp_qev[:self.qev_head]
        self.qev_head = 0

    def check_outputs(self):
        """``reset_req``, ``driver_ok``, ``features_ok``, ``device_status``, ``driver_features``
        and ``legacy`` against the model."""
        c = self.model.common
        d = self.dut
        rr = int(d.reset_req.value)
        if rr != int(c.resetting):
            self.fail(f"reset_req {rr}, model resetting {c.resetting}")
        dok = int(d.driver_ok.value)
        want = int(bool(c.status & 0x04) and not c.resetting)
        if dok != want:
            self.fail(f"driver_ok {dok}, model {want}")
        fok = int(d.features_ok.value)
        if not c.resetting and fok != int(bool(c.status & 0x08)):
            self.fail(f"features_ok {fok}, model status {c.status:#x}")
        if not c.resetting and int(d.device_status.value) != c.status:
            self.fail(f"device_status {int(d.device_status.value):#x}, model {c.status:#x}")
        # the back-end's view of the negotiation: a legacy driver's features apply at once
        if not c.resetting and int(d.driver_features.value) != c.negotiated:
            self.fail(f"driver_features {int(d.driver_features.value):#x}, model "
                      f"{c.negotiated:#x} (status {c.status:#x}, legacy {int(c.legacy)})")
        if int(d.legacy.value) != int(c.legacy) and not c.resetting:
            self.fail(f"legacy output {int(d.legacy.value)}, model {int(c.legacy)}")

    async def check_rows(self):
        """The queue table as the back-end reads it (``qrd_*``: size, vector and the three ring
        addresses, legacy layout included) against the model, for every queue (the first 8)."""
        c = self.model.common
        for q in range(min(self.nq, 8)):
            row = await self.be.read_queue(q)
            mq = c.queues[q]
            want = dict(size=mq.size, vector=mq.vector, desc=mq.desc, driver=mq.driver,
                        device=mq.device)
            got = {k: row[k] for k in want}
            self.stats["rows_checked"] += 1
            if got != want:
                self.fail(f"queue {q} row on qrd {got} != model {want}")

    # ---------------------------------------------------------------- self-test --
    def _mutate(self, ans):
        mu = self.mutate
        self._mut_n += 1
        if mu == "data":
            for i, (t, m) in enumerate(ans.tlps):
                if m and len(t) > 3 and m[3] & 1:
                    t = list(t)
                    t[3] ^= 1
                    ans.tlps[i] = (t, m)
                    break
        elif mu == "status" and ans.tlps and self._mut_n % 7 == 0:
            t, m = ans.tlps[0]
            ans.tlps[0] = ([t[0], t[1] ^ (1 << 13)] + list(t[2:]), m)
        elif mu == "drop_cpl" and ans.tlps and self._mut_n % 50 == 0:
            ans.tlps.pop()
        elif mu == "extra_cpl" and ans.tlps and self._mut_n % 50 == 0:
            ans.tlps.append(ans.tlps[-1])
        elif mu == "drop_db" and ans.doorbells:
            ans.doorbells.pop()
        elif mu == "dup_db" and ans.doorbells:
            ans.doorbells.append(ans.doorbells[-1])
        elif mu == "qevent" and ans.qevents:
            ans.qevents.pop()

    def _mutate_legacy(self, mu):
        """Wrong legacy-header expectations (transitional builds): a device area one page off
        (``legacy_layout``), legacy doorbells forgotten (``legacy_db``), legacy writes after a
        modern FEATURES_OK taken (``legacy_mixing``)."""
        m = self.model
        orig = m.io_write

        def io_write(dw, be, data, ans):
            c = m.common
            fok = c.status & 0x08
            if mu == "legacy_mixing":
                c.status &= ~0x08
            n_ev = len(ans.qevents)
            orig(dw, be, data, ans)
            if mu == "legacy_mixing" and fok and not c.resetting:
                c.status |= 0x08
            if mu == "legacy_db" and ans.legacy_doorbells:
                del ans.doorbells[-ans.legacy_doorbells:]
            if mu == "legacy_layout":
                for q, kind in ans.qevents[n_ev:]:
                    if kind == 0:
                        c.queues[q].device += 4096
        m.io_write = io_write
