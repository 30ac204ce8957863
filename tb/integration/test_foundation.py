"""pytest entry points of the foundation integration tests (cocotb modules in ``tb/cocotb``).

The whole of every module runs at the default TLP width (128 bits); a subset that crosses every
width-dependent path (header split over beats, multi-beat payloads and completions) runs at 64
and 256 bits, and the identity/BAR tests run once on a transitional build (legacy I/O BAR0,
memory BAR at index 2: PCI-08..PCI-10).  ``VPCI_SEED`` fixes the random seed (idle cycles, back-pressure, read patterns);
otherwise cocotb picks one and logs it.
"""
import os

import pytest

from sim.run import run_cocotb
from virtio_pci.params import VirtioPciParams

#: module -> tests that also run at the other widths
MODULES = {
    "tb.integration.cocotb.enumeration_test": ["enumeration_ids_test", "bar_sizing_test", "capability_walk_test"],
    "tb.integration.cocotb.config_access_test": ["config_read_all_test", "rw1c_error_bits_test"],
    "tb.integration.cocotb.request_handling_test": ["unsupported_requests_test", "malformed_test",
                                        "unexpected_and_messages_test", "broken_frames_test"],
    "tb.integration.cocotb.completion_split_test": ["read_split_mps128_test"],
    "tb.integration.cocotb.flr_test": ["flr_test"],
}
FULL_WIDTH = 128
OTHER_WIDTHS = (64, 256)


def _seed():
    s = os.environ.get("VPCI_SEED")
    return int(s) if s else None


def builds_of(name, args):
    """The Verilator builds each test runs on (tb/conftest.py makes them ahead of the tests)."""
    if name == "test_foundation_transitional":
        from tb.integration.test_legacy import PARAMS as LEGACY_PARAMS
        return [LEGACY_PARAMS["transitional"]]
    return [VirtioPciParams(data_width=args.get("width", FULL_WIDTH))]


@pytest.mark.parametrize("module", sorted(MODULES))
def test_foundation(module, tmp_path):
    run_cocotb(module, VirtioPciParams(data_width=FULL_WIDTH), test_dir=str(tmp_path), seed=_seed())


@pytest.mark.parametrize("width", OTHER_WIDTHS)
@pytest.mark.parametrize("module", sorted(MODULES))
def test_foundation_width(module, width, tmp_path):
    run_cocotb(module, VirtioPciParams(data_width=width), testcase=MODULES[module],
               test_dir=str(tmp_path), seed=_seed())


def test_foundation_transitional(tmp_path):
    from tb.integration.test_legacy import PARAMS as LEGACY_PARAMS     # one transitional build for both
    params = LEGACY_PARAMS["transitional"]
    run_cocotb("tb.integration.cocotb.enumeration_test", params, testcase=["enumeration_ids_test", "bar_sizing_test"],
               test_dir=str(tmp_path), seed=_seed())
