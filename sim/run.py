"""Run a cocotb test module against a (shared) Verilator build of the endpoint."""
import os

from .build import build, TOPLEVEL

__all__ = ["run_cocotb"]


def run_cocotb(test_module, params=None, *, testcase=None, test_dir=None, waves=False,
               coverage=False, extra_env=None, seed=None):
    """Build (if needed) and run ``test_module`` (a module under ``tb.integration.cocotb``).  Under pytest a
    failing cocotb test fails the calling test; elsewhere the results file is checked here."""
    import json
    from cocotb_tools.runner import get_runner, get_results

    # ``make coverage`` (sim/coverage.py) turns coverage on for every run and collects the files
    cov_dir = os.environ.get("VPCI_COVERAGE_DIR")
    coverage = coverage or bool(cov_dir)
    bdir, desc = build(params, waves=waves, coverage=coverage)
    test_dir = test_dir or os.path.join(os.path.dirname(bdir), "run", test_module.rsplit(".", 1)[-1])
    os.makedirs(test_dir, exist_ok=True)
    env = {"VPCI_DESC": json.dumps(desc)}
    env.update(extra_env or {})
    runner = get_runner("verilator")
    results = runner.test(hdl_toplevel=TOPLEVEL, hdl_toplevel_lang="verilog", test_module=test_module,
                          build_dir=bdir,
                          test_dir=test_dir, testcase=testcase, extra_env=env, waves=waves,
                          seed=seed)
    if cov_dir and os.path.exists(os.path.join(test_dir, "coverage.dat")):
        import shutil
        import uuid
        os.makedirs(cov_dir, exist_ok=True)
        name = f"{test_module.rsplit('.', 1)[-1]}_{uuid.uuid4().hex[:8]}.dat"
        shutil.move(os.path.join(test_dir, "coverage.dat"), os.path.join(cov_dir, name))
    total, failed = get_results(results)
    if failed:
        raise AssertionError(f"{failed} of {total} cocotb tests failed in {test_module}")
    return results, test_dir
