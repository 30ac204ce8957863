"""Build (once) the User-Mode Linux kernel that `make linux` boots, and print its path.

The kernel is Debian's ``linux-source-6.1`` built for ``ARCH=um`` with UML's PCI-over-virtio
transport (``CONFIG_UML_PCI_OVER_VIRTIO``), the in-tree virtio_pci driver and the virtio device
drivers the scenarios bind.  It lives in a cache outside the clone, keyed by the source package
version and a hash of everything this file changes (the option list, the edits, the poll
limit), so a second run finds it in a second and a fresh machine rebuilds it.

Scripted edits of UML's own code, never of virtio_pci: ``EDITS`` below (the host's XSAVE size, an
irq_chip for INTx) and the poll limit of UML's PCI transport (``arch/um/drivers/virt-pci.c``): it
busy-polls at most ``UM_VIRT_PCI_MAXDELAY`` iterations of 1 us for the answer to a
non-posted access (about 40 ms wall time); the RTL behind a Python bridge can take longer on a
loaded machine, so the constant is raised to POLL_LIMIT.  A missing answer still ends the wait
(the driver reads all-ones, the kernel warns "um virt-pci delay"), which sim/linux/run.py turns
into a failure; every run also has a wall-clock limit.

    python -m sim.linux.kernel            # install, build if needed, print the kernel path
    python -m sim.linux.kernel --print    # print the cache path only (no build)
"""
import argparse
import hashlib
import os
import re
import shutil
import subprocess
import sys
import time

__all__ = ["KERNEL_CONFIG", "POLL_LIMIT", "PCI_DEVICE_ID", "cache_dir", "ensure_kernel"]

CACHE_ROOT = os.environ.get("VIRTIO_PCI_FE_CACHE", "/var/cache/virtio-pci-fe")
SOURCE_PACKAGE = "linux-source-6.1"
BUILD_PACKAGES = [SOURCE_PACKAGE, "flex", "bison", "bc", "libssl-dev", "libelf-dev", "make",
                  "gcc", "xz-utils"]

#: the virtio device ID UML's PCI transport binds to (``virtio_uml.device=<socket>:<n>``); no
#: virtio driver may claim it (1 would be virtio-net itself), so a number from no spec table
PCI_DEVICE_ID = 1234

#: iterations of udelay(1) UML waits for a non-posted answer (upstream: 40000, about 40 ms)
POLL_LIMIT = 4_000_000

#: options set on top of ``make ARCH=um defconfig`` (y, n, or a value)
KERNEL_CONFIG = {
    "VIRTIO_UML": "y",
    "UML_PCI_OVER_VIRTIO": "y",
    "UML_PCI_OVER_VIRTIO_DEVICE_ID": str(PCI_DEVICE_ID),
    "VIRTIO_MENU": "y",
    "VIRTIO_PCI": "y",
    "VIRTIO_PCI_LEGACY": "y",
    "VIRTIO_NET": "y",
    "VIRTIO_BLK": "y",
    "VIRTIO_CONSOLE": "y",
    "HW_RANDOM": "y",
    "HW_RANDOM_VIRTIO": "y",
    "PCI_MSI": "y",
    "DEVTMPFS": "y",
    "TMPFS": "y",
    "PROC_FS": "y",
    "SYSFS": "y",
    "HOSTFS": "y",
    "DEBUG_INFO_NONE": "y",
    "DEBUG_INFO": "n",
    "DEBUG_INFO_DWARF_TOOLCHAIN_DEFAULT": "n",
    "DEBUG_INFO_DWARF4": "n",
    "DEBUG_INFO_DWARF5": "n",
}

POLL_PATTERN = re.compile(r"(#define\s+UM_VIRT_PCI_MAXDELAY\s+)(\d+)")

