"""Entropy source for virtio-rng (VIRTIO 1.3 section 5.4): a simulation stand-in.

NOT CRYPTOGRAPHIC.  ``LfsrEntropy`` runs one xorshift64 generator (a linear feedback shift
register over GF(2), Marsaglia 2003: x ^= x << 13; x ^= x >> 7; x ^= x << 17) per 64 bits of
the output word, each from its own non-zero seed, one step per cycle.  Its output is fully
predictable from its seed and a few words of output: it exists so that simulations and FPGA
bring-up have bytes to move.  A product plugs a real TRNG (a ring-oscillator source with health
tests, a vendor TRNG IP) into the device top's ``entropy`` port instead: build ``VirtioRng`` with
``entropy="external"`` (``devices/rng.py``).

Port: ``o`` Out stream of W-bit words, valid every cycle (after reset), a new word per transfer.
"""
from amaranth.hdl import Cat, Module, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import Out

__all__ = ["LfsrEntropy"]

#: per-lane seeds (any non-zero 64-bit values; these are digits of pi)
SEEDS = (0x243F6A8885A308D3, 0x13198A2E03707344, 0xA4093822299F31D0, 0x082EFA98EC4E6C89)


def xorshift64(x):
    """One step, as a Python function (tests use it as the reference model)."""
    m = (1 << 64) - 1
    x ^= (x << 13) & m
    x ^= x >> 7
    x ^= (x << 17) & m
    return x


class LfsrEntropy(wiring.Component):
    def __init__(self, width, seeds=SEEDS):
        if width % 64 or not 64 <= width <= 64 * len(seeds):
            raise ValueError(f"entropy width must be a multiple of 64 up to {64 * len(seeds)}, "
                             f"not {width!r}")
        if any(not 0 < s < 1 << 64 for s in seeds):
            raise ValueError("xorshift64 seeds must be non-zero 64-bit values")
        self._w = width
        self._seeds = seeds[:width // 64]
        super().__init__({"o": Out(stream.Signature(width))})

    def elaborate(self, platform):
        m = Module()
        lanes = []
        for i, seed in enumerate(self._seeds):
            x = Signal(64, init=seed, name=f"lane{i}")
            a = Signal(64, name=f"lane{i}_a")
            b = Signal(64, name=f"lane{i}_b")
            c = Signal(64, name=f"lane{i}_c")
            m.d.comb += [a.eq(x ^ (x << 13)[:64]), b.eq(a ^ (a >> 7)), c.eq(b ^ (b << 17)[:64])]
            with m.If(self.o.ready):
                m.d.sync += x.eq(c)
            lanes.append(x)
        m.d.comb += [self.o.valid.eq(1), self.o.payload.eq(Cat(*lanes))]
        return m
