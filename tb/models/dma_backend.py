"""A back-end on the requester port of the RTL (``dma_req``/``dma_wdata``/``dma_rdata``/
``dma_wdone``, hdl/virtio_pci/dma/layouts.py) for the cocotb tests.

``DmaBackend(dut, desc)``: ``read(addr, n)`` and ``write(addr, data)`` queue a request and return
a ``DmaOp``; ``await op.wait()`` gives its answer (``op.data``, ``op.status``, ``op.done_cycle``).
Requests go out in call order; write data follows on ``dma_wdata`` in the same order; answers are
matched in order (the contract).  Payload bit positions come from the build's port description
(``desc.ports``), not from the HDL.  ``req_idle`` is the probability of an idle cycle before each
request or data beat, ``ready_prob`` the probability that ``dma_rdata``/``dma_wdone`` are ready;
one seedable ``random.Random``.  Python runs per clock only while something is pending.
"""
import random

import cocotb
from cocotb.queue import Queue
from cocotb.triggers import Event, RisingEdge

__all__ = ["DmaBackend", "DmaOp"]


class DmaOp:
    def __init__(self, write, addr, length, data=b"", relaxed=0, no_snoop=0):
        self.write = write
        self.addr = addr
        self.length = length
        self.wdata = data
        self.relaxed = relaxed
        self.no_snoop = no_snoop
        self.data = None
        self.status = None
        self.accept_cycle = None
        self.data_done_cycle = None
        self.done_cycle = None
        self._ev = Event()

    async def wait(self):
        await self._ev.wait()
        return self

    @property
    def done(self):
        return self._ev.is_set()

    def __repr__(self):
        kind = "write" if self.write else "read"
        return f"<{kind} {self.addr:#x}+{self.length} status={self.status}>"


class DmaBackend:
    def __init__(self, dut, desc, *, rng=None, req_idle=0.0, ready_prob=1.0):
        self.dut = dut
        self.clk = dut.clk
        self.rng = rng or random.Random(0)
        self.req_idle = req_idle
        self.ready_prob = ready_prob
        p = desc.ports
        self.req_f = p["dma_req__payload"]["fields"]
        self.rd_f = p["dma_rdata__payload"]["fields"]
        self.width = self.rd_f["data"][1] - self.rd_f["data"][0] + 1
        self.B = self.width // 8
        self.cycle = 0
        self._reqs = Queue()
        self._wbeats = Queue()
        self._reads = []          # read ops waiting for data, in order
        self._writes = []         # write ops waiting for wdone, in order
        self._pending = Event()
        dut.dma_req__valid.value = 0
        dut.dma_wdata__valid.value = 0
        dut.dma_rdata__ready.value = 0
        dut.dma_wdone__ready.value = 0
        cocotb.start_soon(self._count())
        cocotb.start_soon(self._run_req())
        cocotb.start_soon(self._run_wdata())
        cocotb.start_soon(self._run_answers())

    # -- API --------------------------------------------------------------------------------
    def read(self, addr, length, **kw):
        return self._submit(DmaOp(False, addr, length, **kw))

    def write(self, addr, data, **kw):
        return self._submit(DmaOp(True, addr, len(data), bytes(data), **kw))

    def _submit(self, op):
        if not 1 <= op.length <= 65536:
            raise ValueError(f"DMA length must be 1..65536 bytes, not {op.length}")
        self._reqs.put_nowait(op)
        return op

    @property
    def idle(self):
        return self._reqs.empty() and not self._reads and not self._writes

    # -- drivers ----------------------------------------------------------------------------
    async def _count(self):
        while True:
            await RisingEdge(self.clk)
            self.cycle += 1

    def _field(self, f, name, value):
        lo, hi = f[name]
        return (value & ((1 << (hi - lo + 1)) - 1)) << lo

    async def _run_req(self):
        dut, rng = self.dut, self.rng
        while True:
            op = await self._reqs.get()
            await RisingEdge(self.clk)
            while self.req_idle and rng.random() < self.req_idle:
                await RisingEdge(self.clk)
            f = self.req_f
            dut.dma_req__payload.value = (self._field(f, "addr", op.addr)
                                          | self._field(f, "len_m1", op.length - 1)
                                          | self._field(f, "write", int(op.write))
                                          | self._field(f, "relaxed", op.relaxed)
                                          | self._field(f, "no_snoop", op.no_snoop))
            dut.dma_req__valid.value = 1
            if op.write:
                self._writes.append(op)
                data = op.wdata
                nb = (op.length + self.B - 1) // self.B
                for k in range(nb):
                    self._wbeats.put_nowait((op, int.from_bytes(data[k * self.B:(k + 1) * self.B],
                                                                "little"), k == nb - 1))
            else:
                self._reads.append(op)
            self._pending.set()
            while True:
                await RisingEdge(self.clk)
                if dut.dma_req__ready.value:
                    break
            op.accept_cycle = self.cycle
            dut.dma_req__valid.value = 0

    async def _run_wdata(self):
        dut, rng, W = self.dut, self.rng, self.width
        while True:
            op, data, last = await self._wbeats.get()
            await RisingEdge(self.clk)
            while self.req_idle and rng.random() < self.req_idle:
                await RisingEdge(self.clk)
            dut.dma_wdata__payload.value = data | int(last) << W
            dut.dma_wdata__valid.value = 1
            while True:
                await RisingEdge(self.clk)
                if dut.dma_wdata__ready.value:
                    break
            dut.dma_wdata__valid.value = 0
            if last:
                op.data_done_cycle = self.cycle

    async def _run_answers(self):
        dut, rng, W = self.dut, self.rng, self.width
        st_lo, st_hi = self.rd_f["status"]
        cur = b""
        while True:
            if not self._reads and not self._writes:
                dut.dma_rdata__ready.value = 0
                dut.dma_wdone__ready.value = 0
                self._pending.clear()
                await self._pending.wait()
            r_rdy = int(bool(self._reads) and rng.random() < self.ready_prob)
            w_rdy = int(bool(self._writes) and rng.random() < self.ready_prob)
            dut.dma_rdata__ready.value = r_rdy
            dut.dma_wdone__ready.value = w_rdy
            await RisingEdge(self.clk)
            if r_rdy and dut.dma_rdata__valid.value:
                v = int(dut.dma_rdata__payload.value)
                cur += (v & ((1 << W) - 1)).to_bytes(self.B, "little")
                if v >> W & 1:
                    op = self._reads.pop(0)
                    op.data = cur[:op.length]
                    op.tail = cur[op.length:]
                    op.status = v >> st_lo & ((1 << (st_hi - st_lo + 1)) - 1)
                    op.done_cycle = self.cycle
                    op._ev.set()
                    cur = b""
            if w_rdy and dut.dma_wdone__valid.value:
                op = self._writes.pop(0)
                op.status = int(dut.dma_wdone__payload.value)
                op.done_cycle = self.cycle
                op._ev.set()
