"""`make sim`: build with tracing, run the bring-up scenario, print what it found and write a
waveform that GTKWave opens (build/sim/waves.vcd + waves.gtkw).  A complete device
(examples/virtio-rng.json) runs its data-path scenario instead (tb/integration/cocotb/rng_sim.py): the driver
reads random bytes through the request queue.

A transitional build (``"transitional": true``, e.g. examples/virtio-net-transitional.json) is
brought up by the legacy driver model through I/O BAR0; ``--driver modern|legacy`` (make sim
SIM_ARGS=--driver=modern) chooses explicitly."""
import argparse
import os
import sys

from virtio_pci.params import VirtioPciParams

from .run import run_cocotb
from .waves import WAVES_DIR, save_waves


def main(argv=None):
    ap = argparse.ArgumentParser(prog="python -m sim.bringup", description=__doc__)
    ap.add_argument("params", nargs="?", help="parameter file (JSON); default parameters without")
    ap.add_argument("--driver", choices=("modern", "legacy"),
                    help="driver model (default: legacy for a transitional build, else modern)")
    args = ap.parse_args(sys.argv[1:] if argv is None else argv)
    params = VirtioPciParams.from_file(args.params) if args.params else VirtioPciParams()
    if args.driver == "legacy" and not params.transitional:
        ap.error("--driver legacy needs a transitional build (\"transitional\": true)")
    os.makedirs(WAVES_DIR, exist_ok=True)
    report = os.path.join(WAVES_DIR, "bringup.txt")
    run_dir = os.path.join(WAVES_DIR, "run")
    env = {"VPCI_BRINGUP_OUT": report}
    if args.driver:
        env["VPCI_BRINGUP_DRIVER"] = args.driver
    from virtio_pci.cli import top_level
    from virtio_pci.link import silence
    device, top = top_level(params)
    silence(top)
    # a complete device (virtio-rng) runs its data-path scenario instead of the bare bring-up
    module = "tb.integration.cocotb.rng_sim" if device == "virtio-rng" \
        else "tb.integration.cocotb.bringup_test"
    _, run_dir = run_cocotb(module, params, waves=True, test_dir=run_dir, extra_env=env)
    from .build import build
    _, desc = build(params, waves=True)
    vcd, gtkw = save_waves(os.path.join(run_dir, "dump.vcd"), WAVES_DIR, desc)
    with open(report) as f:
        print(f.read(), end="")
    print(f"waveform: {vcd}\nGTKWave:  gtkwave {gtkw}   (or: make waves)")


if __name__ == "__main__":
    main()
