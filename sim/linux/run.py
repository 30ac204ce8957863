"""Boot User-Mode Linux against the endpoint RTL and collect what Linux reported.

``boot(params, scenario)`` builds the kernel (once, sim/linux/kernel.py) and the Verilator model,
starts the simulation (tb/integration/cocotb/linux_cosim_test.py: the bridge listening on a
vhost-user socket) in its own process group, boots UML with ``sim/linux/guest.sh`` as init
against that socket, and waits for Linux to power off.  Every run has a wall-clock limit: when it passes, both process groups
(started here) are killed and ``LinuxRun.failure`` says so; the caller turns that into a test
failure, never a hang.
"""
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field

from virtio_pci.params import VirtioPciParams

from ..build import ROOT, build
from .kernel import PCI_DEVICE_ID, ensure_kernel

__all__ = ["boot", "LinuxRun", "GUEST"]

GUEST = os.path.join(ROOT, "sim", "linux", "guest.sh")

_SIM = """
import json, sys
from sim.run import run_cocotb
from virtio_pci.params import VirtioPciParams
params = VirtioPciParams.from_dict(json.loads(sys.argv[1]))
run_cocotb("tb.integration.cocotb.linux_cosim_test", params, test_dir=sys.argv[2], waves=sys.argv[3] == "1",
           extra_env=json.loads(sys.argv[4]))
"""


@dataclass
class LinuxRun:
    console: str = ""
    facts: dict = field(default_factory=dict)     # "label.key" -> [values...]
    bridge: dict = field(default_factory=dict)    # linux_cosim_test.py's bridge.json
    failure: str = ""
    uml_start: float = 0.0
    uml_end: float = 0.0
    outdir: str = ""

    def get(self, key, default=None):
        v = self.facts.get(key)
        return v[-1] if v else default

    def all(self, key):
        return self.facts.get(key, [])

    @property
    def boot_to_driver_ok_s(self):
        t = self.bridge.get("driver_ok_wall_s")
        return t - self.uml_start if t else None

    @property
    def np_per_s(self):
        s = self.bridge.get("stats", {})
        return s["np"] / s["np_wall_s"] if s.get("np_wall_s") else None


def _parse(console):
    facts = {}
    for line in console.splitlines():
        if line.startswith("VPCI "):
            parts = line[5:].split(None, 1)
            facts.setdefault(parts[0], []).append(parts[1] if len(parts) > 1 else "")
    return facts


def _kill(proc):
    """End a process group started here (start_new_session=True: its group ID is its PID)."""
    if proc and proc.poll() is None:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait()


