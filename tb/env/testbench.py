"""The integration test environment: one ``TB`` composed of parts around one RTL instance
(DESIGN.md section 9).  Each part is a file of this folder with one job:

* ``fabric.Fabric`` (always): clock, reset, the cocotbext-pcie root complex and the RTL bridge,
  enumeration, the raw request path, config-space helpers, the capability walk;
* ``regions.Regions`` (always): raw access to the virtio structures of the memory BAR and the
  PCI-cfg window;
* the back-end model ``tb.models.virtio_backend.VirtioBackend`` (``env.be``, with ``backend=``):
  answers the RTL's back-end ports;
* ``interrupts.Interrupts`` (``env.irqs``, with ``interrupts=True``): records MSI-X writes, INTx
  messages and back-end interrupt requests, and checks them against the MSI-X host;
* ``legacy.LegacyIo`` (``env.io``, with ``legacy=True``): raw I/O access to the legacy header.

The host side sits on top: the driver model (``env.drv``: ``tb.host.virtio_driver`` or
``tb.host.legacy_driver``) and the MSI-X host (``env.msix``: ``tb.host.msix``) are made by
``start()``, after the root complex enumerated the function.  Their register traffic then takes
the raw path (``env.access``, ``tb.host.access.RawAccess``: the same requests, straight into
``rx``), which costs a fraction of the fabric's simulation time; ``host_path="fabric"`` keeps it
on the root complex.  MSI-X writes and INTx messages always go up through the fabric to the root
complex's MSI regions.  A part's methods and attributes are reached on the ``TB`` itself (``env.rd(...)``,
``env.intx()``, ``env.raw_request(...)``, ``env.dev``); what spans parts (``start``, ``flush``,
``settle``, ``check``) is defined here.

``TransportTB``, ``IrqTB`` and ``LegacyTB`` are the three compositions the cocotb modules use.
"""
import warnings

from tb.env.fabric import Fabric
from tb.env.interrupts import Interrupts
from tb.env.legacy import LegacyIo
from tb.env.regions import Regions
from tb.host.access import RawAccess
from tb.host.legacy_driver import LegacyVirtioDriver
from tb.host.msix import MsixHost
from tb.host.virtio_driver import VirtioPciDriver
from tb.models.virtio_backend import VirtioBackend
from tb.tlp.convert import tlp_to_dws

__all__ = ["TB", "TransportTB", "IrqTB", "LegacyTB"]

# cocotbext-pcie 0.2.16 awaits ``Task.join()`` (deprecated in cocotb 2.0) once per root-complex
# memory / I/O read; the warning is about that library's code, not ours, so it is silenced for
# that call site only (module cocotbext.pcie.core.region), not for the testbench or cocotb.
warnings.filterwarnings("ignore", message=r"Using `task` directly is preferred to `task\.join\(\)`",
                        category=DeprecationWarning, module=r"cocotbext\.pcie\.core\.region")


