"""Tag pool of the requester: which tags may label the next memory read.

PCI Express Base Specification 5.0, 2.2.6.2 (Transaction Descriptor: tags of outstanding
non-posted requests are unique) and 7.5.3.4 (Device Control Extended Tag Field Enable: with it
clear a requester uses 5-bit tags 0..31, with it set 8-bit tags 0..255); requirement DMA-07.

A bitmap of taken tags.  ``alloc`` offers the lowest free tag below the current limit (32 while
``ext_tag`` is clear, ``n_tags`` when set, ``n_tags`` <= 256); taking it (``alloc.ready``) marks
it taken.  A tag comes back through one of the two ``release`` ports; it is offered again the
cycle after.  Clearing ``ext_tag`` while tags >= 32 are taken is legal: they stay taken until
released and are not offered again.

Ports
-----
alloc : Out stream of tag numbers; ``valid`` and ``payload`` are registered (the lowest free tag
    as of the previous cycle; a tag released this cycle is offered from the next one).  An offer
    is held until taken, except that clearing ``ext_tag`` withdraws an offer of a tag >= 32.
release<i>_valid/release<i>_tag (``n_release`` ports, default 2) : In, a tag that is given back
    this cycle (releasing a free tag is a no-op).
ext_tag : In, Device Control Extended Tag Field Enable.
free_count : Out, number of free tags below the limit (registered; for tests and the bench).
"""
from amaranth.hdl import Cat, Const, Module, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

__all__ = ["TagPool"]

#: tags a requester may use while Extended Tag Field Enable is clear (5-bit tags)
SHORT_TAGS = 32


class TagPool(wiring.Component):
    def __init__(self, n_tags, n_release=2):
        if not 1 <= n_tags <= 256:
            raise ValueError(f"tag count must be 1..256, not {n_tags!r}")
        self.n_tags = n_tags
        self.n_release = n_release
        members = {"alloc": Out(stream.Signature(8)), "ext_tag": In(1), "free_count": Out(9)}
        for i in range(n_release):
            members[f"release{i}_valid"] = In(1)
            members[f"release{i}_tag"] = In(8)
        super().__init__(members)

    def elaborate(self, platform):
        m = Module()
        n = self.n_tags
        taken = Signal(n)
        short = min(n, SHORT_TAGS)
        limit = Signal(n)
        m.d.comb += limit.eq(Cat(Const((1 << short) - 1, short),
                                 self.ext_tag.replicate(n - short) if n > short else Const(0, 0)))

        nxt = Signal(n)
        took = Signal(n)
        m.d.comb += took.eq(Cat(self.alloc.valid & self.alloc.ready & (self.alloc.payload == k)
                                for k in range(n)))
        rel = [Signal(n, name=f"rel{i}") for i in range(self.n_release)]
        for i in range(self.n_release):
            v, t = getattr(self, f"release{i}_valid"), getattr(self, f"release{i}_tag")
            m.d.comb += rel[i].eq(Cat(v & (t == k) for k in range(n)))
        released = Const(0, n)
        for r in rel:
            released = released | r
        m.d.comb += nxt.eq((taken | took) & ~released)
        m.d.sync += taken.eq(nxt)

        # lowest free tag below the limit, registered; an offer is held until it is taken
        # (stream rules), unless clearing Extended Tag Field Enable puts it out of range
        free = Signal(n)
        m.d.comb += free.eq(~nxt & limit)
        first = Signal(8)
        for i in reversed(range(n)):
            with m.If(free[i]):
                m.d.comb += first.eq(i)
        hold = self.alloc.valid & ~self.alloc.ready & (limit.bit_select(self.alloc.payload, 1))
        with m.If(~hold):
            m.d.sync += [self.alloc.valid.eq(free.any()), self.alloc.payload.eq(first)]
        m.d.sync += self.free_count.eq(sum(free[i] for i in range(n)))
        return m
