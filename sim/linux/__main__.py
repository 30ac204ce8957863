"""`make linux [PARAMS=file.json]`: boot User-Mode Linux against the endpoint RTL and print what
Linux saw (capability list, drivers, device status, negotiated features, MSI-X interrupts), the
TLP transcript, the waveform (`make waves` opens it) and the co-simulation figures.  The Linux
scenario tests (tb/integration/test_linux.py) run after it in `make linux`."""
import argparse
import os
import sys

from virtio_pci.params import VirtioPciParams

from ..build import build
from ..waves import WAVES_DIR, save_waves
from .kernel import cache_dir, ensure_kernel, source_version
from .report import format_report
from .run import boot


def main(argv=None):
    ap = argparse.ArgumentParser(prog="python -m sim.linux", description=__doc__)
    ap.add_argument("params", nargs="?", help="parameter file (JSON); default parameters without")
    ap.add_argument("--limit", type=float, default=300, help="wall-clock limit in seconds")
    a = ap.parse_args(argv)
    params = VirtioPciParams.from_file(a.params) if a.params else VirtioPciParams()
    kernel = ensure_kernel()
    print(f"UML kernel: {kernel}")
    bt = os.path.join(cache_dir(source_version()), "build-time.txt")
    if os.path.exists(bt):
        with open(bt) as f:
            print(f"  (built in {f.read().strip()}; a first build from scratch takes minutes, "
                  "a rebuild after a changed option seconds)")
    run = boot(params, "probe", waves=True, limit_s=a.limit)
    print()
    print(format_report(run))
    print()
    tr = os.path.join(run.outdir, "transcript.txt")
    if os.path.exists(tr):
        with open(tr) as f:
            n = sum(1 for _ in f)
        print(f"TLP transcript: {tr} ({n} TLPs)")
    vcd_in = os.path.join(run.outdir, "sim", "dump.vcd")
    if os.path.exists(vcd_in):
        _, desc = build(params, waves=True)          # cached: the build the run used
        vcd, gtkw = save_waves(vcd_in, WAVES_DIR, desc)
        print(f"waveform: {vcd}\nGTKWave:  gtkwave {gtkw}   (or: make waves)")
    print(f"console: {os.path.join(run.outdir, 'console.txt')}")
    s = run.bridge.get("stats", {})
    if run.boot_to_driver_ok_s is not None:
        print(f"boot to DRIVER_OK: {run.boot_to_driver_ok_s:.2f} s wall (UML start to the RTL's "
              f"driver_ok)")
    if run.np_per_s:
        print(f"non-posted round trips through the RTL: {s['np']} in {s['np_wall_s']:.3f} s = "
              f"{run.np_per_s:.0f} per second; {s['posted']} posted writes, "
              f"{s['tlps_rx']} TLPs to the RTL, {s['tlps_tx']} from it")
    if run.failure or run.bridge.get("errors"):
        print(f"FAILED: {run.failure} {run.bridge.get('errors', '')}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
