"""pytest entry of the interrupt integration tests (tb/integration/cocotb/interrupts_test.py).

Two builds, both shared with the transport tests: the default parameters (3 queues, 4 vectors:
Linux's per-queue strategy needs exactly the whole table; register-file device config) and
``m0`` (5 queues, 8 vectors, the external device-config back-end whose ``config_changed`` input
raises the configuration interrupt).  ``VPCI_SEED`` fixes the random seed.
"""
import os

import pytest

from sim.run import run_cocotb
from tb.integration.test_transport import PARAMS

BUILDS = {"default": PARAMS["default"], "m0": PARAMS["m0"]}


def builds_of(name, args):
    """The Verilator builds each test runs on (tb/conftest.py makes them ahead of the tests)."""
    return [BUILDS[args["build"]]]


@pytest.mark.parametrize("build", list(BUILDS))
def test_interrupts(build, tmp_path):
    seed = os.environ.get("VPCI_SEED")
    run_cocotb("tb.integration.cocotb.interrupts_test", BUILDS[build], test_dir=str(tmp_path),
               seed=int(seed) if seed else None)
