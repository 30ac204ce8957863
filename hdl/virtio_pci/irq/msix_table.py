"""MSI-X table and Pending Bit Array storage (PCI Local Bus 3.0 section 6.8.2).

Table entries (message address low/high, data) live in block RAM and take any byte enables.  The
per-vector Mask bits (Vector Control bit 0) are kept as 32-bit words, vector ``v`` in bit
``v % 32`` of word ``v // 32`` (``VectorWords``), in a small RAM, plus one "word written since
reset" flip-flop per word: a word whose flag is clear reads as all masked, so a reset (FLR) masks
every vector in one cycle although RAM contents are not reset.  A Vector Control write reads its
word in the bus cycle and writes it back, with the Mask bit changed, at the end of the next cycle
(a read of it in that cycle already returns the new value); Vector Control bits 31:1 read 0.

The PBA is read-only: word *k* is bits 32k..32k+31 of the pending state, which the delivery logic
(irq/interrupts.py) keeps in its own RAM and returns through ``pba_addr`` / ``pba_data`` (data the
cycle after the address; a read waits while ``pba_ready`` is low).  Addresses past the table or PBA read 0 and ignore writes.

Delivery-logic ports (all read data valid the cycle after the address):

* ``lookup_vector`` -> ``lookup_addr``, ``lookup_data``: the entry's message address and data.
* ``mask_rd[i].addr`` -> ``mask_rd[i].data``: a whole mask word.  Port 0 includes a Mask write
  at the same edge, port 1 returns the word as it was before that edge.
* ``mask_wr``: the Mask bit write being done this cycle (``valid``, ``vector``, ``value``), so that
  copies of a mask word held elsewhere can follow it; it takes effect at the end of the cycle.
"""
from amaranth.hdl import Const, Module, Mux, Signal
from amaranth.lib import memory, wiring
from amaranth.lib.wiring import In, Out

from ..regbus import RegBusSignature

__all__ = ["MsixTable", "VectorWords", "MaskReadSignature", "MaskWriteSignature"]


class VectorWords:
    """Geometry of per-vector bit arrays kept as words (Mask bits, pending bits, PBA).

    ``width`` bits per word (32, or the vector count when it is smaller), ``count`` words,
    ``word(v)`` / ``bit(v)`` the word index and bit position of vector ``v`` (a Value)."""

    def __init__(self, n):
        self.n = n
        self.vbits = max(1, (n - 1).bit_length())
        self.width = min(32, n)
        self.count = (n + 31) // 32
        self.wbits = max(1, (self.count - 1).bit_length())
        self.bbits = min(5, self.vbits)
        self.depth = max(2, self.count)      # a 1-deep Memory has no address bits

    def word(self, v):
        return v[5:self.vbits] if self.count > 1 else Const(0, 1)

    def bit(self, v):
        return v[:self.bbits]

    def onehot(self, v):
        return (Const(1, self.width) << self.bit(v))[:self.width]


class MaskReadSignature(wiring.Signature):
    def __init__(self, geo):
        super().__init__({"addr": Out(geo.wbits), "data": In(geo.width)})


class MaskWriteSignature(wiring.Signature):
    def __init__(self):
        super().__init__({"valid": Out(1), "vector": Out(11), "value": Out(1)})


