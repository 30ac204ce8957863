"""Simulation assertions on the top level (DESIGN.md section 9), enabled by
``VirtioPciParams.assertions`` (off by default, so ``make verilog`` stays plain Verilog;
``sim/build.py`` turns them on for every Verilator build, which runs with ``--assert`` and stops
at the first failing assertion).

* ``stream_rules``: the ``amaranth.lib.stream`` transfer rules on an output stream: once ``valid``
  is high without ``ready``, ``valid`` stays high and the payload stays the same until the
  transfer.  ``abort`` (optional) is a reset that is allowed to withdraw the offer (e.g. the
  Function Level Reset of the producer); the cycle after it is exempt.
* ``CompletionTracker``: every accepted non-posted operation is answered once: a counter goes up
  for each operation that starts a completion (``need_cpl`` and ``cpl_start``) accepted by the
  request pipeline and down for each completion TLP that leaves it (a ``first`` beat); it must
  never go below zero (a completion nobody asked for, or a second one) and never above the depth
  of the pipeline (a completion lost, or never sent, leaves the counter up and the next requests
  push it over the bound).
"""
from amaranth.hdl import Assert, ResetSignal, Signal, Value

__all__ = ["stream_rules", "completion_tracker", "StreamRulesChecker"]


def stream_rules(m, name, valid, ready, payload, abort=None):
    """Add the transfer-rule assertions of one stream to module ``m``."""
    payload = Value.cast(payload)
    pend = Signal(name=f"chk_{name}_pending")
    prev = Signal(len(payload), name=f"chk_{name}_payload")
    aborted = Signal(name=f"chk_{name}_aborted")
    m.d.sync += [pend.eq(valid & ~ready), prev.eq(payload)]
    if abort is not None:
        m.d.sync += aborted.eq(abort)
    held = pend & ~aborted & ~ResetSignal()
    m.d.sync += [
        Assert(~held | valid, f"{name}: valid withdrawn before ready"),
        Assert(~held | (prev == payload), f"{name}: payload changed while waiting for ready"),
    ]
    return pend


def completion_tracker(m, op_accept, cpl_sent, depth=4, width=8):
    """``op_accept``: an operation that starts a completion was accepted this cycle;
    ``cpl_sent``: a completion TLP's first beat left this cycle.  Returns the counter."""
    cnt = Signal(width, name="chk_cpl_outstanding")
    with m.If(op_accept & ~cpl_sent):
        m.d.sync += cnt.eq(cnt + 1)
    with m.Elif(cpl_sent & ~op_accept):
        m.d.sync += cnt.eq(cnt - 1)
    m.d.sync += [
        Assert(~(cpl_sent & ~op_accept & (cnt == 0)) | ResetSignal(),
               "completion sent for no accepted non-posted operation (unsolicited or twice)"),
        Assert((cnt <= depth) | ResetSignal(),
               "more non-posted operations outstanding than the pipeline holds (completion lost)"),
    ]
    return cnt


class StreamRulesChecker:
    """Wraps ``stream_rules`` for a stand-alone module (unit tests): ``StreamRulesChecker(m,
    "name", stream_interface)``."""

    def __init__(self, m, name, s, abort=None):
        self.pending = stream_rules(m, name, s.valid, s.ready, s.payload, abort)
