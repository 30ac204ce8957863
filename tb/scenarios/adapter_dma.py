"""Back-end DMA through a vendor hard-IP adapter (P-Tile, UltraScale+), on cocotbext-pcie's model
of the IP and its root complex: the scenario both adapter tests run.

``record_upstream(hip)`` keeps every TLP the IP model sends to the root complex.
``adapter_dma(tb, dev, upstream)``: host memory below and above 4 GiB with random contents, then
two rounds (the MPS / MRRS the root complex set, then MPS 256 where both sides support it and
MRRS 128) of 24 random byte-granular reads and writes through the requester port (20 % idle on
``dma_req``, 20 % back-pressure on the answers).  Checked: every answer OK, read data equals host
memory, written data lands, and every MRd/MWr the IP sent keeps the split, byte-enable,
header-size and Requester ID rules, with the bytes of all requests accounted for.

``dma_wdone`` means that a write left the core's ``tx``, not the link: the clock-domain crossing
and the adapter's queues are still behind it, so each round ends with a read, which cannot pass
the posted writes (PCIe ordering), before host memory is compared.
"""
from cocotb.triggers import with_timeout
from cocotbext.axi.address_space import MemoryRegion
from cocotbext.pcie.core.caps import PciCapId
from cocotbext.pcie.core.tlp import TlpType

from tb.models.dma_backend import DmaBackend
from tb.models.dma_model import StatusRef, byte_enables_ref, parse_request
from tb.tlp.convert import tlp_to_dws

__all__ = ["record_upstream", "adapter_dma"]

SIZE = 0x8000
HIGH_BASE = 0x1_2340_0000
MEM_REQUESTS = (TlpType.MEM_READ, TlpType.MEM_READ_64, TlpType.MEM_WRITE, TlpType.MEM_WRITE_64)


def record_upstream(hip):
    """A list that receives every TLP ``hip`` (a cocotbext-pcie device model) sends upstream."""
    seen = []
    orig = hip.upstream_send

    async def upstream_send(tlp):
        seen.append(tlp)
        await orig(tlp)
    hip.upstream_send = upstream_send
    return seen


async def adapter_dma(tb, dev, upstream, *, count=24):
    """Returns ``[(mps, mrrs, requests, mem_tlps)]`` per round, for the log."""
    rng = tb.rng
    await dev.set_master()
    be = DmaBackend(tb.dut, tb.desc, rng=rng, req_idle=0.2, ready_prob=0.8)
    low = tb.rc.mem_pool.alloc_region(SIZE)
    low_base = low.get_absolute_address(0)
    high = MemoryRegion(SIZE)
    tb.rc.mem_address_space.register_region(high, HIGH_BASE)
    for region in (low, high):
        await region.write(0, bytes(rng.getrandbits(8) for _ in range(SIZE)))

    async def host_read(addr, n):
        return await (high.read(addr - HIGH_BASE, n) if addr >= HIGH_BASE
                      else low.read(addr - low_base, n))

    rounds = []
    for phase in range(2):
        if phase:       # the largest payload both sides support, the smallest MRRS
            mps_code = min(1, tb.desc.params["max_payload_supported"])
            v = await dev.capability_read_word(PciCapId.EXP, 8)
            await dev.capability_write_word(PciCapId.EXP, 8,
                                            v & ~(7 << 5 | 7 << 12) | mps_code << 5)
        devctl = await dev.capability_read_word(PciCapId.EXP, 8)
        mps, mrrs = 128 << (devctl >> 5 & 7), 128 << (devctl >> 12 & 7)
        mrrs = min(mrrs, tb.desc.params["dma_max_read"])
        since = len(upstream)
        ops = []
        for _ in range(count):
            n = rng.choice([1, 3, 4, 7, 64, 65, 130, 511, 1000, 2100])
            base = HIGH_BASE if rng.random() < 0.4 else low_base
            if rng.random() < 0.5:          # reads from the first half, writes to the second
                ops.append(be.read(base + rng.randrange(0, SIZE // 2 - n), n))
            else:
                a = base + SIZE // 2 + rng.randrange(0, SIZE // 2 - n)
                ops.append(be.write(a, bytes(rng.getrandbits(8) for _ in range(n))))
        for op in ops:
            await with_timeout(op.wait(), 500, "us")
        flush = be.read(low_base, 4)
        await with_timeout(flush.wait(), 500, "us")
        ops.append(flush)
        final = {}
        for op in ops:
            if op.write:
                final.update((op.addr + i, b) for i, b in enumerate(op.wdata))
        for op in ops:
            assert op.status == StatusRef.OK, op
            host = await host_read(op.addr, op.length)
            if op.write:
                exp = bytes(final[op.addr + i] for i in range(op.length))
                bad = [i for i in range(op.length) if host[i] != exp[i]]
                assert not bad, f"{op}: host memory differs at offsets {bad[:8]} ({len(bad)} bytes)"
            else:
                assert op.data == host, f"{op}: read data differs"
        me = int(dev.pcie_id)
        reqs = [parse_request(tlp_to_dws(t)) for t in upstream[since:] if t.fmt_type in MEM_REQUESTS]
        for r in reqs:
            assert r.start // 4096 == (r.start + r.nbytes - 1) // 4096, f"{r} crosses 4 KiB"
            assert (r.hdr_dw == 4) == (r.addr >= 1 << 32), f"header size of {r.addr:#x}"
            assert r.requester_id == me, f"Requester ID {r.requester_id:#06x}, expected {me:#06x}"
            assert (r.length_dw, r.fbe, r.lbe) == byte_enables_ref(r.start, r.nbytes), r
            assert r.nbytes <= (mps if r.write else mrrs), f"{r.nbytes} bytes in {r}"
        for write in (True, False):
            assert sum(r.nbytes for r in reqs if r.write == write) == \
                sum(op.length for op in ops if op.write == write), "bytes requested != bytes sent"
        rounds.append((mps, mrrs, len(ops), len(reqs)))
    return rounds
