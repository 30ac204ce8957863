"""Unit tests of the virtio-rng device layer (hdl/virtio_pci/devices/): the entropy source, the
device function on the ring engine's streams, the preset and the emitted top level."""
import json
import random

import pytest

from virtio_pci.cli import describe, top_level
from virtio_pci.devices.entropy import SEEDS, LfsrEntropy, xorshift64
from virtio_pci.devices.rng import RngFunction, VirtioRng
from virtio_pci.params import Feature, VirtioPciParams
from tb.unit.helpers import Bench, StreamMonitor, drive


@pytest.mark.filterwarnings("ignore:.*created but never used")
def test_lfsr_entropy_matches_xorshift64():
    """VQP-02: the simulation entropy source (not cryptographic) gives W/64 xorshift64 lanes,
    one step per accepted word, holding the word while not accepted."""
    dut = LfsrEntropy(128)
    b = Bench(dut, "lfsr")
    mon = StreamMonitor(dut.o, b.cycle, rng=random.Random(1), ready_prob=0.5, name="entropy")
    b.add(mon, background=True)

    async def tb(ctx):
        while len(mon.items) < 20:
            await ctx.tick()
    b.add(tb)
    b.run()
    lanes = list(SEEDS[:2])
    for _, word in mon.items[:20]:
        assert word == lanes[0] | lanes[1] << 64
        lanes = [xorshift64(x) for x in lanes]
    with pytest.raises(ValueError, match="multiple of 64"):
        LfsrEntropy(96)


@pytest.mark.parametrize("w", [64, 256])
def test_rng_function_fills_writable_drops_readable(w):
    """VQP-02: the rng function answers a writable segment of n bytes with max(1, ceil(n/B))
    beats of entropy (the last one carrying the rest, ``last`` set) and drains a readable
    segment's beats without writing anything."""
    bpb = w // 8
    dut = RngFunction(w)
    b = Bench(dut, f"rng_function_w{w}")
    mon = StreamMonitor(dut.wr, b.cycle, rng=random.Random(2), ready_prob=0.6, name="wr")
    b.add(mon, background=True)
    lens = [1, bpb, bpb + 1, 3 * bpb, 0, 77]

    async def src(ctx):
        k = 0
        while True:
            ctx.set(dut.entropy.valid, 1)
            ctx.set(dut.entropy.payload, k)
            _, _, r = await ctx.tick().sample(dut.entropy.ready)
            k += bool(r)

    async def rd(ctx):
        await drive(ctx, dut.rd, [{"data": 1, "last": 0}, {"data": 2, "last": 1}], b.cycle)
    b.add(src, background=True)

    async def tb(ctx):
        segs = [{"queue": 0, "id": 0, "write": 1, "len": n, "first": 1, "last": 1} for n in lens]
        await drive(ctx, dut.seg, segs[:3], b.cycle)
        await drive(ctx, dut.seg, [{"queue": 0, "id": 1, "write": 0, "len": 5, "first": 1,
                                    "last": 0}], b.cycle)
        await rd(ctx)
        await drive(ctx, dut.seg, segs[3:], b.cycle)
        for _ in range(100):
            await ctx.tick()
    b.add(tb)
    b.run()
    beats = [p for _, p in mon.items]
    exp = []
    for n in lens:
        nb = max(1, -(-n // bpb))
        exp += [(min(bpb, n - k * bpb), int(k == nb - 1)) for k in range(nb)]
    assert [(p.bytes, p.last) for p in beats] == exp
    assert [p.data for p in beats] == list(range(len(beats))), "entropy words skipped or repeated"


@pytest.mark.filterwarnings("ignore:.*created but never used")
def test_rng_preset_and_top_level():
    """VQP-08: the virtio_rng preset (type 4, one queue, indirect and EVENT_IDX offered) emits the
    whole device as the top level: the engine uses the endpoint's requester inside (no DMA ports
    at the top), or exposes its requester client ports when the endpoint has none
    (``dma_tags=0``); ``--endpoint-only`` gives the bare endpoint; bad arguments are refused."""
    p = VirtioPciParams.from_file("examples/virtio-rng.json")
    assert p.device_type == 4 and p.num_queues == 1 and p.device_id == 0x1044
    assert p.offers(Feature.RING_INDIRECT_DESC) and p.offers(Feature.RING_EVENT_IDX)
    name, top = top_level(p)
    top._MustUse__silence = True
    assert name == "virtio-rng" and isinstance(top, VirtioRng)
    d = describe(p)
    ports = {q["name"]: q for q in d["ports"]}
    assert d["device"] == "virtio-rng"
    assert {"rx__payload", "tx__payload", "qstart__payload", "chains"} <= set(ports)
    assert not any(q.startswith("dma_") for q in ports), "the requester is wired inside"
    ext = {q["name"]: q for q in describe(p.replace(dma_tags=0))["ports"]}
    assert ext["dma_req__payload"]["direction"] == "output"
    assert ext["dma_rdata__payload"]["direction"] == "input"
    json.dumps(d)
    assert describe(p, endpoint_only=True)["device"] is None
    with pytest.raises(ValueError, match="device type 4"):
        VirtioRng(VirtioPciParams())
    with pytest.raises(ValueError, match="entropy must be"):
        VirtioRng(p, entropy="dice")