class MsixTable(wiring.Component):
    def __init__(self, params, table_addr_width=10, pba_addr_width=10):
        self._n = params.msix_vectors
        self.geo = geo = VectorWords(self._n)
        super().__init__({
            "table": In(RegBusSignature(table_addr_width)),
            "pba": In(RegBusSignature(pba_addr_width)),
            "pba_addr": Out(geo.wbits),
            "pba_data": In(32),
            "pba_ready": In(1),
            "mask_rd": In(MaskReadSignature(geo)).array(2),
            "mask_wr": Out(MaskWriteSignature()),
            "lookup_vector": In(11),
            "lookup_addr": Out(64),
            "lookup_data": Out(32),
        })

    def elaborate(self, platform):
        m = Module()
        n = self._n
        geo = self.geo
        vbits = geo.vbits
        t = self.table
        m.submodules.ram = ram = memory.Memory(shape=32, depth=4 * n, init=[])
        wr = ram.write_port(granularity=8)
        rd = ram.read_port()
        m.submodules.lram = lram = memory.Memory(shape=96, depth=n, init=[])
        lwr = lram.write_port(granularity=8)
        lrd = lram.read_port()

        vec = t.addr[2:]
        dw = t.addr[:2]
        in_range = vec < n
        m.d.comb += [t.ready.eq(1), rd.addr.eq(t.addr), rd.en.eq(t.en & ~t.write)]

        # ---- Mask bits: words in RAM, ``mvalid`` per word.  A Mask write reads its word in the
        # bus cycle and writes the whole word back at the end of the next one ----
        m.submodules.mram = mram = memory.Memory(shape=geo.width, depth=geo.depth, init=[])
        mwr = mram.write_port()
        mvalid = Signal(geo.count)
        ones = Const((1 << geo.width) - 1, geo.width)
        mvec = vec[:vbits]
        mword = geo.word(mvec)
        we = t.en & t.write & in_range
        q_valid = Signal()               # the Mask write done at the end of this cycle
        q_vec = Signal(vbits)
        q_value = Signal()
        m.d.sync += [q_valid.eq(we & (dw == 3) & t.be[0]), q_vec.eq(mvec),
                     q_value.eq(t.wdata[0])]
        q_word = geo.word(q_vec)
        with m.If(q_valid):
            m.d.sync += mvalid.eq(mvalid | (Const(1, geo.count) << q_word))

        def mask_port(addr, transparent, en=1):
            """Read port returning whole mask words (all ones for a word never written); data the
            cycle after ``addr`` (held while ``en`` is low), including (``transparent``) a write
            at the same edge."""
            p = mram.read_port(transparent_for=(mwr,) if transparent else ())
            mv = Signal()
            m.d.comb += [p.addr.eq(addr), p.en.eq(en)]
            with m.If(en):
                m.d.sync += mv.eq((mvalid >> addr)[0]
                                  | (q_valid & (q_word == addr) if transparent else 0))
            return Mux(mv, p.data, ones)

        # port 0 (the pending scan) includes a write at the same edge, port 1 (the decision on a
        # new event) returns the word as it was before that edge, like a flip-flop would
        for port, transparent in zip(self.mask_rd, (True, False)):
            m.d.comb += port.data.eq(mask_port(port.addr, transparent))

        # the bus port: the word of a DW3 read, or the old word of a Mask write
        bus_mask = mask_port(mword, True, t.en)
        q_bit = geo.onehot(q_vec)
        m.d.comb += [
            mwr.addr.eq(q_word),
            mwr.data.eq(Mux(q_value, bus_mask | q_bit, bus_mask & ~q_bit)),
            mwr.en.eq(q_valid),
            self.mask_wr.valid.eq(q_valid),
            self.mask_wr.vector.eq(q_vec),
            self.mask_wr.value.eq(q_value),
        ]

        # table reads: DW3 is the Mask bit (bits 31:1 reserved, 0)
        sel_dw3 = Signal()
        sel_ok = Signal()
        sel_bit = Signal(geo.bbits)
        with m.If(t.en & ~t.write):
            m.d.sync += [sel_dw3.eq(dw == 3), sel_ok.eq(in_range), sel_bit.eq(geo.bit(mvec))]
        m.d.comb += t.rdata.eq(Mux(~sel_ok, 0, Mux(sel_dw3, (bus_mask >> sel_bit)[0], rd.data)))

        m.d.comb += [wr.addr.eq(t.addr), wr.data.eq(t.wdata),
                     wr.en.eq(Mux(we & (dw != 3), t.be, 0))]
        # a copy of address+data, one row per vector, for the delivery logic
        m.d.comb += [lwr.addr.eq(vec), lwr.data.eq(t.wdata.replicate(3))]
        with m.Switch(dw):
            for k in range(3):
                with m.Case(k):
                    m.d.comb += lwr.en.eq(Mux(we, t.be << (4 * k), 0))
        m.d.comb += [lrd.addr.eq(self.lookup_vector[:vbits]),
                     self.lookup_addr.eq(lrd.data[:64]), self.lookup_data.eq(lrd.data[64:96])]

        # ---- PBA: the delivery logic's pending words ----
        b = self.pba
        p_ok = Signal()
        p_now = Signal()          # the cycle after a read: pba_data is its word
        prd = Signal(32)          # held until the next read (regbus rule)
        # the delivery logic's port is shared with its scan, which may hold a read off a cycle
        m.d.comb += [b.ready.eq(self.pba_ready), self.pba_addr.eq(b.addr[:geo.wbits])]
        m.d.sync += p_now.eq(b.en & ~b.write & b.ready)
        with m.If(b.en & ~b.write & b.ready):
            m.d.sync += p_ok.eq(b.addr < geo.count)
        val = Mux(p_ok, self.pba_data, 0)
        with m.If(p_now):
            m.d.sync += prd.eq(val)
        m.d.comb += b.rdata.eq(Mux(p_now, val, prd))
        return m
