"""virtio-rng: the entropy device (VIRTIO 1.3 section 5.4) as one top level.

``VirtioRng`` = ``VirtioPciEndpoint`` (the transport) + ``SplitEngine`` (the ring engine, one
request queue) + ``RngFunction`` (fills every device-writable buffer with entropy) + the entropy
source: ``LfsrEntropy`` (NOT cryptographic, simulation only: ``devices/entropy.py``) or, with
``entropy="external"``, the ``entropy`` input port where a real TRNG plugs in.

5.4.6: the device fills the buffers the driver places in requestq with random bytes; a buffer
may be filled only partly (used len says how much): this device always fills it whole.
Device-readable buffers in a chain are read and ignored.

Composition only, except ``RngFunction`` (a leaf: the device function on the engine's
``seg``/``rd``/``wr`` streams, see ``virtqueue/layouts.py``).

Ports: the endpoint's link ports (``rx``, ``tx``) and error outputs; ``qstart`` (the engine's
queue start indices, vDPA set_vq_state: leave ``valid`` low); ``chains`` (chains returned since
reset); ``entropy`` (external source only); and, while the endpoint has no requester port of its
own, the engine's requester client ports ``dma_req``, ``dma_wdata`` (Out), ``dma_rdata``,
``dma_wdone`` (In) for an external requester (``dma/layouts.py``).  Once the endpoint has them,
they are connected inside and disappear from the top.
"""
from amaranth.hdl import Module, Mux, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out, connect, flipped

from ..dma.layouts import dma_signatures
from ..params import VirtioPciParams
from ..top import VirtioPciEndpoint
from ..virtqueue.layouts import ReadBeat, Segment, WriteBeat
from ..virtqueue.split_engine import QueueStart, SplitEngine
from .entropy import LfsrEntropy

__all__ = ["VirtioRng", "RngFunction"]

DMA_PORTS = ("dma_req", "dma_wdata", "dma_rdata", "dma_wdone")


class RngFunction(wiring.Component):
    """The virtio-rng device function.

    seg (In): per buffer; a writable one of ``len`` bytes gets max(1, ceil(len / (W/8))) beats
        on ``wr`` (``bytes`` = W/8 but the final beat, which carries the rest, ``last`` on it),
        taken from ``entropy`` one word per beat; a readable one has its ``rd`` beats dropped.
    rd (In), wr (Out), entropy (In stream of W-bit words).
    """

    def __init__(self, width):
        self._w = width
        super().__init__({
            "seg": In(stream.Signature(Segment)),
            "rd": In(stream.Signature(ReadBeat(width))),
            "wr": Out(stream.Signature(WriteBeat(width))),
            "entropy": In(stream.Signature(width)),
        })

    def elaborate(self, platform):
        m = Module()
        bpb = self._w // 8
        rem = Signal(32)                     # bytes still to give for this buffer
        with m.FSM():
            with m.State("SEG"):
                m.d.comb += self.seg.ready.eq(1)
                with m.If(self.seg.valid):
                    m.d.sync += rem.eq(self.seg.payload.len)
                    with m.If(self.seg.payload.write):
                        m.next = "FILL"
                    with m.Elif(self.seg.payload.len != 0):
                        m.next = "DROP"
            with m.State("FILL"):
                final = rem <= bpb
                m.d.comb += [self.wr.valid.eq(self.entropy.valid),
                             self.wr.payload.data.eq(self.entropy.payload),
                             self.wr.payload.bytes.eq(Mux(final, rem, bpb)),
                             self.wr.payload.last.eq(final),
                             self.entropy.ready.eq(self.wr.ready)]
                with m.If(self.wr.valid & self.wr.ready):
                    m.d.sync += rem.eq(rem - bpb)
                    with m.If(final):
                        m.next = "SEG"
            with m.State("DROP"):
                m.d.comb += self.rd.ready.eq(1)
                with m.If(self.rd.valid & self.rd.payload.last):
                    m.next = "SEG"
        return m


