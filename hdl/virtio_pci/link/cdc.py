"""Clock-domain crossing between a PCIe link's user clock and the endpoint's own clock.

DESIGN.md section 3 ("behind an optional clock-domain crossing"); the FIFOs are Amaranth's
``lib.fifo.AsyncFIFO`` (Cummings' "style #2" Gray-pointer FIFO, two-flop synchronisers).

``TlpCdc`` carries the two TLP streams of the link port across: ``link_rx`` (link domain) to
``core_rx`` (core domain) and ``core_tx`` (core domain) to ``link_tx`` (link domain), each through
an asynchronous FIFO of ``depth`` beats.  A beat is carried whole (data, keep, first, last), so the
TLP port conventions (tlp/layouts.py) hold on both sides unchanged.

``CdcEndpoint`` is the endpoint in the core domain (``sync``) behind a ``TlpCdc``: its ``rx``/``tx``
are in the ``link`` domain (clock of the hard IP's user interface), every back-end port stays in
``sync`` with the same name and meaning as on ``VirtioPciEndpoint``.

Latency (Amaranth ``AsyncFIFO``, measured by ``make bench`` and asserted in tb/unit/test_cdc.py):
a beat written on one side at an edge of its clock is offered on the other side after at most
``write edge + 4`` edges of the reading clock (one write-pointer register, two synchroniser flops,
then the read-port register; fewer when the edges line up), whatever the ratio of the clocks.

Resets: ``AsyncFIFO`` is cleared by its *write* domain's reset.  Assert the link reset and the core
reset together (e.g. both from the hard IP's reset status, the core one synchronised to its clock)
so that no half TLP stays in a FIFO.
"""
from amaranth.hdl import Module
from amaranth.lib import wiring
from amaranth.lib.fifo import AsyncFIFO
from amaranth.lib.wiring import In, Out, connect, flipped

from ..tlp.layouts import beat_layout, tlp_stream

__all__ = ["TlpCdc", "CdcEndpoint", "CDC_LATENCY_MAX"]

#: worst-case edges of the reading clock from the write edge to the beat offered (see above)
CDC_LATENCY_MAX = 4


class TlpCdc(wiring.Component):
    """Two asynchronous TLP FIFOs.

    Ports
    -----
    link_rx : In TLP stream, ``link_domain``: beats from the link.
    core_rx : Out TLP stream, ``core_domain``: the same beats, in order.
    core_tx : In TLP stream, ``core_domain``: beats from the endpoint.
    link_tx : Out TLP stream, ``link_domain``: the same beats, in order.

    Back-pressure is honoured both ways: a full FIFO drops ``ready`` on its write side.
    """

    def __init__(self, width, *, depth=16, link_domain="link", core_domain="sync"):
        self._MustUse__silence = True      # until the parameters are known to be valid
        if width not in (64, 128, 256, 512):
            raise ValueError(f"TLP width must be 64, 128, 256 or 512, not {width!r}")
        if not isinstance(depth, int) or depth < 4 or depth & (depth - 1):
            raise ValueError(f"CDC FIFO depth must be a power of two >= 4, not {depth!r}")
        if link_domain == core_domain:
            raise ValueError(f"link and core domains must differ, both are {link_domain!r}")
        self.width = width
        self.depth = depth
        self.link_domain = link_domain
        self.core_domain = core_domain
        self._MustUse__silence = False
        super().__init__({
            "link_rx": In(tlp_stream(width)),
            "core_rx": Out(tlp_stream(width)),
            "core_tx": In(tlp_stream(width)),
            "link_tx": Out(tlp_stream(width)),
        })

    def elaborate(self, platform):
        m = Module()
        bits = beat_layout(self.width).size
        m.submodules.rx_fifo = rxf = AsyncFIFO(width=bits, depth=self.depth,
                                               w_domain=self.link_domain, r_domain=self.core_domain)
        m.submodules.tx_fifo = txf = AsyncFIFO(width=bits, depth=self.depth,
                                               w_domain=self.core_domain, r_domain=self.link_domain)
        for src, fifo, dst in ((self.link_rx, rxf, self.core_rx), (self.core_tx, txf, self.link_tx)):
            m.d.comb += [
                fifo.w_data.eq(src.payload.as_value()),
                fifo.w_en.eq(src.valid),
                src.ready.eq(fifo.w_rdy),
                dst.payload.eq(fifo.r_data),
                dst.valid.eq(fifo.r_rdy),
                fifo.r_en.eq(dst.ready),
            ]
        return m


class CdcEndpoint(wiring.Component):
    """``VirtioPciEndpoint`` in the ``sync`` domain behind a ``TlpCdc`` to the ``link`` domain.

    Ports: those of ``VirtioPciEndpoint`` (top.py), same names and meaning; ``rx`` and ``tx`` are
    in the ``link`` domain (``link_clk``/``link_rst`` in the emitted Verilog), all others in
    ``sync`` (``clk``/``rst``).  ``depth``: beats per FIFO (power of two).
    """

    def __init__(self, params=None, *, depth=16, endpoint=None):
        from ..top import VirtioPciEndpoint
        self.endpoint = endpoint if endpoint is not None else VirtioPciEndpoint(params)
        self.params = self.endpoint.params
        self.cdc = TlpCdc(self.params.data_width, depth=depth)
        super().__init__(dict(self.endpoint.signature.members))

    def elaborate(self, platform):
        m = Module()
        ep = self.endpoint
        m.submodules.endpoint = ep
        m.submodules.cdc = cdc = self.cdc
        connect(m, flipped(self.rx), cdc.link_rx)
        connect(m, cdc.core_rx, ep.rx)
        connect(m, ep.tx, cdc.core_tx)
        connect(m, cdc.link_tx, flipped(self.tx))
        forward_ports(m, self, ep, skip=("rx", "tx"))
        return m