# Scripted edits of UML's own code (never of virtio_pci), each: (file, why, old text, new text).
# * The host's XSAVE area: UML 6.1 saves a process's FP state with PTRACE_{GET,SET}REGSET
#   (NT_X86_XSTATE) into a buffer of fixed size (FP_SIZE); on a host whose XSAVE area is larger
#   (AVX-512, AMX) the host kernel refuses the short SETREGSET ("ptrace set fp regs failed,
#   errno = 14") and the first user process dies.  Use XSTATE only when the host's XSAVE size
#   (CPUID 0xD.0 EBX) fits; else UML falls back to PTRACE_GETFPREGS (x87/SSE state) and the
#   guest's glibc is kept off AVX (GLIBC_TUNABLES in sim/linux/guest.sh).
# * INTx: virt-pci.c gives each device an IRQ number for its INTx pins (irq_alloc_desc) but no
#   irq_chip, so request_irq() on it fails with -ENOSYS (kernel/irq/manage.c: no_irq_chip) and
#   virtio_pci cannot use INTx when MSI-X is refused.  Give it the dummy chip with the simple
#   flow handler: UML's INT event (generic_handle_irq) then runs the driver's handler.
EDITS = [
    ("arch/x86/um/os-Linux/registers.c", "XSTATE only when the host's XSAVE area fits",
     "#include <errno.h>\n", "#include <errno.h>\n#include <cpuid.h>\n"),
    ("arch/x86/um/os-Linux/registers.c", "XSTATE only when the host's XSAVE area fits",
     "\tif (ptrace(PTRACE_GETREGSET, pid, NT_X86_XSTATE, &iov) == 0)\n"
     "\t\thave_xstate_support = 1;\n",
     "\t{ unsigned int a, b = ~0u, c, d;  /* host XSAVE area size must fit FP_SIZE */\n"
     "\t__cpuid_count(0xd, 0, a, b, c, d);\n"
     "\tif (b <= iov.iov_len && ptrace(PTRACE_GETREGSET, pid, NT_X86_XSTATE, &iov) == 0)\n"
     "\t\thave_xstate_support = 1; }\n"),
    ("arch/um/drivers/virt-pci.c", "an irq_chip for the INTx IRQ",
     "\t\terr = dev->irq;\n\t\tgoto err_reset;\n\t}\n",
     "\t\terr = dev->irq;\n\t\tgoto err_reset;\n\t}\n"
     "\tirq_set_chip_and_handler(dev->irq, &dummy_irq_chip, handle_simple_irq);\n"),
]


def _run(cmd, **kw):
    print("+ " + " ".join(cmd), flush=True)
    subprocess.run(cmd, check=True, **kw)


def source_version():
    """Version of the installed source package, or None."""
    r = subprocess.run(["dpkg-query", "-W", "-f=${Status} ${Version}", SOURCE_PACKAGE],
                       capture_output=True, text=True)
    if r.returncode != 0 or not r.stdout.startswith("install ok installed"):
        return None
    return r.stdout.split()[-1]


def config_hash():
    h = hashlib.sha256()
    h.update(repr(sorted(KERNEL_CONFIG.items())).encode())
    h.update(f"poll={POLL_LIMIT}".encode())
    h.update(repr(EDITS).encode())
    return h.hexdigest()[:12]


def cache_dir(version):
    """Where the kernel of this version and configuration is kept (``<dir>/linux``).  The build
    tree (``linux-<version>/src``) is shared by all configurations, so a changed option
    rebuilds incrementally."""
    return os.path.join(CACHE_ROOT, f"linux-{version}", config_hash())


def install_packages():
    missing = []
    for p in BUILD_PACKAGES:
        r = subprocess.run(["dpkg-query", "-W", "-f=${Status}", p], capture_output=True, text=True)
        if r.returncode != 0 or not r.stdout.startswith("install ok installed"):
            missing.append(p)
    if not missing:
        return
    sudo = [] if os.geteuid() == 0 else ["sudo"]
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    _run(sudo + ["apt-get", "update", "-q"], env=env)
    _run(sudo + ["apt-get", "install", "-y", "-q", "--no-install-recommends"] + missing, env=env)


