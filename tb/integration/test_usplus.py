"""pytest entry of the UltraScale+ adapter test on cocotbext-pcie's UltraScalePlusPcieDevice
(tb/integration/cocotb/usplus_test.py): 256-bit Gen3 x8, the endpoint in hard-IP mode behind the clock-domain
crossing, core clock 100 MHz against the IP's 250 MHz.  ``VPCI_SEED`` fixes the random seed."""
import os

from sim.run import run_cocotb
from virtio_pci.params import VirtioPciParams

PARAMS = VirtioPciParams(data_width=256, hard_ip="cfg_ext")
LINK = {"hard_ip": "usplus", "cdc": True}


def builds_of(name, args):
    """The Verilator builds each test runs on (tb/conftest.py makes them ahead of the tests)."""
    return [(PARAMS, LINK)]


def test_usplus(tmp_path):
    seed = os.environ.get("VPCI_SEED")
    run_cocotb("tb.integration.cocotb.usplus_test", PARAMS, link=LINK, test_dir=str(tmp_path),
               extra_env={"VPCI_CORE_NS": "10"}, seed=int(seed) if seed else None)
