"""Cycle figures of the requester (DESIGN.md section 8, DMA-D1), with the code of `make bench`
(sim/bench/dma.py) on shorter runs.  Cycle counts are deterministic, so they are asserted."""
from sim.bench.dma import _run

B = 16


def test_dma_request_to_mrd_latency():
    """DMA-D1: an idle requester puts the first beat of an MRd out 2 cycles after the request
    (target <= 3)."""
    r = _run(128, [(0, 0x1000_0040, 64)], latency=10)
    assert r["mrd_first"][0] - r["req"][0] <= 3


def test_dma_read_throughput():
    """DMA-D1: 32 tags against a completer of 2000 cycles latency: dma_rdata carries at least 0.9
    of min(1 beat per cycle, 32 x 512 bytes / 2000 cycles)."""
    rq = [(0, 0x2000_0000 + 0x4000 * i, 0x4000) for i in range(4)]
    r = _run(128, rq, tags=32, max_read=512, mps=1, mrrs=2, latency=2000)
    beats, span = len(r["rdata"]), r["rdata"][-1] - r["rdata"][0] + 1
    bound = min(1.0, 32 * 512 / 2000 / B)
    assert beats / span >= 0.9 * bound, (beats, span, bound)


def test_dma_write_throughput():
    """DMA-D1: streamed 4 KiB writes at MPS 512 keep tx busy at least 0.95 of the cycles."""
    wq = [(1, 0x3000_0000 + 0x1000 * i, 0x1000) for i in range(4)]
    r = _run(128, wq, max_payload=512, mps=2, wdata=True)
    beats, span = len(r["tx"]), r["tx"][-1] - r["tx"][0] + 1
    assert beats / span >= 0.95, (beats, span)
