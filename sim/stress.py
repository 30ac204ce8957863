"""``python -m sim.stress [--count N] [--seed S] [--params file.json] [--coverage]``: the
randomised stress of tb/scenarios/stress.py on a Verilator build.  Prints the seed first; a failing run
reproduces from its seed (``make stress COUNT=n SEED=s``)."""
import argparse
import os
import random
import sys
import time

from virtio_pci.params import VirtioPciParams

from .run import run_cocotb
from .build import ROOT


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--count", type=int, default=1_000_000)
    ap.add_argument("--seed", type=int, default=None)
    ap.add_argument("--params", default=None, help="parameter JSON file (default parameters)")
    ap.add_argument("--coverage", action="store_true")
    a = ap.parse_args(argv)
    seed = a.seed if a.seed is not None else random.SystemRandom().randrange(1 << 31)
    params = VirtioPciParams.from_file(a.params) if a.params else VirtioPciParams()
    print(f"stress: seed {seed}, {a.count} TLPs (reproduce: make stress COUNT={a.count} SEED={seed})",
          flush=True)
    test_dir = os.path.join(ROOT, "build", "stress", str(seed))
    t0 = time.time()
    try:
        run_cocotb("tb.integration.cocotb.stress_test", params, test_dir=test_dir, coverage=a.coverage,
                   extra_env={"VPCI_STRESS_COUNT": str(a.count), "VPCI_STRESS_SEED": str(seed)},
                   seed=seed)
    except (AssertionError, SystemExit) as e:
        print(f"stress FAILED (seed {seed}): {e}; log in {test_dir}", flush=True)
        return 1
    dt = time.time() - t0
    print(f"stress passed: seed {seed}, {a.count} TLPs, {dt:.0f} s wall ({a.count / dt:.0f} TLPs/s "
          f"including the build)", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
