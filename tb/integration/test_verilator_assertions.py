"""The simulation assertions of hdl/virtio_pci/checks.py fire in a *Verilator* build.

tb/unit/test_checks.py shows each assertion firing on Amaranth's simulator; this shows that the
Verilog flow keeps them: a small module with ``checks.stream_rules`` and
``checks.completion_tracker`` on its inputs is emitted by Amaranth and compiled by
``sim.build.verilate`` (the same function, options and ``--assert`` as every endpoint build),
then cocotb drives it (tb/integration/cocotb/checks_test.py).  A legal scenario must run to its end; each
broken one must stop the simulation with the assertion's message in the simulator output.  If
``--assert`` went missing, the assertions were dropped from the Verilog, or a failed assertion no
longer stopped the run, the broken scenarios would finish and these tests fail (checked: with
``--no-assert`` instead of ``--assert`` the four broken scenarios fail; Verilator 5.4x also
enables immediate assertions without ``--assert``).
"""
import fcntl
import hashlib
import inspect
import json
import os

import pytest
from amaranth.back import verilog
from amaranth.hdl import Module
from amaranth.lib import wiring
from amaranth.lib.wiring import In

import sim.build as simbuild
from sim.build import ROOT, verilate
from sim.toolchain import setup_verilator
from virtio_pci import checks

TOP = "checks_dut"


class ChecksDut(wiring.Component):
    """A stream (valid, ready, payload) and completion accounting driven from the testbench."""
    valid: In(1)
    ready: In(1)
    payload: In(8)
    op_accept: In(1)
    cpl_sent: In(1)

    def elaborate(self, platform):
        m = Module()
        checks.stream_rules(m, "probe", self.valid, self.ready, self.payload)
        checks.completion_tracker(m, self.op_accept, self.cpl_sent, depth=2)
        return m


# (valid, ready, payload, op_accept, cpl_sent) per cycle, and the message that must stop the run
# (None: the scenario is legal and must finish)
SCENARIOS = {
    "legal": ([(0, 0, 0, 0, 0), (1, 0, 5, 1, 0), (1, 0, 5, 0, 0), (1, 1, 5, 0, 1), (1, 1, 6, 1, 0),
               (0, 0, 9, 0, 1), (1, 0, 7, 0, 0), (1, 1, 7, 0, 0), (0, 1, 0, 0, 0)], None),
    "withdrawn": ([(1, 0, 5, 0, 0), (0, 0, 5, 0, 0), (0, 0, 5, 0, 0)],
                  "probe: valid withdrawn before ready"),
    "payload": ([(1, 0, 5, 0, 0), (1, 0, 6, 0, 0), (1, 1, 6, 0, 0)],
                "probe: payload changed while waiting for ready"),
    "unsolicited": ([(0, 0, 0, 1, 0), (0, 0, 0, 0, 1), (0, 0, 0, 0, 1), (0, 0, 0, 0, 0)],
                    "completion sent for no accepted non-posted operation"),
    "lost": ([(0, 0, 0, 1, 0)] * 3 + [(0, 0, 0, 0, 0)],
             "more non-posted operations outstanding than the pipeline holds"),
}


def _build():
    """Emit and verilate ChecksDut once (keyed by checks.py, sim/build.py and this module)."""
    h = hashlib.sha1()
    for mod in (checks, simbuild):
        h.update(inspect.getsource(mod).encode())
    h.update(inspect.getsource(ChecksDut).encode())
    bdir = os.path.join(ROOT, "build", f"{TOP}_{h.hexdigest()[:12]}")
    os.makedirs(bdir, exist_ok=True)
    setup_verilator()
    with open(os.path.join(bdir, ".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not os.path.exists(os.path.join(bdir, ".built")):
            vpath = os.path.join(bdir, f"{TOP}.v")
            with open(vpath, "w") as f:
                f.write(verilog.convert(ChecksDut(), name=TOP))
            verilate(vpath, TOP, os.path.join(bdir, "sim"))
            open(os.path.join(bdir, ".built"), "w").close()
    return os.path.join(bdir, "sim")


def _run(name, tmp_path):
    from cocotb_tools.runner import get_results, get_runner
    steps, _ = SCENARIOS[name]
    sim_dir = _build()
    log = tmp_path / "sim.log"
    stopped = False
    try:
        get_runner("verilator").test(
            hdl_toplevel=TOP, hdl_toplevel_lang="verilog", test_module="tb.integration.cocotb.checks_test",
            build_dir=sim_dir, test_dir=str(tmp_path), log_file=str(log),
            results_xml=str(tmp_path / "results.xml"),
            extra_env={"VPCI_CHECKS_STEPS": json.dumps(steps)})
    except RuntimeError:            # the simulator exited non-zero ($stop of a failed assertion)
        stopped = True
    total, failed = get_results(tmp_path / "results.xml")
    return total, failed, stopped, log.read_text()


@pytest.mark.parametrize("name", list(SCENARIOS))
def test_verilator_assertion(name, tmp_path):
    total, failed, stopped, text = _run(name, tmp_path)
    message = SCENARIOS[name][1]
    if message is None:
        assert failed == 0 and not stopped, text[-3000:]
        assert "finished without an assertion" in text, text[-3000:]
        assert "Assertion failed" not in text, text[-3000:]
    else:
        assert stopped and failed == total == 1, \
            f"{name}: the simulation did not fail\n{text[-3000:]}"
        assert message in text, f"{name}: {message!r} not in the simulator output\n{text[-3000:]}"
        assert "finished without an assertion" not in text, text[-3000:]
