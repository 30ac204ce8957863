"""Verilator's run-time library (verilated.cpp, verilated_vpi.cpp, verilated_threads.cpp,
verilated_dpi.cpp: about 12 s of CPU at Verilator's -Os), compiled once and copied into every
model build instead of compiled in each: the objects do not depend on the model, only on the
switches Verilator wrote for it (tracing, coverage, timing), on Verilator's version and
verilated.mk (which names the compiler) and on CXXFLAGS, which together make the cache key.  sim/build.py runs
``python -m sim.runtime_cache fetch|store <sim_dir>`` between Verilator and make and after make.
"""
import hashlib
import os
import re
import shutil
import sys

from .toolchain import setup_verilator

__all__ = ["runtime_cache", "RUNTIME_DIR"]

RUNTIME_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "build",
                           "verilated_rt")


def _make_vars(path):
    """Variables of a generated make fragment (``Vtop_classes.mk``): {name: value}."""
    out, name = {}, None
    with open(path) as f:
        for line in f:
            line = line.rstrip("\n")
            m = re.match(r"^(\w+)\s*\+?=\s*(.*?)\s*\\?$", line)
            if m:
                name = m.group(1)
                out[name] = (out.get(name, "") + " " + m.group(2)).strip()
            elif name and line.startswith("  "):
                out[name] = (out[name] + " " + line.strip(" \\")).strip()
            else:
                name = None
    return out


def _runtime_objects(sim_dir, make_vars):
    """(key, names) of Verilator's run-time library objects a model in ``sim_dir`` links: the key
    hashes everything their compilation depends on (the switches Verilator wrote for the model:
    tracing, coverage, timing; verilated.mk, which names the compiler; the environment's
    CXXFLAGS and MAKEFLAGS, the make variables given to the build), not the model."""
    mk = _make_vars(os.path.join(sim_dir, "Vtop_classes.mk"))
    names = (mk.get("VM_GLOBAL_FAST", "") + " " + mk.get("VM_GLOBAL_SLOW", "")).split()
    h = hashlib.sha1()
    for k in sorted(mk):
        if k.startswith("VM_") and not k.startswith(("VM_CLASSES", "VM_SUPPORT")):
            h.update(f"{k}={mk[k]}\n".encode())
    from importlib.metadata import version
    root = setup_verilator()
    h.update(f"{root} {version('verilator')}\n".encode())
    with open(os.path.join(root, "include", "verilated.mk"), "rb") as f:
        h.update(f.read())
    for v in (os.environ.get("CXXFLAGS", ""), os.environ.get("MAKEFLAGS", ""), *make_vars):
        h.update(v.encode() + b"\n")
    return h.hexdigest()[:12], names


def runtime_cache(step, sim_dir, make_vars=()):
    """``fetch``: copy the cached run-time objects into ``sim_dir`` (after Verilator wrote its
    makefiles, so make finds them newer than those and does not compile them again); ``store``:
    after make, keep the objects it compiled if none are cached yet.  ``make_vars``: the variables
    (``NAME=value``) make is given."""
    key, names = _runtime_objects(sim_dir, make_vars)
    cache = os.path.join(RUNTIME_DIR, key)
    files = [n + ext for n in names for ext in (".o", ".d")]
    if step == "fetch":
        if os.path.isdir(cache):
            for f in files:
                shutil.copy(os.path.join(cache, f), os.path.join(sim_dir, f))
    elif not os.path.isdir(cache) and all(os.path.exists(os.path.join(sim_dir, f)) for f in files):
        tmp = f"{cache}.{os.getpid()}"
        os.makedirs(tmp, exist_ok=True)
        for f in files:
            shutil.copy(os.path.join(sim_dir, f), os.path.join(tmp, f))
        try:
            os.rename(tmp, cache)           # atomic: a concurrent build stored it first, keep that
        except OSError:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    runtime_cache(sys.argv[1], sys.argv[2], sys.argv[3:])