class TB:
    """``TB(dut)``: the fabric alone (enumeration, config space, raw requests).

    ``backend``: a dict of ``VirtioBackend`` options (``{}`` for the defaults) to attach the
    back-end model; ``interrupts``: record the interrupt traffic; ``legacy``: the legacy I/O part
    and the legacy driver model by default.  ``start_init``: whether ``start()`` takes the device
    to DRIVER_OK unless told.  ``host_path``: ``"raw"`` or ``"fabric"``, how the host models reach
    the function after ``start()``.  ``rx_idle`` / ``tx_stall`` / ``seed``: see ``Fabric``.
    """

    def __init__(self, dut, *, backend=None, interrupts=False, legacy=False, start_init=False,
                 host_path="raw", rx_idle=None, tx_stall=None, seed=None):
        if host_path not in ("raw", "fabric"):
            raise ValueError(f"host_path must be 'raw' or 'fabric', not {host_path!r}")
        self.fabric = Fabric(dut, rx_idle=rx_idle, tx_stall=tx_stall, seed=seed)
        self.regions = Regions(self)
        self._parts = [self.fabric, self.regions]
        self.params = self.fabric.desc.params
        self.be = None if backend is None else VirtioBackend(dut, self.fabric.desc, **backend)
        self.irqs = None
        self.io = None
        if interrupts:
            self.irqs = Interrupts(self)
            self._parts.append(self.irqs)
        if legacy:
            self.io = LegacyIo(self)
            self._parts.append(self.io)
        self.drv = None
        self.msix = None
        self.access = None                  # the host models' path, chosen by start()
        self._host_path = host_path
        self._start_init = start_init

    def __getattr__(self, name):
        """A part's method or attribute (only called when the TB itself has no ``name``)."""
        for part in self.__dict__.get("_parts", ()):
            if name in vars(part) or hasattr(type(part), name):
                return getattr(part, name)
        raise AttributeError(f"{type(self).__name__} has no attribute {name!r} (parts: "
                             f"{[type(p).__name__ for p in self.__dict__.get('_parts', ())]})")

    async def start(self, init=None, *, modern=None, **init_kw):
        """Reset, enumerate (Memory Space Enable set), attach the MSI-X host (with the interrupt
        part) and the driver model (legacy with the legacy part unless ``modern``), then probe
        it, or with ``init`` take the device to DRIVER_OK (``init_kw`` to the driver's
        ``init``).  Returns the driver model (``env.drv``)."""
        await self.fabric.init()
        if self._host_path == "raw":
            bridge = self.fabric.bridge
            self.access = RawAccess(self.fabric.raw_request,
                                    lambda tlp: bridge.send_dws(tlp_to_dws(tlp)), self.fabric.dev.pcie_id)
        if self.irqs is not None:
            self.msix = MsixHost(self)
        modern = self.io is None if modern is None else modern
        self.drv = (VirtioPciDriver if modern else LegacyVirtioDriver)(self)
        if self._start_init if init is None else init:
            await self.drv.init(**init_kw)
        else:
            await self.drv.probe()
        await self.flush()
        return self.drv

    async def flush(self):
        """Make every request sent before reach the RTL and take effect before what follows: a
        read (which cannot pass posted writes, and whose completion leaves after the effects of
        every earlier request), then rx drained.  The read takes the host models' path: through
        the root complex it also orders the fabric's posted writes before later raw requests."""
        if self.access is not None:
            await self.access.config_read(0, 4)
        else:
            await self.fabric.flush()
        await self.fabric.rx_drained()

    async def settle(self, cycles=None):
        """Let everything in flight reach the host: rx drained, then ``cycles`` (default 40 with
        the interrupt part, 20 without)."""
        await self.fabric.rx_drained()
        await self.fabric.cycles((40 if self.irqs is not None else 20) if cycles is None else cycles)

    def check(self):
        """The fabric is clean (no unparsable TLPs, no stray completions) and, with the interrupt
        part, every interrupt message was a proper one."""
        self.fabric.check_clean()
        if self.irqs is not None:
            self.irqs.check()


def TransportTB(dut, *, rx_idle=None, tx_stall=None, seed=None, **backend):
    """The transport tests' environment: back-end model (``backend``: its options) and the modern
    driver model, which ``start()`` takes to DRIVER_OK by default."""
    return TB(dut, backend=backend, start_init=True, rx_idle=rx_idle, tx_stall=tx_stall, seed=seed)


def IrqTB(dut, *, rx_idle=None, tx_stall=None, seed=None, **backend):
    """The interrupt tests' environment: ``TransportTB`` plus the interrupt part and the MSI-X
    host; ``start()`` only probes by default."""
    return TB(dut, backend=backend, interrupts=True, rx_idle=rx_idle, tx_stall=tx_stall, seed=seed)


def LegacyTB(dut, *, rx_idle=None, tx_stall=None, seed=None, **backend):
    """The legacy tests' environment: ``IrqTB`` plus the legacy I/O part; ``start()`` attaches
    the legacy driver model (``modern=True``: the modern one) and only probes by default."""
    return TB(dut, backend=backend, interrupts=True, legacy=True, rx_idle=rx_idle,
              tx_stall=tx_stall, seed=seed)
