"""Beat packers: completion chunks of up to four DWs in, TLP stream beats out.

DESIGN.md section 3: a TLP starts in lane 0 and a beat never holds two TLPs.  A chunk is the
three header DWs plus the first data DW of a completion, or one further data DW.  The packer
collects DWs until a beat is full or the TLP ends, so a single-DW completion at W >= 128 leaves
as one beat the cycle after its chunk is accepted, back to back with the next one.
``MessagePacker`` does the same for the interrupt controller's few fixed TLP shapes only, in a
fraction of the logic.
"""
from amaranth.hdl import Cat, Module, Mux, Signal, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from .layouts import tlp_stream

__all__ = ["ChunkLayout", "BeatPacker", "MessagePacker"]

ChunkLayout = data.StructLayout({
    "dw": data.ArrayLayout(unsigned(32), 4),
    "n": unsigned(3),        # DWs used, 1..4, from dw[0]
    "first": unsigned(1),    # first chunk of a TLP
    "last": unsigned(1),     # last chunk of a TLP
})


class _Packer(wiring.Component):
    """``chunk`` (in, ChunkLayout) -> ``tx`` (out, TLP beats of ``width`` bits)."""

    def __init__(self, width):
        self._w = width
        self._lanes = width // 32
        super().__init__({
            "chunk": In(stream.Signature(ChunkLayout)),
            "tx": Out(tlp_stream(width)),
        })


class BeatPacker(_Packer):
    """``chunk`` (in) -> ``tx`` (out).  Latency: one cycle from chunk to beat."""

    def elaborate(self, platform):
        m = Module()
        L = self._lanes
        B = L + 4
        buf = [Signal(32, name=f"buf{i}") for i in range(B)]
        cnt = Signal(range(B + 1))
        tail = Signal()       # the last chunk of the TLP in the buffer has been accepted
        started = Signal()    # a beat of this TLP has already been sent

        tx = self.tx
        ch = self.chunk
        m.d.comb += [
            tx.valid.eq((cnt >= L) | (tail & (cnt != 0))),
            tx.payload.data.eq(Cat(*buf[:L])),
            tx.payload.keep.eq(Cat(*((cnt > i) for i in range(L)))),
            tx.payload.first.eq(~started),
            tx.payload.last.eq(tail & (cnt <= L)),
        ]
        pop = tx.valid & tx.ready
        cnt_after = Signal.like(cnt)
        m.d.comb += cnt_after.eq(Mux(pop, Mux(cnt > L, cnt - L, 0), cnt))
        m.d.comb += ch.ready.eq((cnt_after + ch.payload.n <= B)
                                & (~ch.payload.first | ((cnt_after == 0) & (~tail | pop))))
        push = ch.valid & ch.ready

        shifted = [Mux(pop, buf[i + L] if i + L < B else 0, buf[i]) for i in range(B)]
        for j in range(B):
            nv = shifted[j]
            for k in range(4):
                nv = Mux(push & (cnt_after + k == j) & (k < ch.payload.n), ch.payload.dw[k], nv)
            m.d.sync += buf[j].eq(nv)
        m.d.sync += cnt.eq(cnt_after + Mux(push, ch.payload.n, 0))

        with m.If(pop):
            m.d.sync += started.eq(1)
            with m.If(tx.payload.last):
                m.d.sync += [started.eq(0), tail.eq(0)]
        with m.If(push):
            m.d.sync += tail.eq(ch.payload.last)
            with m.If(ch.payload.first):
                m.d.sync += started.eq(0)
        return m


class MessagePacker(_Packer):
    """``chunk`` (in) -> ``tx`` (out) for the fixed shapes of the interrupt controller's TLPs: one
    chunk of 4 DWs (a 3-DW MWr with its data DW, an INTx message), or a chunk of 4 DWs followed by
    a chunk of 1 DW (a 4-DW MWr and its data DW).  Any other shape is outside its contract.

    The same beats and timing as ``BeatPacker`` for those shapes (a beat the cycle after the chunk
    that completes it is accepted; a 5-DW TLP at W=256 leaves as one beat once its second chunk is
    in), from a 5-DW buffer instead of BeatPacker's general lane shifter."""

    def elaborate(self, platform):
        m = Module()
        L = self._lanes
        buf = [Signal(32, name=f"buf{i}") for i in range(5)]
        have = Signal(range(6))       # DWs of the TLP in the buffer
        sent = Signal(range(5))       # DWs of it already sent (a multiple of L)
        whole = Signal()              # its last chunk is in

        tx = self.tx
        ch = self.chunk
        avail = Signal(range(6))
        m.d.comb += avail.eq(have - sent)
        lanes = [Signal(32, name=f"lane{j}") for j in range(L)]
        with m.Switch(sent):
            for s in range(0, 5, L):
                with m.Case(s):
                    m.d.comb += [lanes[j].eq(buf[s + j]) for j in range(L) if s + j < 5]
        m.d.comb += [
            tx.valid.eq((avail >= L) | (whole & (avail != 0))),
            tx.payload.data.eq(Cat(*lanes)),
            tx.payload.keep.eq(Cat(*((avail > j) for j in range(L)))),
            tx.payload.first.eq(sent == 0),
            tx.payload.last.eq(whole & (avail <= L)),
        ]
        pop = tx.valid & tx.ready
        ends = pop & tx.payload.last
        m.d.comb += ch.ready.eq(Mux(ch.payload.first, (have == 0) | ends, (have == 4) & ~whole))
        push = ch.valid & ch.ready
        with m.If(pop):
            m.d.sync += sent.eq(sent + L)
        with m.If(ends):
            m.d.sync += [have.eq(0), sent.eq(0), whole.eq(0)]
        with m.If(push):
            with m.If(ch.payload.first):
                m.d.sync += [buf[i].eq(ch.payload.dw[i]) for i in range(4)]
                m.d.sync += [have.eq(4), sent.eq(0), whole.eq(ch.payload.last)]
            with m.Else():
                m.d.sync += [buf[4].eq(ch.payload.dw[0]), have.eq(5), whole.eq(1)]
        return m
