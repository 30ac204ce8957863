"""Make Verilator builds ahead of the tests that run on them (tb/conftest.py starts one of these
beside each pytest process, so builds run side by side with each other and with the tests).

``python -m sim.prebuild SPECS.json``: SPECS is a list of ``{"params": VirtioPciParams.to_dict(),
"link": ..., "waves": ..., "coverage": ...}`` in the order the tests need them.  Each prebuilder
walks the whole list and makes every build that is neither made nor being made by another
process (``sim.build.build(wait=False)``); a test that needs a build another process is making
waits for it on the build's lock, as before.  A build that fails here is left unmade: the test
that needs it builds it again and reports the error.
"""
import json
import sys
import time
import traceback

__all__ = ["prebuild"]


def prebuild(specs):
    from virtio_pci.params import VirtioPciParams
    from .build import build

    for spec in specs:
        t = time.monotonic()
        try:
            made = build(VirtioPciParams.from_dict(spec["params"]), link=spec.get("link"),
                         waves=spec.get("waves", False), coverage=spec.get("coverage", False),
                         wait=False)
        except Exception:
            traceback.print_exc()
            continue
        state = "made or found" if made else "being made by another process"
        print(f"prebuild: {spec['name']}: {state} ({time.monotonic() - t:.1f} s)", flush=True)


if __name__ == "__main__":
    with open(sys.argv[1]) as f:
        prebuild(json.load(f))
