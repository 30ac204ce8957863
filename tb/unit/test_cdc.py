"""Clock-domain crossing (hdl/virtio_pci/link/cdc.py) on Amaranth's simulator with two clocks.

The link clock and the core clock have unrelated periods (neither a multiple of the other), the
link faster in some runs and slower in others; every writer inserts random idle cycles and every
reader random back-pressure.  Beats must come out whole, in order, none lost or duplicated, and
both read sides must obey the stream rules.
"""
import pytest

from virtio_pci.link.cdc import CDC_LATENCY_MAX, CdcEndpoint, TlpCdc
from virtio_pci.params import VirtioPciParams
from sim.bench.cdc import TwoClockBench as ClockPair, cdc_latency
from tb.tlp.convert import beats_to_dws, dws_to_tlp
from tb.tlp.requests import cfg_req, mem_req
from .helpers import beats_of, payload_bits, seeded

#: (link period, core period) in ns: faster link, slower link, near-equal, far apart
CLOCKS = [(4.0, 10.0), (10.0, 4.0), (3.3, 7.9), (6.1, 5.9), (2.9, 13.7)]


class TwoClockBench(ClockPair):
    """A DUT with a ``link`` and a ``sync`` (core) clock (sim.bench.cdc), with stream drivers."""

    async def drive(self, ctx, domain, stream, beats, rng, idle, log):
        """Offer ``beats`` in ``domain``; log (edge count of the *other* domain, beat) per write."""
        other = self.counter["sync" if domain == "link" else "link"]
        for p in beats:
            while rng.random() < idle:
                ctx.set(stream.valid, 0)
                await ctx.tick(domain)
            ctx.set(stream.payload, p)
            ctx.set(stream.valid, 1)
            while True:
                _, _, ready, seen = await ctx.tick(domain).sample(stream.ready, other)
                if ready:
                    break
            log.append(seen)
        ctx.set(stream.valid, 0)

    async def sink(self, ctx, domain, stream, rng, ready_prob, out, first_seen, accepted=None):
        """Accept beats in ``domain`` with random back-pressure; check the stream rules; record
        each beat and the edge count (this domain) at which it was first offered."""
        held = None
        since = None
        while True:
            r = int(rng.random() < ready_prob)
            ctx.set(stream.ready, r)
            _, _, valid, payload, c = await ctx.tick(domain).sample(
                stream.valid, stream.payload, self.counter[domain])
            bits = payload_bits(payload)
            if held is not None:
                assert valid, f"{domain}: valid dropped before the transfer"
                assert bits == held, f"{domain}: payload changed under valid & ~ready"
            held = bits if (valid and not r) else None
            if valid and since is None:
                since = c
            if valid and r:
                out.append(payload)
                first_seen.append(since)
                if accepted is not None:
                    accepted.append(c)
                since = None


def _random_tlps(rng, n, width):
    tlps = []
    for i in range(n):
        kind = rng.randrange(3)
        if kind == 0:
            tlps.append(cfg_req(rng.randrange(64), tag=i & 0xFF))
        else:
            tlps.append(mem_req(0x8000_0000 + 4 * rng.randrange(1024), rng.randrange(1, 40),
                                write=kind == 1, tag=i & 0xFF))
    return [bt for t in tlps for bt in beats_of(t, width)]


def _fields(p):
    return (payload_bits(p.data), int(p.keep), int(p.first), int(p.last))


@pytest.mark.parametrize("link_ns,core_ns", CLOCKS)
@pytest.mark.parametrize("width", [64, 256])
def test_cdc_both_directions_unrelated_clocks(link_ns, core_ns, width):
    """No requirement ID (DESIGN.md section 3, clock-domain crossing): TLP beats cross both ways
    whole and in order under random idle and back-pressure, with unrelated clocks, link faster
    and slower than the core; the latency from the write edge to the beat's first offer is at most
    CDC_LATENCY_MAX edges of the reading clock."""
    rng = seeded("cdc", link_ns, core_ns, width)
    dut = TlpCdc(width, depth=8)
    b = TwoClockBench(dut, link_ns, core_ns)
    rx_beats = _random_tlps(rng, 40, width)
    tx_beats = _random_tlps(rng, 40, width)
    got_rx, got_tx, rx_seen, tx_seen, rx_w, tx_w = [], [], [], [], [], []
    rx_acc, tx_acc = [], []
    done = []

    async def rx_writer(ctx):
        await b.drive(ctx, "link", dut.link_rx, rx_beats, seeded("rxw", width), 0.3, rx_w)
        done.append("rx")

    async def tx_writer(ctx):
        await b.drive(ctx, "sync", dut.core_tx, tx_beats, seeded("txw", width), 0.3, tx_w)
        done.append("tx")

    async def rx_sink(ctx):
        await b.sink(ctx, "sync", dut.core_rx, seeded("rxs", width), 0.6, got_rx, rx_seen, rx_acc)

    async def tx_sink(ctx):
        await b.sink(ctx, "link", dut.link_tx, seeded("txs", width), 0.6, got_tx, tx_seen, tx_acc)

    async def wait_all(ctx):
        for _ in range(20000):
            if len(got_rx) == len(rx_beats) and len(got_tx) == len(tx_beats):
                break
            await ctx.tick()
        for _ in range(50):          # nothing more may come out
            await ctx.tick()

    b.sim.add_testbench(rx_writer)
    b.sim.add_testbench(tx_writer)
    b.sim.add_testbench(rx_sink, background=True)
    b.sim.add_testbench(tx_sink, background=True)
    b.sim.add_testbench(wait_all)
    b.sim.run()
    assert done == ["rx", "tx"] or done == ["tx", "rx"]
    exp = lambda beats: [(p["data"], p["keep"], p["first"], p["last"]) for p in beats]
    assert [_fields(p) for p in got_rx] == exp(rx_beats)
    assert [_fields(p) for p in got_tx] == exp(tx_beats)
    # latency: a beat written into an empty FIFO is offered within CDC_LATENCY_MAX reading edges
    # (the reader's own back-pressure can only delay beats queued behind it, so look at beats
    # written after the previous one had been taken)
    for w, seen, acc in ((rx_w, rx_seen, rx_acc), (tx_w, tx_seen, tx_acc)):
        lat = [s - wr for wr, s in zip(w, seen)]
        assert min(lat) >= 1
        isolated = [s - wr for i, (wr, s) in enumerate(zip(w, seen))
                    if i == 0 or acc[i - 1] < wr]
        assert isolated and max(isolated) <= CDC_LATENCY_MAX, isolated


