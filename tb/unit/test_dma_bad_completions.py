"""The requester (hdl/virtio_pci/dma/) against bad completions, timeouts, FLR and Bus Master
Enable cleared mid-transfer, on Amaranth's simulator (host model: tb/models/dma_model.py)."""
import pytest

from tb.models.dma_model import StatusRef, completion

from .dma_bench import ReqBench
from .helpers import seeded

A = 0x5000_0100          # the victim read (one MRd: 200 bytes inside one 512-byte block)
TIMEOUT = 3000


def bad(kind):
    """hold() that answers the first MRd at A with a completion of ``kind``."""
    def hold(r):
        if r.start != A:
            return None
        data = bytes(range(r.nbytes))
        if kind == "ur":
            return [completion(r, status=1)]
        if kind == "ca":
            return [completion(r, status=4)]
        if kind == "poisoned":
            return [completion(r, data=data, ep=True)]
        r.abandoned = True          # the tag is quarantined until the timeout
        if kind == "byte_count":
            return [completion(r, data=data, byte_count=r.nbytes + 4)]
        if kind == "lower_addr":
            return [completion(r, data=data, lower_addr=(r.start + 4) & 0x7F)]
        if kind == "too_much":
            return [completion(r, data=data + bytes(8))]
        if kind == "nodata":
            return [completion(r)]
        if kind == "missing":
            return []
        raise ValueError(kind)
    return hold


EXPECT = {
    "ur": (StatusRef.UR, "got_ur"),
    "ca": (StatusRef.CA, "got_ca"),
    "poisoned": (StatusRef.POISONED, "got_poisoned"),
    "byte_count": (StatusRef.MALFORMED, "err_malformed"),
    "lower_addr": (StatusRef.MALFORMED, "err_malformed"),
    "too_much": (StatusRef.MALFORMED, "err_malformed"),
    "nodata": (StatusRef.MALFORMED, "err_malformed"),
    "missing": (StatusRef.TIMEOUT, "err_timeout"),
}


@pytest.mark.parametrize("kind", list(EXPECT))
def test_dma_bad_completion(kind):
    """DMA-11, DMA-13, DMA-14: a UR / CA / poisoned / inconsistent (byte count, lower address, too
    much data, no data) / missing completion ends that read with the matching status and zeros,
    pulses the matching error once; the reads around it are unaffected; no tag leaks (all 32 free
    again after the quarantine) and a tag is reused only after its quarantine."""
    rng = seeded("dma_bad", kind)
    reqs = [(0, 0x5000_0000, 64), (0, A, 200), (0, 0x5000_0400, 300)]
    reqs += [(0, 0x5000_1000 + 256 * i, 256) for i in range(40)]
    b = ReqBench(width=128, rng=rng, name=f"dma_bad_{kind}", hold=bad(kind), timeout=TIMEOUT,
                 rx_idle=0.2).run(reqs, timeout=40000, wait=2 * TIMEOUT + 200)
    status, err = EXPECT[kind]
    for i, ((_, a, n), (got, st, _)) in enumerate(zip(reqs, b.rdata)):
        if a == A:
            assert st == status and not any(got), f"victim: status {st}, data {got[:8].hex()}"
        else:
            assert st == StatusRef.OK and got == b.mem.read(a, n), f"read {i} at {a:#x}: {st}"
    assert b.errors[err] == 1, b.errors
    others = {k: v for k, v in b.errors.items() if k != err}
    assert not any(others.values()), others
    assert b.tags_free == 32, f"{b.tags_free} tags free at the end"