#: an adapter's members toward the endpoint, connected by ``AdaptedEndpoint``, never wrapper ports
_CORE_SIDE = ("core_rx", "core_tx", "core_flr")


class AdaptedEndpoint(wiring.Component):
    """Base of the vendor wrapped tops (``PTileEndpoint``, ``UsPlusEndpoint``): ``VirtioPciEndpoint``
    behind a link adapter (``core_rx``/``core_tx`` toward the endpoint), with a ``TlpCdc`` between
    and the adapter renamed into the ``link`` domain when ``cdc`` is set, else all on ``sync``.

    The wrapper's ports are the adapter's (vendor side) and the endpoint's (back-end side), same
    names; members named in ``skip`` (e.g. ``hip``) are neither exposed nor forwarded, the subclass
    connects them in ``_link_extra``.  An adapter with a ``core_flr`` input (the FLR handshake of
    link/flr.py) gets the endpoint's ``flr`` pulse there, through a pulse synchroniser with ``cdc``.
    """

    def _compose(self, params, adapter_cls, *, cdc, cdc_depth, skip=()):
        """Build endpoint, adapter and optional ``TlpCdc``; then ``wiring.Component.__init__``."""
        from ..top import VirtioPciEndpoint
        self.endpoint = VirtioPciEndpoint(params)
        self.params = self.endpoint.params
        self.cdc = cdc
        self._skip = tuple(skip)
        self.adapter = adapter_cls(self.params.data_width)
        self.tlp_cdc = TlpCdc(self.params.data_width, depth=cdc_depth) if cdc else None
        members = {n: mb for n, mb in self.adapter.signature.members.items()
                   if n not in _CORE_SIDE + self._skip}
        members.update({n: mb for n, mb in self.endpoint.signature.members.items()
                        if n not in ("rx", "tx") + self._skip})
        wiring.Component.__init__(self, members)

    def _link_extra(self, m, ep, ad):
        """Hook: connect the ``skip`` members between adapter ``ad`` and endpoint ``ep``."""

    def elaborate(self, platform):
        from amaranth.hdl import DomainRenamer
        m = Module()
        ep = self.endpoint
        m.submodules.endpoint = ep
        if self.cdc:
            m.submodules.adapter = ad = DomainRenamer("link")(self.adapter)
            m.submodules.cdc = cdc = self.tlp_cdc
            connect(m, ad.core_rx, cdc.link_rx)
            connect(m, cdc.core_rx, ep.rx)
            connect(m, ep.tx, cdc.core_tx)
            connect(m, cdc.link_tx, ad.core_tx)
        else:
            m.submodules.adapter = ad = self.adapter
            connect(m, ad.core_rx, ep.rx)
            connect(m, ep.tx, ad.core_tx)
        if "core_flr" in self.adapter.signature.members:
            if self.cdc:
                from amaranth.lib.cdc import PulseSynchronizer
                m.submodules.core_flr_sync = ps = PulseSynchronizer("sync", "link")
                m.d.comb += [ps.i.eq(ep.flr), ad.core_flr.eq(ps.o)]
            else:
                m.d.comb += ad.core_flr.eq(ep.flr)
        self._link_extra(m, ep, ad)
        forward_ports(m, self, ad, skip=_CORE_SIDE + self._skip)
        forward_ports(m, self, ep, skip=("rx", "tx") + self._skip)
        return m


def forward_ports(m, outer, inner, *, skip=()):
    """Connect every port of ``inner`` to the port of the same path on ``outer`` (a wrapper whose
    signature repeats ``inner``'s), except the members named in ``skip``."""
    outer_ports = {path: value for path, _, value in outer.signature.flatten(outer)}
    for path, member, value in inner.signature.flatten(inner):
        if path[0] in skip:
            continue
        if member.flow == In:
            m.d.comb += value.eq(outer_ports[path])
        else:
            m.d.comb += outer_ports[path].eq(value)


def block_members(blocks):
    """Signature members of an adapter that exposes ports of its sub-blocks: ``blocks`` is a
    sequence of ``(block, names)``; each named member of ``block`` is repeated under its name."""
    return {n: blk.signature.members[n] for blk, names in blocks for n in names}


def forward_block_ports(m, outer, blocks):
    """Connect each port named in ``blocks`` (``(block, names)`` pairs) to the port of the same
    name on ``outer`` (combinational, either direction)."""
    for blk, names in blocks:
        for n in names:
            ext, inner = getattr(outer, n), getattr(blk, n)
            if blk.signature.members[n].flow == In:
                m.d.comb += inner.eq(ext)
            else:
                m.d.comb += ext.eq(inner)
