"""Back-end DMA through the front-end (requester port, requirement list section 2.18): requests on
``dma_req``/``dma_wdata`` against cocotbext-pcie's root complex and its host memory, through the
RTL's ``tx``/``rx`` (tb/rc_bridge.py forwards the RTL's MRd/MWr to the fabric)."""
import random

import cocotb
from cocotb.triggers import with_timeout
from cocotbext.axi.address_space import MemoryRegion

from tb.models.dma_backend import DmaBackend
from tb.models.dma_model import StatusRef, byte_enables_ref, parse_request, split_ref
from tb.env.fabric import CLK_PERIOD_NS, PulseCounter
from tb.env.testbench import TB
from tb.tlp.requests import mem_tlp
from tb.host.pcispec import Cmd, Hdr, PcieCap, CapId

#: host memory above 4 GiB (4-DW headers), registered in the root complex's address space
HIGH_BASE = 0x1_2340_0000
REGION = 0x10000


class DmaEnv:
    """TB + back-end + two host memory regions (below and above 4 GiB) with random contents."""

    def __init__(self, dut, *, req_idle=0.2, ready_prob=0.8, **kw):
        self.tb = TB(dut, **kw)
        self.rng = random.Random(cocotb.RANDOM_SEED)
        self.be = DmaBackend(dut, self.tb.desc, rng=self.rng, req_idle=req_idle,
                             ready_prob=ready_prob)

    async def init(self, master=True):
        tb = self.tb
        await tb.init()
        if master:
            await tb.dev.set_master()
        self.low = tb.rc.mem_pool.alloc_region(REGION)
        self.low_base = self.low.get_absolute_address(0)
        self.high = MemoryRegion(REGION)
        tb.rc.mem_address_space.register_region(self.high, HIGH_BASE)
        for region in (self.low, self.high):
            await region.write(0, bytes(self.rng.getrandbits(8) for _ in range(REGION)))
        caps = await tb.capabilities()
        self.pcie = tb.find_cap(caps, CapId.PCIE).offset

    async def host_read(self, addr, n):
        if addr >= HIGH_BASE:
            return await self.high.read(addr - HIGH_BASE, n)
        return await self.low.read(addr - self.low_base, n)

    async def devctl(self, *, mps=None, mrrs=None, set_bits=0, clear_bits=0):
        a = self.pcie + PcieCap.DEVCTL
        v = await self.tb.dev.config_read_word(a)
        if mps is not None:
            v = v & ~(7 << 5) | mps << 5
        if mrrs is not None:
            v = v & ~(7 << 12) | mrrs << 12
        v = (v | set_bits) & ~clear_bits & 0x7FFF
        await self.tb.dev.config_write_word(a, v)

    async def wait_all(self, ops, cycles=200000):
        for op in ops:
            await with_timeout(op.wait(), cycles * CLK_PERIOD_NS, "ns")

    def check_requests(self, *, mrrs, mps, since=0):
        """Every memory request of the RTL keeps the PCIe rules (DMA-02..06, DMA-08)."""
        me = int(self.tb.dev.pcie_id)
        n = 0
        for _, dws in self.tb.bridge.requests[since:]:
            r = parse_request(dws)
            end = r.start + r.nbytes
            assert r.start // 4096 == (end - 1) // 4096, f"{r} crosses a 4 KiB boundary"
            assert (r.hdr_dw == 4) == (r.addr >= 1 << 32), f"header size of {r.addr:#x}"
            assert r.requester_id == me, f"Requester ID {r.requester_id:#06x}, expected {me:#06x}"
            assert (r.length_dw, r.fbe, r.lbe) == byte_enables_ref(r.start, r.nbytes), r
            assert r.nbytes <= (mps if r.write else mrrs), f"{r.nbytes} bytes in {r}"
            n += 1
        return n


