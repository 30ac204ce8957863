"""pytest entries of the virtio transport tests (tb/integration/cocotb/transport_*_test.py).

Three builds: the default parameters, and two that change what the transport tests depend on:
``m0``: notify_off_multiplier 0 (one shared doorbell, queue decoded from the value), no
NOTIFICATION_DATA, NOTIF_CONFIG_DATA, ACCESS_PLATFORM and ORDER_PLATFORM offered, no RING_RESET,
the external device-config back-end, 5 queues, 8 vectors; ``m4096``: one doorbell page per queue,
no NOTIFICATION_DATA, RING_RESET, 4 queues, device config with initial contents.
``VPCI_SEED`` fixes the random seed (cocotb prints the one it used).
"""
import os

import pytest

from sim.run import run_cocotb
from virtio_pci.params import Feature, VirtioPciParams

V1 = 1 << Feature.VERSION_1

PARAMS = {
    "default": VirtioPciParams(),
    "m0": VirtioPciParams(
        notify_off_multiplier=0, num_queues=5, msix_vectors=8, queue_max_size=1024,
        features=V1 | (1 << Feature.NOTIF_CONFIG_DATA) | (1 << Feature.ACCESS_PLATFORM)
        | (1 << Feature.ORDER_PLATFORM),
        device_cfg_backend="external", device_cfg_size=0x40,
        device_cfg_init=bytes(range(0x10, 0x30))),
    "m4096": VirtioPciParams(
        notify_off_multiplier=4096, num_queues=4, msix_vectors=2, queue_max_size=64,
        features=V1 | (1 << Feature.RING_RESET),
        device_cfg_init=bytes.fromhex("52540012345600010400")),
}

MODULES = ["transport_init", "transport_runtime", "transport_hostile"]


def builds_of(name, args):
    """The Verilator builds each test runs on (tb/conftest.py makes them ahead of the tests)."""
    return [PARAMS[args["params"]]]


@pytest.mark.parametrize("params", list(PARAMS))
@pytest.mark.parametrize("module", MODULES)
def test_transport(module, params, tmp_path):
    seed = os.environ.get("VPCI_SEED")
    run_cocotb(f"tb.integration.cocotb.{module}_test", PARAMS[params], test_dir=str(tmp_path),
               seed=int(seed) if seed else None)
