"""Back-end DMA through the front-end (requester port, requirement list section 2.18): requests on
``dma_req``/``dma_wdata`` against cocotbext-pcie's root complex and its host memory, through the
RTL's ``tx``/``rx`` (tb/host/rc_bridge.py forwards the RTL's MRd/MWr to the fabric)."""
import random

import cocotb
from cocotb.triggers import with_timeout
from cocotbext.axi.address_space import MemoryRegion

from tb.env.fabric import CLK_PERIOD_NS, PulseCounter
from tb.env.testbench import TB
from tb.models.dma_model import StatusRef, byte_enables_ref, parse_request, split_read, split_ref
from tb.host.pcispec import CapId, Hdr, PcieCap
from tb.models.dma_backend import DmaBackend
from tb.tlp.requests import mem_tlp

#: host memory above 4 GiB (4-DW headers), registered in the root complex's address space
HIGH_BASE = 0x1_2340_0000
REGION = 0x10000


class DmaEnv:
    """TB + back-end + two host memory regions (below and above 4 GiB) with random contents."""

    def __init__(self, dut, *, req_idle=0.2, ready_prob=0.8, tb=None, **kw):
        self.tb = tb or TB(dut, **kw)
        self.rng = random.Random(cocotb.RANDOM_SEED)
        self.be = DmaBackend(dut, self.tb.desc, rng=self.rng, req_idle=req_idle,
                             ready_prob=ready_prob)

    async def init(self, master=True):
        tb = self.tb
        await tb.init()
        if master:
            await tb.dev.set_master()
        await self.setup_memory()

    async def setup_memory(self):
        tb = self.tb
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
    ops = []
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


def cpl_for(r, **kw):
    from tb.models.dma_model import completion
    return completion(r, completer_id=0, **kw)


STS_MASTER_PARITY, STS_TARGET_ABORT_RX, STS_MASTER_ABORT_RX, STS_PARITY = 1 << 8, 1 << 12, 1 << 13, 1 << 15
DEVSTA_ERRS = 0xF


async def save_setup(env):
    """The BAR pair and Command register, to put back after a reset (what a driver restores)."""
    dev = env.tb.dev
    bar = 0x10 + 4 * env.tb.mem_bar_index
    return bar, [await dev.config_read_dword(bar), await dev.config_read_dword(bar + 4)], \
        await dev.config_read_word(0x04)


async def restore_setup(env, saved):
    bar, words, cmd = saved
    dev = env.tb.dev
    await dev.config_write_dword(bar, words[0])
    await dev.config_write_dword(bar + 4, words[1])
    await dev.config_write_word(0x04, cmd)


async def clear_errors(env):
    tb = env.tb
    await tb.dev.config_write_word(Hdr.STATUS, 0xF900)
    await tb.dev.config_write_word(env.pcie + PcieCap.DEVSTA, DEVSTA_ERRS)




@cocotb.test()
async def dma_bad_completions_test(dut):
    """DMA-11, DMA-12, DMA-13: the bridge answers a back-end read with UR, CA, poisoned data, a
    wrong byte count or too much data, and injects stray completions (unknown tag, another
    Requester ID): the back-end sees that read end with the matching status and zeros, the
    config space shows the right error bits (Received Master Abort, Received Target Abort,
    Master Data Parity Error + Detected Parity Error + Non-Fatal, Fatal for malformed,
    Correctable for unexpected), and a read after each works."""
    env = DmaEnv(dut, req_idle=0.0, ready_prob=1.0)
    await env.init()
    tb = env.tb
    cmd = await tb.dev.config_read_word(0x04)
    await tb.dev.config_write_word(0x04, cmd | 1 << 6)       # Parity Error Response
    cases = [
        ("ur", dict(status=1), StatusRef.UR, STS_MASTER_ABORT_RX, 0),
        ("ca", dict(status=4), StatusRef.CA, STS_TARGET_ABORT_RX, 0),
        ("poisoned", dict(ep=True, data=True), StatusRef.POISONED,
         STS_MASTER_PARITY | STS_PARITY, 1 << 1),
        ("byte_count", dict(data=True, byte_count_delta=4), StatusRef.MALFORMED, 0, 1 << 2),
        ("too_much", dict(data=True, extra=8), StatusRef.MALFORMED, 0, 1 << 2),
    ]
    for name, how, want, sts_bits, devsta_bits in cases:
        await clear_errors(env)
        held = HeldReads(env)
        op = env.be.read(env.low_base + 0x100 + 5, 90)
        while not held.reqs:
            await tb.cycles(10)
        r = held.reqs.pop()
        kw = {}
        if how.get("data"):
            data = await env.host_read(r.start, r.nbytes)
            kw["data"] = data + bytes(how.get("extra", 0))
        if "byte_count_delta" in how:
            kw["byte_count"] = r.nbytes + how["byte_count_delta"]
        for k in ("status", "ep"):
            if k in how:
                kw[k] = how[k]
        tb.bridge.send_dws(cpl_for(r, **kw))
        await env.wait_all([op])
        assert op.status == want and not any(op.data), f"{name}: {op}"
        sts = await tb.dev.config_read_word(Hdr.STATUS)
        devsta = await tb.dev.config_read_word(env.pcie + PcieCap.DEVSTA)
        assert sts & 0xF900 == sts_bits, f"{name}: Status {sts:#06x}, expected {sts_bits:#06x}"
        assert devsta & DEVSTA_ERRS == devsta_bits, f"{name}: Device Status {devsta:#x}"
        held.stop()
        tb.bridge.request_hooks.clear()
        ok = env.be.read(env.low_base + 0x300, 40)
        await env.wait_all([ok])
        assert ok.status == StatusRef.OK and ok.data == await env.host_read(ok.addr, 40)
    # stray completions: unknown tag, a Requester ID of another function
    await clear_errors(env)
    uc0 = tb.error_count("err_unexpected_cpl")
    from tb.models.dma_model import MemReq
    me = int(tb.dev.pcie_id)
    ghost = MemReq(write=False, addr=env.low_base, length_dw=1, fbe=0xF, lbe=0, tag=5,
                   requester_id=me, attr=0, tc=0, hdr_dw=3, start=env.low_base, nbytes=4)
    tb.bridge.send_dws(cpl_for(ghost, data=b"\xee" * 4, tag=77))
    tb.bridge.send_dws(cpl_for(ghost, data=b"\xee" * 4, requester_id=me ^ 0x100))
    await tb.rx_drained(20)
    assert tb.error_count("err_unexpected_cpl") - uc0 == 2
    devsta = await tb.dev.config_read_word(env.pcie + PcieCap.DEVSTA)
    assert devsta & DEVSTA_ERRS == 1, f"stray: Device Status {devsta:#x}"
    assert env.be.idle
    tb.check_clean()


