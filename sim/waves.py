"""Waveforms that explain themselves, and `make waves`.

``save_waves(dump, out_dir, desc)`` turns the VCD a Verilator run wrote into what GTKWave opens:

* the VCD with GTKWave-safe names (``sanitize_vcd``: Verilator's VCD of Amaranth Verilog has a
  Yosys name, ``$auto$verilog_backend.cc:...``, that GTKWave 3.3 refuses; the value section is
  copied untouched);
* a save file (``write_gtkw``) with the signals grouped (the TLP link, the back-end streams,
  interrupts, resets and handshakes, status) and `rx` / `tx` decoded by the translate filter
  ``sim/gtkwave_tlp_filter.py`` on each TLP's first beat only (kind, register name or address,
  tag, length; blank elsewhere), using the build's register map (``tlp_filter.json`` beside the
  waveform).  It opens where the root complex starts enumerating, zoomed so that single TLPs
  can be told apart.

`make sim` writes ``build/sim/``; any cocotb test writes ``build/waves/<test>/`` when run with
``VPCI_WAVES=1`` (``make test WAVES=1 PYTEST_ARGS="-k ..."``; ``TEST=regex`` narrows the cocotb
tests of a module).  `make waves` opens the newest of them in GTKWave when a display and
gtkwave are there, else prints where the files are.
"""
import glob
import json
import math
import os
import re
import shutil
import stat
import subprocess
import sys

from .build import ROOT

__all__ = ["sanitize_vcd", "write_gtkw", "save_waves", "WAVES_DIR", "TEST_WAVES_DIR"]

WAVES_DIR = os.path.join(ROOT, "build", "sim")
TEST_WAVES_DIR = os.path.join(ROOT, "build", "waves")
FILTER = os.path.join(ROOT, "sim", "gtkwave_tlp_filter.py")
_BAD = re.compile(r"[^A-Za-z0-9_]")
#: how much of the waveform the save file shows at once (GTKWave zooms by powers of two)
VISIBLE_NS = 1500
WINDOW_PX = 1000


def _clean(name):
    if name.startswith("\\"):
        name = name[1:]
    return _BAD.sub("_", name)


def sanitize_vcd(src, dst):
    """Copy ``src`` to ``dst`` with every ``$var``/``$scope`` name made GTKWave-safe."""
    with open(src, "r", errors="replace") as fi, open(dst, "w") as fo:
        for line in fi:
            if line.startswith("$enddefinitions") or "$enddefinitions" in line:
                fo.write(line)
                break
            s = line.strip()
            if s.startswith("$var"):
                parts = s.split()
                # $var <type> <size> <id> <name> [<range>] $end
                if len(parts) >= 6:
                    parts[4] = _clean(parts[4])
                    line = " ".join(parts) + "\n"
            elif s.startswith("$scope"):
                parts = s.split()
                if len(parts) >= 4:
                    parts[2] = _clean(parts[2])
                    line = " ".join(parts) + "\n"
            fo.write(line)
        shutil.copyfileobj(fi, fo, 1 << 20)
    return dst


def first_rise(vcd, signal):
    """(time of the first rise of the one-bit ``signal``, timescale in seconds) of a VCD, or
    (None, scale) when it never rises."""
    scale, ident, t = 1e-12, None, 0
    units = {"s": 1, "ms": 1e-3, "us": 1e-6, "ns": 1e-9, "ps": 1e-12, "fs": 1e-15}
    with open(vcd, errors="replace") as f:
        header = []
        for line in f:
            header.append(line)
            if "$enddefinitions" in line:
                break
            parts = line.split()
            if len(parts) >= 5 and parts[0] == "$var" and parts[4] == signal and ident is None:
                ident = parts[3]
        m = re.search(r"\$timescale\s*(\d+)\s*(\w+)", "".join(header))
        if m:
            scale = int(m[1]) * units.get(m[2], 1e-12)
        if ident is None:
            return None, scale
        for line in f:
            if line.startswith("#"):
                t = int(line[1:])
            elif line.rstrip() == "1" + ident:
                return t, scale
    return None, scale


def filter_config(desc):
    """The register map the translate filter names addresses with (from the build description
    and the tables of the driver models)."""
    from tb.host.legacy_driver import LEGACY_NAMES
    from tb.host.virtio_driver import COMMON

    mem = next(b for b in desc["bars"] if b["kind"] == "mem64")
    io = next((b for b in desc["bars"] if b["kind"] == "io"), None)
    regions = {}
    for name, r in desc["regions"].items():
        fields = {}
        if name == "common":
            fields = {str(off): n for n, (off, _) in COMMON.items()}
        regions[name] = {"offset": r["offset"], "span": r["span"], "fields": fields}
    cfg = {}
    for name, f in sorted(desc["config_fields"].items(), key=lambda kv: -kv[1]["width"]):
        cfg.setdefault(f["offset"] & ~3, name)
    rx = next(p for p in desc["ports"] if p["name"] == "rx__payload")
    return {"width": rx["fields"]["data"][1] + 1, "bar_size": mem["size"], "regions": regions, "config_fields": cfg,
            "io_bar_size": io["size"] if io else 0,
            "io_fields": {off: n for (off, _), n in LEGACY_NAMES.items()}}


