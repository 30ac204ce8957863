"""Real Linux drives the RTL: the unmodified in-tree virtio_pci driver of a User-Mode Linux 6.1
kernel against the endpoint RTL through tb/host/uml_bridge.py.  `make linux` runs these
(VPCI_LINUX=1); elsewhere they are skipped: each boots Linux and takes up to a few minutes.  Each test boots Linux once with a wall-clock limit and asserts on what Linux
reported (sysfs values, driver names, /proc/interrupts counts, kernel messages); a late or
missing RTL answer is a bridge error and fails the test.

Not tried this way: the legacy interface (UML's PCI transport has no I/O space, so a
transitional device's I/O BAR0 cannot be assigned or accessed).
"""
import os
import re

import pytest

from virtio_pci.params import VirtioPciParams
from sim.build import ROOT
from sim.linux.run import boot

pytestmark = pytest.mark.skipif(not os.environ.get("VPCI_LINUX"),
                                reason="boots Linux: `make linux` runs it (VPCI_LINUX=1)")

LIMIT_S = 240
EXAMPLES = os.path.join(ROOT, "examples")
#: virtio-net with MAC, STATUS and MTU, one queue pair.  (examples/virtio-net.json has two
#: pairs, so it offers MQ without CTRL_VQ, which Linux refuses: "device advertises feature
#: VIRTIO_NET_F_MQ but not VIRTIO_NET_F_CTRL_VQ", probe -22; VIRTIO 1.3 5.1.3.1.)
NET = VirtioPciParams.virtio_net()


def _outdir(request):
    """build/linux/tests/<test id>: console, transcript and bridge.json stay for inspection."""
    name = request.node.name.replace("[", "-").replace("]", "").replace("/", "_")
    return os.path.join(ROOT, "build", "linux", "tests", name)


def _boot(request, params, scenario="probe", **kw):
    run = boot(params, scenario, outdir=_outdir(request), limit_s=LIMIT_S, **kw)
    assert not run.failure, f"{run.failure}\n--- console tail ---\n{run.console[-3000:]}"
    assert not run.bridge.get("errors"), run.bridge["errors"][:5]
    return run


def _interrupts(run, label, name):
    """Count of the /proc/interrupts line ending in ``name`` (None if there is none)."""
    for line in run.all(f"{label}.interrupts"):
        parts = line.split()
        if parts[-1] == name:
            return int(parts[1])
    return None


def _check_bound(run, label, params, driver="virtio_net", vectors=True):
    """The function enumerated with the RTL's identity, its BAR assigned in UML's window,
    virtio_pci and the device driver bound, status 0x0F, one MSI-X vector per used queue plus
    config."""
    dt = params.device_type
    assert run.get(f"{label}.vendor") == "0x1af4"
    assert run.get(f"{label}.device") == f"{0x1040 + dt:#06x}"
    start = int(run.get(f"{label}.resource{params.mem_bar}").split()[0], 16)
    assert 0xF000_0000 <= start < 0x1_0000_0000, f"BAR at {start:#x}"
    assert run.get(f"{label}.driver") == "virtio-pci"
    assert run.get(f"{label}.virtio_driver") == driver
    assert int(run.get(f"{label}.status"), 16) == 0x0F
    v = run.get(f"{label}.virtio")
    if vectors:
        lines = [i.split()[-1] for i in run.all(f"{label}.interrupts") if "PCIe MSI" in i]
        assert f"{v}-config" in lines, lines
        return v, lines
    return v, []


@pytest.mark.parametrize("name", ["default"])
def test_default_virtio_net(request, name):
    """PCI-01, PCI-02, PCI-03, MSX-02: the default build (modern virtio-net) under Linux:
    enumerated, BAR assigned, virtio_pci and virtio_net bound, status 0x0F, one MSI-X vector
    for config and one per queue (rx, tx), the network interface exists."""
    params = VirtioPciParams()
    run = _boot(request, params, waves=True)        # the build `make linux` prints from
    v, lines = _check_bound(run, "boot", params)
    assert sorted(lines) == sorted([f"{v}-config", f"{v}-input.0", f"{v}-output.0"])
    assert run.get("boot.msi_irqs") is not None and len(run.get("boot.msi_irqs").split()) == 3
    assert run.get("boot.netdev") == "eth0"
    assert run.boot_to_driver_ok_s is not None


