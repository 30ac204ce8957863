"""pytest entry of the P-Tile adapter test on cocotbext-pcie's PTilePcieDevice (tb/integration/cocotb/ptile_test.py).

One build (256-bit P-Tile, Gen3 x8, the endpoint behind the clock-domain crossing), run with the
core clock slower (100 MHz) and faster (333 MHz) than the IP's 250 MHz user clock.
``VPCI_SEED`` fixes the random seed.
"""
import os

import pytest

from sim.run import run_cocotb
from virtio_pci.params import VirtioPciParams

PARAMS = VirtioPciParams(data_width=256)
LINK = {"hard_ip": "ptile", "cdc": True}


def builds_of(name, args):
    """The Verilator builds each test runs on (tb/conftest.py makes them ahead of the tests)."""
    return [(PARAMS, LINK)]


@pytest.mark.parametrize("core_ns", ["10", "3"])
def test_ptile(core_ns, tmp_path):
    seed = os.environ.get("VPCI_SEED")
    run_cocotb("tb.integration.cocotb.ptile_test", PARAMS, link=LINK, test_dir=str(tmp_path),
               extra_env={"VPCI_CORE_NS": core_ns}, seed=int(seed) if seed else None)