def _patch_poll_limit(src):
    path = os.path.join(src, "arch", "um", "drivers", "virt-pci.c")
    with open(path) as f:
        text = f.read()
    new, n = POLL_PATTERN.subn(lambda m: m.group(1) + str(POLL_LIMIT), text)
    if n != 1:
        raise RuntimeError(f"{path}: expected one UM_VIRT_PCI_MAXDELAY definition, found {n}")
    if new != text:                  # leave the file's time alone when already patched
        with open(path, "w") as f:
            f.write(new)


def _apply_edits(src):
    """Apply EDITS; an edit already applied is left alone, one whose text is missing fails."""
    for name, why, old, new in EDITS:
        path = os.path.join(src, name)
        with open(path) as f:
            text = f.read()
        if new in text:
            continue
        if text.count(old) != 1:
            raise RuntimeError(f"{path}: cannot apply '{why}': the text to replace is not there once")
        with open(path, "w") as f:
            f.write(text.replace(old, new))


def _configure(src):
    _run(["make", "ARCH=um", "defconfig"], cwd=src, stdout=subprocess.DEVNULL)
    args = []
    for name, value in KERNEL_CONFIG.items():
        if value == "y":
            args += ["--enable", name]
        elif value == "n":
            args += ["--disable", name]
        else:
            args += ["--set-val", name, value]
    _run(["scripts/config"] + args, cwd=src)
    _run(["make", "ARCH=um", "olddefconfig"], cwd=src, stdout=subprocess.DEVNULL)
    # every option must have survived olddefconfig (a missing dependency drops it silently)
    with open(os.path.join(src, ".config")) as f:
        config = f.read()
    for name, value in KERNEL_CONFIG.items():
        if value == "n":
            ok = f"CONFIG_{name}=" not in config
        else:
            ok = f"CONFIG_{name}={value}\n" in config
        if not ok:
            raise RuntimeError(f"kernel option CONFIG_{name}={value} did not survive olddefconfig")


def ensure_kernel(jobs=2):
    """Return the path of the cached UML kernel, installing and building it first if needed."""
    version = source_version()
    if version is None:
        install_packages()
        version = source_version()
    else:
        install_packages()
    cdir = cache_dir(version)
    kernel = os.path.join(cdir, "linux")
    if os.path.exists(kernel):
        return kernel
    os.makedirs(cdir, exist_ok=True)
    src = os.path.join(os.path.dirname(cdir), "src")
    t0 = time.monotonic()
    tarball = f"/usr/src/{SOURCE_PACKAGE}.tar.xz"
    if not os.path.exists(os.path.join(src, "Makefile")):
        shutil.rmtree(src, ignore_errors=True)
        tmp = src + ".unpack"
        shutil.rmtree(tmp, ignore_errors=True)
        os.makedirs(tmp)
        _run(["tar", "-xf", tarball, "-C", tmp, "--strip-components=1"])
        os.rename(tmp, src)
    _patch_poll_limit(src)
    _apply_edits(src)
    _configure(src)
    _run(["nice", "-n", "10", "make", "ARCH=um", f"-j{jobs}", "linux"], cwd=src,
         stdout=subprocess.DEVNULL)
    shutil.copy2(os.path.join(src, "linux"), kernel + ".tmp")
    os.rename(kernel + ".tmp", kernel)
    minutes = (time.monotonic() - t0) / 60
    with open(os.path.join(cdir, "build-time.txt"), "w") as f:
        f.write(f"{minutes:.1f} min (make ARCH=um -j{jobs})\n")
    print(f"kernel built in {minutes:.1f} min: {kernel}", flush=True)
    return kernel


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--print", action="store_true", help="print the cache path, build nothing")
    ap.add_argument("-j", "--jobs", type=int, default=2)
    a = ap.parse_args(argv)
    if a.print:
        v = source_version()
        print(cache_dir(v) if v else "linux-source-6.1 not installed")
        return 0
    print(ensure_kernel(a.jobs))
    return 0


if __name__ == "__main__":
    sys.exit(main())
