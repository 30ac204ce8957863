"""NTL-01 (VIRTIO 1.3 4.1.4.11): a non-transitional device built with ``legacy_guard`` presents an
I/O BAR0 so that a legacy driver bound by mistake (same IDs as a historical legacy device) fails
gracefully: its single-byte write of 0 to the legacy status register (BAR0 + 18) makes every BAR
read 0 and ignore writes, until a Function Level Reset.
"""
import cocotb
from cocotbext.pcie.core.tlp import CplStatus

from tb.tlp.requests import mem_tlp
from tb.env.testbench import LegacyTB
from tb.host.pcispec import DevCtl, Hdr, PcieCap, CapId
from tb.host.virtio_driver import Status

NUM_QUEUES_DW = 0x10        # config_msix_vector | num_queues << 16


@cocotb.test()
async def ntl_guard_test(dut):
    """NTL-01, PCI-05, PCI-06: the guard build is a modern device (Device ID 0x1040+, revision >= 1)
    with an I/O BAR0 that reads 0; a two-byte write of 0 at BAR0+18, a four-byte one at +16 and a
    one-byte write of 1 at +18 change nothing; a one-byte write of 0 at +18 mutes every BAR:
    memory reads of the common configuration, notify and MSI-X table return 0 with a successful
    completion, memory writes (device status, a doorbell) are ignored, I/O reads return 0, while
    configuration space keeps working; FLR un-mutes."""
    env = LegacyTB(dut)
    await env.start(modern=True, init=True)
    dev, be, drv = env.dev, env.be, env.drv
    p = env.params
    assert 0x1040 <= dev.device_id <= 0x107F and dev.revision_id >= 1
    assert env.desc.io_bar["index"] == 0 and dev.bar_size[0] == p["io_bar_size"]
    assert await env.cfg_read_dword(Hdr.BAR0) & 1 == 1, "NTL-01: BAR0 is not an I/O BAR"
    for off in range(0, p["io_bar_size"], 4):
        assert await env.io_rd(off) == 0, f"guard BAR0+{off:#x} reads non-zero"
    nq_dw = await env.rd("common", NUM_QUEUES_DW)
    assert nq_dw >> 16 == p["num_queues"]

    async def muted():
        return await env.rd("common", NUM_QUEUES_DW) == 0

    await env.io_wr(0x12, 0, 2)
    await env.io_wr(0x10, 0, 4)
    await env.io_wr(0x12, 1, 1)
    await env.io_wr(0x13, 0, 1)
    assert not await muted(), "NTL-01: muted by a write other than one byte of 0 at 18"

    st = be.status()
    assert st["driver_ok"]
    await env.io_wr(0x12, 0, 1)                    # what a legacy driver's reset does
    assert await muted(), "NTL-01: the one-byte write of 0 at 18 did not mute the BARs"
    for region in ("common", "isr", "device", "notify", "msix_table", "msix_pba"):
        for off in (0, 4):
            cpls = await env.raw_request(mem_tlp(False, env.addr(region, off)))
            assert cpls[0].status == CplStatus.SC and int.from_bytes(cpls[0].data[:4], "little") == 0, \
                f"NTL-01: {region}+{off} while muted: {cpls[0]!r}"
    assert await env.io_rd(0) == 0
    # writes ignored: a reset through device_status, a doorbell
    n_db, n_rst = len(be.doorbells), len(be.resets)
    await env.wr("common", 0x14, 0, fbe=0x1)
    await drv.kick(drv.vqs[0], 1)
    await env.flush()
    await env.settle(60)
    assert len(be.doorbells) == n_db and len(be.resets) == n_rst, "NTL-01: a write reached a BAR"
    assert be.status() == st, "NTL-01: the device state changed while muted"
    assert await env.cfg_read_dword(0) == 0x1AF4 | dev.device_id << 16, "config space muted too"

    # FLR un-mutes (and resets the function): restore the BARs and the Command register
    bars = [await env.cfg_read_dword(Hdr.BAR0 + 4 * i) for i in range(6)]
    cmd = await env.cfg_read_dword(Hdr.COMMAND) & 0xFFFF
    pcie = next(c["config_offset"] for c in env.desc.caps if c["cap_id"] == CapId.PCIE)
    devctl = await env.cfg_read_dword(pcie + PcieCap.DEVCTL) & 0xFFFF
    await env.cfg_write_dword(pcie + PcieCap.DEVCTL, devctl | DevCtl.INITIATE_FLR, fbe=0x3)
    await env.cycles(50)
    for i, v in enumerate(bars):
        await env.cfg_write_dword(Hdr.BAR0 + 4 * i, v)
    await env.cfg_write_dword(Hdr.COMMAND, cmd, fbe=0x3)
    assert not await muted(), "NTL-01: still muted after FLR"
    assert await env.rd("common", 0x14) & 0xFF == 0, "FLR did not reset the device status"
    # the modern driver works again
    drv.vqs.clear()
    await drv.init()
    await env.flush()
    assert be.status()["device_status"] & Status.DRIVER_OK
    env.check()
