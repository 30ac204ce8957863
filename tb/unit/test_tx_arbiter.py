"""TxArbiter: several TLP sources share tx, each TLP kept whole, round robin (tlp/tx_arbiter.py).

Every beat's lane 0 carries (source, TLP number, beat number) so the output tells where each beat
came from.
"""
import pytest

from virtio_pci.tlp.tx_arbiter import TxArbiter

from .helpers import Bench, Sampler, drive, StreamMonitor, payload_bits, seeded

WIDTHS = [64, 128, 256]


def tag(src, seq, beat):
    return (src << 28) | (seq << 12) | beat


def source_tlps(rng, src, n, width, max_beats=5):
    lanes = width // 32
    tlps = []
    for seq in range(n):
        nb = rng.randint(1, max_beats)
        beats = []
        for k in range(nb):
            keep = (1 << lanes) - 1 if k < nb - 1 else (1 << rng.randint(1, lanes)) - 1
            data = tag(src, seq, k) | (rng.getrandbits(width) & ~0xFFFF_FFFF)
            beats.append({"data": data, "keep": keep, "first": int(k == 0), "last": int(k == nb - 1)})
        tlps.append(beats)
    return tlps


def run_arbiter(width, n_src, per_src, *, name, rng, idle=0.0, ready_prob=1.0, max_beats=5,
                sample=False):
    dut = TxArbiter(width, n_src)
    b = Bench(dut, name)
    if sample:
        run_arbiter.sampler = b.add(Sampler(b.cycle, dut.tx.valid, dut.tx.ready, dut.tx.payload,
                                            dut.held), background=True)
    mon = StreamMonitor(dut.tx, b.cycle, rng=rng, ready_prob=ready_prob, name="tx")
    streams = [source_tlps(rng, s, per_src, width, max_beats) for s in range(n_src)]
    total = sum(len(t) for s in streams for t in s)
    done = []

    def source(s):
        async def tb(ctx):
            beats = [bt for t in streams[s] for bt in t]
            await drive(ctx, dut.source(s), beats, b.cycle, rng=rng, idle=idle)
            done.append(s)
        return tb

    async def wait_all(ctx):
        while len(mon.items) < total:
            await ctx.tick()
        for _ in range(4):
            await ctx.tick()

    for s in range(n_src):
        b.add(source(s))
    b.add(wait_all)
    b.add(mon, background=True)
    b.run(timeout=200 + 30 * total)
    return streams, mon


def reassemble(items, streams):
    """Check TLP integrity; returns the order of (src, seq) on tx."""
    order = []
    cur = None
    for c, p in items:
        t = p.data & 0xFFFF_FFFF
        src, seq, k = t >> 28, (t >> 12) & 0xFFFF, t & 0xFFF
        exp = streams[src][seq][k]
        assert (p.data, p.keep, p.first, p.last) == (exp["data"], exp["keep"], exp["first"], exp["last"]), \
            f"edge {c}: beat differs from source {src} TLP {seq} beat {k}"
        if p.first:
            assert cur is None, f"edge {c}: TLP {(src, seq)} starts inside TLP {cur} (interleaved)"
            cur = (src, seq, 0)
            order.append((src, seq))
        else:
            assert cur is not None and cur[:2] == (src, seq) and cur[2] + 1 == k, \
                f"edge {c}: beat of {(src, seq)} #{k} does not continue {cur}"
            cur = (src, seq, k)
        if p.last:
            cur = None
    assert cur is None
    for s, tlps in enumerate(streams):
        assert [q for src, q in order if src == s] == list(range(len(tlps))), f"source {s} TLPs lost or reordered"
    return order


@pytest.mark.parametrize("width", WIDTHS)
@pytest.mark.parametrize("n_src", [1, 3])
def test_random_no_interleave(width, n_src):
    """Random idle on every source (also between beats of one TLP), random back-pressure on tx:
    TLPs arrive whole, in order per source; tx obeys the stream rules every cycle."""
    rng = seeded("arb", width, n_src)
    streams, mon = run_arbiter(width, n_src, 25, name=f"arb_random_{width}_{n_src}", rng=rng,
                               idle=0.4, ready_prob=0.6)
    reassemble(mon.items, streams)


@pytest.mark.parametrize("n_src", [2, 3, 4])
def test_round_robin_fairness(n_src):
    """Every source always has a TLP waiting: grants rotate strictly, whatever the back-pressure."""
    rng = seeded("arb-rr", n_src)
    streams, mon = run_arbiter(128, n_src, 12, name=f"arb_rr_{n_src}", rng=rng, ready_prob=0.5,
                               max_beats=3)
    order = reassemble(mon.items, streams)
    srcs = [s for s, _ in order]
    # until the first source runs dry, the grant order is a strict rotation
    steady = srcs[:n_src * 12 - n_src]
    for a, b in zip(steady, steady[1:]):
        assert b == (a + 1) % n_src, f"grant order not round robin: {srcs}"


def test_single_beat_back_to_back():
    """Single-beat TLPs from two sources with tx always ready: one beat per cycle, alternating."""
    rng = seeded("arb-b2b")
    streams, mon = run_arbiter(128, 2, 10, name="arb_b2b", rng=rng, max_beats=1)
    order = reassemble(mon.items, streams)
    edges = [c for c, _ in mon.items]
    assert edges == list(range(edges[0], edges[0] + 20))
    assert [s for s, _ in order] == [1, 0] * 10 or [s for s, _ in order] == [0, 1] * 10


def test_held_marks_a_presented_beat():
    """``held`` (used to withdraw an unsent MRd at an FLR) is set for source i exactly while the
    arbiter is locked to it: the last beat tx showed came from source i and was not its TLP's
    last beat taken.  A source whose bit is clear may still withdraw; one whose bit is set is
    on tx (or between two beats of a TLP)."""
    rng = seeded("arb-held")
    streams, mon = run_arbiter(128, 4, 15, name="arb_held", rng=rng, idle=0.4, ready_prob=0.5,
                               sample=True)
    reassemble(mon.items, streams)
    rows = run_arbiter.sampler.rows
    n_held = 0
    locked = None
    for (_, v, r, p, _), (c, _, _, _, h) in zip(rows, rows[1:]):
        if v:
            src = (payload_bits(p.data) & 0xFFFF_FFFF) >> 28
            locked = None if (r and p.last) else src
        want = 0 if locked is None else 1 << locked
        assert h == want, f"edge {c}: held {h:#x}, expected {want:#x}"
        n_held += bool(want)
    assert n_held > 20
