"""Run a cocotb test module against a (shared) Verilator build of the endpoint."""
import json
import os
import re

from .build import build, build_key, TOPLEVEL

__all__ = ["build_options", "run_cocotb", "waves_requested"]


def waves_requested():
    """``VPCI_WAVES=1`` (``make test WAVES=1``): every cocotb run writes its waveform."""
    return os.environ.get("VPCI_WAVES", "") not in ("", "0")


def build_options():
    """(waves, coverage) of the builds ``run_cocotb`` makes in this environment: traced with
    ``VPCI_WAVES=1``, with coverage under ``make coverage`` (``VPCI_COVERAGE_DIR``)."""
    return waves_requested(), bool(os.environ.get("VPCI_COVERAGE_DIR"))


def _check_declared(params, waves, coverage, link):
    """Under the regression (tb/conftest.py), warn when a test builds what its module's
    ``builds_of`` does not declare: that build is then not made ahead of the test."""
    declared = os.environ.get("VPCI_DECLARED_BUILDS")
    if declared is None:
        return
    key = build_key(params, waves=waves, coverage=coverage, link=link)
    if key not in json.loads(declared):
        import warnings
        current = os.environ.get("PYTEST_CURRENT_TEST", "").split(" ")[0]
        warnings.warn(f"{current} builds {key}, which builds_of in its module does not declare "
                      "(tb/conftest.py): it is not made ahead of the test", stacklevel=3)


def _waves_name(test_module):
    """Folder name of a run's waveform: the pytest test that ran it, else the module."""
    current = os.environ.get("PYTEST_CURRENT_TEST", "").split(" ")[0]
    name = current.rsplit("::", 1)[-1] if current else test_module.rsplit(".", 1)[-1]
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", name).strip("-")


def run_cocotb(test_module, params=None, *, testcase=None, test_dir=None, waves=False,
               coverage=False, extra_env=None, seed=None, link=None):
    """Build (if needed) and run ``test_module`` (a module under ``tb.integration.cocotb``).
    Under pytest a failing cocotb test fails the calling test; elsewhere the results file is
    checked here.  With ``VPCI_WAVES=1`` the run is traced and its waveform saved under
    ``build/waves/<test>/`` (``sim/waves.py``); ``VPCI_TEST=regex`` runs only the cocotb tests
    whose name matches, unless the caller chose ``testcase``."""
    from cocotb_tools.runner import get_runner, get_results

    # ``make coverage`` (sim/coverage.py) turns coverage on for every run and collects the files
    cov_dir = os.environ.get("VPCI_COVERAGE_DIR")
    coverage = coverage or bool(cov_dir)
    save = waves_requested() and not waves
    waves = waves or save
    _check_declared(params, waves, coverage, link)
    bdir, desc = build(params, waves=waves, coverage=coverage, link=link)
    test_dir = test_dir or os.path.join(os.path.dirname(bdir), "run", test_module.rsplit(".", 1)[-1])
    os.makedirs(test_dir, exist_ok=True)
    env = {"VPCI_DESC": json.dumps(desc)}
    if testcase is None and os.environ.get("VPCI_TEST"):
        env["COCOTB_TEST_FILTER"] = os.environ["VPCI_TEST"]
    env.update(extra_env or {})
    runner = get_runner("verilator")
    results = runner.test(hdl_toplevel=TOPLEVEL, hdl_toplevel_lang="verilog", test_module=test_module,
                          build_dir=bdir,
                          test_dir=test_dir, testcase=testcase, extra_env=env, waves=waves,
                          seed=seed)
    dump = os.path.join(test_dir, "dump.vcd")
    if save and os.path.exists(dump):
        from .waves import TEST_WAVES_DIR, save_waves
        vcd, gtkw = save_waves(dump, os.path.join(TEST_WAVES_DIR, _waves_name(test_module)), desc)
        print(f"waveform: {vcd}\nGTKWave:  gtkwave {gtkw}   (or: make waves)")
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
