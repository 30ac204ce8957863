"""`make sim`: build with tracing, run the bring-up scenario, print what it found and write a
waveform that GTKWave opens (build/sim/waves.vcd + waves.gtkw)."""
import os
import sys

from virtio_pci.params import VirtioPciParams

from .run import run_cocotb
from .waves import WAVES_DIR, sanitize_vcd, write_gtkw


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    params = VirtioPciParams.from_file(argv[0]) if argv else VirtioPciParams()
    os.makedirs(WAVES_DIR, exist_ok=True)
    report = os.path.join(WAVES_DIR, "bringup.txt")
    run_dir = os.path.join(WAVES_DIR, "run")
    run_cocotb("tb.cocotb.bringup_test", params, waves=True, test_dir=run_dir,
               extra_env={"VPCI_BRINGUP_OUT": report})
    vcd = os.path.join(WAVES_DIR, "waves.vcd")
    sanitize_vcd(os.path.join(run_dir, "dump.vcd"), vcd)
    gtkw = write_gtkw(vcd, os.path.join(WAVES_DIR, "waves.gtkw"), width=params.data_width)
    with open(report) as f:
        print(f.read(), end="")
    print(f"waveform: {vcd}\nGTKWave:  gtkwave {gtkw}   (or: make waves)")


if __name__ == "__main__":
    main()
