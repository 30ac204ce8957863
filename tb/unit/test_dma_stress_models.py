"""The host-side pieces of the stress's back-end DMA (tb/scenarios/stress_dma.py), in plain
Python: the paged host memory and the completion sizes of the host completer."""
import random

from tb.host.dma_completer import RCB
from tb.models.dma_model import HostMemory, PagedMemory, completion_size


def test_paged_memory_matches_host_memory():
    """DMA-09: the stress's host memory reads and writes like ``HostMemory`` (unwritten bytes
    are the address pattern), across page boundaries and above 4 GiB."""
    rng = random.Random(5)
    ref, mem = HostMemory(), PagedMemory()
    for _ in range(300):
        a = rng.choice([0x1000, 0xFFFF_F000, 0x1_2345_0000]) + rng.randrange(-300, 9000)
        n = rng.randint(1, 5000)
        if rng.random() < 0.5:
            data = rng.randbytes(n)
            ref.write(a, data)
            mem.write(a, data)
        else:
            assert mem.read(a, n) == ref.read(a, n), (hex(a), n)


def test_completion_sizes_are_legal():
    """DMA-09: every completion the host completer makes ends at a Read Completion Boundary or
    at the end of the read, carries at most MPS bytes counting its first DW's padding, and the
    three split modes reach both extremes."""
    rng = random.Random(9)
    for _ in range(3000):
        a = rng.randrange(1 << 16)
        left = rng.randint(1, 4096)
        mps = rng.choice([128, 256, 512])
        seen = set()
        for mode in ("rcb", "one", "random"):
            n = completion_size(a, left, mps, mode, rng)
            e = a + n
            assert 1 <= n <= left
            assert e == a + left or e % RCB == 0, (a, left, mps, mode, n)
            assert ((a & 3) + n + 3) // 4 <= mps // 4, (a, left, mps, mode, n)
            seen.add(n)
        first = min(a + left, (a // RCB + 1) * RCB) - a
        assert completion_size(a, left, mps, "rcb", rng) == first
        # "one" takes as much as MPS allows: nothing legal lies between it and the limit
        n1 = completion_size(a, left, mps, "one", rng)
        assert n1 == left or (a & ~3) + mps - (a + n1) < RCB
