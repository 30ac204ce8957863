"""pytest entry: the `make sim` bring-up scenario (enumeration, capability walk) at every width,
and on the transitional example, where the legacy driver model brings the device up."""
import os

import pytest

from virtio_pci.params import VirtioPciParams
from sim.build import ROOT
from sim.run import run_cocotb


@pytest.mark.parametrize("width", [64, 128, 256])
def test_bringup(width, tmp_path):
    run_cocotb("tb.integration.cocotb.bringup_test", VirtioPciParams(data_width=width), test_dir=str(tmp_path))


def builds_of(name, args):
    """The Verilator builds each test runs on (tb/conftest.py makes them ahead of the tests)."""
    if name == "test_bringup_transitional":
        from tb.integration.test_legacy import PARAMS
        return [PARAMS["transitional"]]
    return [VirtioPciParams(data_width=args["width"])] if name == "test_bringup" else []


def test_bringup_transitional(tmp_path):
    """The legacy bring-up scenario of `make sim` on a transitional build (the legacy tests' build,
    so no extra Verilator build; `make sim PARAMS=examples/virtio-net-transitional.json` runs it
    on the example)."""
    from tb.integration.test_legacy import PARAMS
    run_cocotb("tb.integration.cocotb.bringup_test", PARAMS["transitional"], test_dir=str(tmp_path))


def test_transitional_example_parses():
    params = VirtioPciParams.from_file(os.path.join(ROOT, "examples", "virtio-net-transitional.json"))
    assert params.transitional and params.mem_bar == 2 and params.device_type == 1
