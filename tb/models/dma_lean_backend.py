"""A lean back-end on the requester port (``dma_req``/``dma_wdata``/``dma_rdata``/``dma_wdone``,
hdl/virtio_pci/dma/layouts.py) for the randomised stress (tb/scenarios/stress_dma.py).

``LeanDmaBackend(dut, desc, rng, on_answer=, on_ready=)``: ``submit(op)`` queues a ``LeanOp``;
requests are offered in submission order, write data follows on
``dma_wdata`` in the same order (it may be offered before its request is accepted); answers are
taken in order, reads from ``dma_rdata`` and writes from ``dma_wdone``, and handed to
``on_answer(op)`` with ``op.data`` (the request's bytes), ``op.tail`` (the bytes past its length
in the last beat), ``op.beats`` and ``op.status``.  ``on_ready(op)`` is called when a write's
request *and* its last data beat have been accepted (``op.t_ready``, the moment from which the
ordering barrier of DMA-16 must count it).

One coroutine drives the four streams, one Python step per clock only while it offers something
or an answer is valid (waiting for an answer costs nothing per cycle); another one wakes on each
change of ``bus_master_allowed``, so that each op can tell (``bme_seen(op)``) whether Bus
Master Enable was on and whether it was off at any time between its first offer and its
answer.
Idle and back-pressure: ``req_idle`` / ``wdata_idle`` are the probabilities of an idle cycle
before each request / data beat, ``rdata_stall`` / ``wdone_stall`` the probabilities that
``ready`` is low in a cycle.  Times are simulation nanoseconds (``get_sim_time``).

``reset()``: a conventional reset of the back-end with the RTL: every valid and ready drops at
once, every op not answered is forgotten (``op.lost``).
"""
import collections

import cocotb
from cocotb.triggers import Event, First, RisingEdge
from cocotb.utils import get_sim_time

__all__ = ["LeanDmaBackend", "LeanOp"]


class LeanOp:
    """One back-end request and what happened to it (times in simulation ns; None: not yet)."""

    def __init__(self, write, addr, length, wdata=b"", *, relaxed=0, no_snoop=0, seq=0):
        self.write = write
        self.addr = addr
        self.length = length
        self.wdata = wdata
        self.relaxed = relaxed
        self.no_snoop = no_snoop
        self.seq = seq
        self.t_submit = self.t_offer = self.t_accept = self.t_data = self.t_ready = None
        self.t_done = None
        self.bme0 = 1
        self.bme_changes0 = 0
        self.data = None
        self.tail = b""
        self.beats = 0
        self.status = None
        self.lost = False

    @property
    def end(self):
        return self.addr + self.length

    def __repr__(self):
        kind = "write" if self.write else "read"
        return f"<DMA {kind} #{self.seq} {self.addr:#x}+{self.length} status={self.status}>"


