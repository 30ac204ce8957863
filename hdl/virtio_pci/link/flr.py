"""Function Level Reset handshake between a vendor hard IP and the core (link domain).

PCI Express Base Specification 5.0, 6.6.2 (FLR); the vendors' user-side handshakes:

* UltraScale+ PCIE4 (PG213, "Function Level Reset" and the ``cfg_flr_*`` ports): the IP raises
  ``cfg_flr_in_process[i]`` when function *i* is being reset; the user pulses ``cfg_flr_done[i]``
  once the function's own reset is done; the IP then lowers ``cfg_flr_in_process[i]``.
* Intel P-Tile Avalon-ST (UG 683059, "Function Level Reset (FLR)"): ``flr_rcvd_pf[i]`` pulses when
  an FLR of physical function *i* is received.  Until the application pulses
  ``flr_completed_pf[i]`` the IP answers non-posted requests to that function with UR and
  discards its posted requests and completions.

``FlrHandshake`` answers the IP (``done``, a one-cycle pulse) once it has seen both the IP's FLR
(``request``, a pulse) and the core's own FLR (``core_flr``, the endpoint's ``flr`` output brought
into this domain), in either order, since the last ``done``:

* UltraScale+: the core's FLR is made from the request (``UsCfg``), so ``done`` waits until the
  core, behind the clock-domain crossing, has really reset;
* P-Tile: the core's FLR comes from its own Device Control, written through the Configuration
  Intercept Interface.  The IP sees that write only where its own PCI Express capability has its
  Device Control at the same offset (docs/ptile.md); then whichever of the two comes second
  releases ``done``.  An FLR of the IP that the core never sees (a host write reaching the IP's
  Device Control through some other core register) is answered after ``timeout`` cycles, so that
  the IP does not keep the function disabled for ever; a core FLR the IP never reports is
  forgotten after ``timeout`` cycles.

Latency: ``done`` is high in the cycle after the later of the two pulses (``timeout`` cycles after
a lone request).
"""
from amaranth.hdl import Module, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

__all__ = ["FlrHandshake"]


class FlrHandshake(wiring.Component):
    """``timeout``: cycles after which a lone ``request`` is answered and a lone ``core_flr``
    forgotten (0: never; the UltraScale+ adapter, whose core FLR always follows its request)."""

    request: In(1)
    core_flr: In(1)
    done: Out(1)

    def __init__(self, timeout=0):
        self.timeout = timeout
        super().__init__()

    def elaborate(self, platform):
        m = Module()
        got = Signal()            # the IP's FLR, not answered yet
        seen = Signal()           # the core's FLR, not yet matched with the IP's
        got_n = got | self.request
        seen_n = seen | self.core_flr
        expired = Signal()
        if self.timeout:
            age = Signal(range(self.timeout + 1))
            m.d.comb += expired.eq(age == self.timeout)
            with m.If((got_n ^ seen_n) & ~expired):
                m.d.sync += age.eq(age + 1)
            with m.Else():
                m.d.sync += age.eq(0)
        with m.If(got_n & (seen_n | expired)):
            m.d.sync += [self.done.eq(1), got.eq(0), seen.eq(0)]
        with m.Elif(expired):           # a core FLR the IP never reported
            m.d.sync += [self.done.eq(0), got.eq(0), seen.eq(0)]
        with m.Else():
            m.d.sync += [self.done.eq(0), got.eq(got_n), seen.eq(seen_n)]
        return m
