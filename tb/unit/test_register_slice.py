"""RegisterSlice (skid.py): the pipeline register of the pipelined build (``params.pipelined``).

One cycle of latency, one transfer per cycle, order and payloads kept under random idle and
random back-pressure, and neither side sees the other combinationally: ``i.ready`` depends only
on the slice's state, ``o.valid``/``o.payload`` are registers.
"""
import pytest
from amaranth.hdl import unsigned

from virtio_pci.skid import RegisterSlice

from .helpers import Bench, StreamMonitor, drive, payload_bits, seeded


def run_slice(n, *, idle, ready_prob, name):
    rng = seeded(name)
    dut = RegisterSlice(unsigned(32))
    b = Bench(dut, name)
    mon = StreamMonitor(dut.o, b.cycle, rng=rng, ready_prob=ready_prob, name="o")
    sent = [rng.getrandbits(32) for _ in range(n)]
    accepted = []

    async def source(ctx):
        await drive(ctx, dut.i, sent, b.cycle, rng=rng, idle=idle, accepted=accepted)

    async def wait_all(ctx):
        while len(mon.items) < n:
            await ctx.tick()

    b.add(source)
    b.add(wait_all)
    b.add(mon, background=True)
    b.run(timeout=100 + 10 * n)
    return sent, accepted, mon


@pytest.mark.parametrize("idle,ready_prob", [(0.0, 1.0), (0.3, 0.5), (0.0, 0.3), (0.5, 0.9)])
def test_order_and_payloads_kept(idle, ready_prob):
    """Every transfer leaves once, in order, with its payload, under random idle and back-pressure
    (the stream rules on ``o`` are checked by the monitor)."""
    sent, accepted, mon = run_slice(300, idle=idle, ready_prob=ready_prob,
                                    name=f"slice_order_{idle}_{ready_prob}")
    assert [payload_bits(p) for _, p in mon.items] == sent


def test_latency_one_and_full_throughput():
    """With the sink always ready: one transfer per cycle through, each one cycle after it was
    accepted on ``i``."""
    sent, accepted, mon = run_slice(64, idle=0.0, ready_prob=1.0, name="slice_throughput")
    assert accepted == list(range(accepted[0], accepted[0] + 64)), "i refused a transfer"
    assert [c for c, _ in mon.items] == [c + 1 for c in accepted]


def test_ready_is_registered():
    """``i.ready`` does not follow ``o.ready`` in the same cycle: it drops only in the cycle after
    the sink refused a transfer while another one arrived, and only then."""
    dut = RegisterSlice(unsigned(8))
    b = Bench(dut, "slice_ready")
    seen = []

    async def tb(ctx):
        ctx.set(dut.i.valid, 1)
        ctx.set(dut.i.payload, 1)
        ctx.set(dut.o.ready, 0)
        await ctx.tick()                      # 1 taken into o
        assert ctx.get(dut.i.ready) and ctx.get(dut.o.valid)
        ctx.set(dut.i.payload, 2)
        ctx.set(dut.o.ready, 1)
        seen.append(ctx.get(dut.i.ready))     # o.ready changed, i.ready unchanged (1)
        ctx.set(dut.o.ready, 0)
        seen.append(ctx.get(dut.i.ready))
        await ctx.tick()                      # 2 taken into the second register, o refused
        assert not ctx.get(dut.i.ready), "second register full: i must refuse"
        ctx.set(dut.o.ready, 1)
        assert not ctx.get(dut.i.ready), "i.ready followed o.ready combinationally"
        assert ctx.get(dut.o.payload) == 1
        await ctx.tick()                      # 1 leaves, 2 moves to o
        assert ctx.get(dut.i.ready) and ctx.get(dut.o.payload) == 2

    b.add(tb)
    b.run(timeout=20)
    assert seen == [1, 1]
