"""The legacy-interface part of the integration test environment (transitional devices, VIRTIO
1.3 4.1.4.10): raw I/O requests to the legacy header in I/O BAR0, and Linux's legacy probe.

``LegacyIo(env)`` (``env.io`` of a ``tb.env.testbench.TB`` built with ``legacy=True``; its methods
are reached as ``env.io_rd``, ...): ``io_req``/``io_rd``/``io_wr`` (one DW of the I/O BAR, or any
I/O address, with any byte-enable pattern), ``io_base``, ``port`` (an RTL output's value).

``legacy_find_vqs`` / ``legacy_init`` follow Linux's vp_find_vqs for a legacy device: MSI-X with
one vector per queue plus one for configuration changes (the legacy header grows to 24 bytes),
or INTx with the ISR read-clear.
"""
from cocotbext.pcie.core.tlp import CplStatus, TlpType

from tb.tlp.requests import io_tlp
from tb.host.virtio_driver import NO_VECTOR, Status

__all__ = ["LegacyIo", "legacy_find_vqs", "legacy_init", "lanes"]


def lanes(off, size):
    """(DW-aligned offset, first BE, shift) of a ``size``-byte access at byte ``off``."""
    return off & ~3, ((1 << size) - 1) << (off & 3), 8 * (off & 3)


class LegacyIo:
    """Raw I/O access to the legacy header of ``env`` (the composed ``TB``)."""

    def __init__(self, env):
        self.env = env

    @property
    def io_base(self):
        return self.env.dev.bar_addr[0]

    # -- raw I/O ------------------------------------------------------------------------------
    async def io_req(self, write, addr, *, fbe=0xF, data=0):
        """Raw I/O request to absolute I/O address ``addr``; returns the completion."""
        cpls = await self.env.raw_request(io_tlp(write, addr, fbe=fbe, data=data))
        assert len(cpls) == 1, f"I/O request {addr:#x}: {cpls}"
        return cpls[0]

    async def io_rd(self, off, size=4):
        """Read ``size`` bytes at byte ``off`` of BAR0 (one DW, raw path, asserts SC)."""
        dw, fbe, sh = lanes(off, size)
        cpl = await self.io_req(False, self.io_base + dw, fbe=fbe)
        assert cpl.status == CplStatus.SC and cpl.fmt_type == TlpType.CPL_DATA, \
            f"IORd {off:#x}/{size}: {cpl!r}"
        assert cpl.length == 1 and cpl.byte_count == 4 and cpl.lower_address == 0, repr(cpl)
        return (int.from_bytes(cpl.data[:4], "little") >> sh) & ((1 << 8 * size) - 1)

    async def io_wr(self, off, value, size=4):
        dw, fbe, sh = lanes(off, size)
        cpl = await self.io_req(True, self.io_base + dw, fbe=fbe, data=value << sh)
        assert cpl.status == CplStatus.SC and cpl.fmt_type == TlpType.CPL, \
            f"IOWr {off:#x}/{size}: {cpl!r}"
        assert cpl.byte_count == 4 and cpl.lower_address == 0, repr(cpl)

    def port(self, name):
        return int(getattr(self.env.dut, name).value)


# ------------------------------------------------------------------------- Linux's vp_find_vqs
async def legacy_find_vqs(env, queues, *, msix=True):
    """vp_find_vqs for a legacy device: ``msix``: one vector per queue plus the config vector
    (entry 0), MSI-X enabled before the vectors are written (the header is 24 bytes from then
    on); else INTx.  Returns {"config": v, queue: v}."""
    drv, mx = env.drv, env.msix
    if not msix:
        for q in queues:
            await drv.setup_vq(q)
        return {"config": NO_VECTOR, **{q: NO_VECTOR for q in queues}}
    need = 1 + len(queues)
    await mx.set_control(enable=True, fmask=True)
    drv.msix_enabled = True
    targets = mx.alloc(need)
    await mx.program(targets, masked=True)
    await mx.set_control(fmask=False)
    for v in range(need):
        await mx.mask(v, False)
    got = await drv.config_vector(0)
    assert got == 0, f"config vector 0 read back {got:#x}"
    vectors = {"config": 0}
    for i, q in enumerate(queues):
        vq = await drv.setup_vq(q, vector=1 + i)
        vectors[q] = vq.vector
    return vectors


async def legacy_init(env, *, features=None, queues=None, msix=True, reset=True):
    """The legacy driver from reset (``reset=False``: the caller did it) to DRIVER_OK
    (virtio_dev_probe order)."""
    drv = env.drv
    if reset:
        assert await drv.reset() == 0, "status did not read 0 after the reset write"
    await drv.add_status(Status.ACKNOWLEDGE)
    await drv.add_status(Status.DRIVER)
    await drv.finalize_features(features)
    if queues is None:
        queues = range(await drv.get_num_queues())
    vectors = await legacy_find_vqs(env, list(queues), msix=msix)
    await drv.add_status(Status.DRIVER_OK)
    await env.flush()
    return vectors
