"""pytest entries of the legacy-interface tests (tb/integration/cocotb/legacy_*_test.py, issue 7).

Two builds: ``transitional``: a transitional virtio-net (legacy I/O BAR0, the 64-bit memory BAR at
index 2) offering low feature bits a legacy driver negotiates (MAC, STATUS, EVENT_IDX,
NOTIFY_ON_EMPTY) beside VERSION_1, NOTIFICATION_DATA and RING_RESET, with the external
device-config back-end (the model makes it writable, so legacy device-config writes are seen,
LEG-07); ``guard``: a non-transitional device with the NTL-01 guard I/O BAR0 (``legacy_guard``).
``VPCI_SEED`` fixes the random seed.
"""
import os

import pytest

from sim.run import run_cocotb
from virtio_pci.params import Feature, VirtioPciParams

MAC, STATUS = 5, 16

PARAMS = {
    "transitional": VirtioPciParams(
        transitional=True, mem_bar=2, num_queues=3, queue_max_size=256, msix_vectors=4,
        features=(1 << Feature.VERSION_1) | (1 << Feature.NOTIFICATION_DATA)
        | (1 << Feature.RING_RESET) | (1 << MAC) | (1 << STATUS) | (1 << Feature.RING_EVENT_IDX)
        | (1 << Feature.NOTIFY_ON_EMPTY),
        device_cfg_backend="external", device_cfg_size=0x20,
        device_cfg_init=bytes(range(0x40, 0x60))),
    "guard": VirtioPciParams(legacy_guard=True, mem_bar=2),
}

#: the modern transport tests also run on the transitional build (the modern driver model on a
#: device that has the legacy header too)
MODULES = [("legacy", "transitional"), ("legacy_mixed", "transitional"), ("legacy_guard", "guard"),
           ("transport_init", "transitional"), ("transport_runtime", "transitional")]


def builds_of(name, args):
    """The Verilator builds each test runs on (tb/conftest.py makes them ahead of the tests)."""
    return [PARAMS[args["params"]]]


@pytest.mark.parametrize("module,params", MODULES)
def test_legacy(module, params, tmp_path):
    seed = os.environ.get("VPCI_SEED")
    run_cocotb(f"tb.integration.cocotb.{module}_test", PARAMS[params], test_dir=str(tmp_path),
               seed=int(seed) if seed else None)
