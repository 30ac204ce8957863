"""The simulation assertions of hdl/virtio_pci/checks.py fire on broken streams and broken
completion accounting, and stay quiet on legal traffic (Amaranth simulator; in the Verilator
builds they are compiled in by sim/build.py and stop the simulation, ``--assert``)."""
import pytest
from amaranth.hdl import Module, Signal
from amaranth.sim import Simulator

from virtio_pci.checks import completion_tracker, stream_rules
from virtio_pci.params import VirtioPciParams
from virtio_pci.top import VirtioPciEndpoint


class StreamBench:
    """Testbench-driven valid/ready/payload with the stream-rule checker on them."""

    def __init__(self, with_abort=False):
        self.m = m = Module()
        self.valid, self.ready, self.payload = Signal(), Signal(), Signal(8)
        self.abort = Signal() if with_abort else None
        stream_rules(m, "s", self.valid, self.ready, self.payload, self.abort)
        self.sim = Simulator(m)
        self.sim.add_clock(1e-8)

    def run(self, steps):
        """``steps``: list of (valid, ready, payload[, abort]) driven for one cycle each."""
        async def tb(ctx):
            for s in steps:
                ctx.set(self.valid, s[0])
                ctx.set(self.ready, s[1])
                ctx.set(self.payload, s[2])
                if self.abort is not None:
                    ctx.set(self.abort, s[3] if len(s) > 3 else 0)
                await ctx.tick()
        self.sim.add_testbench(tb)
        self.sim.run()


LEGAL = [(0, 0, 0), (1, 0, 5), (1, 0, 5), (1, 1, 5), (1, 1, 6), (0, 0, 9), (1, 0, 7), (1, 1, 7),
         (0, 1, 0)]


def test_stream_rules_legal_traffic_passes():
    StreamBench().run(LEGAL)


def test_stream_rules_fire_on_withdrawn_valid():
    with pytest.raises(AssertionError, match="valid withdrawn"):
        StreamBench().run([(1, 0, 5), (0, 0, 5), (0, 0, 5)])


def test_stream_rules_fire_on_changed_payload():
    with pytest.raises(AssertionError, match="payload changed"):
        StreamBench().run([(1, 0, 5), (1, 0, 6), (1, 1, 6)])


def test_stream_rules_abort_exempts_one_withdrawal():
    StreamBench(with_abort=True).run([(1, 0, 5, 0), (1, 0, 5, 1), (0, 0, 0, 0), (0, 0, 0, 0)])
    with pytest.raises(AssertionError, match="valid withdrawn"):
        StreamBench(with_abort=True).run([(1, 0, 5, 0), (0, 0, 5, 0), (0, 0, 0, 0)])


def _tracker(steps, depth=2):
    m = Module()
    acc, sent = Signal(), Signal()
    completion_tracker(m, acc, sent, depth=depth)
    sim = Simulator(m)
    sim.add_clock(1e-8)

    async def tb(ctx):
        for a, s in steps:
            ctx.set(acc, a)
            ctx.set(sent, s)
            await ctx.tick()
    sim.add_testbench(tb)
    sim.run()


def test_completion_tracker_balanced_passes():
    _tracker([(1, 0), (1, 0), (0, 1), (1, 1), (0, 1), (0, 1), (1, 1), (0, 0)][:5] + [(1, 1), (0, 0)])


def test_completion_tracker_fires_on_unsolicited_completion():
    with pytest.raises(AssertionError, match="no accepted non-posted"):
        _tracker([(1, 0), (0, 1), (0, 1), (0, 0)])


def test_completion_tracker_fires_on_lost_completion():
    with pytest.raises(AssertionError, match="completion lost"):
        _tracker([(1, 0), (1, 0), (1, 0), (0, 0)])


def test_assertions_off_by_default_in_verilog():
    """``make verilog`` output carries no assertion; the flag puts them in."""
    from amaranth.back import verilog
    plain = verilog.convert(VirtioPciEndpoint(VirtioPciParams()), name="t")
    checked = verilog.convert(VirtioPciEndpoint(VirtioPciParams(assertions=True)), name="t")
    assert "assert (" not in plain
    assert checked.count("assert (") >= 8
