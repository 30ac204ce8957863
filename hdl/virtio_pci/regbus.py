"""The internal DW register bus between the request pipeline and every register block.

One access per cycle.  The pipeline raises ``en`` with ``addr``/``write``/``be``/``wdata`` and holds
them until the block answers ``ready``; the access takes effect in the cycle where ``en & ready``.
``rdata`` is valid the cycle after that and is held until the next accepted access, so the
pipeline can stall without losing a read whose side effect already happened (ISR read-to-clear).
Blocks that are always able to take an access tie ``ready`` high; blocks that wait for a
back-end (doorbells, device configuration) hold it low until they can complete the access.
"""
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

__all__ = ["RegBusSignature", "byte_mask"]


class RegBusSignature(wiring.Signature):
    def __init__(self, addr_width):
        self.addr_width = addr_width
        super().__init__({
            "en": Out(1),
            "ready": In(1),
            "write": Out(1),
            "addr": Out(addr_width),
            "be": Out(4),
            "wdata": Out(32),
            "rdata": In(32),
        })

    def __eq__(self, other):
        return isinstance(other, RegBusSignature) and other.addr_width == self.addr_width

    def __repr__(self):
        return f"RegBusSignature({self.addr_width})"


def byte_mask(be):
    """32-bit mask with the bytes enabled by the 4-bit ``be``."""
    from amaranth.hdl import Cat
    return Cat(*(be[i].replicate(8) for i in range(4)))


def regbus_mux(m, slave, *masters):
    """Share the register bus ``slave`` between ``masters`` that are never active in the same
    cycle (the request pipeline makes one access at a time).  Narrower master addresses are zero
    extended; every master sees the slave's ``ready`` and ``rdata`` (a master only looks at them
    after its own access)."""
    from amaranth.hdl import Mux
    for f in ("write", "addr", "be", "wdata"):
        v = getattr(masters[-1], f)
        for b in reversed(masters[:-1]):
            v = Mux(b.en, getattr(b, f), v)
        m.d.comb += getattr(slave, f).eq(v)
    en = 0
    for b in masters:
        en = en | b.en
        m.d.comb += [b.ready.eq(slave.ready), b.rdata.eq(slave.rdata)]
    m.d.comb += slave.en.eq(en)
