"""Randomised stress with a scoreboard (tb/scenarios/stress.py).  ``VPCI_STRESS_COUNT`` TLPs,
``VPCI_STRESS_SEED`` seed (default: cocotb's random seed); the seed is printed first.

Hostile-driver rows exercised at random and checked against the reference model (tb/models/ref_model.py):
DRV-01 (every width and byte-enable pattern), DRV-03 (writes to read-only fields), DRV-04 (illegal
queue sizes), DRV-05 (queue fields written after queue_enable), DRV-06 (accesses while a reset is
pending), DRV-07 (queue_enable 0), DRV-08 (queue reset under load), DRV-10 (clearing status bits),
DRV-11 (unoffered / late features), DRV-12 (doorbells before DRIVER_OK), DRV-15 (out-of-range
vectors), DRV-16 (16- and 32-bit doorbells), DRV-17 (reads past the implemented fields), DRV-22
(queue_select past num_queues).
"""
import os

import cocotb

from tb.scenarios.stress import Stress


@cocotb.test()
async def stress(dut):
    count = int(os.environ.get("VPCI_STRESS_COUNT", "20000"))
    seed = int(os.environ.get("VPCI_STRESS_SEED") or cocotb.RANDOM_SEED)
    dut._log.info("stress: seed %d, %d TLPs (reproduce: make stress COUNT=%d SEED=%d)",
                  seed, count, count, seed)
    s = Stress(dut, seed, count, log=dut._log)
    stats = await s.run()
    dut._log.info("stress: %s", stats)
    print(f"STRESS seed={seed} " + " ".join(f"{k}={v}" for k, v in stats.items()), flush=True)
    total = stats["rst"] + stats["flr"] + stats["virtio_resets"] + stats["qresets"]
    print(f"RESETS conventional={stats['rst']} (with requests in flight {stats['rst_inflight']}) "
          f"FLR={stats['flr']} (in flight {stats['flr_inflight']}) virtio={stats['virtio_resets']} "
          f"queue={stats['qresets']} total={total}", flush=True)
    if "dma_reads" in stats:
        st = " ".join(f"{k}={stats['dma_' + k]}" for k in ("ok", "ur", "ca", "poisoned", "bme",
                                                           "reset", "timeout", "malformed"))
        print(f"DMA reads={stats['dma_reads']} ({stats['dma_read_bytes']} bytes) "
              f"writes={stats['dma_writes']} ({stats['dma_write_bytes']} bytes) "
              f"MRd={stats['dma_mrd']} MWr={stats['dma_mwr']} statuses: {st} "
              f"lost to resets={stats['dma_lost']} late completions={stats['dma_late_cpl']}",
              flush=True)