class VirtioRng(wiring.Component):
    """See the module docstring.  ``params``: a virtio-rng parameter set
    (``VirtioPciParams.virtio_rng()``); ``entropy``: "lfsr" (simulation) or "external"."""

    def __init__(self, params=None, *, entropy="lfsr", chunk_bytes=256):
        p = params or VirtioPciParams.virtio_rng()
        if p.device_type != 4:
            raise ValueError(f"virtio-rng is device type 4, not {p.device_type!r}")
        if entropy not in ("lfsr", "external"):
            raise ValueError(f"entropy must be 'lfsr' or 'external', not {entropy!r}")
        self.params = p
        self._entropy = entropy
        self._chunk = chunk_bytes
        SplitEngine(p, chunk_bytes=chunk_bytes)._MustUse__silence = True   # validates now
        probe = VirtioPciEndpoint(p)         # its signature only; elaborate builds the real one
        probe._MustUse__silence = True
        w = p.data_width
        ep_members = probe.signature.members
        members = {name: ep_members[name] for name in
                   ("rx", "tx", "err_malformed", "err_ur", "err_unexpected_cpl")}
        members["qstart"] = In(stream.Signature(QueueStart))
        members["chains"] = Out(32)
        if entropy == "external":
            members["entropy"] = In(stream.Signature(w))
        if "dma_req" not in ep_members:
            sigs = dma_signatures(w)
            members.update({"dma_req": Out(sigs["dma_req"]), "dma_wdata": Out(sigs["dma_wdata"]),
                            "dma_rdata": In(sigs["dma_rdata"]), "dma_wdone": In(sigs["dma_wdone"])})
        super().__init__(members)

    def elaborate(self, platform):
        m = Module()
        p = self.params
        m.submodules.endpoint = ep = VirtioPciEndpoint(p)
        m.submodules.engine = eng = SplitEngine(p, chunk_bytes=self._chunk)
        m.submodules.function = fn = RngFunction(p.data_width)

        connect(m, flipped(self.rx), ep.rx)
        connect(m, ep.tx, flipped(self.tx))
        m.d.comb += [self.err_malformed.eq(ep.err_malformed), self.err_ur.eq(ep.err_ur),
                     self.err_unexpected_cpl.eq(ep.err_unexpected_cpl), self.chains.eq(eng.chains)]

        # endpoint back-end ports <-> engine
        connect(m, ep.doorbell, eng.doorbell)
        connect(m, ep.qevent, eng.qevent)
        connect(m, eng.qreset_done, ep.qreset_done)
        connect(m, eng.irq, ep.irq)
        connect(m, flipped(self.qstart), eng.qstart)
        m.d.comb += [
            ep.qrd_addr.eq(eng.qrd_addr), eng.qrd_data.eq(ep.qrd_data),
            eng.qrd_exists.eq(ep.qrd_exists),
            eng.driver_features.eq(ep.driver_features), eng.driver_ok.eq(ep.driver_ok),
            eng.legacy.eq(ep.legacy), eng.reset_req.eq(ep.reset_req),
            ep.reset_ack.eq(eng.reset_ack), eng.flr.eq(ep.flr),
            ep.needs_reset.eq(eng.needs_reset),
            ep.features_veto.eq(0), ep.config_changed.eq(0),
        ]

        # requester: inside the endpoint when it has one, else the top's ports
        if "dma_req" in ep.signature.members:
            connect(m, eng.dma_req, ep.dma_req)
            connect(m, eng.dma_wdata, ep.dma_wdata)
            connect(m, ep.dma_rdata, eng.dma_rdata)
            connect(m, ep.dma_wdone, eng.dma_wdone)
        else:
            connect(m, eng.dma_req, flipped(self.dma_req))
            connect(m, eng.dma_wdata, flipped(self.dma_wdata))
            connect(m, flipped(self.dma_rdata), eng.dma_rdata)
            connect(m, flipped(self.dma_wdone), eng.dma_wdone)

        # device function and entropy
        connect(m, eng.seg, fn.seg)
        connect(m, eng.rd, fn.rd)
        connect(m, fn.wr, eng.wr)
        if self._entropy == "external":
            connect(m, flipped(self.entropy), fn.entropy)
        else:
            m.submodules.entropy = src = LfsrEntropy(p.data_width)
            connect(m, src.o, fn.entropy)
        return m
