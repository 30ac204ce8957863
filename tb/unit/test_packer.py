"""BeatPacker: completion chunks in, TLP beats out (tlp/packer.py, DESIGN.md section 3)."""
import pytest

from virtio_pci.tlp.packer import BeatPacker, MessagePacker

from .helpers import Bench, drive, StreamMonitor, seeded
from tb.tlp.convert import dws_to_beats

WIDTHS = [64, 128, 256]


def chunks_of(dws, rng, sizes=None):
    """Split one TLP's DWs into chunk payloads (random sizes 1..4 unless ``sizes`` given)."""
    out = []
    i = 0
    k = 0
    while i < len(dws):
        n = sizes[k] if sizes else rng.randint(1, 4)
        n = min(n, len(dws) - i)
        dw = dws[i:i + n] + [0xBAD0_0000 | j for j in range(4 - n)]   # unused DWs: garbage
        out.append({"dw": dw, "n": n, "first": int(i == 0), "last": int(i + n == len(dws))})
        i += n
        k += 1
    return out


def run_packer(width, tlps, chunks, *, name, rng=None, idle=0.0, ready_prob=1.0, cls=BeatPacker):
    dut = cls(width)
    b = Bench(dut, name)
    mon = StreamMonitor(dut.tx, b.cycle, rng=rng, ready_prob=ready_prob, name="tx")
    accepted = []
    total = sum(len(dws_to_beats(t, width)) for t in tlps)

    async def main(ctx):
        await drive(ctx, dut.chunk, chunks, b.cycle, rng=rng, idle=idle, accepted=accepted)
        while len(mon.items) < total:
            await ctx.tick()
        for _ in range(5):
            await ctx.tick()

    b.add(main)
    b.add(mon, background=True)
    b.run(timeout=100 + 20 * len(chunks))
    return mon, accepted


def check_beats(width, tlps, items):
    lanes = width // 32
    exp = [bt for t in tlps for bt in dws_to_beats(t, width)]
    assert len(items) == len(exp), f"{len(items)} beats, expected {len(exp)}"
    for k, ((c, got), (data, keep, first, last)) in enumerate(zip(items, exp)):
        where = f"beat {k} (edge {c})"
        assert (got.keep, got.first, got.last) == (keep, first, last), \
            f"{where}: keep/first/last {(got.keep, got.first, got.last)} != {(keep, first, last)}"
        for j in range(lanes):
            if keep >> j & 1:
                g = (got.data >> 32 * j) & 0xFFFF_FFFF
                e = (data >> 32 * j) & 0xFFFF_FFFF
                assert g == e, f"{where} lane {j}: {g:#010x} != {e:#010x}"


def random_tlps(rng, n):
    tlps = []
    for t in range(n):
        length = rng.choice([1, 2, 3, 4, 5, rng.randint(1, 40)])
        tlps.append([(t << 16) | (i + 1) for i in range(length)])
    return tlps


@pytest.mark.parametrize("width", WIDTHS)
def test_random_chunks_backpressure(width):
    """Random chunk sizes, idle on the chunk side, back-pressure on tx: beats exactly as the stream
    convention lays the TLPs out (lane 0 start, contiguous keep, one TLP per beat), stream rules
    checked every cycle."""
    rng = seeded("packer", width)
    tlps = random_tlps(rng, 80)
    chunks = [c for t in tlps for c in chunks_of(t, rng)]
    mon, _ = run_packer(width, tlps, chunks, name=f"packer_random_{width}", rng=rng, idle=0.3,
                        ready_prob=0.5)
    check_beats(width, tlps, mon.items)


@pytest.mark.parametrize("width", WIDTHS)
def test_completion_shaped_chunks(width):
    """Dispatcher-shaped chunks: header + first data DW, then one DW per chunk, no idle."""
    rng = seeded("packer-cpl", width)
    tlps = [[0x4A00_0000 | i, 0x100, 0x200] + [0xD000_0000 | (i << 8) | j for j in range(n)]
            for i, n in enumerate([1, 1, 0, 2, 7, 1, 16, 3, 0, 1])]
    chunks = [c for t in tlps for c in chunks_of(t, rng, sizes=[4 if len(t) > 3 else 3] + [1] * 64)]
    mon, _ = run_packer(width, tlps, chunks, name=f"packer_cpl_{width}", rng=rng, ready_prob=0.7)
    check_beats(width, tlps, mon.items)


@pytest.mark.parametrize("width", [128, 256])
def test_single_beat_throughput(width):
    """Single-DW completions (one 4-DW chunk) leave one beat per cycle, 1 cycle after their chunk."""
    n = 20
    tlps = [[0x4A00_0001, i, 0, 0xC0DE_0000 | i] for i in range(n)]
    chunks = [{"dw": t, "n": 4, "first": 1, "last": 1} for t in tlps]
    mon, accepted = run_packer(width, tlps, chunks, name=f"packer_b2b_{width}")
    check_beats(width, tlps, mon.items)
    assert accepted == list(range(accepted[0], accepted[0] + n)), "chunks not accepted every cycle"
    assert [c for c, _ in mon.items] == [a + 1 for a in accepted], "beat not 1 cycle after its chunk"


def test_single_dw_chunks_64():
    """At W=64 a 4-DW TLP is two beats: two cycles per TLP, no bubble."""
    n = 10
    tlps = [[0x4A00_0001, i, 0, 0xC0DE_0000 | i] for i in range(n)]
    chunks = [{"dw": t, "n": 4, "first": 1, "last": 1} for t in tlps]
    mon, accepted = run_packer(64, tlps, chunks, name="packer_b2b_64")
    check_beats(64, tlps, mon.items)
    edges = [c for c, _ in mon.items]
    assert edges == list(range(edges[0], edges[0] + 2 * n))


def message_tlps(rng, n):
    """The interrupt controller's shapes: 4 DWs in one chunk (3-DW MWr + data, INTx message) or
    4 + 1 DWs in two chunks (4-DW MWr + data)."""
    tlps, chunks = [], []
    for t in range(n):
        five = rng.random() < 0.5
        dws = [(t << 16) | (i + 1) for i in range(5 if five else 4)]
        tlps.append(dws)
        chunks += chunks_of(dws, rng, sizes=[4, 1])
    return tlps, chunks


@pytest.mark.parametrize("width", WIDTHS)
def test_message_packer_shapes(width):
    """MessagePacker: the interrupt messages' two shapes in random order, idle on the chunk side
    and back-pressure on tx: the same beats as the stream convention lays them out."""
    rng = seeded("msg-packer", width)
    tlps, chunks = message_tlps(rng, 80)
    mon, _ = run_packer(width, tlps, chunks, name=f"msg_packer_{width}", rng=rng, idle=0.3,
                        ready_prob=0.5, cls=MessagePacker)
    check_beats(width, tlps, mon.items)


@pytest.mark.parametrize("width", WIDTHS)
def test_message_packer_timing_matches(width):
    """Back to back, every sink ready: MessagePacker accepts every chunk and sends every beat in
    the same cycle as BeatPacker does (the interrupt latency depends on it)."""
    rng = seeded("msg-packer-timing", width)
    tlps, chunks = message_tlps(rng, 30)
    got = [run_packer(width, tlps, chunks, name=f"msg_timing_{cls.__name__}_{width}", cls=cls)
           for cls in (BeatPacker, MessagePacker)]
    check_beats(width, tlps, got[1][0].items)
    (bmon, bacc), (mmon, macc) = got
    assert macc == bacc, "chunks accepted in other cycles than by BeatPacker"
    assert [c for c, _ in mmon.items] == [c for c, _ in bmon.items], "beats in other cycles"