def test_reset_paths(request):
    """STS-04, STS-D1: virtio reset through unbind/bind (Linux writes 0 and waits for 0, then
    probes again) and FLR through pci_reset_function (sysfs reset, method flr), each followed by
    a working re-probe."""
    params = NET
    run = _boot(request, params, "reset")
    _check_bound(run, "boot", params)
    assert run.get("boot.reset_method") == "flr"
    assert run.get("unbound.driver") == "none"
    _check_bound(run, "rebound", params)
    assert run.get("flr.write") == "ok"
    assert run.get("flr.driver") == "none"
    _check_bound(run, "reprobed", params)
    assert run.get("reprobed.netdev", "").startswith("eth")
    assert run.bridge.get("flr_count", 0) >= 1
    assert run.bridge["driver_ok_count"] >= 3


def test_config_change_msix(request):
    """ISR-02, MSX-04: a device-configuration change (virtio-net link status goes down) reaches
    Linux through the config MSI-X vector: the interrupt count of <dev>-config rises and Linux
    drops the carrier it had up."""
    params = NET
    run = _boot(request, params, "config", config_change_s=2)
    v, _ = _check_bound(run, "boot", params)
    assert run.get("up.carrier_first") == "1"
    assert run.get("changed.carrier") == "0"
    assert _interrupts(run, "changed", f"{v}-config") >= 1
    assert run.bridge["stats"]["msi"] >= 1


def test_intx_isr_path(request):
    """ISR-02, ISR-04, ISR-05, MSX-D2: Linux booted with pci=nomsi: no MSI-X, virtio_pci uses its
    INTx handler (vp_interrupt reads and clears the ISR); the config change reaches Linux
    through Assert_INTx, the interrupt count of the shared line rises and the carrier drops."""
    params = NET
    run = _boot(request, params, "config", cmdline=["pci=nomsi"], config_change_s=2)
    v, _ = _check_bound(run, "boot", params, vectors=False)
    assert not run.get("boot.msi_irqs")        # msi_irqs empty: MSI-X not enabled
    assert not any("PCIe MSI" in i for i in run.all("changed.interrupts"))
    assert run.get("changed.carrier") == "0"
    assert _interrupts(run, "changed", v) >= 1
    assert run.bridge["stats"]["int"] >= 1 and run.bridge["stats"]["msi"] == 0


@pytest.mark.parametrize("name,params", [
    ("w256-m0", VirtioPciParams.from_file(os.path.join(EXAMPLES, "virtio-net-w256-m0.json"))),
    ("w64-m4096", VirtioPciParams.virtio_net(data_width=64, notify_off_multiplier=4096)),
])
def test_widths_and_notify_multipliers(request, name, params):
    """NTF-03, NTF-05: other builds (stream width 64 and 256, notify_off_multiplier 0 and 4096)
    under Linux: bound with status 0x0F; setting the interface up makes virtio_net post receive
    buffers and kick queue 0 at the address Linux computed from the multiplier, and the RTL's
    doorbell port names queue 0."""
    run = _boot(request, params, "up")
    _check_bound(run, "boot", params)
    _check_bound(run, "up", params)
    assert 0 in run.bridge["doorbell_queues"], run.bridge["doorbell_queues"]


BLK_PROBE = re.compile(r"virtio_blk (virtio\d+): \[vda\] (\d+) 512-byte logical blocks")


@pytest.mark.parametrize("name,params", [
    ("example", VirtioPciParams.from_file(os.path.join(EXAMPLES, "virtio-blk.json"))),
    ("16-queues", VirtioPciParams.virtio_blk(capacity=4096, queues=16)),
])
def test_virtio_blk_probe(request, name, params):
    """PCI-03, MSX-02: virtio-blk (examples/virtio-blk.json with 2 queues, and a 16-queue build)
    under Linux up to DRIVER_OK: virtio_blk prints the capacity it read from the device
    configuration and its request-queue count.  UML is uniprocessor and virtio_blk uses at most
    nr_cpu_ids request queues, so Linux prints 1 whatever the device offers (many queues cannot
    be shown through Linux here).  The probe then reads the partition table, which needs a
    block device function behind the ring engine (only virtio-rng has one): the boot blocks there, so the run is
    ended on purpose after the probe message."""
    assert params.num_queues > 1
    run = boot(params, "probe", outdir=_outdir(request), limit_s=LIMIT_S,
               stop_when="logical blocks")
    assert not run.failure, f"{run.failure}\n{run.console[-3000:]}"
    assert not run.bridge.get("errors"), run.bridge["errors"][:5]
    m = BLK_PROBE.search(run.console)
    assert m, run.console[-3000:]
    cfg = params.device_cfg_init
    assert int(m.group(2)) == int.from_bytes(cfg[:8], "little")
    assert re.search(rf"virtio_blk {m.group(1)}: 1/0/0 default/read/poll queues", run.console)
    assert run.bridge["driver_ok_count"] >= 1 and run.bridge["device_status"] & 0x0F == 0x0F


