"""The cycle-exact performance targets of DESIGN.md section 8, with the code of `make bench`.

Cycle counts are deterministic, so they are asserted here; wall-clock speed is only printed by
``make bench``.  The program (sim/bench/scenarios.py) takes the device to DRIVER_OK with enabled
queues and MSI-X, then measures every latency path and back-to-back doorbell writes, with every
sink ready and with random back-pressure on tx; it checks each answer (count, order, tag, status,
doorbell queue and value) as it goes.  It runs on the shared Verilator builds at W = 128 and 256
(the targets' widths) and once on Amaranth's simulator, which must give the same cycle counts.
"""
import pytest

from sim.bench.amaranth_bench import run_amaranth
from sim.bench.cycles import run_verilator
from sim.bench.scenarios import target_of
from virtio_pci.params import VirtioPciParams

CFG = {"latency": True,
       "throughput": {"n": 64, "workloads": ["doorbell MWr"], "modes": ["ready", "tx_bp"]}}


def check_targets(res):
    for name, cycles in res["latency"].items():
        assert cycles <= target_of(name), f"{name}: {cycles} cycles, target {target_of(name)}"
    for key, tp in res["throughput"].items():
        assert tp["tlps_per_cycle"] == 1.0, f"{key}: {tp['tlps_per_cycle']} TLPs/cycle, target 1.0"


def builds_of(name, args):
    """The Verilator builds each test runs on (tb/conftest.py makes them ahead of the tests)."""
    return [VirtioPciParams(data_width=args.get("width", 128))]


@pytest.mark.parametrize("width", [128, 256])
def test_performance_targets(width, tmp_path):
    res = run_verilator(VirtioPciParams(data_width=width), CFG, test_dir=str(tmp_path))
    check_targets(res)


def test_performance_amaranth_agrees(tmp_path):
    params = VirtioPciParams(data_width=128)
    a = run_amaranth(params, CFG)
    check_targets(a)
    v = run_verilator(params, CFG, test_dir=str(tmp_path))
    assert a["latency"] == v["latency"] and a["throughput"] == v["throughput"], \
        "Amaranth's simulator and Verilator disagree on cycle counts"
