"""The virtio-rng stress (tb/scenarios/rng_stress.py) as a cocotb module: ``VPCI_STRESS_COUNT``
chains, seed ``VPCI_STRESS_SEED``; random rx idle and tx back-pressure from the fabric."""
import os

import cocotb

from tb.env.rng import RngTB
from tb.scenarios.rng_stress import run_rng_stress


@cocotb.test()
async def rng_stress_test(dut):
    """VQP-01, VQP-02, VQP-03, VQP-04, VQP-09: random chains, interrupt suppression, queue and
    device resets with buffers outstanding on the rng device, every returned byte checked."""
    count = int(os.environ.get("VPCI_STRESS_COUNT", "200"))
    seed = int(os.environ.get("VPCI_STRESS_SEED", "1"))
    tb = RngTB(dut, seed=seed)
    if tb.dma_model is not None:
        tb.dma_model.rng.seed(seed)
    await run_rng_stress(tb, count, seed, log=tb.log.info)
