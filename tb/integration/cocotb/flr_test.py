"""Function Level Reset through the PCI Express capability (DESIGN.md section 5)."""
import cocotb
from cocotbext.pcie.core.tlp import CplStatus, TlpType
from cocotbext.pcie.core.utils import PcieId

from tb.env.testbench import TB

from tb.env.fabric import PulseCounter

from tb.tlp.requests import cfg_tlp, mem_tlp
from tb.host.pcispec import (CapId, CfgType, Cmd, DevCtl, DevSta, Hdr, MsixCap, PcieCap, VirtioCap)

#: common configuration offsets (VIRTIO 1.3 4.1.4.3)
DRIVER_FEATURE_SELECT = 0x08
CONFIG_MSIX_VECTOR = 0x10
DEVICE_STATUS = 0x14
QUEUE_SELECT = 0x16
QUEUE_MSIX_VECTOR = 0x1A
NO_VECTOR = 0xFFFF


async def _config_image(tb, dest):
    img = {}
    for a in list(range(0, Hdr.EXT_START, 4)) + [Hdr.EXT_START, 0x400, Hdr.SIZE - 4]:
        img[a] = await tb.cfg_read_dword(a, dest=dest)
    return img


async def _virtio_image(tb):
    """Common configuration and the MSI-X Vector Control / PBA words (the table's address and
    data words are undefined after reset)."""
    r = tb.desc.regions
    out = {}
    for name, step, words in (("common", 4, range(0, r["common"]["length"], 4)),
                              ("msix_table", 16, range(MsixCap.VECTOR_CTRL, r["msix_table"]["length"], 16)),
                              ("msix_pba", 4, range(0, r["msix_pba"]["length"], 4))):
        for off in words:
            out[(name, off)] = await tb.rc.mem_read_dword(tb.bar_addr + r[name]["offset"] + off)
    return out


def _diff(a, b):
    return {k: (a[k], b[k]) for k in a if a[k] != b[k]}


def _fmt(d):
    return {(f"{k:#05x}" if isinstance(k, int) else k): (f"{v[0]:#010x}", f"{v[1]:#010x}")
            for k, v in d.items()}


