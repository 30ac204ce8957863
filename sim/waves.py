"""Waveforms that GTKWave opens, and `make waves`.

Verilator's VCD of Amaranth Verilog contains a Yosys-generated register named
``$auto$verilog_backend.cc:...$1`` that GTKWave 3.3 refuses to parse.  ``sanitize_vcd`` rewrites
the names in the header (the value section is copied untouched), so the file opens without
errors.  FST would avoid it but needs the liblz4 headers, which a fresh machine lacks.

``write_gtkw`` writes a save file that shows the TLP ports with a translate filter
(``sim/gtkwave_tlp_filter.py``) decoding each beat's first DW (MRd32, CplD, CfgWr0, ...).

`make waves`: open the last `make sim` waveform in GTKWave when a display and gtkwave are there,
else print where the files are.
"""
import os
import re
import shutil
import subprocess
import sys

from .build import ROOT

__all__ = ["sanitize_vcd", "write_gtkw", "WAVES_DIR"]

WAVES_DIR = os.path.join(ROOT, "build", "sim")
_BAD = re.compile(r"[^A-Za-z0-9_]")


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


def write_gtkw(vcd, path, top="virtio_pci_ep", width=128):
    """A GTKWave save file: clock, reset, rx/tx handshakes and payloads (TLP-decoded), and the
    back-end doorbell port."""
    filt = os.path.join(ROOT, "sim", "gtkwave_tlp_filter.py")
    pw = width + width // 32 + 2 - 1
    lines = [f'[dumpfile] "{os.path.abspath(vcd)}"', "[timestart] 0", "@28",
             f"{top}.clk", f"{top}.rst", "@200", "-rx (link -> endpoint)", "@28",
             f"{top}.rx__valid", f"{top}.rx__ready",
             f"^>1 {sys.executable} {filt}", "@4022", f"{top}.rx__payload[{pw}:0]",
             "@22", f"{top}.rx__payload[{pw}:0]",
             "@200", "-tx (endpoint -> link)", "@28",
             f"{top}.tx__valid", f"{top}.tx__ready",
             f"^>1 {sys.executable} {filt}", "@4022", f"{top}.tx__payload[{pw}:0]",
             "@22", f"{top}.tx__payload[{pw}:0]",
             "@200", "-back-end", "@28", f"{top}.doorbell__valid",
             "@22", f"{top}.device_status[7:0]"]
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")
    return path


def main():
    vcd = os.path.join(WAVES_DIR, "waves.vcd")
    gtkw = os.path.join(WAVES_DIR, "waves.gtkw")
    if not os.path.exists(vcd):
        print("no waveform yet: run `make sim` first")
        sys.exit(1)
    if os.environ.get("DISPLAY") and shutil.which("gtkwave"):
        subprocess.run(["gtkwave", gtkw])
    else:
        print(f"waveform:  {vcd}\nsave file: {gtkw}\n"
              "open with:  gtkwave " + gtkw + "   (no display or no gtkwave here)")


if __name__ == "__main__":
    main()
