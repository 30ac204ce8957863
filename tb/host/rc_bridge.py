"""A cocotbext-pcie ``Device`` whose only function is the RTL (DESIGN.md section 9).

Downstream TLPs that reach the device from the root complex are converted to DW lists and driven on
the RTL's ``rx`` stream; TLPs the RTL sends on ``tx`` are collected beat by beat and sent upstream.
cocotbext-pcie's own config-space models are never used: the RTL is the config space.

Three kinds of upstream TLP are kept on the bridge instead of being forwarded:

* messages (Assert_INTx/Deassert_INTx, ...), which cocotbext-pcie cannot represent, go to
  ``messages`` (DW lists, oldest first); ``wait_message()`` waits for the next one;
* completions whose tag was claimed with ``claim_tag()`` go to that tag's queue; they answer
  requests the testbench injected itself with ``send_dws()`` (see ``tb.env.testbench.TB.raw_request``);
  completions with a tag of at least ``raw_tag_base`` that nobody claimed go to ``stray`` (the root
  complex only uses tags below 32, so they can only answer raw requests, late or twice);
* anything else that cannot be parsed goes to ``unparsed`` and is logged as an error.

Memory requests of the RTL (back-end DMA, ``dma_*`` ports) are logged in ``requests`` (DW lists
with their position in ``tx_tlps``) and offered to the ``request_hooks`` first: a hook that
returns True keeps the request from the fabric (the test answers it itself with ``send_dws``:
withheld, bad or hand-split completions).  ``tx_log`` lists the kind of every upstream TLP in
order, for ordering checks.

Stream timing follows ``amaranth.lib.stream``: a beat moves on a rising edge where ``valid`` and
``ready`` are both high.  ``rx_idle`` is the probability of an idle cycle before each rx beat and
``tx_stall`` the probability that ``tx.ready`` is low in a cycle where ``tx.valid`` is high; both come
from one seedable ``random.Random``.  Python only runs on clock edges while a stream is busy: an
idle ``rx`` waits on a queue and an idle ``tx`` waits for ``tx.valid`` to rise.
"""
import logging
import random

import cocotb
from cocotb.queue import Queue
from cocotb.triggers import Event, RisingEdge

from cocotbext.pcie.core.device import Device

from tb.tlp.convert import beats_to_dws, dws_to_beats, dws_to_tlp, pack_beat, tlp_to_dws, unpack_beat

__all__ = ["RtlBridge", "tlp_kind", "cpl_tag"]


def tlp_kind(dw0):
    """Coarse class of a TLP from its first header DW: 'msg', 'cpl', 'prefix' or 'req'."""
    fmt_type = dw0 >> 24
    if fmt_type & 0x80:
        return "prefix"
    if fmt_type & 0x18 == 0x10:          # Type 10rrr: Msg / MsgD
        return "msg"
    if fmt_type & 0x1E == 0x0A:          # Type 0101x: Cpl, CplD, CplLk, CplDLk
        return "cpl"
    return "req"


def cpl_tag(dws):
    """10-bit tag of a completion given as DWs (T9/T8 live in DW0 bits 23 and 19)."""
    return (dws[2] >> 8 & 0xFF) | (dws[0] >> 19 & 1) << 8 | (dws[0] >> 23 & 1) << 9


