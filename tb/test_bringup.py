"""pytest entry: the `make sim` bring-up scenario (enumeration, capability walk) at every width."""
import pytest

from virtio_pci.params import VirtioPciParams
from sim.run import run_cocotb


@pytest.mark.parametrize("width", [64, 128, 256])
def test_bringup(width, tmp_path):
    run_cocotb("tb.cocotb.bringup_test", VirtioPciParams(data_width=width), test_dir=str(tmp_path))