def boot(params=None, scenario="probe", *, outdir=None, waves=False, limit_s=300,
         cmdline=(), config_change_s=None, stop_when=None, drop_answer=None, dma_probe=False,
         log=print):
    """Run one scenario; returns a ``LinuxRun``.  ``cmdline``: extra kernel parameters
    (e.g. ``pci=nomsi``).  ``stop_when``: a console substring after which the run is ended on
    purpose (the virtio-blk probe blocks on its first request without a ring back-end).
    ``drop_answer``: the bridge never answers that non-posted request (1 = the first), to show
    that a missing answer fails the run instead of hanging it.  ``dma_probe``: the back-end reads
    guest memory through the RTL's requester after the first doorbell (bridge.json "dma_probe").  Kernel messages reach the
    console from the start (``earlyprintk``), also when a probe blocks the boot."""
    params = params or VirtioPciParams()
    kernel = ensure_kernel()
    t_build = time.monotonic()
    build(params, waves=waves)
    log(f"Verilator model ready ({time.monotonic() - t_build:.0f} s)")
    outdir = os.path.abspath(outdir or os.path.join(ROOT, "build", "linux", scenario))
    shutil.rmtree(outdir, ignore_errors=True)
    os.makedirs(outdir)
    tmp = tempfile.mkdtemp(prefix="vpci-linux-")
    sock = os.path.join(tmp, "vhost.sock")
    env = {"VPCI_LINUX_SOCKET": sock, "VPCI_LINUX_OUT": outdir,
           "VPCI_LINUX_LIMIT_S": str(limit_s), "VPCI_LINUX_STOP": os.path.join(tmp, "stop")}
    if dma_probe:
        env["VPCI_LINUX_DMA_PROBE"] = "1"
    if drop_answer is not None:
        env["VPCI_LINUX_DROP_ANSWER"] = str(drop_answer)
    if config_change_s is not None:
        env["VPCI_LINUX_CONFIG_CHANGE"] = str(config_change_s)
    run = LinuxRun(outdir=outdir)
    deadline = time.monotonic() + limit_s
    sim = uml = None
    sim_log = open(os.path.join(outdir, "sim.log"), "w")
    console_path = os.path.join(outdir, "console.txt")
    try:
        sim = subprocess.Popen([sys.executable, "-c", _SIM, json.dumps(params.to_dict()),
                                os.path.join(outdir, "sim"), "1" if waves else "0",
                                json.dumps(env)], cwd=ROOT, stdout=sim_log,
                               stderr=subprocess.STDOUT, start_new_session=True)
        while not os.path.exists(sock):
            if sim.poll() is not None:
                run.failure = f"simulation exited before listening (see {sim_log.name})"
                return run
            if time.monotonic() > deadline:
                run.failure = "simulation did not listen within the wall-clock limit"
                return run
            time.sleep(0.05)
        with open(console_path, "w") as console:
            run.uml_start = time.time()
            # UML's early console is printf() to stdout: unbuffered, or a run ended on purpose
            # (blocked probe) loses the kernel messages still in the stdio buffer
            unbuffered = ["stdbuf", "-o0"] if shutil.which("stdbuf") else []
            uml = subprocess.Popen(
                [*unbuffered, kernel, "mem=128M", "root=/dev/root", "rootfstype=hostfs", "rootflags=/", "ro",
                 f"init={GUEST}", "con=null", "con0=null,fd:1", "earlyprintk",
                 f"virtio_uml.device={sock}:{PCI_DEVICE_ID}", f"VPCI_SCENARIO={scenario}",
                 *cmdline],
                cwd=tmp, stdin=subprocess.DEVNULL, stdout=console, stderr=subprocess.STDOUT,
                start_new_session=True, env=dict(os.environ, TMPDIR=tmp))
            while uml.poll() is None:
                if time.monotonic() > deadline:
                    run.failure = f"wall-clock limit of {limit_s} s: Linux did not power off"
                    break
                if sim.poll() is not None:
                    if not os.path.exists(env["VPCI_LINUX_STOP"]):
                        run.failure = f"simulation ended while Linux ran (see {sim_log.name})"
                    break
                if stop_when:
                    with open(console_path, errors="replace") as f:
                        if stop_when in f.read():
                            time.sleep(2)
                            open(env["VPCI_LINUX_STOP"], "w").close()
                            stop_when = None
                time.sleep(0.1)
            run.uml_end = time.time()
        _kill(uml)
        try:
            sim.wait(timeout=max(10, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            run.failure = run.failure or "simulation did not end after Linux powered off"
    finally:
        _kill(uml)
        _kill(sim)
        sim_log.close()
        shutil.rmtree(tmp, ignore_errors=True)
    with open(console_path, errors="replace") as f:
        run.console = f.read()
    run.facts = _parse(run.console)
    if "um virt-pci delay" in run.console and not run.failure:
        run.failure = ("UML's PCI transport gave up waiting for an answer (its poll limit, "
                       "sim/linux/kernel.py POLL_LIMIT): a read was answered late or never")
    bj = os.path.join(outdir, "bridge.json")
    if os.path.exists(bj):
        with open(bj) as f:
            run.bridge = json.load(f)
    elif not run.failure:
        run.failure = f"the simulation wrote no bridge.json (see {sim_log.name})"
    if not run.failure and sim.returncode != 0:
        run.failure = f"the simulation failed (see {sim_log.name}): {run.bridge.get('errors')}"
    return run
