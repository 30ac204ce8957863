"""Fmax alone: ``python -m sim.bench.fmax [--variants default,pipelined] [--speeds 6,8]
[--seeds 1,2,3]``.

The Fmax part of `make bench` without the rest: ECP5 synthesis of each variant and one nextpnr
run per speed grade and seed (``sim.bench.synth.run_fmax``, one at a time, minutes each), then
the Fmax section of the report.  Everything is cached under build/bench/synth and shared with
`make bench`, which prints the same figures without running them again.
"""
import argparse
import json
import sys

from .report import _fmax_text
from .synth import CONFIGS, FMAX_VARIANTS, run_area, run_fmax

__all__ = ["main"]


def main(argv=None):
    ap = argparse.ArgumentParser(prog="python -m sim.bench.fmax", description=__doc__.split("\n\n")[1])
    ap.add_argument("--variants", default="default,pipelined")
    ap.add_argument("--speeds", default="6,8")
    ap.add_argument("--seeds", default="1,2,3")
    ap.add_argument("--json", help="also write the results here")
    args = ap.parse_args(argv)
    names = args.variants.split(",")
    variants = [(n, o) for n, o in FMAX_VARIANTS if n in names]
    area = run_area(configs=[c for c in CONFIGS if c[0] in names], families=("ecp5",))
    fm = run_fmax(area, variants=variants, speeds=[int(x) for x in args.speeds.split(",")],
                  seeds=[int(x) for x in args.seeds.split(",")])
    print("\n".join(_fmax_text(fm, area)))
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"area": area, "fmax": fm}, f, indent=1)
    bad = [n for n, v in fm.items() if "error" in v or any("error" in r for r in v["runs"])]
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
