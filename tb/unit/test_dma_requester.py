"""The requester (hdl/virtio_pci/dma/) on Amaranth's simulator: reads and writes against a host
model that splits and interleaves completions, checked byte for byte and TLP by TLP."""
import pytest

from tb.models.dma_model import HostMemory, StatusRef, byte_enables_ref

from .dma_bench import RID, ReqBench
from .helpers import seeded


def expect_reads(bench):
    reads = [(a, n) for w, a, n in bench.requests if not w]
    assert len(bench.rdata) == len(reads)
    for (a, n), (got, st, tail) in zip(reads, bench.rdata):
        assert st == StatusRef.OK, f"read {a:#x}+{n}: status {st}"
        assert got == bench.mem.read(a, n), f"read {a:#x}+{n}: data differs"
        assert not any(tail), f"read {a:#x}+{n}: bytes past the length are not zero"


def expect_writes(bench):
    """Host memory holds every write's data (later writes win where they overlap)."""
    ref = HostMemory()
    for i, (w, a, n) in enumerate(bench.requests):
        if w:
            ref.write(a, bench.wbytes[i])
    for i, (w, a, n) in enumerate(bench.requests):
        if w:
            assert bench.mem.read(a, n) == ref.read(a, n), f"write {a:#x}+{n} not in host memory"


def check_tlp_rules(bench, mrrs_bytes, mps_bytes):
    for _, r in bench.tlps:
        end = r.start + r.nbytes
        assert r.start // 4096 == (end - 1) // 4096, f"{r} crosses 4 KiB"
        assert (r.hdr_dw == 4) == (r.addr >= 1 << 32), f"header size of {r.addr:#x}"
        assert r.requester_id == RID
        ln, fbe, lbe = byte_enables_ref(r.start, r.nbytes)
        assert (r.length_dw, r.fbe, r.lbe) == (ln, fbe, lbe), f"byte enables of {r}"
        assert r.nbytes <= (mps_bytes if r.write else mrrs_bytes)


@pytest.mark.parametrize("width", [64, 128, 256])
def test_dma_reads_and_writes(width):
    """DMA-02, DMA-03, DMA-04, DMA-05, DMA-06, DMA-08, DMA-09, DMA-10: byte-granular reads and
    writes at any alignment, below and above 4 GiB, straddling 4 KiB pages; completions split at
    random RCB points and interleaved between tags; back-pressure on every stream."""
    rng = seeded("dma_rw", width)
    reqs = []
    for i in range(24):
        n = rng.choice([1, 2, 3, 4, 5, 7, 16, 17, 63, 64, 100, 511, 513, 1000, 3000])
        base = rng.choice([0x1000_0000, 0xFFFF_F000, 0x1_0000_0000, 0x12_3456_7000])
        a = base + rng.randrange(0, 0x2000)
        reqs.append((i % 3 == 2, a + (0x8000 if i % 3 == 2 else 0), n))
    b = ReqBench(width=width, rng=rng, name=f"dma_rw_{width}", split="random", rx_idle=0.2,
                 ready_prob=0.8, req_idle=0.2).run(reqs)
    expect_reads(b)
    assert b.wdone == [StatusRef.OK] * sum(1 for w, _, _ in reqs if w)
    expect_writes(b)
    check_tlp_rules(b, 512, 256)


@pytest.mark.parametrize("code", range(6))
def test_dma_split_at_mrrs_and_mps(code):
    """DMA-02, DMA-03, DMA-04: with each Max_Read_Request_Size / Max_Payload_Size code, 8 KiB
    reads and writes (one unaligned) leave as requests no larger than the setting, never across
    4 KiB, and the data arrives intact."""
    rng = seeded("dma_split", code)
    size = 128 << code
    reqs = [(0, 0x2000_0000, 8192), (0, 0x2000_5003, 8190), (1, 0x3000_0000, 8192),
            (1, 0x3000_5001, 8191)]
    b = ReqBench(width=128, n_tags=8, max_read=4096, max_payload=4096, mps=code, mrrs=code,
                 rng=rng, name=f"dma_split_{code}", split="random").run(reqs, timeout=200000)
    expect_reads(b)
    expect_writes(b)
    check_tlp_rules(b, size, size)
    assert max(r.nbytes for _, r in b.tlps if not r.write) == size
    assert max(r.nbytes for _, r in b.tlps if r.write) == size


@pytest.mark.parametrize("ext_tag", [0, 1])
def test_dma_tags_follow_extended_tag(ext_tag):
    """DMA-07: with a slow completer every tag is in flight at once and none is reused while
    outstanding; 5-bit tags only while Extended Tag Field Enable is clear."""
    rng = seeded("dma_tags", ext_tag)
    reqs = [(0, 0x4000_0000 + 128 * i, 128) for i in range(150)]
    b = ReqBench(width=128, n_tags=64, ext_tag=ext_tag, rng=rng, name=f"dma_tags_{ext_tag}",
                 cpl_latency=400).run(reqs, timeout=100000)
    expect_reads(b)
    tags = {r.tag for _, r in b.tlps}
    assert b.max_outstanding == (64 if ext_tag else 32)
    assert max(tags) == (63 if ext_tag else 31)
