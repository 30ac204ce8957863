"""Cycle figures (latency, throughput) and the cocotb speed run on the shared Verilator builds."""
import json
import os

from sim.build import ROOT
from sim.run import run_cocotb

__all__ = ["run_verilator", "BENCH_DIR"]

BENCH_DIR = os.path.join(ROOT, "build", "bench")


def run_verilator(params, cfg, *, test_dir=None):
    """Run the benchmark program ``cfg`` on the Verilator model of ``params``; returns its results.
    The model is the one the tests use (``sim.build``: built once per HDL and parameter hash)."""
    test_dir = test_dir or os.path.join(BENCH_DIR, "run", f"w{params.data_width}")
    os.makedirs(test_dir, exist_ok=True)
    out = os.path.join(test_dir, "bench_result.json")
    if os.path.exists(out):
        os.remove(out)
    run_cocotb("sim.bench.cocotb_bench", params, test_dir=test_dir,
               extra_env={"VPCI_BENCH": json.dumps({**cfg, "out": out})})
    if not os.path.exists(out):
        raise RuntimeError(f"the benchmark wrote no results (see the log in {test_dir})")
    with open(out) as f:
        return json.load(f)