@pytest.mark.parametrize("link_ns,core_ns", [(4.0, 10.0), (10.0, 4.0)])
def test_cdc_latency_isolated_beats(link_ns, core_ns):
    """No requirement ID (DESIGN.md section 8, figures of make bench): an isolated beat is offered
    2 to CDC_LATENCY_MAX edges of the reading clock after its write edge, both directions."""
    lat = cdc_latency(128, link_ns, core_ns)
    for key in ("rx", "tx"):
        assert len(lat[key]) == 24
        assert 2 <= min(lat[key]) and max(lat[key]) <= CDC_LATENCY_MAX, (key, lat[key])


@pytest.mark.parametrize("link_ns,core_ns", [(4.0, 10.0), (10.0, 4.0)])
def test_cdc_endpoint_config_read_and_doorbell(link_ns, core_ns):
    """PCI-02, PCI-03: through the wrapper (rx/tx in the link domain, the endpoint and its back-end
    ports in the core domain) a CfgRd0 of dword 0 is answered with 0x1AF4 and the device ID, and a
    device_status write in the common configuration shows on the device_status port (core
    domain)."""
    p = VirtioPciParams()
    dut = CdcEndpoint(p)
    b = TwoClockBench(dut, link_ns, core_ns)
    bar = 0xE000_0000
    reqs = [cfg_req(0, bus=3, dev=0, tag=7),
            cfg_req(0x10 // 4 + p.mem_bar, write=True, data=bar, bus=3),
            cfg_req(1, write=True, data=0x0002, fbe=0x3, bus=3)]
    common = p.regions["common"]
    # a host sends the memory write only after the CfgWr that enables memory space completed
    mwr = mem_req(bar + common.offset + 0x14, write=True, data=[0x0000_0001], fbe=0x1)
    beats = [bt for t in reqs for bt in beats_of(t, p.data_width)]
    tx, status = [], []

    async def writer(ctx):
        await b.drive(ctx, "link", dut.rx, beats, seeded("ep"), 0.2, [])
        while sum(int(t.last) for t in tx) < 3:
            await ctx.tick("link")
        await b.drive(ctx, "link", dut.rx, beats_of(mwr, p.data_width), seeded("ep"), 0.2, [])

    async def tx_sink(ctx):
        await b.sink(ctx, "link", dut.tx, seeded("eps"), 0.7, tx, [])

    async def wait_all(ctx):
        for _ in range(3000):
            if sum(int(t.last) for t in tx) == 3:
                break
            await ctx.tick()
        for _ in range(100):
            await ctx.tick()
        status.append(ctx.get(dut.device_status))

    b.sim.add_testbench(writer)
    b.sim.add_testbench(tx_sink, background=True)
    b.sim.add_testbench(wait_all)
    b.sim.run()
    rows = [(payload_bits(t.data), int(t.keep), int(t.first), int(t.last)) for t in tx]
    tlps, cur = [], []
    for r in rows:
        cur = [r] if r[2] else cur + [r]
        if r[3]:
            tlps.append(dws_to_tlp(beats_to_dws(cur, p.data_width)))
    assert len(tlps) == 3, tlps
    data = int.from_bytes(tlps[0].get_data(), "little")
    assert tlps[0].tag == 7
    assert data & 0xFFFF == 0x1AF4 and data >> 16 == p.device_id
    assert status == [1], f"{status} device_status never became ACKNOWLEDGE on the core side: {tlps}"


def test_cdc_parameters_rejected():
    """No requirement ID: invalid widths, depths and domain names are refused with clear messages."""
    with pytest.raises(ValueError, match="TLP width must be 64, 128, 256 or 512, not 96"):
        TlpCdc(96)
    with pytest.raises(ValueError, match="CDC FIFO depth must be a power of two >= 4, not 12"):
        TlpCdc(128, depth=12)
    with pytest.raises(ValueError, match="link and core domains must differ"):
        TlpCdc(128, link_domain="sync")