def _filter_command(out_dir, config):
    """A small executable GTKWave can run as the translate filter (a save file names one
    program; this one passes the register map)."""
    cfg = os.path.join(out_dir, "tlp_filter.json")
    with open(cfg, "w") as f:
        json.dump(config, f)
    cmd = os.path.join(out_dir, "tlp_filter")
    with open(cmd, "w") as f:
        f.write(f"#!/bin/sh\nexec {sys.executable} {FILTER} {cfg}\n")
    os.chmod(cmd, os.stat(cmd).st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return cmd


def _present(desc, name):
    return any(p["name"] == name for p in desc["ports"])


def _width(desc, name):
    return next(p["width"] for p in desc["ports"] if p["name"] == name)


def write_gtkw(vcd, path, desc, top="virtio_pci_ep"):
    """A GTKWave save file for ``vcd`` of a build described by ``desc`` (the port JSON)."""
    out_dir = os.path.dirname(os.path.abspath(path))
    filt = _filter_command(out_dir, filter_config(desc))

    def sig(name):
        w = _width(desc, name)
        return f"{top}.{name}" if w == 1 else f"{top}.{name}[{w - 1}:0]"

    lines = [f'[dumpfile] "{os.path.abspath(vcd)}"']
    start, scale = first_rise(vcd, "rx__valid")
    if start is not None:
        per_px = VISIBLE_NS * 1e-9 / scale / WINDOW_PX
        lead = int(20e-9 / scale)                  # a few cycles before the first request
        lines += [f"[timestart] {max(start - lead, 0)}",
                  f"*{-math.log2(per_px):.6f} {start} -1 -1 -1 -1 -1 -1 -1 -1 -1 -1 -1 -1 -1 -1 -1 -1 -1 -1 -1 -1 -1 -1 -1 -1 -1"]
    else:
        lines.append("[timestart] 0")

    def group(title, body):
        return ["@800200", f"-{title}"] + body + ["@1000200", f"-{title}"]

    def bits(*names):
        return ["@28"] + [sig(n) for n in names if _present(desc, n)]

    def values(*names):
        return ["@22"] + [sig(n) for n in names if _present(desc, n)]

    def tlp(stream, title):
        pw = _width(desc, f"{stream}__payload")
        return ["@200", f"-{title}",
                f"^>1 {filt}", "@4022",
                f"#{{{stream}_tlp}} {top}.{stream}__valid {top}.{stream}__payload[{pw - 1}:0]",
                "@28", f"{top}.{stream}__valid", f"{top}.{stream}__ready"]

    def stream(name):
        if not _present(desc, f"{name}__valid"):
            return []
        out = ["@28", f"{top}.{name}__valid", f"{top}.{name}__ready"]
        if _present(desc, f"{name}__payload"):
            out += ["@22", sig(f"{name}__payload")]
        return out

    lines += ["@28", f"{top}.clk", f"{top}.rst"]
    lines += group("link: rx (to the endpoint) and tx (from it)",
                   tlp("rx", "rx") + tlp("tx", "tx")
                   + bits("err_malformed", "err_ur", "err_unexpected_cpl"))
    lines += group("back-end streams: doorbells, queue events, queue table",
                   stream("doorbell") + stream("qevent") + stream("qreset_done")
                   + values("qrd_addr") + bits("qrd_exists"))
    lines += group("interrupts: back-end requests (MSI-X writes and INTx messages leave on tx)",
                   stream("irq") + bits("config_changed"))
    lines += group("resets and handshakes",
                   bits("reset_req", "reset_ack", "needs_reset", "flr", "features_veto"))
    lines += group("negotiated state",
                   values("device_status", "driver_features") + bits("features_ok", "driver_ok",
                                                                     "legacy"))
    device_cfg = stream("dcfg_update") + stream("dcfg_req") + stream("dcfg_resp")
    if device_cfg:
        lines += group("device configuration", device_cfg)
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")
    return path


def save_waves(dump, out_dir, desc):
    """``dump`` (a Verilator VCD) as ``out_dir/waves.vcd`` + ``waves.gtkw``; returns both."""
    os.makedirs(out_dir, exist_ok=True)
    vcd = sanitize_vcd(dump, os.path.join(out_dir, "waves.vcd"))
    gtkw = write_gtkw(vcd, os.path.join(out_dir, "waves.gtkw"), desc)
    return vcd, gtkw


def latest():
    """The newest save file of `make sim` or of a test run with waves."""
    files = glob.glob(os.path.join(WAVES_DIR, "waves.gtkw")) + \
        glob.glob(os.path.join(TEST_WAVES_DIR, "*", "waves.gtkw"))
    return max(files, key=os.path.getmtime) if files else None


def main():
    gtkw = latest()
    if gtkw is None:
        print("no waveform yet: run `make sim`, or `make test WAVES=1 PYTEST_ARGS=\"-k ...\"`")
        sys.exit(1)
    vcd = os.path.join(os.path.dirname(gtkw), "waves.vcd")
    if os.environ.get("DISPLAY") and shutil.which("gtkwave"):
        subprocess.run(["gtkwave", gtkw])
    else:
        print(f"waveform:  {vcd}\nsave file: {gtkw}\n"
              "open with:  gtkwave " + gtkw + "   (no display or no gtkwave here)")


if __name__ == "__main__":
    main()
