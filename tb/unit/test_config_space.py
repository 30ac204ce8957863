"""ConfigSpace register bus (config/config_space.py): reads return the image, writes obey the
RW/RO/RW1C masks per byte enable, hardware-set error bits, FLR strobe, BAR sizing, read timing.

The model below is written from the PCI attribute definitions (RW: written bytes replace the bits;
RW1C: a 1 written clears the bit; RO: unchanged) using only the image's masks.
"""
import pytest

from virtio_pci.params import VirtioPciParams
from virtio_pci.config.config_space import ConfigSpace
from virtio_pci.config.capabilities import build_config_image, CapId

from .helpers import Bench, seeded

PARAMS = {
    "default": VirtioPciParams(),
    "transitional": VirtioPciParams(transitional=True, mem_bar=2, msix_vectors=64),
}


class CfgModel:
    def __init__(self, img):
        self.img = img
        self.v = {i: img.dword(i)[0] for i in range(1024)}
        self.int_status = 0

    def write(self, addr, be, wdata):
        _, rw, rw1c = self.img.dword(addr)
        bm = sum(0xFF << 8 * i for i in range(4) if be >> i & 1)
        old = self.v[addr]
        v = (old & ~(bm & rw)) | (wdata & bm & rw)
        pm = self.img.fields["pm_csr"]
        if addr == pm.dword and be >> (pm.bit // 8) & 1 and (wdata >> pm.bit & 3) in (1, 2):
            # D1 / D2 are not supported: such a PowerState is discarded (PCI PM 1.2 3.2.4)
            v = (v & ~(3 << pm.bit)) | (old & (3 << pm.bit))
        self.v[addr] = v & ~(wdata & bm & rw1c)

    def read(self, addr):
        v = self.v[addr]
        if addr == 1:
            v |= self.int_status << 19
        return v

    def field(self, name):
        f = self.img.fields[name]
        return (self.v[f.dword] >> f.bit) & ((1 << f.width) - 1)


def caps(img):
    return {c.cap_id: c.offset for c in img.caps}


class Bus:
    """Drives the ConfigSpace register bus from a testbench."""

    def __init__(self, dut):
        self.dut = dut
        self.bus = dut.bus

    async def access(self, ctx, addr, write=False, be=0xF, wdata=0):
        b = self.bus
        ctx.set(b.en, 1)
        ctx.set(b.write, write)
        ctx.set(b.addr, addr)
        ctx.set(b.be, be)
        ctx.set(b.wdata, wdata)
        assert ctx.get(b.ready) == 1, "ConfigSpace must always be ready"
        flr = ctx.get(self.dut.flr)
        await ctx.tick()
        ctx.set(b.en, 0)
        return flr

    async def read(self, ctx, addr):
        await self.access(ctx, addr)
        _, _, v = await ctx.tick().sample(self.bus.rdata)     # the cycle after the access
        return v


@pytest.fixture(params=list(PARAMS))
def p(request):
    return PARAMS[request.param]


def test_read_image_and_timing(p):
    """Every dword reads its image value the cycle after the access; back-to-back reads pipeline
    one per cycle; rdata is held until the next read (also across writes and idle cycles)."""
    dut = ConfigSpace(p)
    img = build_config_image(p)
    model = CfgModel(img)
    b = Bench(dut, f"cfg_read_{p.transitional}")
    bus = Bus(dut)

    async def main(ctx):
        # back-to-back reads of all 1024 dwords: value of address a at the edge after its access
        ctx.set(dut.bus.en, 1)
        ctx.set(dut.bus.write, 0)
        ctx.set(dut.bus.be, 0xF)
        prev = None
        for a in list(range(1024)) + [None]:
            if a is not None:
                ctx.set(dut.bus.addr, a)
            else:
                ctx.set(dut.bus.en, 0)
            _, _, rdata = await ctx.tick().sample(dut.bus.rdata)
            if prev is not None:
                assert rdata == model.read(prev), f"dword {prev:#x}: {rdata:#010x} != {model.read(prev):#010x}"
            prev = a
        # held: idle cycles, then a write elsewhere, then idle again
        v = await bus.read(ctx, 0)
        assert v == model.read(0)
        for _ in range(3):
            _, _, r = await ctx.tick().sample(dut.bus.rdata)
            assert r == v
        await bus.access(ctx, 0x3C // 4, write=True, be=0x1, wdata=0xA5)
        for _ in range(3):
            _, _, r = await ctx.tick().sample(dut.bus.rdata)
            assert r == v, "rdata changed on a write"
        assert await bus.read(ctx, 0x3C // 4) == 0x01A5
        # Interrupt Status is live in Status bit 3
        ctx.set(dut.int_status, 1)
        model.int_status = 1
        assert await bus.read(ctx, 1) == model.read(1)
        assert (model.read(1) >> 19) & 1

    b.add(main)
    b.run(timeout=3000)


def writable_dwords(img):
    return sorted({i for i in range(64) if img.dword(i)[1] or img.dword(i)[2]})


def test_random_writes_obey_masks(p):
    """Random writes (random byte enables and data) to writable, read-only and unused dwords; every
    read matches the model; field outputs follow the registers."""
    dut = ConfigSpace(p)
    img = build_config_image(p)
    model = CfgModel(img)
    rng = seeded("cfg-random", p.transitional)
    targets = writable_dwords(img) + [0, 2, 3, 0x34 // 4, 0x3C // 4, caps(img)[CapId.PCIE] // 4 + 1,
                                      0x40, 0x100 // 4, 0x3FF]
    flr_dw = img.fields["flr"].dword
    b = Bench(dut, f"cfg_random_{p.transitional}")
    bus = Bus(dut)

    async def main(ctx):
        for _ in range(500):
            a = rng.choice(targets)
            if rng.random() < 0.5:
                be = rng.randrange(16)
                wdata = rng.getrandbits(32)
                if a == flr_dw:
                    wdata &= ~(1 << (img.fields["flr"].bit))       # FLR is tested on its own
                await bus.access(ctx, a, write=True, be=be, wdata=wdata)
                model.write(a, be, wdata)
            else:
                v = await bus.read(ctx, a)
                assert v == model.read(a), f"dword {a:#x}: {v:#010x} != {model.read(a):#010x}"
            bar_bits = (p.mem_bar_size - 1).bit_length()
            base = (model.field("mem_bar_hi") << 32 | model.field("mem_bar_lo")) & ~((1 << bar_bits) - 1)
            assert ctx.get(dut.command) == model.field("command")
            assert ctx.get(dut.mem_bar_base) == base
            assert ctx.get(dut.msix_enable) == model.field("msix_enable")
            assert ctx.get(dut.msix_fmask) == model.field("msix_fmask")
            assert ctx.get(dut.mps) == model.field("mps")
            assert ctx.get(dut.rcb) == model.field("rcb")
            assert ctx.get(dut.pci_cfg_bar) == model.field("pci_cfg_bar")
            assert ctx.get(dut.pci_cfg_offset) == model.field("pci_cfg_offset")
            assert ctx.get(dut.pci_cfg_length) == model.field("pci_cfg_length")
            assert ctx.get(dut.d3hot) == (model.field("pm_csr") & 3 == 3)
            if p.transitional:
                io_bits = (p.io_bar_size - 1).bit_length()
                assert ctx.get(dut.io_bar_base) == model.field("io_bar") & ~((1 << io_bits) - 1)
        # every dword once more
        for a in range(1024):
            v = await bus.read(ctx, a)
            assert v == model.read(a), f"dword {a:#x}: {v:#010x} != {model.read(a):#010x}"

    b.add(main)
    b.run(timeout=20000)


def test_bar_sizing(p):
    """PCI 3.0 6.2.5.1: write all ones, read back the size mask; then program a base."""
    dut = ConfigSpace(p)
    b = Bench(dut, f"cfg_bar_{p.transitional}")
    bus = Bus(dut)
    lo = 4 + p.mem_bar

    async def main(ctx):
        for i in range(6):
            await bus.access(ctx, 4 + i, write=True, wdata=0xFFFF_FFFF)
        got = [await bus.read(ctx, 4 + i) for i in range(6)]
        for i, v in enumerate(got):
            if 4 + i == lo:
                assert v == ((0xFFFF_FFFF & ~(p.mem_bar_size - 1)) | 0b0100)
            elif 4 + i == lo + 1:
                assert v == 0xFFFF_FFFF
            elif i == 0 and p.transitional:
                assert v == (0xFFFF_FFFF & ~(p.io_bar_size - 1)) | 0b01
            else:
                assert v == 0, f"unimplemented BAR{i} must read 0 after sizing"
        size = ((~((got[lo - 4 + 1] << 32) | (got[lo - 4] & ~0xF))) & (2 ** 64 - 1)) + 1
        assert size == p.mem_bar_size
        base = 0x12_3450_0000 & ~(p.mem_bar_size - 1)
        await bus.access(ctx, lo, write=True, wdata=(base & 0xFFFF_FFFF) | 0xF)    # low bits RO
        await bus.access(ctx, lo + 1, write=True, wdata=base >> 32)
        assert await bus.read(ctx, lo) == (base & 0xFFFF_FFFF) | 0b0100
        assert ctx.get(dut.mem_bar_base) == base
        # byte-wise programming of the upper half
        await bus.access(ctx, lo + 1, write=True, be=0b0010, wdata=0x0000_AB00)
        assert await bus.read(ctx, lo + 1) == ((base >> 32) & ~0xFF00) | 0xAB00

    b.add(main)
    b.run()


def test_error_bits_and_rw1c(p):
    """set_* pulses set their RW1C bit; writing 1 clears, writing 0 or a disabled byte does not; a
    set in the same cycle as the clearing write wins."""
    dut = ConfigSpace(p)
    img = build_config_image(p)
    ex = caps(img)[CapId.PCIE]
    sta_dw = (ex + 8) // 4          # Device Control (low half) / Device Status (high half)
    b = Bench(dut, f"cfg_err_{p.transitional}")
    bus = Bus(dut)
    sets = [(dut.set_signaled_abort, 1, 16 + 11), (dut.set_parity_error, 1, 16 + 15),
            (dut.set_nonfatal_detected, sta_dw, 16 + 1), (dut.set_fatal_detected, sta_dw, 16 + 2),
            (dut.set_ur_detected, sta_dw, 16 + 3)]

    async def main(ctx):
        base_sts = await bus.read(ctx, 1)
        base_dev = await bus.read(ctx, sta_dw)
        for sig, dw, bit in sets:
            ctx.set(sig, 1)
            await ctx.tick()
            ctx.set(sig, 0)
            v = await bus.read(ctx, dw)
            assert v >> bit & 1, f"bit {bit} of dword {dw:#x} not set"
            assert v & ~(1 << bit) == (base_sts if dw == 1 else base_dev)
            # write 0 to it, and 1 with its byte disabled: stays set
            await bus.access(ctx, dw, write=True, be=0xF, wdata=v & ~(1 << bit) & 0xFFFF)
            await bus.access(ctx, dw, write=True, be=0xF & ~(1 << bit // 8), wdata=v)
            assert await bus.read(ctx, dw) >> bit & 1
            # write 1: cleared
            await bus.access(ctx, dw, write=True, be=1 << bit // 8, wdata=1 << bit)
            assert not (await bus.read(ctx, dw) >> bit & 1)
            # set and clear in the same cycle: the new event is kept
            ctx.set(sig, 1)
            await bus.access(ctx, dw, write=True, be=1 << bit // 8, wdata=1 << bit)
            ctx.set(sig, 0)
            assert await bus.read(ctx, dw) >> bit & 1
            await bus.access(ctx, dw, write=True, be=1 << bit // 8, wdata=1 << bit)
            assert not (await bus.read(ctx, dw) >> bit & 1)

    b.add(main)
    b.run()


def test_flr_strobe(p):
    """Initiate FLR (Device Control bit 15): a one-cycle strobe in the cycle of the write, only when
    the byte is enabled and the bit is 1; it is never stored (reads 0)."""
    dut = ConfigSpace(p)
    img = build_config_image(p)
    f = img.fields["flr"]
    b = Bench(dut, f"cfg_flr_{p.transitional}")
    bus = Bus(dut)
    seen = []

    async def watch(ctx):
        async for _, _, c, flr in ctx.tick().sample(b.cycle, dut.flr):
            if flr:
                seen.append(c)

    async def main(ctx):
        ctl = await bus.read(ctx, f.dword)
        assert await bus.access(ctx, f.dword, write=True, be=0xF & ~(1 << f.bit // 8),
                                wdata=ctl | 1 << f.bit) == 0
        assert await bus.access(ctx, f.dword, write=True, be=0xF, wdata=ctl) == 0
        assert await bus.access(ctx, f.dword, write=False, be=0xF, wdata=1 << f.bit) == 0
        assert not seen
        assert await bus.access(ctx, f.dword, write=True, be=1 << f.bit // 8, wdata=1 << f.bit) == 1
        # that write also wrote 0 to the other bits of Device Control's upper byte
        assert await bus.read(ctx, f.dword) == ctl & ~0xFF00, "Initiate FLR must read 0"
        for _ in range(3):
            await ctx.tick()
        assert len(seen) == 1

    b.add(main)
    b.add(watch, background=True)
    b.run()
