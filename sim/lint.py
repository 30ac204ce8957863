"""`make lint`: Verilator lint of the emitted Verilog and ruff on the Python sources.

Amaranth's Verilog is linted with ``-Wno-fatal`` (its generated code trips width and case
warnings that are harmless); the command fails on Verilator errors, prints the warning count,
and fails on any Python error ruff finds (pyflakes rules and syntax errors).
"""
import os
import re
import subprocess
import sys

from virtio_pci.cli import emit
from virtio_pci.params import VirtioPciParams

from .build import ROOT
from .toolchain import setup_verilator


def _constant_always_blocks(path):
    """`always @*` blocks whose body is a constant assignment to a slice: Yosys emits them for
    a constant assigned to part of a combinational signal, and Verilator/Icarus never run them."""
    pat = re.compile(r"^\s*\S+(\[[0-9:]+\])? = [0-9]+'[hbd][0-9a-fA-F_]+;$")
    out = []
    with open(path) as f:
        lines = f.readlines()
    for i, ln in enumerate(lines[:-1]):
        if ln.strip() == "always @*" and pat.match(lines[i + 1]):
            nxt = lines[i + 1].strip()
            if not re.search(r"= [0-9]+'[hbd]0+;$", nxt):     # constant zero is harmless
                out.append(f"line {i + 2}: {nxt}")
    return out


def main():
    setup_verilator()
    out = os.path.join(ROOT, "build", "lint")
    failed = False
    for w in (64, 128, 256):
        v, _ = emit(VirtioPciParams(data_width=w), out, f"virtio_pci_ep_w{w}")
        r = subprocess.run(["verilator", "--lint-only", "-Wall", "-Wno-fatal", "-Wno-DECLFILENAME",
                            "-Wno-UNUSEDSIGNAL", "-Wno-UNUSEDPARAM", v, "--top-module",
                            f"virtio_pci_ep_w{w}"], capture_output=True, text=True)
        warnings = [ln for ln in r.stderr.splitlines() if ln.startswith("%Warning")]
        errors = [ln for ln in r.stderr.splitlines() if ln.startswith("%Error")]
        print(f"verilator lint W={w}: {len(errors)} errors, {len(warnings)} warnings")
        for ln in errors[:20]:
            print("  " + ln)
        failed |= bool(errors)
        dead = _constant_always_blocks(v)
        for ln in dead:
            print(f"  constant `always @*` (never evaluated by event-driven simulators): {ln}")
        failed |= bool(dead)
    r = subprocess.run([sys.executable, "-m", "ruff", "check", "--select", "E9,F",
                        "--output-format", "concise", "hdl", "sim", "tb"], cwd=ROOT)
    print(f"ruff: {'clean' if r.returncode == 0 else 'problems found'}")
    failed |= r.returncode != 0
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
