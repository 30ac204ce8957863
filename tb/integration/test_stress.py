"""pytest entries of the randomised stress (tb/scenarios/stress.py, ``make stress`` for long runs).

``test_stress``: ``VPCI_STRESS_COUNT`` TLPs (default 100,000, the least issue 5 allows for the CI
run of the stress) on the default build, a quarter of that on the ``m0`` (shared doorbell, external device config) and ``m4096`` (one doorbell page per
queue) builds of tb/integration/test_transport.py and on the ``transitional`` build of tb/integration/test_legacy.py
(legacy header in I/O BAR0, NOTIFY_ON_EMPTY offered, external device config: the I/O traffic of
the stress is on); ``VPCI_SEED`` fixes the seed (otherwise random, printed by cocotb and in the
STRESS line), and a tenth on the ``large`` build (1024 queues, 64 MSI-X vectors, W = 64) and on
the ``pipelined`` build of tb/integration/test_transport.py (register slices, ``params.pipelined``).
``test_stress_scoreboard_fails``: the scoreboard is shown to fail when its expectation is wrong
(wrong read data, wrong status, a completion more or less, a doorbell lost or duplicated, a queue
event lost, error status bits not set, the wrong MSI-X message data, interrupt requests the model
never hears of).
"""
import os

import pytest

from sim.run import run_cocotb
from tb.integration.test_legacy import PARAMS as LEGACY_PARAMS
from tb.integration.test_transport import PARAMS

from virtio_pci.params import VirtioPciParams

#: the transitional build is the one tb/integration/test_legacy.py builds (no extra Verilator build);
#: ``large``: 1024 queues, 64 vectors, W = 64 (issue 11 item 5: the stress failed there at its first
#: sync point, 1025 start-up interrupt requests re-pending vectors whose message had started)
BUILDS = dict(PARAMS, transitional=LEGACY_PARAMS["transitional"],
              large=VirtioPciParams(num_queues=1024, msix_vectors=64, data_width=64))

COUNT = int(os.environ.get("VPCI_STRESS_COUNT", "100000"))


@pytest.mark.parametrize("params", ["default", "m0", "m4096", "transitional", "large",
                                    "pipelined"])
def test_stress(params, tmp_path):
    seed = os.environ.get("VPCI_SEED")
    count = COUNT if params == "default" else max(
        1000, COUNT // (10 if params in ("large", "pipelined") else 4))
    run_cocotb("tb.integration.cocotb.stress_test", BUILDS[params], test_dir=str(tmp_path),
               extra_env={"VPCI_STRESS_COUNT": str(count), "VPCI_STRESS_SEED": seed or ""},
               seed=int(seed) if seed else None)


MUTATIONS = {
    "data": ("upstream TLP", "!= expected"),
    "status": ("upstream TLP", "!= expected"),
    "drop_cpl": ("unexpected upstream TLP|!= expected",),
    # an expectation too many shows as the next TLP / doorbell not matching, or as missing
    "extra_cpl": ("upstream TLP", "expected upstream TLPs missing|!= expected"),
    "drop_db": ("unexpected doorbell|doorbell (",),
    "dup_db": ("doorbell", "doorbells missing|!= expected"),
    "qevent": ("unexpected queue event|queue event (",),
    "errbits": ("upstream TLP", "!= expected"),
    "msix": ("MSI-X write", "not allowed now"),
    # requests the model never sees: ISR / Interrupt Status reads, PBA bits or messages differ
    "irq_lost": ("upstream TLP|MSI-X|INTx|PBA|vector",),
    # transitional build: the legacy header
    "legacy_layout": ("row on qrd|upstream TLP",),      # qrd_*, or the modern queue_device
    "legacy_db": ("unexpected doorbell",),
    "legacy_mixing": ("upstream TLP|queue event|doorbell|device_status|driver_ok|row on qrd",),
}


@pytest.mark.parametrize("mutation", list(MUTATIONS))
def test_stress_scoreboard_fails(mutation, tmp_path):
    """The run must fail, and with the check the mutation targets."""
    build = "transitional" if mutation.startswith("legacy_") else "default"
    with pytest.raises((AssertionError, SystemExit)):
        run_cocotb("tb.integration.cocotb.stress_test", BUILDS[build], test_dir=str(tmp_path),
                   extra_env={"VPCI_STRESS_COUNT": "3000", "VPCI_STRESS_SEED": "7",
                              "VPCI_STRESS_MUTATE": mutation}, seed=7)
    text = "".join(p.read_text() for p in tmp_path.glob("*.xml"))
    for alternatives in MUTATIONS[mutation]:
        assert any(a in text for a in alternatives.split("|")), (alternatives, text[:2000])
