"""CommonCfg on the Amaranth simulator (virtio/common_cfg.py, VIRTIO 1.3 4.1.4.3).

Register-bus level checks of the behaviours that the TLP-level transport tests found broken and
that depend on exact cycles: an access right after a queue_select write, config_generation's
sticky flag, byte lanes of queue_enable, a queue-reset completion for a queue that is not
resetting, the configuration-change notification, interrupt gating, DRIVER_OK during a reset.
"""
from virtio_pci.params import VirtioPciParams
from virtio_pci.virtio.common_cfg import CommonCfg, NO_VECTOR

from .helpers import Bench

P = VirtioPciParams()


async def access(ctx, bus, addr, *, write=False, be=0xF, data=0, stalls=None):
    """One register-bus access to DW ``addr``; returns the read data (None for writes).
    ``stalls`` (a list) gets the number of cycles ``ready`` was low."""
    ctx.set(bus.en, 1)
    ctx.set(bus.addr, addr)
    ctx.set(bus.write, int(write))
    ctx.set(bus.be, be)
    ctx.set(bus.wdata, data)
    n = 0
    while True:
        _, _, ready = await ctx.tick().sample(bus.ready)
        if ready:
            break
        n += 1
    ctx.set(bus.en, 0)
    if stalls is not None:
        stalls.append(n)
    return None if write else ctx.get(bus.rdata)