@cocotb.test()
async def flr_test(dut):
    """PCI-01, MSX-07, DESIGN-5: after RW registers all over config space and the virtio structures
    are changed, a CfgWr setting Initiate FLR still gets its completion, the ``flr`` output pulses
    once, config space reads exactly its reset image (BAR cleared, decode off), the virtio
    structures read their reset values, and the function works again once the BAR is rewritten."""
    tb = TB(dut)
    flr_pulses = PulseCounter(dut.clk, dut.flr) if "flr" in tb.desc.ports else None
    await tb.reset()
    anyone = PcieId(1, 0, 0)
    reset_img = await _config_image(tb, anyone)
    dev = await tb.enumerate()
    me = dev.pcie_id
    virtio_reset = await _virtio_image(tb)
    caps = await tb.capabilities()
    pcie = tb.find_cap(caps, CapId.PCIE).offset
    msix = tb.find_cap(caps, CapId.MSIX).offset
    pcc = tb.find_cap(caps, CapId.VENDOR, CfgType.PCI_CFG).offset
    r = tb.desc.regions
    common = tb.bar_addr + r["common"]["offset"]
    entry0 = tb.bar_addr + r["msix_table"]["offset"]

    # change everything that can be changed
    await tb.cfg_write_dword(Hdr.COMMAND, Cmd.MEM | Cmd.BUS_MASTER | Cmd.PARITY_ERROR_RESPONSE
                             | Cmd.SERR | Cmd.INTX_DISABLE, fbe=0b0011)
    await tb.cfg_write_dword(Hdr.CACHE_LINE_SIZE, 0x10, fbe=0b0001)
    await tb.cfg_write_dword(Hdr.INTERRUPT_LINE, 0x0B, fbe=0b0001)
    mps_code = min(1, (await tb.cfg_read_dword(pcie + PcieCap.DEVCAP)) & 7)
    devctl = (await tb.cfg_read_dword(pcie + PcieCap.DEVCTL)) & 0xFFFF
    devctl = (devctl & ~DevCtl.MPS_MASK) | mps_code << DevCtl.MPS_SHIFT | 0x5 << DevCtl.MRRS_SHIFT
    await tb.cfg_write_dword(pcie + PcieCap.DEVCTL, devctl, fbe=0b0011)
    await tb.cfg_write_dword(pcc + VirtioCap.BAR, tb.mem_bar_index, fbe=0b0001)
    await tb.cfg_write_dword(pcc + VirtioCap.OFFSET, r["common"]["offset"] + DRIVER_FEATURE_SELECT)
    await tb.cfg_write_dword(pcc + VirtioCap.LENGTH, 4)
    await tb.cfg_write_dword(pcc + VirtioCap.PCI_CFG_DATA, 3)
    await tb.rc.mem_write_word(common + CONFIG_MSIX_VECTOR, 0)
    await tb.rc.mem_write_word(common + QUEUE_SELECT, 0)
    await tb.rc.mem_write_word(common + QUEUE_MSIX_VECTOR, 1)
    await tb.rc.mem_write_byte(common + DEVICE_STATUS, 0x3)        # ACKNOWLEDGE | DRIVER
    await tb.rc.mem_write_dword(entry0 + MsixCap.VECTOR_CTRL, 0)    # unmask vector 0
    await tb.cfg_write_dword(msix, (MsixCap.ENABLE | MsixCap.FUNCTION_MASK) << 16, fbe=0b1100)
    cpl = (await tb.raw_request(cfg_tlp(False, 0, dest=PcieId(me.bus, me.device, 1))))[0]
    assert cpl.status == CplStatus.UR                                  # sets UR Detected

    changed_cfg = _diff(reset_img, await _config_image(tb, me))
    changed_virtio = _diff(virtio_reset, await _virtio_image(tb))
    tb.log.info("changed before FLR: config %s, virtio %s", _fmt(changed_cfg), _fmt(changed_virtio))
    for a in (Hdr.COMMAND, Hdr.CACHE_LINE_SIZE, Hdr.INTERRUPT_LINE, Hdr.BAR0 + 4 * tb.mem_bar_index,
              pcie + PcieCap.DEVCTL, msix, pcc + VirtioCap.OFFSET):
        assert a in changed_cfg, f"config dword {a:#05x} did not change before the FLR"
    for key in (("common", DRIVER_FEATURE_SELECT), ("common", CONFIG_MSIX_VECTOR & ~3),
                ("common", DEVICE_STATUS & ~3), ("common", QUEUE_MSIX_VECTOR & ~3),
                ("msix_table", MsixCap.VECTOR_CTRL)):
        assert key in changed_virtio, f"{key} did not change before the FLR"

    # Initiate FLR; its own completion still arrives
    uc = tb.error_count("err_unexpected_cpl")
    req = cfg_tlp(True, pcie + PcieCap.DEVCTL, dest=me, data=devctl | DevCtl.INITIATE_FLR, fbe=0b0011)
    cpls = await tb.raw_request(req, settle=50)
    assert len(cpls) == 1, f"FLR write: {cpls}"
    assert cpls[0].fmt_type == TlpType.CPL and cpls[0].status == CplStatus.SC, f"FLR write: {cpls[0]!r}"
    assert cpls[0].completer_id == me
    if flr_pulses is not None:
        assert flr_pulses.count == 1, f"flr pulsed {flr_pulses.count} cycles"

    after = await _config_image(tb, me)
    diff = _diff(reset_img, after)
    assert not diff, f"config space not at reset values after FLR (reset, now): {_fmt(diff)}"
    assert after[pcie + PcieCap.DEVCTL] >> 16 & DevSta.UNSUPPORTED_REQUEST == 0
    # the BAR is gone: the old address is not decoded
    cpl = (await tb.raw_request(mem_tlp(False, common)))[0]
    assert cpl.status == CplStatus.UR, f"BAR still decoded after FLR: {cpl!r}"

    # re-assign the BAR as the driver's restore would, enable decode, and look inside
    idx = tb.mem_bar_index
    await dev.config_write_dword(Hdr.BAR0 + 4 * idx, dev.bar_raw[idx])
    await dev.config_write_dword(Hdr.BAR0 + 4 * (idx + 1), dev.bar_raw[idx + 1])
    await dev.config_write_word(Hdr.COMMAND, Cmd.MEM)
    virtio_after = await _virtio_image(tb)
    diff = _diff(virtio_reset, virtio_after)
    assert not diff, f"virtio structures not at reset values after FLR (reset, now): {_fmt(diff)}"
    assert virtio_after[("common", CONFIG_MSIX_VECTOR & ~3)] & 0xFFFF == NO_VECTOR, "MSX-07"
    sel_vec = virtio_after[("common", QUEUE_SELECT & ~3)]
    assert sel_vec >> 16 == 0 and virtio_after[("common", QUEUE_MSIX_VECTOR & ~3)] >> 16 == NO_VECTOR, \
        "MSX-07: queue 0 vector"
    assert virtio_after[("msix_table", MsixCap.VECTOR_CTRL)] & MsixCap.MASKED

    # business as usual
    await tb.rc.mem_write_dword(entry0 + 8, 0xFEED_F00D)
    assert await tb.rc.mem_read_dword(entry0 + 8) == 0xFEED_F00D
    if uc is not None:
        assert tb.error_count("err_unexpected_cpl") == uc
    tb.check_clean()