async def held_reads(env, n):
    """``n`` reads of 256 bytes whose MRds the host holds unanswered: (HeldReads, ops)."""
    held = HeldReads(env)
    ops = [env.be.read(env.low_base + 256 * i, 256) for i in range(n)]
    while len(held.reqs) < n:
        await env.tb.cycles(10)
    held.stop()
    return held, ops


async def reads_work(env, base, n, size, step):
    """``n`` new reads of ``size`` bytes from ``env.low_base + base`` end OK with host data."""
    ok = [env.be.read(env.low_base + base + step * i, size) for i in range(n)]
    await env.wait_all(ok)
    for op in ok:
        assert op.status == StatusRef.OK and op.data == await env.host_read(op.addr, size), op


@cocotb.test()
async def dma_flr_in_flight_test(dut):
    """DMA-19: an FLR while back-end reads wait for their completions: every read ends with
    RESET and zeros, completions the host sends afterwards for them are discarded as unexpected
    and reach no one; after the function is set up again new reads work."""
    env = DmaEnv(dut, req_idle=0.0, ready_prob=1.0)
    await env.init()
    tb = env.tb
    held, ops = await held_reads(env, 6)
    saved = await save_setup(env)
    a = env.pcie + PcieCap.DEVCTL
    await tb.dev.config_write_word(a, await tb.dev.config_read_word(a) | 1 << 15)
    await env.wait_all(ops)
    for op in ops:
        assert op.status == StatusRef.RESET and not any(op.data), op
    uc0 = tb.error_count("err_unexpected_cpl")
    held.answer()
    await tb.rx_drained(40)
    assert tb.error_count("err_unexpected_cpl") - uc0 >= 6
    assert env.be.idle
    # the function again: BAR, decode, bus mastering (what a driver does after an FLR)
    await restore_setup(env, saved)
    await reads_work(env, 0x1000, 8, 77, 7)


@cocotb.test()
async def dma_reset_in_flight_test(dut):
    """DMA-19: a conventional reset while back-end reads wait for completions: completions the
    host sends after it for those reads are discarded as unexpected (nothing reaches the
    back-end) once the function is enumerated again, and new reads work."""
    env = DmaEnv(dut, req_idle=0.0, ready_prob=1.0)
    await env.init()
    tb = env.tb
    held, ops = await held_reads(env, 4)
    saved = await save_setup(env)
    await tb.reset()
    env.be.forget()
    await restore_setup(env, saved)
    uc0 = tb.error_count("err_unexpected_cpl")
    held.answer()
    await tb.rx_drained(60)
    assert tb.error_count("err_unexpected_cpl") - uc0 >= 4
    assert not any(op.done for op in ops)
    assert int(dut.dma_rdata__valid.value) == 0, "data from before the reset offered"
    await reads_work(env, 0x2000, 4, 33, 5)


@cocotb.test()
async def dma_interrupt_after_data_test(dut):
    """DMA-15: under tx back-pressure the back-end writes a used ring (several MWrs, posted in
    order), waits for dma_wdone OK and requests the queue interrupt: the MSI-X write leaves
    after every MWr of the ring write, and the ring data is in host memory when it arrives."""
    from tb.env.interrupts import linux_init
    tbx = TB(dut, backend={}, interrupts=True, tx_stall=0.5)
    env = DmaEnv(dut, tb=tbx, req_idle=0.0, ready_prob=1.0)
    await tbx.start()
    await linux_init(tbx, strategy="msix_per_vq")
    await tbx.dev.set_master()
    await env.setup_memory()
    await env.devctl(mps=0)
    for rnd in range(5):
        ring = env.low_base + REGION // 2 + 0x400 * rnd + 2 * rnd
        data = bytes(env.rng.getrandbits(8) for _ in range(600))
        w0 = len(tbx.writes)
        mark = len(tbx.bridge.tx_log)
        op = env.be.write(ring, data)
        await env.wait_all([op])
        assert op.status == StatusRef.OK
        await tbx.irq(("q", 0))
        await tbx.wait_writes(w0 + len(split_ref(ring, 600, 128)) + 1)
        log = tbx.bridge.tx_log[mark:]
        mwrs = [parse_request(d) for k, d in log if k == "req" and d[0] >> 24 in (0x40, 0x60)]
        ring_idx = [i for i, r in enumerate(mwrs) if ring <= r.start < ring + 600]
        msi_idx = [i for i, r in enumerate(mwrs) if not ring <= r.start < ring + 600]
        assert len(msi_idx) == 1 and ring_idx and msi_idx[0] > max(ring_idx), \
            f"round {rnd}: MSI-X write at {msi_idx}, ring writes at {ring_idx}"
        assert await env.host_read(ring, 600) == data