async def rd(ctx, bus, off, be=0xF):
    return await access(ctx, bus, off // 4, be=be)


async def wr(ctx, bus, off, data, be=0xF):
    await access(ctx, bus, off // 4, write=True, be=be, data=data)


def bench(name):
    dut = CommonCfg(P)
    b = Bench(dut, name)
    return dut, b


async def ack_resets(ctx, dut):
    """Background: acknowledge every virtio reset after two cycles; consume queue events."""
    ctx.set(dut.qevent.ready, 1)
    while True:
        _, _, req = await ctx.tick().sample(dut.reset_req)
        if req:
            await ctx.tick()
            ctx.set(dut.reset_ack, 1)
            await ctx.tick()
            ctx.set(dut.reset_ack, 0)
            await ctx.tick()


def test_access_right_after_queue_select():
    dut, b = bench("cc_select_b2b")
    stalls = []

    async def main(ctx):
        bus = dut.bus
        await wr(ctx, bus, 0x14, 0 << 16, be=0b1100)               # queue_select 0
        await wr(ctx, bus, 0x18, 64, be=0b0011)                     # size
        await wr(ctx, bus, 0x20, 0x1234_0000)                       # desc lo
        # select queue 1 and write its size in the very next access
        await access(ctx, bus, 0x14 // 4, write=True, be=0b1100, data=1 << 16)
        await access(ctx, bus, 0x18 // 4, write=True, be=0b0011, data=32, stalls=stalls)
        assert (await rd(ctx, bus, 0x18)) & 0xFFFF == 32
        assert await rd(ctx, bus, 0x20) == 0, "queue 0's desc copied into queue 1"
        await wr(ctx, bus, 0x14, 0 << 16, be=0b1100)
        assert (await rd(ctx, bus, 0x18)) & 0xFFFF == 64, "queue 0's size overwritten"
        assert await rd(ctx, bus, 0x20) == 0x1234_0000
        # a second write to a queue whose row did not exist yet keeps the first one
        await wr(ctx, bus, 0x14, 2 << 16, be=0b1100)
        await wr(ctx, bus, 0x18, 16, be=0b0011)
        await wr(ctx, bus, 0x20, 0xABC0)
        assert (await rd(ctx, bus, 0x18)) & 0xFFFF == 16, "first write of a new row lost"

    async def backend(ctx):
        await ack_resets(ctx, dut)

    b.add(main)
    b.add(backend, background=True)
    b.run(timeout=500)
    assert stalls == [0], f"no bubble after a queue_select change, got {stalls}"


def test_generation_not_cleared_by_other_bytes():
    dut, b = bench("cc_generation")

    async def main(ctx):
        bus = dut.bus
        g0 = (await rd(ctx, bus, 0x14, be=0b0010)) >> 8 & 0xFF
        for _ in range(300):
            ctx.set(dut.config_changed, 1)
            await ctx.tick()
            ctx.set(dut.config_changed, 0)
            await rd(ctx, bus, 0x14, be=0b0001)          # device_status only
            await rd(ctx, bus, 0x14, be=0b1100)          # queue_select only
        g1 = (await rd(ctx, bus, 0x14, be=0b0010)) >> 8 & 0xFF
        assert g1 == (g0 + 1) & 0xFF, f"generation {g0} -> {g1} after 300 changes"
        ctx.set(dut.config_changed, 1)
        await ctx.tick()
        ctx.set(dut.config_changed, 0)
        g2 = (await rd(ctx, bus, 0x14)) >> 8 & 0xFF
        assert g2 != g1

    b.add(main)
    b.run(timeout=5000)


def test_enable_uses_enabled_lanes_only():
    dut, b = bench("cc_enable_lanes")

    async def main(ctx):
        bus = dut.bus
        ctx.set(dut.qevent.ready, 1)
        await wr(ctx, bus, 0x1C, 0xFFFF_FF01, be=0b0001)
        assert (await rd(ctx, bus, 0x1C)) & 0xFFFF == 1
        assert ctx.get(dut.chk_enabled) == 1
        await wr(ctx, bus, 0x14, 1 << 16, be=0b1100)
        await wr(ctx, bus, 0x1C, 0x0000_0100, be=0b0010)   # high byte 1: value 0x100
        assert ctx.get(dut.chk_enabled) == 1

    b.add(main)
    b.run(timeout=500)


def test_queue_reset_done_for_idle_queue_ignored():
    dut, b = bench("cc_stale_qreset")

    async def main(ctx):
        bus = dut.bus
        ctx.set(dut.qevent.ready, 1)
        await wr(ctx, bus, 0x18, 64, be=0b0011)
        await wr(ctx, bus, 0x1C, 1, be=0b0011)
        ctx.set(dut.qreset_done.payload, 0)
        ctx.set(dut.qreset_done.valid, 1)
        await ctx.tick()
        ctx.set(dut.qreset_done.valid, 0)
        await ctx.tick()
        assert ctx.get(dut.chk_enabled) == 1, "completion without a reset disabled the queue"
        assert (await rd(ctx, bus, 0x18)) & 0xFFFF == 64

    b.add(main)
    b.run(timeout=500)


def test_config_notify_and_irq_gating():
    dut, b = bench("cc_notify")
    seen = []

    async def main(ctx):
        bus = dut.bus
        ctx.set(dut.qevent.ready, 1)

        async def pulse(sig):
            ctx.set(sig, 1)
            _, _, n = await ctx.tick().sample(dut.config_notify)
            ctx.set(sig, 0)
            seen.append(n)

        await pulse(dut.config_changed)                  # before DRIVER_OK: nothing
        ctx.set(dut.irq_queue, 0)
        ctx.set(dut.irq_config, 1)
        assert not ctx.get(dut.irq_allowed)
        await wr(ctx, bus, 0x1C, 1, be=0b0011)           # enable queue 0
        await wr(ctx, bus, 0x14, 0x07, be=0b0001)        # DRIVER_OK
        assert ctx.get(dut.irq_allowed)
        ctx.set(dut.irq_config, 0)
        assert ctx.get(dut.irq_allowed)
        ctx.set(dut.irq_queue, 1)
        assert not ctx.get(dut.irq_allowed), "queue 1 is not enabled"
        ctx.set(dut.irq_queue, 0xFFFF)
        assert not ctx.get(dut.irq_allowed)
        await pulse(dut.config_changed)                  # notify
        await pulse(dut.needs_reset)                     # NEEDS_RESET set: notify
        await pulse(dut.needs_reset)                     # already set: no second one
        assert (await rd(ctx, bus, 0x14)) & 0x40
        # reset requested: DRIVER_OK drops at once, before the back-end acknowledges
        await wr(ctx, bus, 0x14, 0x00, be=0b0001)
        assert ctx.get(dut.reset_req) and not ctx.get(dut.driver_ok)
        ctx.set(dut.irq_config, 1)
        assert not ctx.get(dut.irq_allowed)
        assert (await rd(ctx, bus, 0x14)) & 0xFF != 0
        ctx.set(dut.reset_ack, 1)
        await ctx.tick()
        ctx.set(dut.reset_ack, 0)
        await ctx.tick()
        assert (await rd(ctx, bus, 0x14)) & 0xFF == 0
        assert (await rd(ctx, bus, 0x10)) & 0xFFFF == NO_VECTOR

    b.add(main)
    b.run(timeout=500)
    assert seen == [0, 1, 1, 0], f"config_notify pulses {seen}"


def _negotiate(ctx, bus, features):
    """Reset-free feature step on a fresh CommonCfg: ACKNOWLEDGE | DRIVER, the 128 driver feature
    bits, FEATURES_OK; returns the status read back."""
    async def run():
        await wr(ctx, bus, 0x14, 0x03, be=0b0001)
        for sel in range(4):
            await wr(ctx, bus, 0x08, sel)
            await wr(ctx, bus, 0x0C, (features >> (32 * sel)) & 0xFFFF_FFFF)
        await wr(ctx, bus, 0x14, 0x0B, be=0b0001)
        return (await rd(ctx, bus, 0x14)) & 0xFF
    return run()


def test_features_ok_device_type_prerequisites():
    """FEA-02, DRV-11, FEA-01: FEATURES_OK is refused for a device-type bit whose prerequisites
    the driver left out (VIRTIO 1.3 5.1.3.1: MQ needs CTRL_VQ; HOST_ECN needs HOST_TSO4 or
    HOST_TSO6), and accepted with them (virtio-net offering those bits)."""
    from virtio_pci.virtio import feature_rules as fr
    v1 = 1 << 32
    offered = ((1 << fr.NET_MQ) | (1 << fr.NET_CTRL_VQ) | (1 << fr.NET_CSUM)
               | (1 << fr.NET_HOST_TSO4) | (1 << fr.NET_HOST_TSO6) | (1 << fr.NET_HOST_ECN))
    p = VirtioPciParams.virtio_net(queue_pairs=2, features=v1 | offered)
    cases = [
        (v1 | (1 << fr.NET_MQ), False),
        (v1 | (1 << fr.NET_MQ) | (1 << fr.NET_CTRL_VQ), True),
        (v1 | (1 << fr.NET_HOST_ECN) | (1 << fr.NET_CSUM), False),
        (v1 | (1 << fr.NET_HOST_ECN) | (1 << fr.NET_CSUM) | (1 << fr.NET_HOST_TSO6), True),
        (v1 | (1 << fr.NET_HOST_TSO4), False),                     # needs CSUM
        (v1 | (1 << fr.NET_HOST_TSO4) | (1 << fr.NET_CSUM), True),
    ]
    for feats, ok in cases:
        dut = CommonCfg(p)
        b = Bench(dut, "cc_fok_prereq")
        got = []

        async def main(ctx, feats=feats):
            got.append(await _negotiate(ctx, dut.bus, feats))
            got.append(ctx.get(dut.driver_features))

        b.add(main)
        b.run()
        want = 0x0B if ok else 0x03
        assert got[0] == want, f"features {feats:#x}: status {got[0]:#x}, expected {want:#x}"
        assert got[1] == (feats if ok else 0)
