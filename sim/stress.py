"""``python -m sim.stress [--count N] [--seed S] [--params file.json] [--coverage]``: the
randomised stress of tb/scenarios/stress.py on a Verilator build.  Prints the seed first; a failing run
reproduces from its seed (``make stress COUNT=n SEED=s``).  With the parameters of a complete
device (``--params examples/virtio-rng.json``) it stresses that device's queue instead
(tb/scenarios/rng_stress.py; COUNT counts chains: use a few thousand)."""
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
    from virtio_pci.cli import top_level
    device, top = top_level(params)
    top._MustUse__silence = True
    if device == "virtio-rng":
        return _rng(a, params, seed)
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


def _rng(a, params, seed):
    """The virtio-rng device (tb/scenarios/rng_stress.py): ``count`` chains through its queue
    with random queue and device resets, every byte checked."""
    print(f"stress: virtio-rng, seed {seed}, {a.count} chains (reproduce: make stress "
          f"COUNT={a.count} SEED={seed} STRESS_ARGS=\"--params {a.params}\")", flush=True)
    test_dir = os.path.join(ROOT, "build", "stress", f"rng_{seed}")
    t0 = time.time()
    try:
        run_cocotb("tb.integration.cocotb.rng_stress_test", params, test_dir=test_dir,
                   coverage=a.coverage, seed=seed,
                   extra_env={"VPCI_STRESS_COUNT": str(a.count), "VPCI_STRESS_SEED": str(seed)})
    except (AssertionError, SystemExit) as e:
        print(f"stress FAILED (seed {seed}): {e}; log in {test_dir}", flush=True)
        return 1
    print(f"stress passed: virtio-rng, seed {seed}, {a.count} chains, {time.time() - t0:.0f} s "
          f"wall", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
