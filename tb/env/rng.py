"""Environment of the virtio-rng device tests (hdl/virtio_pci/devices/rng.py): the composed
``TB`` (fabric: root complex and RTL bridge; regions), the Linux-like modern driver
(tb/host/virtio_driver.py) with the split-ring data path (tb/host/virtqueue_driver.py) and the
MSI-X host (tb/host/msix.py).

``HostDmaPort`` serves the device top's requester client ports (``dma_req``, ``dma_wdata``,
``dma_rdata``, ``dma_wdone``; dma/layouts.py) straight from the root complex's host memory.  It
is the stand-in used while the endpoint has no requester of its own: the top has those ports
only then (``RngTB.dma_model``), and once the requester is inside the endpoint the same tests
run with real MRd/CplD/MWr TLPs and the model is not started.
"""
import random

import cocotb
from cocotb.triggers import RisingEdge

from tb.env.testbench import TB
from tb.host.msix import MsixHost
from tb.host.virtio_driver import Status, VirtioPciDriver
from tb.host.virtqueue_driver import DriverVirtqueue

__all__ = ["RngTB", "HostDmaPort"]

DMA_OK = 0


def _field(port, name):
    lo, hi = port["fields"][name]
    return lo, hi - lo + 1


class HostDmaPort:
    """The requester contract's far side, served from host memory, one request at a time, with
    random idle cycles and random ready (probability ``idle``) on its streams.  ``log``: ``(sim time ns, "R"|"W", addr, length)``."""

    def __init__(self, tb, idle=0.2, seed=1):
        self.tb, self.dut, self.idle = tb, tb.dut, idle
        self.rng = random.Random(seed)
        self.w = tb.width
        ports = tb.desc.ports
        self.f_req = {k: _field(ports["dma_req__payload"], k) for k in ("addr", "len_m1", "write")}
        self.f_wd = {k: _field(ports["dma_wdata__payload"], k) for k in ("data", "last")}
        self.f_rd = {k: _field(ports["dma_rdata__payload"], k) for k in ("data", "last", "status")}
        self.log = []
        self.space = tb.rc.mem_address_space
        cocotb.start_soon(self._run())

    @staticmethod
    def _get(v, f):
        lo, n = f
        return (v >> lo) & ((1 << n) - 1)

    async def _run(self):
        d, clk, bpb = self.dut, self.dut.clk, self.w // 8
        d.dma_req__ready.value = 0
        d.dma_wdata__ready.value = 0
        d.dma_rdata__valid.value = 0
        d.dma_wdone__valid.value = 0
        while True:
            d.dma_req__ready.value = 1
            await RisingEdge(clk)
            if not d.dma_req__valid.value:
                continue
            p = int(d.dma_req__payload.value)
            d.dma_req__ready.value = 0
            addr, n = self._get(p, self.f_req["addr"]), self._get(p, self.f_req["len_m1"]) + 1
            write = self._get(p, self.f_req["write"])
            self.log.append((cocotb.utils.get_sim_time("ns"), "W" if write else "R", addr, n))
            nb = -(-n // bpb)
            if write:
                got = b""
                rdy = 1
                d.dma_wdata__ready.value = 1
                while len(got) < nb * bpb:
                    await RisingEdge(clk)
                    if rdy and d.dma_wdata__valid.value:
                        v = int(d.dma_wdata__payload.value)
                        got += self._get(v, self.f_wd["data"]).to_bytes(bpb, "little")
                        last = self._get(v, self.f_wd["last"])
                        assert last == (len(got) >= nb * bpb), "dma_wdata: last on the wrong beat"
                    rdy = int(not (self.idle and self.rng.random() < self.idle))
                    d.dma_wdata__ready.value = rdy
                d.dma_wdata__ready.value = 0
                await self.space.write(addr, got[:n])
                d.dma_wdone__payload.value = DMA_OK
                d.dma_wdone__valid.value = 1
                while True:
                    await RisingEdge(clk)
                    if d.dma_wdone__ready.value:
                        break
                d.dma_wdone__valid.value = 0
            else:
                data = bytes(await self.space.read(addr, n)) + bytes(nb * bpb - n)
                for k in range(nb):
                    while self.idle and self.rng.random() < self.idle:
                        d.dma_rdata__valid.value = 0
                        await RisingEdge(clk)
                    lo_d, lo_l, lo_s = (self.f_rd[x][0] for x in ("data", "last", "status"))
                    word = int.from_bytes(data[k * bpb:(k + 1) * bpb], "little")
                    d.dma_rdata__payload.value = (word << lo_d) | (int(k == nb - 1) << lo_l) \
                        | (DMA_OK << lo_s)
                    d.dma_rdata__valid.value = 1
                    while True:
                        await RisingEdge(clk)
                        if d.dma_rdata__ready.value:
                            break
                d.dma_rdata__valid.value = 0


class RngTB(TB):
    """The fabric + driver + MSI-X + the request queue.  ``await start(size=...)`` does what Linux's
    virtio_pci probe and virtio_rng's probe do: reset, features, MSI-X vectors (config 0, queue
    1), the request queue in host memory, DRIVER_OK."""

    def __init__(self, dut, **kw):
        super().__init__(dut, **kw)
        self.dma_model = None
        if "dma_req__payload" in self.desc.ports:
            self.dma_model = HostDmaPort(self)
        self.drv = self.msix = self.rq = None
        self.targets = []

    async def set_vq_state(self, queue, idx):
        """What a vDPA host does before enabling a restored queue: the engine's ``qstart``."""
        f = self.desc.ports["qstart__payload"]["fields"]
        await RisingEdge(self.dut.clk)
        self.dut.qstart__payload.value = (idx << f["idx"][0]) | (queue << f["queue"][0])
        self.dut.qstart__valid.value = 1
        await RisingEdge(self.dut.clk)
        self.dut.qstart__valid.value = 0

    def irq_count(self, v=1):
        t = self.targets[v]
        return self.msix.delivered[(t.addr, t.data)]

    async def start(self, *, size=16, features=None, first_idx=0, init=True):
        if init:
            await self.init()
        self.drv = drv = VirtioPciDriver(self)
        await drv.probe()
        await drv.reset()
        await drv.add_status(Status.ACKNOWLEDGE)
        await drv.add_status(Status.DRIVER)
        await drv.finalize_features(features)
        self.msix = mx = MsixHost(self)
        await mx.set_control(enable=True, fmask=True)
        self.targets = mx.alloc(2)
        await mx.program(self.targets, masked=True)
        await mx.set_control(fmask=False)
        for v in range(2):
            await mx.mask(v, False)
        await drv.config_vector(0)
        self.rq = await DriverVirtqueue.create(drv, self.rc, 0, size=size, vector=1,
                                               irq_count=self.irq_count, first_idx=first_idx)
        if first_idx:
            await self.set_vq_state(0, first_idx)
        await drv.enable_vq(0)
        await drv.add_status(Status.DRIVER_OK)
        await self.flush()
        return self.rq