class LeanDmaBackend:
    def __init__(self, dut, desc, rng, *, on_answer=None, on_ready=None):
        self.dut = dut
        self.clk = dut.clk
        self.rng = rng
        self.on_answer = on_answer or (lambda op: None)
        self.on_ready = on_ready or (lambda op: None)
        p = desc.ports
        self.req_f = p["dma_req__payload"]["fields"]
        rd_f = p["dma_rdata__payload"]["fields"]
        self.width = rd_f["data"][1] - rd_f["data"][0] + 1
        self.B = self.width // 8
        self._st_lo, st_hi = rd_f["status"]
        self._st_mask = (1 << (st_hi - self._st_lo + 1)) - 1
        self.req_idle = 0.0
        self.wdata_idle = 0.0
        self.rdata_stall = 0.0
        self.wdone_stall = 0.0
        self.queue = collections.deque()        # ops not yet offered
        self.wbeats = collections.deque()       # (op, value, last) write beats not yet offered
        self.reads = collections.deque()        # read ops offered, not answered
        self.writes = collections.deque()       # write ops offered, not answered
        self._bme = dut.bus_master_allowed
        self.bme_changes = 0                    # changes of bus_master_allowed seen
        self.bme_now = int(self._bme.value)     # its value after the last change seen
        self.unexpected = []                    # answers with no request (reported at drains)
        self._wake = Event()
        self.idle = Event()
        self.idle.set()
        self._task = None
        self._quiet()
        self._start()
        cocotb.start_soon(self._watch_bme())

    # -- API ----------------------------------------------------------------------------------
    def submit(self, op):
        if not 1 <= op.length <= 65536:
            raise ValueError(f"DMA length must be 1..65536 bytes, not {op.length}")
        op.lost = False
        op.t_submit = get_sim_time("ns")
        self.queue.append(op)
        self.idle.clear()
        self._wake.set()
        return op

    @property
    def pending(self):
        return len(self.queue) + len(self.reads) + len(self.writes)

    def bme_seen(self, op):
        """(on, off): Bus Master Enable was on / off at some time since ``op`` was first
        offered."""
        if self.bme_changes != op.bme_changes0:
            return True, True
        return bool(op.bme0), not op.bme0

    async def _watch_bme(self):
        # an op takes (bme_now, bme_changes) as one pair at its offer: if this coroutine has not
        # run yet for a change of the same time step, the change still counts as after the offer
        sig = self._bme
        while True:
            await sig.value_change
            self.bme_changes += 1
            self.bme_now = int(sig.value)

    def reset(self):
        """Conventional reset: stop driving at once, forget everything not answered."""
        if self._task is not None:
            self._task.cancel()
        self._quiet()
        for q in (self.queue, self.reads, self.writes):
            for op in q:
                op.lost = True
            q.clear()
        self.wbeats.clear()
        self.idle.set()
        self._start()

    # -- the driver ----------------------------------------------------------------------------
    def _quiet(self):
        d = self.dut
        d.dma_req__valid.value = 0
        d.dma_wdata__valid.value = 0
        d.dma_rdata__ready.value = 0
        d.dma_wdone__ready.value = 0

    def _start(self):
        self._wake.clear()
        self._task = cocotb.start_soon(self._run())

    def _field(self, name, value):
        lo, hi = self.req_f[name]
        return (value & ((1 << (hi - lo + 1)) - 1)) << lo

    def _offer_payload(self, op):
        return (self._field("addr", op.addr) | self._field("len_m1", op.length - 1)
                | self._field("write", int(op.write)) | self._field("relaxed", op.relaxed)
                | self._field("no_snoop", op.no_snoop))

    async def _run(self):
        dut, clk, rng, B, W = self.dut, self.clk, self.rng, self.B, self.width
        req_v = dut.dma_req__valid
        req_p = dut.dma_req__payload
        req_r = dut.dma_req__ready
        wd_v = dut.dma_wdata__valid
        wd_p = dut.dma_wdata__payload
        wd_r = dut.dma_wdata__ready
        rd_v = dut.dma_rdata__valid
        rd_p = dut.dma_rdata__payload
        rd_r = dut.dma_rdata__ready
        wn_v = dut.dma_wdone__valid
        wn_p = dut.dma_wdone__payload
        wn_r = dut.dma_wdone__ready
        cur_req = None          # op offered on dma_req
        cur_wb = None           # beat offered on dma_wdata
        r_rdy = w_rdy = 0
        rbuf = []               # data beats of the read being answered
        while True:
            if not (self.queue or self.wbeats or self.reads or self.writes or cur_req
                    or cur_wb):
                if r_rdy:
                    rd_r.value = r_rdy = 0
                if w_rdy:
                    wn_r.value = w_rdy = 0
                self.idle.set()
                self._wake.clear()
                await self._wake.wait()
                await RisingEdge(clk)
                continue
            # ---- drive (between edges)
            if cur_req is None and self.queue and not (self.req_idle
                                                       and rng.random() < self.req_idle):
                cur_req = self.queue.popleft()
                cur_req.bme0 = self.bme_now
                cur_req.bme_changes0 = self.bme_changes
                cur_req.t_offer = get_sim_time("ns")
                req_p.value = self._offer_payload(cur_req)
                req_v.value = 1
                if cur_req.write:
                    data = cur_req.wdata
                    nb = (cur_req.length + B - 1) // B
                    for k in range(nb):
                        self.wbeats.append((cur_req, int.from_bytes(data[k * B:(k + 1) * B],
                                                                    "little"), k == nb - 1))
                    self.writes.append(cur_req)
                else:
                    self.reads.append(cur_req)
            if cur_wb is None and self.wbeats and not (self.wdata_idle
                                                       and rng.random() < self.wdata_idle):
                cur_wb = self.wbeats.popleft()
                wd_p.value = cur_wb[1] | int(cur_wb[2]) << W
                wd_v.value = 1
            nr = int(bool(self.reads) and not (self.rdata_stall
                                               and rng.random() < self.rdata_stall))
            if nr != r_rdy:
                rd_r.value = r_rdy = nr
            nw = int(bool(self.writes) and not (self.wdone_stall
                                                and rng.random() < self.wdone_stall))
            if nw != w_rdy:
                wn_r.value = w_rdy = nw
            if cur_req is None and cur_wb is None and not rbuf and not self.queue \
                    and not self.wbeats and not rd_v.value and not wn_v.value:
                # only answers to wait for: sleep until one is offered
                await First(RisingEdge(rd_v), RisingEdge(wn_v), self._wake.wait())
                self._wake.clear()
                continue
            await RisingEdge(clk)
            # ---- sample (the transfers of this edge)
            if cur_req is not None and req_r.value:
                op = cur_req
                op.t_accept = get_sim_time("ns")
                cur_req = None
                req_v.value = 0
                if op.write and op.t_data is not None:
                    op.t_ready = op.t_accept
                    self.on_ready(op)
            if cur_wb is not None and wd_r.value:
                op, _, last = cur_wb
                cur_wb = None
                wd_v.value = 0
                if last:
                    op.t_data = get_sim_time("ns")
                    if op.t_accept is not None:
                        op.t_ready = op.t_data
                        self.on_ready(op)
            if r_rdy and rd_v.value:
                v = int(rd_p.value)
                rbuf.append((v & ((1 << W) - 1)).to_bytes(B, "little"))
                if v >> W & 1:
                    op = self.reads.popleft()
                    raw = b"".join(rbuf)
                    rbuf = []
                    op.beats = len(raw) // B
                    op.data = raw[:op.length]
                    op.tail = raw[op.length:]
                    op.status = v >> self._st_lo & self._st_mask
                    op.t_done = get_sim_time("ns")
                    self.on_answer(op)
            if w_rdy and wn_v.value:
                op = self.writes.popleft()
                op.status = int(wn_p.value)
                op.t_done = get_sim_time("ns")
                self.on_answer(op)
