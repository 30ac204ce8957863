"""pytest entry of the back-end DMA integration tests (tb/integration/cocotb/dma_test.py).

One build: the default parameters with a short completion timeout (``cpl_timeout_cycles``) so the
timeout tests run in little simulated time.  ``VPCI_SEED`` fixes the random seed.
"""
import os

import pytest

from sim.run import run_cocotb
from virtio_pci.params import VirtioPciParams

PARAMS = {"default": VirtioPciParams(cpl_timeout_cycles=6000)}


def builds_of(name, args):
    """The Verilator builds each test runs on (tb/conftest.py makes them ahead of the tests)."""
    return [PARAMS[args["params"]]]


@pytest.mark.parametrize("params", list(PARAMS))
def test_dma(params, tmp_path):
    seed = os.environ.get("VPCI_SEED")
    run_cocotb("tb.integration.cocotb.dma_test", PARAMS[params], test_dir=str(tmp_path),
               seed=int(seed) if seed else None)