@pytest.mark.parametrize("beats", [1, 3])
def test_dma_fragment_between_completions(beats):
    """DMA-09, DMA-13: beats without ``first`` outside a TLP (a fragment the depacketizer drops as
    malformed, ``rx_malformed`` on its last beat) arriving between two completions of a read
    belong to no completion: the read still completes OK with its data, only the fragment is
    reported (found by the stress's DMA traffic: the fragment was taken for the end of the
    completion before it)."""
    rng = seeded("dma_fragment", beats)
    frag = ("fragment", [(rng.randrange(1 << 128), 0xF, 0, int(i == beats - 1))
                         for i in range(beats)])

    def hold(r):
        if r.start != A:
            return None
        data = b.mem.read(r.start, r.nbytes)
        first = 0x40 - (r.start & 0x3F)
        return [completion(r, data=data[:first]), frag,
                completion(r, data=data[first:], lower_addr=(r.start + first) & 0x7F,
                           byte_count=r.nbytes - first)]

    reqs = [(0, 0x5000_0000, 64), (0, A, 200), (0, 0x5000_0400, 300)]
    b = ReqBench(width=128, rng=rng, name=f"dma_fragment_{beats}", hold=hold, timeout=TIMEOUT)
    b.run(reqs, timeout=20000, wait=300)
    for (_, a, n), (got, st, _) in zip(reqs, b.rdata):
        assert st == StatusRef.OK and got == b.mem.read(a, n), f"read at {a:#x}: status {st}"
    assert not any(b.errors.values()), b.errors
    assert b.tags_free == 32


def test_dma_stray_completions():
    """DMA-12: completions with an unknown tag, with the Requester ID of another function, and a
    second completion for a finished read are discarded and each reported as unexpected; the
    data of the reads in flight is not disturbed."""
    rng = seeded("dma_stray")
    reqs = [(0, 0x6000_0000 + 512 * i, 512) for i in range(8)]
    b = ReqBench(width=128, rng=rng, name="dma_stray", cpl_latency=60)
    from tb.models.dma_model import MemReq
    ghost = MemReq(write=False, addr=0x6000_0000, length_dw=4, fbe=0xF, lbe=0xF, tag=2,
                   requester_id=0x0A08, attr=0, tc=0, hdr_dw=3, start=0x6000_0000, nbytes=16)
    junk = bytes([0xEE] * 16)
    b.extra_rx = [(20, completion(ghost, data=junk, tag=200)),             # unknown tag
                  (22, completion(ghost, data=junk, requester_id=0x0B08)),  # other function
                  (24, completion(ghost, data=junk, tag=40)),              # beyond the pool
                  (400, completion(ghost, data=junk, tag=0))]              # tag 0 is done by then
    b.run(reqs, timeout=20000, wait=500)
    for (_, a, n), (got, st, _) in zip(reqs, b.rdata):
        assert st == StatusRef.OK and got == b.mem.read(a, n)
    assert b.errors["err_unexpected"] == 4, b.errors
    assert b.tags_free == 32


def test_dma_flr_with_requests_in_flight():
    """DMA-19: an FLR with reads waiting for completions and a write waiting for data answers
    all of them with RESET (zeros for the reads); completions arriving after the FLR for the old
    reads are discarded as unexpected and never reach the back-end; the tags come back after the
    quarantine and later requests work."""
    rng = seeded("dma_flr")
    held = []

    def hold(r):
        if r.start < 0x7001_0000:
            held.append(r)
            r.abandoned = True
            return []
        return None

    reqs = [(0, 0x7000_0000 + 256 * i, 256) for i in range(6)]
    b = ReqBench(width=128, rng=rng, name="dma_flr", hold=hold, timeout=TIMEOUT)
    b.flr_at = 200
    # late completions of two old reads after the FLR
    b.late = True

    def late_cpls():
        return [(300, completion(r, data=bytes(r.nbytes))) for r in held[:2]]
    orig = b._on_tlp

    def on_tlp(dws, cycle):
        orig(dws, cycle)
        if len(held) == 6 and not b.extra_rx and not getattr(b, "_late_done", False):
            b._late_done = True
            b.extra_rx = late_cpls()
    b._on_tlp = on_tlp
    b.run(reqs, timeout=40000, wait=2 * TIMEOUT + 200)
    assert len(held) == 6
    for got, st, _ in b.rdata:
        assert st == StatusRef.RESET and not any(got)
    assert b.errors["err_unexpected"] == 2, b.errors
    assert b.tags_free == 32