class RtlBridge(Device):
    """Connect the RTL ``rx``/``tx`` TLP streams of ``dut`` to the cocotbext-pcie fabric.

    ``width``: data width of the streams in bits.  ``rx_idle``, ``tx_stall``: probabilities in
    [0, 1) of an idle rx cycle and of a tx back-pressure cycle.  ``seed``: seed of the random
    generator (``None``: from the OS).
    """

    def __init__(self, dut, width, *, rx_idle=0.0, tx_stall=0.0, seed=None, raw_tag_base=0x80):
        for name, p in (("rx_idle", rx_idle), ("tx_stall", tx_stall)):
            if not 0.0 <= p < 1.0:
                raise ValueError(f"{name} must be a probability in [0, 1), not {p!r}")
        if width not in (64, 128, 256):
            raise ValueError(f"stream width must be 64, 128 or 256, not {width!r}")
        super().__init__()
        self.log = logging.getLogger("cocotb.tb.bridge")
        self.dut = dut
        self.clk = dut.clk
        self.width = width
        self.rx_idle = rx_idle
        self.tx_stall = tx_stall
        self.rng = random.Random(seed)

        self.messages = []
        self.unparsed = []
        self.stray = []           # completions with a raw tag nobody waits for (any more)
        self.raw_tag_base = raw_tag_base
        self.requests = []        # (tx index, DWs) of every memory request from the RTL
        self.request_hooks = []   # callables(dws) -> True when the test takes the request
        self.tx_log = []          # (kind, DWs) of every upstream TLP, in order
        self.rx_tlps = 0          # TLPs driven into the RTL
        self.tx_tlps = 0          # TLPs received from the RTL
        self._msg_event = Event()
        self._rx_queue = Queue()
        self._up_queue = Queue()
        self._claimed = {}
        self._rx_busy = False

        dut.rx__valid.value = 0
        dut.tx__ready.value = 0
        self._rx_task = cocotb.start_soon(self._run_rx())
        self._tx_task = cocotb.start_soon(self._run_tx())
        self._up_task = cocotb.start_soon(self._run_upstream())

    # -- downstream: fabric -> RTL ----------------------------------------------------------
    async def upstream_recv(self, tlp):
        """Every downstream TLP goes to the RTL, whatever its type or address."""
        self.log.debug("to RTL: %r", tlp)
        tlp.release_fc()
        self.send_dws(tlp_to_dws(tlp))

    def send_dws(self, dws):
        """Queue a TLP given as DWs (header as drawn in the spec, payload little-endian) for rx."""
        if not dws:
            raise ValueError("a TLP has at least one DW")
        self._rx_queue.put_nowait(list(dws))

    @property
    def rx_quiet(self):
        """True when no TLP is waiting for or being driven on rx."""
        return self._rx_queue.empty() and not self._rx_busy

    async def _run_rx(self):
        dut, clk, w = self.dut, self.clk, self.width
        valid, payload, ready = dut.rx__valid, dut.rx__payload, dut.rx__ready
        rng, driven = self.rng, 0
        while True:
            if self._rx_queue.empty():
                if driven:
                    valid.value = driven = 0
                self._rx_busy = False
                dws = await self._rx_queue.get()
                self._rx_busy = True
                # woken by whoever queued the TLP, possibly from a timer that fires at a clock
                # edge; a write made there may or may not be seen by that edge, so drive only
                # from a clock-edge callback (writes there take effect after the edge)
                await RisingEdge(clk)
            else:
                dws = self._rx_queue.get_nowait()
            beats = [pack_beat(*b, w) for b in dws_to_beats(dws, w)]
            i = 0
            while i < len(beats):
                if self.rx_idle and rng.random() < self.rx_idle:
                    if driven:
                        valid.value = driven = 0
                else:
                    payload.value = beats[i]
                    if not driven:
                        valid.value = driven = 1
                await RisingEdge(clk)
                if driven and ready.value:
                    i += 1
            self.rx_tlps += 1

    # -- upstream: RTL -> fabric ------------------------------------------------------------
    async def _run_tx(self):
        dut, clk, w = self.dut, self.clk, self.width
        valid, payload, ready = dut.tx__valid, dut.tx__payload, dut.tx__ready
        rng, rdy = self.rng, 1
        ready.value = 1
        beats = []
        while True:
            await RisingEdge(clk)
            if not valid.value:
                # nothing offered: sleep until the RTL raises valid, then sample at the next edge
                await RisingEdge(valid)
                continue
            if rdy:
                beat = unpack_beat(int(payload.value), w)
                if beat[2] and beats:
                    self._reject(beats, "TLP restarted before its last beat")
                    beats = []
                beats.append(beat)
                if beat[3]:
                    self._dispatch(beats)
                    beats = []
            new = 0 if (self.tx_stall and rng.random() < self.tx_stall) else 1
            if new != rdy:
                ready.value = rdy = new

    def _reject(self, beats, why):
        self.log.error("unparsable TLP from the RTL (%s): %r", why, beats)
        self.unparsed.append((why, beats))

    def _dispatch(self, beats):
        full = (1 << self.width // 32) - 1
        if not beats[0][2]:
            self._reject(beats, "first beat without first flag")
            return
        # DESIGN.md section 3: DWs contiguous from lane 0, only the last beat may be partial
        for i, (_, keep, _, last) in enumerate(beats):
            if keep == 0 or keep & (keep + 1) or (keep != full and not last):
                self._reject(beats, f"beat {i} has keep {keep:#x}")
                return
        dws = beats_to_dws(beats, self.width)
        self.tx_tlps += 1
        kind = tlp_kind(dws[0]) if dws else "empty"
        self.tx_log.append((kind, dws))
        if kind == "req":
            self.requests.append((self.tx_tlps - 1, dws))
            if any(hook(dws) for hook in list(self.request_hooks)):
                return
        if kind == "msg":
            self.log.debug("message from RTL: %s", " ".join(f"{d:08x}" for d in dws))
            self.messages.append(dws)
            self._msg_event.set()
            return
        if kind == "cpl" and len(dws) >= 3:
            tag = cpl_tag(dws)
            if tag in self._claimed:
                self._claimed[tag].put_nowait(dws)
                return
            if tag >= self.raw_tag_base:
                self.log.error("completion for raw tag %#x that nobody waits for: %s", tag,
                               " ".join(f"{d:08x}" for d in dws))
                self.stray.append(dws)
                return
        try:
            tlp = dws_to_tlp(dws)
        except Exception as exc:          # cocotbext-pcie cannot represent it
            self._reject(dws, f"{type(exc).__name__}: {exc}")
            return
        if not tlp.check():
            self._reject(dws, "Tlp.check() failed")
            return
        self._up_queue.put_nowait(tlp)

    async def _run_upstream(self):
        while True:
            tlp = await self._up_queue.get()
            self.log.debug("from RTL: %r", tlp)
            await self.upstream_send(tlp)

    # -- side channels for tests ------------------------------------------------------------
    def claim_tag(self, tag):
        """Divert completions carrying ``tag`` to a queue (returned) instead of the fabric."""
        if tag in self._claimed:
            raise ValueError(f"tag {tag:#x} is already claimed")
        q = Queue()
        self._claimed[tag] = q
        return q

    def release_tag(self, tag):
        self._claimed.pop(tag, None)

    async def wait_message(self):
        """Wait for the next upstream message and return it as DWs."""
        n = len(self.messages)
        while len(self.messages) == n:
            self._msg_event.clear()
            await self._msg_event.wait()
        return self.messages[n]
