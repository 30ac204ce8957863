"""Build the Verilator model of the endpoint for one parameter set, once, shared by all tests.

``build(params)`` emits Verilog + JSON into ``build/<key>/`` (key = hash of the parameters and
build options) and compiles it with Verilator through cocotb's runner.  A file lock makes
concurrent pytest-xdist workers wait for one build instead of racing.

The C++ of a model is compiled cheaply (``MAKE_VARS``), and Verilator's run-time library, the
same for every model with the same trace and coverage options, is compiled once and copied into
each build (sim/runtime_cache.py), and only the top module's signals are visible to VPI
(``PUBLIC_VLT``): a model then costs about 14 s of CPU instead of 73 s, and runs faster.
"""
import fcntl
import hashlib
import json
import os
import re
import sys

from virtio_pci.cli import emit
from virtio_pci.params import VirtioPciParams

from .toolchain import setup_verilator

__all__ = ["build", "build_key", "verilate", "ROOT", "TOPLEVEL", "fix_constant_always"]

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TOPLEVEL = "virtio_pci_ep"


# Yosys' write_verilog prints a process that only assigns a constant as
#     always @*
#       sig[53] = 1'h1;
# An ``always @*`` whose body reads no variable has an empty sensitivity list, so by IEEE 1800
# 9.4.2.2 it never runs: Verilator leaves such bits at 0 (e.g. the depacketizer's cpl_start, which
# dropped the header of every completion).  ``always_comb`` runs once at time zero.
_CONST_ALWAYS = re.compile(r"^(\s*)always @\*(\n\s*[^\n;]+ = \d+'[hbd][0-9a-fA-F_]+;\n)", re.M)


def fix_constant_always(text):
    """Turn every single-statement constant ``always @*`` of Yosys' Verilog into ``always_comb``."""
    return _CONST_ALWAYS.sub(r"\1always_comb\2", text)


def _key(params, waves, coverage, link=None):
    blob = json.dumps({"p": params.to_dict(), "w": waves, "c": coverage,
                       **({"l": link} if link else {})}, sort_keys=True)
    src = os.path.join(ROOT, "hdl", "virtio_pci")
    h = hashlib.sha1(blob.encode())
    with open(os.path.abspath(__file__), "rb") as fh:     # the build recipe is part of the key
        h.update(fh.read())
    for dirpath, _, files in sorted(os.walk(src)):
        for f in sorted(files):
            if f.endswith(".py"):
                with open(os.path.join(dirpath, f), "rb") as fh:
                    h.update(fh.read())
    return h.hexdigest()[:12]


#: make variables of every model build (command-line overrides of Verilator's verilated.mk).
#: ``OPT_FAST=-Og``: the model's code compiled at -Og instead of Verilator's -Os takes 24 s of CPU
#: instead of 54 s, and the model runs as fast (20,000 stress TLPs: 5.5 s of CPU against 5.4 s);
#: -O0 compiles in 21 s but runs twice as slow.  ``VM_PARALLEL_BUILDS=0``: the model is one C++
#: file (21 s) instead of twenty files sharing two 93 MB precompiled headers (24 s); the builds of
#: a regression run side by side (tb/conftest.py), so one build need not use both cores.
MAKE_VARS = {"OPT_FAST": "-Og", "VM_PARALLEL_BUILDS": "0"}

#: cocotb's runner makes every signal of the design visible to VPI (``--public-flat-rw``), which
#: keeps Verilator from optimising any of them away: the default model was 10.2 MB of C++ (24 s of
#: CPU to compile).  The tests reach only the top module's ports and wires, so only those are made
#: public (a Verilator configuration file): 4.1 MB, 11 s.  Waveforms (``--trace``) still show
#: every signal.
PUBLIC_VLT = """`verilator_config
public_flat_rw -module "{top}" -var "*"
"""


def _runner():
    """cocotb's Verilator runner, with the build steps of this module between its two commands
    (Verilator, then make): the run-time cache and ``MAKE_VARS``."""
    from cocotb_tools.runner import Verilator

    class Runner(Verilator):
        def _build_command(self):
            verilate_cmd, make_cmd = super()._build_command()
            vlt = os.path.join(str(self.build_dir), "public.vlt")
            with open(vlt, "w") as f:
                f.write(PUBLIC_VLT.format(top=self.hdl_toplevel))
            verilate_cmd = [a for a in verilate_cmd if a != "--public-flat-rw"] + [vlt]
            make_vars = [a for a in make_cmd if "=" in a] + [f"{k}={v}" for k, v in MAKE_VARS.items()]
            step = [sys.executable, "-m", "sim.runtime_cache"]
            sim_dir = str(self.build_dir)
            return [verilate_cmd, step + ["fetch", sim_dir, *make_vars],
                    make_cmd + [f"{k}={v}" for k, v in MAKE_VARS.items()],
                    step + ["store", sim_dir, *make_vars]]
    return Runner()


def verilate(vpath, toplevel, sim_dir, *, waves=False, coverage=False, log_file=None):
    """Compile the Verilog Amaranth emitted (``vpath``) with Verilator the way every test build is
    compiled: constant ``always @*`` fixed, ``--assert`` (simulation assertions stop the run).
    Also used by tb/integration/test_verilator_assertions.py, which shows that those assertions fire."""
    with open(vpath) as f:
        text = f.read()
    with open(vpath, "w") as f:
        f.write(fix_constant_always(text))
    args = ["-Wno-fatal", "-Wno-lint", "-Wno-style", "--assert"]
    if waves:
        args += ["--trace", "--trace-structs"]
    if coverage:
        args += ["--coverage-line", "--coverage-toggle"]
    runner = _runner()
    runner.build(sources=[vpath], hdl_toplevel=toplevel, build_dir=sim_dir, build_args=args,
                 always=True, waves=waves, log_file=log_file)


def build_key(params=None, *, waves=False, coverage=False, assertions=True, link=None):
    """The key (folder name) of the build ``build`` makes for these arguments."""
    params = params or VirtioPciParams()
    if assertions and not params.assertions:
        params = params.replace(assertions=True)
    return f"{TOPLEVEL}_{_key(params, waves, coverage, link)}"


def build(params=None, *, waves=False, coverage=False, build_root=None, assertions=True, link=None,
          wait=True):
    """Return (build_dir, description dict).  Rebuilds only when the HDL or parameters changed.
    ``assertions``: compile the simulation assertions of hdl/virtio_pci/checks.py in (Verilator
    stops at the first failing one, ``--assert``).  ``link``: a wrapped top (virtio_pci.link.wrap_top).
    ``wait=False``: return None at once if another process is making this build (sim/prebuild.py)."""
    params = params or VirtioPciParams()
    if assertions and not params.assertions:
        params = params.replace(assertions=True)
    setup_verilator()
    build_root = build_root or os.path.join(ROOT, "build")
    bdir = os.path.join(build_root, build_key(params, waves=waves, coverage=coverage, link=link))
    os.makedirs(bdir, exist_ok=True)
    with open(os.path.join(bdir, ".lock"), "w") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
        except BlockingIOError:
            return None
        stamp = os.path.join(bdir, ".built")
        vpath = os.path.join(bdir, f"{TOPLEVEL}.v")
        jpath = os.path.join(bdir, f"{TOPLEVEL}.json")
        if not os.path.exists(stamp):
            emit(params, bdir, TOPLEVEL, link)
            verilate(vpath, TOPLEVEL, os.path.join(bdir, "sim"), waves=waves, coverage=coverage)
            open(stamp, "w").close()
        with open(jpath) as f:
            desc = json.load(f)
    return os.path.join(bdir, "sim"), desc