def test_dma_bme_cleared_mid_transfer():
    """DMA-01: Bus Master Enable cleared while a long read and a long write are being split:
    nothing more leaves after it, both end with status BME (the read's bytes not requested are
    zeros, those of the MRds that left before are the host's), the
    write's data is consumed, and the requester is idle again."""
    rng = seeded("dma_bme")
    reqs = [(0, 0x8000_0000, 16384), (1, 0x9000_0000, 16384)]
    b = ReqBench(width=128, rng=rng, name="dma_bme", mrrs=0, mps=0, ready_prob=0.5)
    b.bme_clear_at = 60
    b.run(reqs, timeout=40000, wait=100)
    (got, st, _), = b.rdata
    # the MRds that left before were answered: their bytes are good, the refused rest is zeros
    sent = sum(r.nbytes for _, r in b.tlps if not r.write)
    assert st == StatusRef.BME and got[:sent] == b.mem.read(0x8000_0000, sent) \
        and not any(got[sent:]) and 0 < sent < 16384
    assert b.wdone == [StatusRef.BME]
    late = [(c, r) for c, r in b.tlps if c > b.bme_clear_at + 40]
    assert not late, f"{len(late)} requests left after BME was cleared"
    assert 0 < len(b.tlps) < 16384 // 128, "the transfer was cut, not refused or finished"


@pytest.mark.parametrize("held", [False, True], ids=["waiting", "on_tx"])
def test_dma_flr_withdraws_unsent_mrd(held):
    """DMA-19 (and PCIe 7.5.1.1.3, no request with Bus Master Enable clear): an MRd still waiting
    in the requester's output register when an FLR comes, not yet presented on ``tx`` by the
    arbiter (``mrd_held`` clear), is withdrawn in the FLR's cycle and never leaves; its read ends
    with RESET and its tag is free at once (no completion can come for it).  An MRd the arbiter
    already presents (``mrd_held`` set) is kept under the stream rules, leaves, and its tag stays
    quarantined until the completion timeout like that of any MRd that left."""
    from virtio_pci.dma.layouts import DmaStatus
    from virtio_pci.dma.requester import Requester
    from .helpers import Bench

    dut = Requester(128, n_tags=32, max_read=512, max_payload=256, timeout=TIMEOUT)
    b = Bench(dut, f"dma_flr_withdraw_{'held' if held else 'waiting'}")
    seen = {}

    async def tb(ctx):
        for k, v in dict(requester_id=0x0A08, bus_master=1, mps=1, mrrs=2).items():
            ctx.set(getattr(dut, k), v)
        ctx.set(dut.mrd.ready, 0)
        ctx.set(dut.mrd_held, int(held))
        ctx.set(dut.dma_rdata.ready, 1)
        ctx.set(dut.dma_req.payload, {"write": 0, "addr": 0x7000_0000, "len_m1": 255})
        ctx.set(dut.dma_req.valid, 1)
        while True:
            _, _, ready = await ctx.tick().sample(dut.dma_req.ready)
            if ready:
                break
        ctx.set(dut.dma_req.valid, 0)
        while not ctx.get(dut.mrd.valid):
            await ctx.tick()
        for _ in range(5):                       # the MRd waits, tx busy elsewhere
            await ctx.tick()
        assert ctx.get(dut.mrd.valid) and ctx.get(dut.tags_free) == 31
        ctx.set(dut.flr, 1)
        seen["valid_at_flr"] = ctx.get(dut.mrd.valid)
        await ctx.tick()
        ctx.set(dut.flr, 0)
        ctx.set(dut.bus_master, 0)               # the FLR cleared Command
        left = 0
        status = None
        for c in range(200):
            if held and c == 20:
                ctx.set(dut.mrd.ready, 1)
            _, _, mv, mr, rv, rp, free = await ctx.tick().sample(
                dut.mrd.valid, dut.mrd.ready, dut.dma_rdata.valid, dut.dma_rdata.payload,
                dut.tags_free)
            if mv and mr:
                left += 1
            if rv and rp.last:
                status = rp.status
            if c == 60:
                seen["free_after"] = free
        seen.update(left=left, status=status)

    b.add(tb)
    b.run(timeout=2000)
    assert seen["status"] == DmaStatus.RESET, seen
    if held:
        assert seen["valid_at_flr"] and seen["left"] == 1, seen
        assert seen["free_after"] == 31, seen     # quarantined: its completion may still come
    else:
        assert not seen["valid_at_flr"] and seen["left"] == 0, seen
        assert seen["free_after"] == 32, seen     # free without waiting for the timeout