def test_dma_from_the_rtl(request):
    """DMA-11: the RTL's own memory requests reach the guest memory Linux shares: after
    `ip link set up` the back-end reads the kicked receive queue's driver area through the
    requester port: MRd answered by CplD from guest memory, status OK and the avail index Linux
    published (at least one buffer); a read of memory UML does not share is answered UR."""
    run = _boot(request, NET, "up", dma_probe=True)
    _check_bound(run, "up", NET)
    p = run.bridge["dma_probe"]
    assert p["status"] == 0 and p["avail_idx"] >= 1, p
    assert p["outside_status"] == 1, p                 # DmaStatus.UR
    assert run.bridge["stats"]["dma_read_bytes"] >= 4


def test_missing_answer_fails_the_run(request):
    """A read the RTL side never answers is a clear failure, not a hang: the bridge drops its
    answer to one of Linux's config reads, UML's transport gives up after its poll limit
    ("um virt-pci delay"), and the run reports that, within its wall-clock limit."""
    run = boot(NET, "probe", outdir=_outdir(request), limit_s=LIMIT_S, drop_answer=40)
    assert run.bridge["stats"].get("dropped") == 1
    assert "poll limit" in run.failure, run.failure
    assert "um virt-pci delay" in run.console


def test_virtio_rng_hwrng(request):
    """VQP-02, VQP-04, VQP-06, DMA-15: examples/virtio-rng.json under Linux: virtio_rng binds
    and becomes the current hwrng (rng_current virtio_rng.*); `head -c 4096 /dev/hwrng` returns
    4096 bytes, and those bytes (a 16-byte sample and the MD5 of all 4096, printed by the guest)
    are a contiguous slice of the entropy model's stream (tb/models/rng_model.py): the RTL's
    split-virtqueue engine took Linux's buffers from the request queue, wrote them with MWr TLPs
    into guest memory and used them, with MSI-X interrupts for the request queue counted in
    /proc/interrupts."""
    import hashlib
    from tb.models.rng_model import lfsr_bytes
    params = VirtioPciParams.from_file(os.path.join(EXAMPLES, "virtio-rng.json"))
    run = _boot(request, params, "hwrng")
    v, lines = _check_bound(run, "after", params, driver="virtio_rng")
    assert any(r.startswith("virtio_rng.") for r in run.get("hwrng.available").split())
    assert run.get("hwrng.current").startswith("virtio_rng."), run.get("hwrng.current")
    assert int(run.get("hwrng.bytes")) == 4096
    sample = bytes.fromhex(run.get("hwrng.sample").replace(" ", ""))
    assert len(sample) == 16
    # the device's whole byte stream, as if every buffer were a whole number of beats
    stream = b"".join(lfsr_bytes(params.data_width, [4096] * 64))
    data = bytes.fromhex("".join(run.all("hwrng.hex")).replace(" ", ""))
    assert data[:16] == sample and hashlib.md5(data).hexdigest() == run.get("hwrng.md5").split()[0]
    # virtio_rng's quality is 1000, so the hwrng core's fill thread takes its own share of the
    # device's buffers between the reads of `head`: what Linux returned is the model's stream
    # in order, with gaps; every run of it starts where the stream has it, after the last
    i = p = runs = 0
    while i < len(data):
        if p < len(stream) and data[i] == stream[p]:
            i, p = i + 1, p + 1
            continue
        q = stream.find(data[i:i + 16], p)
        assert q >= p, f"bytes {i}.. of what Linux read are not in the entropy model's stream"
        p, runs = q, runs + 1
    reqq = [i for i in lines if i.startswith(f"{v}-") and not i.endswith("-config")]
    assert reqq, lines
    assert _interrupts(run, "after", reqq[0]) >= 1, run.all("after.interrupts")
    assert run.bridge["stats"]["msi"] >= 1
    assert run.bridge["stats"]["dma_write_bytes"] >= 4096
    # every MSI-X write follows the ring writes it announces: at least one DMA MWr since the
    # previous interrupt (the TLPs are logged in the order the RTL sent them)
    mwr = msi = since = 0
    for line in open(os.path.join(run.outdir, "transcript.txt")):
        if line.rstrip().endswith("(DMA write)"):
            mwr += 1
            since += 1
        elif line.rstrip().endswith("(MSI)"):
            assert since, f"MSI-X write with no ring write before it: {line}"
            msi += 1
            since = 0
    assert mwr >= 4096 // 64 and msi >= 1, (mwr, msi)
