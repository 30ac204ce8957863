"""The FLR handshake with a vendor hard IP (hdl/virtio_pci/link/flr.py) and its use in the P-Tile
adapter (flr_rcvd_pf / flr_completed_pf, UG 683059 "Function Level Reset (FLR)")."""
import pytest

from virtio_pci.link.flr import FlrHandshake
from virtio_pci.link.ptile import PTileAdapter
from .helpers import Bench


def _run(dut, request, core_flr, done, events, cycles=40):
    """Pulse ``request`` / ``core_flr`` at the cycles in ``events`` ({"ip": [...], "core": [...]});
    return the cycles where ``done`` was high."""
    b = Bench(dut, "flr_handshake")
    got = []

    async def main(ctx):
        for c in range(cycles):
            ctx.set(request, c in events["ip"])
            ctx.set(core_flr, c in events["core"])
            _, _, d = await ctx.tick().sample(done)
            if d:
                got.append(c)
    b.add(main)
    b.run(timeout=cycles + 10)
    return got


@pytest.mark.parametrize("ip,core,want", [
    ([3], [10], [11]),              # the IP first: done the cycle after the core's FLR
    ([10], [3], [11]),              # the core first (P-Tile: its own Device Control)
    ([5], [5], [6]),                # the same cycle
    ([2, 20], [4, 25], [5, 26]),    # two FLRs, each answered once
    ([3], [], []),                  # no core FLR: no answer (the IP keeps waiting)
    ([], [3], []),                  # a core FLR alone answers nothing
])
def test_flr_handshake_order(ip, core, want):
    """No requirement ID (issue 15, the vendors' FLR handshakes: the core has reset before the hard
    IP is told the function's FLR is done): done pulses once
    per FLR, the cycle after both the IP's request and the core's own FLR were seen, in either
    order; never for one of them alone."""
    h = FlrHandshake()
    assert _run(h, h.request, h.core_flr, h.done, {"ip": ip, "core": core}) == want


@pytest.mark.parametrize("ip,core,want", [
    ([3], [10], [11]),              # both within the timeout: as without one
    ([3], [], [12]),                # the IP alone: answered ``timeout`` cycles later
    ([3], [13], [12]),              # the core's FLR after that: a new, lone core FLR ...
    ([3], [13, 30], [12]),          # ... forgotten after the timeout, never answers anything
    ([], [3], []),                  # the core alone: nothing
    ([20], [3], [29]),              # the core's FLR was forgotten: the IP's waits again
])
def test_flr_handshake_timeout(ip, core, want):
    """No requirement ID (no single stuck party wedges an FLR): with a timeout of 8 cycles an FLR
    of the IP the core never sees is still answered, 8 cycles later, and a core FLR the IP never
    reports does not answer a later, unrelated IP FLR early."""
    h = FlrHandshake(timeout=8)
    assert _run(h, h.request, h.core_flr, h.done, {"ip": ip, "core": core}) == want


def test_ptile_flr_completed_after_core_flr():
    """No requirement ID (UG 683059 FLR interface): behind the P-Tile adapter, flr_completed_pf[0]
    answers flr_rcvd_pf[0] only after the core's FLR, once; the other PF bits stay 0."""
    a = PTileAdapter(256)
    b = Bench(a, "ptile_flr")
    rec = []

    async def main(ctx):
        for c in range(30):
            ctx.set(a.flr_rcvd_pf, 1 if c == 4 else 0)
            ctx.set(a.core_flr, c == 12)
            _, _, v = await ctx.tick().sample(a.flr_completed_pf)
            rec.append(v)
    b.add(main)
    b.run(timeout=60)
    assert [c for c, v in enumerate(rec) if v] == [13]
    assert set(rec) == {0, 1}


def test_ptile_flr_completed_without_core_flr():
    """No requirement ID (UG 683059: the IP keeps the function disabled until flr_completed_pf): an
    FLR of the IP that the core never sees is answered FLR_TIMEOUT cycles after flr_rcvd_pf."""
    from virtio_pci.link.ptile import FLR_TIMEOUT
    a = PTileAdapter(256)
    b = Bench(a, "ptile_flr_alone")
    rec = []

    async def main(ctx):
        for c in range(FLR_TIMEOUT + 40):
            ctx.set(a.flr_rcvd_pf, 1 if c == 4 else 0)
            _, _, v = await ctx.tick().sample(a.flr_completed_pf)
            rec.append(v)
    b.add(main)
    b.run(timeout=FLR_TIMEOUT + 80)
    assert [c for c, v in enumerate(rec) if v] == [4 + FLR_TIMEOUT + 1]
