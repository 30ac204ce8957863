"""pytest entry of the virtio-rng device tests (tb/cocotb/rng_test.py) on the
examples/virtio-rng.json build.  ``VPCI_SEED`` fixes the random seed."""
import os

from sim.run import run_cocotb
from virtio_pci.params import VirtioPciParams

PARAMS = VirtioPciParams.from_file(os.path.join(os.path.dirname(__file__), "..", "..", "examples",
                                                "virtio-rng.json"))
#: the transitional variant (device ID 0x1005, legacy header in I/O BAR0)
PARAMS_LEGACY = PARAMS.replace(transitional=True, mem_bar=2)


def builds_of(name, args):
    """The Verilator builds each test runs on (tb/conftest.py makes them ahead of the tests)."""
    return [PARAMS_LEGACY if name == "test_rng_legacy" else PARAMS]


def test_rng(tmp_path):
    seed = os.environ.get("VPCI_SEED")
    run_cocotb("tb.integration.cocotb.rng_test", PARAMS, test_dir=str(tmp_path),
               seed=int(seed) if seed else None)


def test_rng_stress(tmp_path):
    seed = int(os.environ.get("VPCI_SEED") or 7)
    run_cocotb("tb.integration.cocotb.rng_stress_test", PARAMS, test_dir=str(tmp_path),
               extra_env={"VPCI_STRESS_COUNT": "60", "VPCI_STRESS_SEED": str(seed)}, seed=seed)


def test_rng_legacy(tmp_path):
    run_cocotb("tb.integration.cocotb.rng_legacy_test", PARAMS_LEGACY, test_dir=str(tmp_path))
