"""How long ``make test`` takes at two revisions, side by side on the same machine.

    python -m sim.bench.regression --before 0e885c3 --after HEAD [--jobs 2] [--keep]

Each revision is cloned from this repository into a temporary folder, with ``shared`` beside it
(a link to ``../shared`` of this checkout, as a fresh clone needs it), its ``.venv`` made by
``make venv`` (not timed), then ``make test`` runs there, the two one after the other, each from
nothing built.  The table gives, for each: the wall time of ``make test``, its CPU time (user +
system of every process it started, waited for), the tests passed / skipped / failed from
pytest's summary line, and the load average before and after; then after / before.  CPU time is
the steadier figure on a machine others use.  Logs: ``<tmp>/<label>/make-test.log``.
"""
import argparse
import os
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import time

from sim.build import ROOT

__all__ = ["run_revision", "format_table"]

_SUMMARY = re.compile(r"=+ (.*\d+ (?:passed|failed).*) in [\d.]+s")


def _git(*args, cwd=ROOT):
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True,
                          text=True).stdout.strip()


def _loadavg():
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def _children_cpu():
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def run_revision(rev, label, tmp, *, shared, jobs, pytest_args=""):
    """Clone ``rev`` into ``tmp/label/repo`` (``tmp/label/shared`` links to ``shared``), make its
    venv, time its ``make test``.  Returns a dict of the figures."""
    sha = _git("rev-parse", "--verify", f"{rev}^{{commit}}")
    base = os.path.join(tmp, label)
    repo = os.path.join(base, "repo")
    os.makedirs(base)
    os.symlink(shared, os.path.join(base, "shared"))
    subprocess.run(["git", "clone", "--quiet", "--no-checkout", ROOT, repo], check=True)
    _git("checkout", "--quiet", sha, cwd=repo)
    log_path = os.path.join(base, "make-test.log")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("VPCI_", "PYTEST_"))}
    env.pop("VIRTUAL_ENV", None)
    with open(log_path, "w") as log:
        print(f"{label}: {sha[:7]} in {repo}: make venv ...", flush=True)
        subprocess.run(["make", "venv"], cwd=repo, env=env, stdout=log, stderr=subprocess.STDOUT,
                       check=True)
        print(f"{label}: make test JOBS={jobs} (log: {log_path}) ...", flush=True)
        load_start = _loadavg()
        cpu0, t0 = _children_cpu(), time.monotonic()
        proc = subprocess.run(["make", "test", f"JOBS={jobs}", f"PYTEST_ARGS={pytest_args}"],
                              cwd=repo, env=env, stdout=log, stderr=subprocess.STDOUT)
        wall, cpu = time.monotonic() - t0, _children_cpu() - cpu0
    with open(log_path) as f:
        summary = _SUMMARY.findall(f.read())
    counts = dict.fromkeys(("passed", "skipped", "failed", "error"), 0)
    for n, what in re.findall(r"(\d+) (passed|skipped|failed|error)", summary[-1] if summary else ""):
        counts[what] = int(n)
    res = {"label": label, "rev": sha[:7], "wall": wall, "cpu": cpu, "status": proc.returncode,
           "load_start": load_start, "load_end": _loadavg(), **counts}
    print(f"{label}: {_minutes(wall)} wall, {_minutes(cpu)} CPU, {counts['passed']} passed, "
          f"{counts['skipped']} skipped, {counts['failed']} failed, exit {proc.returncode}",
          flush=True)
    return res


def _minutes(s):
    return f"{int(s // 60)}m{s % 60:04.1f}s"


def format_table(before, after):
    rows = [("revision", before["rev"], after["rev"], ""),
            ("wall time", _minutes(before["wall"]), _minutes(after["wall"]),
             f"{after['wall'] / before['wall']:.2f}"),
            ("CPU time (user+sys)", _minutes(before["cpu"]), _minutes(after["cpu"]),
             f"{after['cpu'] / before['cpu']:.2f}"),
            ("tests passed / skipped / failed",
             *(f"{r['passed']} / {r['skipped']} / {r['failed'] + r['error']}" for r in (before, after)), ""),
            ("make test exit status", str(before["status"]), str(after["status"]), ""),
            ("load average at start", before["load_start"], after["load_start"], ""),
            ("load average at end", before["load_end"], after["load_end"], "")]
    head = ("", "before", "after", "after/before")
    widths = [max(len(r[i]) for r in (head, *rows)) for i in range(4)]
    lines = ["| " + " | ".join(c.ljust(w) for c, w in zip(r, widths)) + " |" for r in (head, *rows)]
    lines.insert(1, "|" + "|".join("-" * (w + 2) for w in widths) + "|")
    return "\n".join(lines)


def main(argv=None):
    ap = argparse.ArgumentParser(prog="python -m sim.bench.regression", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--before", required=True, help="revision measured first (e.g. main)")
    ap.add_argument("--after", default="HEAD", help="revision measured second (default HEAD)")
    ap.add_argument("--jobs", type=int, default=2, help="JOBS of make test (default 2)")
    ap.add_argument("--pytest-args", default="", help="PYTEST_ARGS of make test (default none)")
    ap.add_argument("--shared", default=os.path.join(os.path.dirname(ROOT), "shared"),
                    help="the folder linked as ../shared beside each clone")
    ap.add_argument("--keep", action="store_true", help="keep the clones (several GB)")
    args = ap.parse_args(argv)
    shared = os.path.realpath(args.shared)
    if not os.path.isdir(shared):
        sys.exit(f"no shared folder at {shared} (--shared)")
    tmp = tempfile.mkdtemp(prefix="vpci-regression-")
    try:
        before = run_revision(args.before, "before", tmp, shared=shared, jobs=args.jobs,
                              pytest_args=args.pytest_args)
        after = run_revision(args.after, "after", tmp, shared=shared, jobs=args.jobs,
                             pytest_args=args.pytest_args)
    finally:
        if not args.keep:
            for label in ("before", "after"):           # keep the logs, drop the clones
                shutil.rmtree(os.path.join(tmp, label, "repo"), ignore_errors=True)
    print(f"\npython -m sim.bench.regression --before {args.before} --after {args.after} "
          f"--jobs {args.jobs}  ({os.cpu_count()} cores; logs in {tmp})\n")
    print(format_table(before, after))
    return 0 if before["status"] == after["status"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
