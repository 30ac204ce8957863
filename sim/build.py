"""Build the Verilator model of the endpoint for one parameter set, once, shared by all tests.

``build(params)`` emits Verilog + JSON into ``build/<key>/`` (key = hash of the parameters and
build options) and compiles it with Verilator through cocotb's runner.  A file lock makes
concurrent pytest-xdist workers wait for one build instead of racing.
"""
import fcntl
import hashlib
import json
import os

from virtio_pci.cli import emit
from virtio_pci.params import VirtioPciParams

from .toolchain import setup_verilator

__all__ = ["build", "ROOT", "TOPLEVEL"]

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TOPLEVEL = "virtio_pci_ep"


def _key(params, waves, coverage):
    blob = json.dumps({"p": params.to_dict(), "w": waves, "c": coverage}, sort_keys=True)
    src = os.path.join(ROOT, "hdl", "virtio_pci")
    h = hashlib.sha1(blob.encode())
    for dirpath, _, files in sorted(os.walk(src)):
        for f in sorted(files):
            if f.endswith(".py"):
                with open(os.path.join(dirpath, f), "rb") as fh:
                    h.update(fh.read())
    return h.hexdigest()[:12]


def build(params=None, *, waves=False, coverage=False, build_root=None):
    """Return (build_dir, description dict).  Rebuilds only when the HDL or parameters changed."""
    from cocotb_tools.runner import get_runner

    params = params or VirtioPciParams()
    setup_verilator()
    build_root = build_root or os.path.join(ROOT, "build")
    key = _key(params, waves, coverage)
    bdir = os.path.join(build_root, f"{TOPLEVEL}_{key}")
    os.makedirs(bdir, exist_ok=True)
    with open(os.path.join(bdir, ".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        stamp = os.path.join(bdir, ".built")
        vpath = os.path.join(bdir, f"{TOPLEVEL}.v")
        jpath = os.path.join(bdir, f"{TOPLEVEL}.json")
        if not os.path.exists(stamp):
            emit(params, bdir, TOPLEVEL)
            args = ["-Wno-fatal", "-Wno-lint", "-Wno-style", "--assert"]
            if waves:
                args += ["--trace", "--trace-structs"]
            if coverage:
                args += ["--coverage-line", "--coverage-toggle"]
            runner = get_runner("verilator")
            runner.build(sources=[vpath], hdl_toplevel=TOPLEVEL, build_dir=os.path.join(bdir, "sim"),
                         build_args=args, always=True, waves=waves)
            open(stamp, "w").close()
        with open(jpath) as f:
            desc = json.load(f)
    return os.path.join(bdir, "sim"), desc