def random_ops(env, rng, count, *, max_len=3000):
    ops, expect = [], []
    for i in range(count):
        n = rng.choice([1, 2, 3, 4, 5, 8, 15, 16, 17, 63, 64, 65, 200, 511, 512, 513, 1024, max_len])
        high = rng.random() < 0.4
        base = HIGH_BASE if high else env.low_base
        # reads from the first half of each region, writes to the second: no overlap
        if rng.random() < 0.5:
            a = base + rng.randrange(0, REGION // 2 - n)
            ops.append(env.be.read(a, n))
        else:
            a = base + REGION // 2 + rng.randrange(0, REGION // 2 - n)
            data = bytes(rng.getrandbits(8) for _ in range(n))
            ops.append(env.be.write(a, data))
    return ops


@cocotb.test()
async def dma_read_write_test(dut):
    """DMA-02, DMA-03, DMA-04, DMA-05, DMA-06, DMA-08, DMA-09, DMA-10: random byte-granular reads
    and writes below and above 4 GiB through the root complex (which splits its completions at
    RCB and MPS and interleaves tags), with idle and back-pressure on every stream; read data is
    host memory, written data lands in host memory, every MRd/MWr keeps the PCIe rules."""
    env = DmaEnv(dut)
    await env.init()
    rng = env.rng
    for mps, mrrs in ((0, 2), (1, 0), (1, 5)):
        await env.devctl(mps=mps, mrrs=mrrs)
        since = len(env.tb.bridge.requests)
        ops = random_ops(env, rng, 30)
        await env.wait_all(ops)
        # writes may overlap: the last one of each byte wins (writes leave in order)
        final = {}
        for op in ops:
            if op.write:
                for i, b in enumerate(op.wdata):
                    final[op.addr + i] = b
        for op in ops:
            assert op.status == StatusRef.OK, op
            host = await env.host_read(op.addr, op.length)
            if op.write:
                exp = bytes(final[op.addr + i] for i in range(op.length))
                assert host == exp, f"{op}: host memory differs"
            else:
                assert op.data == host, f"{op}: read data differs"
                assert not any(op.tail), f"{op}: bytes past the length are not zero"
        n = env.check_requests(mrrs=min(128 << mrrs, env.tb.desc.params["dma_max_read"]),
                               mps=128 << mps, since=since)
        assert n >= len(ops)
    env.tb.check_clean()
    assert env.tb.error_count("err_unexpected_cpl") == 0


@cocotb.test()
async def dma_rcb_split_test(dut):
    """DMA-09, DMA-10: the root complex splits every completion at each 64-byte RCB; reads of
    every alignment are reassembled exactly while several tags are in flight."""
    env = DmaEnv(dut, req_idle=0.0, ready_prob=1.0)
    await env.init()
    env.tb.rc.split_on_all_rcb = True
    await env.devctl(mps=1, mrrs=2)
    ops = [env.be.read(env.low_base + off, n) for off in range(0, 8) for n in (60, 130, 700)]
    await env.wait_all(ops)
    for op in ops:
        assert op.status == StatusRef.OK and op.data == await env.host_read(op.addr, op.length), op
    assert env.tb.error_count("err_unexpected_cpl") == 0


@cocotb.test()
async def dma_bus_master_test(dut):
    """DMA-01: with Bus Master Enable clear a read and a write send nothing on tx; the back-end
    gets status BME for both (zeros for the read); after BME is set they work."""
    env = DmaEnv(dut)
    await env.init(master=False)
    before = len(env.tb.bridge.requests)
    rd = env.be.read(env.low_base + 5, 300)
    wr = env.be.write(env.low_base + REGION // 2 + 3, bytes(range(200)))
    await env.wait_all([rd, wr])
    assert rd.status == StatusRef.BME and not any(rd.data), rd
    assert wr.status == StatusRef.BME, wr
    await env.tb.cycles(50)
    assert len(env.tb.bridge.requests) == before, "a memory request left with BME clear"
    assert await env.host_read(wr.addr, 200) != bytes(range(200))
    await env.tb.dev.set_master()
    rd = env.be.read(env.low_base + 5, 300)
    wr = env.be.write(env.low_base + REGION // 2 + 3, bytes(range(200)))
    await env.wait_all([rd, wr])
    assert rd.status == StatusRef.OK and rd.data == await env.host_read(rd.addr, 300)
    assert wr.status == StatusRef.OK and await env.host_read(wr.addr, 200) == bytes(range(200))


def is_mrd(dws):
    return dws[0] >> 24 in (0x00, 0x20)


class HeldReads:
    """Takes the RTL's MRds from the fabric (the host stays silent) until ``answer()``."""

    def __init__(self, env):
        self.env = env
        self.reqs = []
        self.active = True
        env.tb.bridge.request_hooks.append(self._hook)

    def _hook(self, dws):
        if self.active and is_mrd(dws):
            self.reqs.append(parse_request(dws))
            return True
        return False

    def stop(self):
        self.active = False

    def sync_mem(self):
        env = self.env

        class Mem:
            @staticmethod
            def read(a, n):
                if a >= HIGH_BASE:
                    return bytes(env.high[a - HIGH_BASE:a - HIGH_BASE + n])
                base = env.low_base
                return bytes(env.low[a - base:a - base + n])
        return Mem()

    def answer(self, reqs=None, *, mode="random", interleave=True):
        """Send good completions for ``reqs`` (default: all held), split per ``mode``, the
        completions of different tags interleaved at random."""
        from tb.models.dma_model import split_read
        env = self.env
        reqs = list(self.reqs if reqs is None else reqs)
        mps = 128
        streams = [split_read(r, self.sync_mem(), env.rng, rcb=64, mps=mps, mode=mode)
                   for r in reqs]
        while any(streams):
            s = env.rng.choice([s for s in streams if s]) if interleave else \
                next(s for s in streams if s)
            env.tb.bridge.send_dws(s.pop(0))
        for r in reqs:
            if r in self.reqs:
                self.reqs.remove(r)


@cocotb.test()
async def dma_tags_and_attrs_test(dut):
    """DMA-07, DMA-10, DMA-18: with Extended Tag Field Enable clear at most 32 MRds are in flight
    with unique tags below 32; with it set more (unique 8-bit tags); completions answered in
    random order and random legal splits are reassembled; Attr No Snoop / Relaxed Ordering are
    set only when the request asks and Device Control enables them."""
    env = DmaEnv(dut, req_idle=0.0, ready_prob=1.0)
    await env.init()
    tb = env.tb
    n_tags = tb.desc.params["dma_tags"]
    for ext in (False, True):
        await env.devctl(mps=0, mrrs=0, set_bits=(1 << 8) if ext else 0,
                         clear_bits=0 if ext else (1 << 8))
        held = HeldReads(env)
        ops = [env.be.read(env.low_base + 128 * i + 1, 100) for i in range(n_tags + 8)]
        await tb.cycles(400)
        tags = [r.tag for r in held.reqs]
        limit = n_tags if ext else 32
        assert len(tags) == min(limit, len(ops)), f"{len(tags)} MRds in flight (limit {limit})"
        assert len(set(tags)) == len(tags) and max(tags) < limit, tags
        held.stop()
        held.answer(mode="random")
        await env.wait_all(ops)
        for op in ops:
            assert op.status == StatusRef.OK and op.data == await env.host_read(op.addr, 100), op
        tb.bridge.request_hooks.clear()
    # Attr bits (DevCtl bit 4 Relaxed Ordering enable, bit 11 No Snoop enable)
    for enables in (0, (1 << 4) | (1 << 11)):
        await env.devctl(set_bits=enables, clear_bits=((1 << 4) | (1 << 11)) & ~enables)
        since = len(tb.bridge.requests)
        ops = [env.be.read(env.low_base + 64, 8, relaxed=1, no_snoop=1),
               env.be.write(env.low_base + REGION // 2, bytes(8), relaxed=1, no_snoop=1),
               env.be.read(env.low_base + 64, 8),
               env.be.write(env.low_base + REGION // 2, bytes(8))]
        await env.wait_all(ops)
        attrs = [parse_request(d).attr for _, d in tb.bridge.requests[since:]]
        want = [3, 3, 0, 0] if enables else [0, 0, 0, 0]
        assert attrs == want, f"Attr bits {attrs} with Device Control enables {enables:#x}"
    tb.check_clean()


@cocotb.test()
async def dma_write_before_host_completion_test(dut):
    """DMA-16: a back-end write whose request and data were accepted is on tx before the
    completion of a host read that arrives after it (under tx back-pressure)."""
    env = DmaEnv(dut, req_idle=0.0, ready_prob=1.0, tx_stall=0.6)
    await env.init()
    tb = env.tb
    await env.devctl(mps=0)
    for rnd in range(4):
        data = bytes(env.rng.getrandbits(8) for _ in range(2048))
        mark = len(tb.bridge.tx_log)
        op = env.be.write(env.low_base + REGION // 2 + 7 * rnd, data)
        while op.data_done_cycle is None:
            await tb.cycles(1)
        # the host reads a register of the function now (raw, no fabric delay)

        cpl_task = cocotb.start_soon(tb.raw_request(mem_tlp(False, tb.bar_addr)))
        await env.wait_all([op])
        await cpl_task
        log = tb.bridge.tx_log[mark:]
        mwr_idx = [i for i, (k, d) in enumerate(log) if k == "req" and d[0] >> 24 in (0x40, 0x60)]
        cpl_idx = [i for i, (k, d) in enumerate(log) if k == "cpl"]
        assert len(mwr_idx) == len(split_ref(op.addr, 2048, 128)) and cpl_idx, (len(mwr_idx), cpl_idx)
        assert cpl_idx[0] > mwr_idx[-1], \
            f"host completion at {cpl_idx[0]} passed the back-end write (MWrs at {mwr_idx})"
        assert op.status == StatusRef.OK
        assert await env.host_read(op.addr, len(data)) == data


@cocotb.test()
async def dma_host_silent_test(dut):
    """DMA-17, DMA-14: the back-end fills every tag and the host never completes: host config and
    memory reads of the function are still answered; the reads end with TIMEOUT after the completion timeout (Device Status Non-Fatal Error Detected,
    ``err_cpl_timeout``), their tags come back, and later reads work."""
    env = DmaEnv(dut, req_idle=0.0, ready_prob=1.0)
    await env.init()
    tb = env.tb
    timeouts = PulseCounter(dut.clk, dut.err_cpl_timeout)
    held = HeldReads(env)
    ops = [env.be.read(env.low_base + 64 * i, 64) for i in range(32)]
    await tb.cycles(200)
    assert len(held.reqs) == 32
    # the function still answers the host while every tag is outstanding
    for _ in range(3):
        assert await tb.dev.config_read_dword(0) & 0xFFFF == tb.desc.params["vendor_id"]
        await tb.rc.mem_read_dword(tb.bar_addr + tb.desc.regions["common"]["offset"])
    assert not any(op.done for op in ops)
    t0 = env.be.cycle
    await env.wait_all(ops, cycles=40000)
    timeout = tb.desc.params["cpl_timeout_cycles"]
    for op in ops:
        assert op.status == StatusRef.TIMEOUT and not any(op.data), op
    assert env.be.cycle - t0 >= timeout - 400
    assert timeouts.count == 32
    devsta = await tb.dev.config_read_word(env.pcie + PcieCap.DEVSTA)
    assert devsta & 0x2, f"Device Status {devsta:#x}: Non-Fatal Error Detected not set"
    held.stop()
    tb.bridge.request_hooks.clear()
    # the tags stay quarantined for one more timeout, then reads work again
    ops = [env.be.read(env.low_base + 64 * i + 3, 61) for i in range(4)]
    await env.wait_all(ops, cycles=40000)
    for op in ops:
        assert op.status == StatusRef.OK and op.data == await env.host_read(op.addr, 61), op
