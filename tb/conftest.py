"""Scheduling of the regression: the order tests run in and Verilator builds made ahead.

* **Order.**  The selected tests run longest first (the call durations of tb/durations.json;
  a test missing from it counts as a short one), so that with ``make test``'s pytest-xdist
  workers (``--maxschedchunk=1``: a worker takes the next test when it is free) no worker is left
  with a long test at the end while the other idles.
* **Builds ahead.**  A test module that runs cocotb tests declares, in a module-level function
  ``builds_of(name, args)``, the Verilator builds a test runs on (``name``: the test function,
  ``args``: its parametrize arguments; it returns a list of ``VirtioPciParams`` or
  ``(VirtioPciParams, link)``).  Beside each pytest process, a ``python -m sim.prebuild`` process
  makes the builds the selected tests need, in the order they need them, each build by whichever
  process reaches it first, while the tests run; a test finds its build made, or waits for it.
  ``--no-prebuild`` turns this off.  A test that builds something its module does not declare
  warns (the build is then made when the test gets to it, not ahead).
* ``--record-durations=PATH`` writes the call durations of the passed tests as JSON (the way
  tb/durations.json is refreshed: on a run whose builds were already made, so that a test's time
  is its own and not a build's).
"""
import json
import os
import subprocess
import sys

import pytest

DURATIONS = os.path.join(os.path.dirname(__file__), "durations.json")
#: what a test missing from tb/durations.json counts as (seconds)
DEFAULT_DURATION = 1.0

_DECLARED = pytest.StashKey[list]()              # build keys an item declares
_SPECS = pytest.StashKey[list]()                 # the builds of the selected items, in order
_PREBUILD = pytest.StashKey[subprocess.Popen]()
_RECORDED_DURATIONS = {}


def pytest_addoption(parser):
    group = parser.getgroup("virtio-pci-fe")
    group.addoption("--no-prebuild", action="store_true",
                    help="do not make the Verilator builds of the selected tests ahead of them")
    group.addoption("--record-durations", metavar="PATH",
                    help="write the call durations of the passed tests to PATH (JSON)")


def _durations():
    try:
        with open(DURATIONS) as f:
            return json.load(f)
    except FileNotFoundError:
        return {}


def _builds(item):
    """The specs (sim/prebuild.py) of the builds ``item`` declares."""
    builds_of = getattr(getattr(item, "module", None), "builds_of", None)
    if builds_of is None:
        return []
    from sim.run import build_options
    waves, coverage = build_options()
    callspec = getattr(item, "callspec", None)
    specs = []
    args = dict(callspec.params) if callspec else {}
    for b in builds_of(getattr(item, "originalname", item.name), args):
        params, link = b if isinstance(b, tuple) else (b, None)
        specs.append({"params": params.to_dict(), "link": link, "waves": waves, "coverage": coverage})
    return specs


def _spec_key(spec):
    from sim.build import build_key
    from virtio_pci.params import VirtioPciParams
    return build_key(VirtioPciParams.from_dict(spec["params"]), link=spec["link"],
                     waves=spec["waves"], coverage=spec["coverage"])


@pytest.hookimpl(trylast=True)          # after -k / -m deselection: only the selected tests
def pytest_collection_modifyitems(session, config, items):
    durations = _durations()
    items.sort(key=lambda item: -durations.get(item.nodeid, DEFAULT_DURATION))
    specs, keys = [], {}
    for item in items:
        item_keys = []
        for spec in _builds(item):
            key = _spec_key(spec)
            item_keys.append(key)
            if key not in keys:
                keys[key] = spec
                specs.append(dict(spec, name=key))
        item.stash[_DECLARED] = item_keys
    config.stash[_SPECS] = specs


def pytest_collection_finish(session):
    config = session.config
    specs = config.stash.get(_SPECS, [])
    if not specs or config.option.collectonly or config.getoption("no_prebuild"):
        return
    from sim.build import ROOT
    worker = getattr(config, "workerinput", {}).get("workerid", "main")
    out = os.path.join(ROOT, "build", "prebuild")
    os.makedirs(out, exist_ok=True)
    path = os.path.join(out, f"{worker}.json")
    with open(path, "w") as f:
        json.dump(specs, f, indent=1)
    log = open(os.path.join(out, f"{worker}.log"), "w")
    config.stash[_PREBUILD] = subprocess.Popen(
        [sys.executable, "-m", "sim.prebuild", path], cwd=ROOT, stdout=log,
        stderr=subprocess.STDOUT, start_new_session=True)


def pytest_runtest_setup(item):
    os.environ["VPCI_DECLARED_BUILDS"] = json.dumps(item.stash.get(_DECLARED, []))


def pytest_runtest_teardown(item):
    os.environ.pop("VPCI_DECLARED_BUILDS", None)


def pytest_runtest_logreport(report):
    if report.when == "call" and report.passed:
        _RECORDED_DURATIONS[report.nodeid] = round(report.duration, 2)


def pytest_sessionfinish(session):
    config = session.config
    proc = config.stash.get(_PREBUILD, None)
    if proc is not None:
        if proc.poll() is None:                       # the session ended before every build
            import signal
            os.killpg(proc.pid, signal.SIGTERM)
        proc.wait()                   # reaped: its CPU time counts in this process's children
    path = config.getoption("record_durations")
    if path and not hasattr(config, "workerinput"):
        with open(path, "w") as f:
            json.dump(dict(sorted(_RECORDED_DURATIONS.items())), f, indent=0)
            f.write("\n")
