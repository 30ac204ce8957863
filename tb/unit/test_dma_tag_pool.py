# amaranth: UnusedElaboratable=no
"""TagPool (hdl/virtio_pci/dma/tag_pool.py) on Amaranth's simulator."""
import pytest

from virtio_pci.dma.tag_pool import TagPool

from .helpers import Bench


def test_tag_pool_limits_and_reuse():
    """DMA-07: with Extended Tag Field Enable clear only tags 0..31 are handed out, each once
    until released; with it set all 64; a released tag is offered again."""
    dut = TagPool(64)
    b = Bench(dut, "tag_pool")
    got = {}

    async def take(ctx, n):
        out = []
        ctx.set(dut.alloc.ready, 1)
        while len(out) < n:
            _, _, v, t = await ctx.tick().sample(dut.alloc.valid, dut.alloc.payload)
            if v:
                out.append(t)
        ctx.set(dut.alloc.ready, 0)
        return out

    async def tb(ctx):
        ctx.set(dut.ext_tag, 0)
        await ctx.tick()
        first = await take(ctx, 32)
        assert sorted(first) == list(range(32)), first
        for _ in range(3):
            await ctx.tick()
        assert not ctx.get(dut.alloc.valid), "a 33rd tag offered with Extended Tag clear"
        ctx.set(dut.release0_valid, 1)
        ctx.set(dut.release0_tag, 17)
        ctx.set(dut.release1_valid, 1)
        ctx.set(dut.release1_tag, 3)
        await ctx.tick()
        ctx.set(dut.release0_valid, 0)
        ctx.set(dut.release1_valid, 0)
        again = await take(ctx, 2)
        assert sorted(again) == [3, 17]
        ctx.set(dut.ext_tag, 1)
        await ctx.tick()
        more = await take(ctx, 32)
        assert sorted(more) == list(range(32, 64)), more
        for _ in range(3):
            await ctx.tick()
        assert not ctx.get(dut.alloc.valid)
        assert ctx.get(dut.free_count) == 0

    b.add(tb)
    b.run(timeout=1000)


@pytest.mark.parametrize("n", [0, 257])
def test_tag_pool_rejects_bad_sizes(n):
    """DMA-07: the pool size is validated (1..256 tags)."""
    with pytest.raises(ValueError, match="tag count must be 1..256"):
        TagPool(n)
