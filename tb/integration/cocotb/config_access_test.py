"""Configuration space access rules: every dword readable, read-only bytes immune to writes,
read-write fields with their spec masks, write-1-to-clear error bits."""
import cocotb
from cocotbext.pcie.core.tlp import CplStatus, TlpType
from cocotbext.pcie.core.utils import PcieId

from tb.env.testbench import TB

from tb.tlp.requests import cfg_tlp, mem_tlp
from tb.host.pcispec import (CapId, CfgType, Cmd, DevCtl, DevSta, Hdr, MsixCap, PcieCap, PmCap, Sts,
                        VirtioCap)


async def _raw_config_image(tb, start=0, end=Hdr.SIZE):
    """Every config dword in [start, end) through raw CfgRd0s, each checked as a 1-DW CplD."""
    out = {}
    for a in range(start, end, 4):
        out[a] = await tb.cfg_read_dword(a)
    return out


@cocotb.test()
async def config_read_all_test(dut):
    """PCI-01, PCI-D1: every config dword 0x000..0xFFC completes with SC and one DW of data
    (byte count 4, lower address 0, the function's completer ID); the extended space holds no
    capability (0x100 reads 0) and reads 0 throughout; partial byte enables return the enabled
    bytes of the same dword."""
    tb = TB(dut)
    dev = await tb.init()
    image = {}
    for a in range(0, Hdr.SIZE, 4):
        cpl = await tb.cfg_read(a)
        assert cpl.fmt_type == TlpType.CPL_DATA and cpl.status == CplStatus.SC, f"{a:#05x}: {cpl!r}"
        assert cpl.length == 1 and cpl.byte_count == 4 and cpl.lower_address == 0, f"{a:#05x}: {cpl!r}"
        assert cpl.completer_id == dev.pcie_id and cpl.requester_id == PcieId(0, 0, 0)
        image[a] = int.from_bytes(cpl.data, "little")
    assert image[Hdr.EXT_START] == 0, f"extended capability header {image[Hdr.EXT_START]:#x}"
    nonzero = {a: v for a, v in image.items() if a >= Hdr.EXT_START and v}
    assert not nonzero, f"extended space is not empty: {nonzero}"
    # the image agrees with what the root complex reads
    for a in range(0, Hdr.EXT_START, 4):
        assert await dev.config_read_dword(a) == image[a], f"{a:#05x} differs between reads"
    # byte enables
    for a in (Hdr.VENDOR_ID, Hdr.REVISION_ID, Hdr.SUBSYSTEM_VENDOR_ID, Hdr.INTERRUPT_LINE):
        for fbe in (0b0001, 0b0010, 0b0100, 0b1000, 0b0011, 0b1100, 0b0110, 0b1111):
            cpl = await tb.cfg_read(a, fbe=fbe)
            assert cpl.status == CplStatus.SC and cpl.length == 1 and cpl.byte_count == 4
            got = int.from_bytes(cpl.data, "little")
            mask = sum(0xFF << 8 * i for i in range(4) if fbe >> i & 1)
            assert got & mask == image[a] & mask, f"{a:#05x} fbe {fbe:#06b}: {got:#x}"
    # a zero-length config read still completes
    cpl = await tb.cfg_read(Hdr.VENDOR_ID, fbe=0)
    assert cpl.status == CplStatus.SC and cpl.fmt_type == TlpType.CPL_DATA and cpl.length == 1
    tb.check_clean()


def _writable_bytes(tb, caps):
    """Config byte offsets that the specifications allow to be written (left out of the
    read-only sweep and checked on their own)."""
    rw = {Hdr.COMMAND, Hdr.COMMAND + 1, Hdr.CACHE_LINE_SIZE, Hdr.INTERRUPT_LINE}
    bars = [tb.mem_bar_index, tb.mem_bar_index + 1]
    if tb.desc.io_bar:
        bars.append(tb.desc.io_bar["index"])
    for b in bars:
        rw |= set(range(Hdr.BAR0 + 4 * b, Hdr.BAR0 + 4 * b + 4))
    for c in caps:
        o = c.offset
        if c.cap_id == CapId.PM:
            rw |= {o + PmCap.PMCSR, o + PmCap.PMCSR + 1}
        elif c.cap_id == CapId.PCIE:
            for reg in (PcieCap.DEVCTL, PcieCap.DEVSTA, PcieCap.LINKCTL, PcieCap.DEVCTL2,
                        PcieCap.LINKCTL2):
                rw |= {o + reg, o + reg + 1}
        elif c.cap_id == CapId.MSIX:
            rw.add(o + MsixCap.CONTROL + 1)
        elif c.cap_id == CapId.VENDOR and c.byte(VirtioCap.CFG_TYPE) == CfgType.PCI_CFG:
            rw.add(o + VirtioCap.BAR)
            rw |= set(range(o + VirtioCap.OFFSET, o + VirtioCap.PCI_CFG_LEN))
    return rw


@cocotb.test()
async def readonly_sweep_test(dut):
    """CAP-D2, DRV-02, PCI-01: garbage written to every byte of the header and the capability
    list that is not a spec read-write field (and to extended-space dwords) changes nothing;
    Status bits are write-1-to-clear or read-only."""
    tb = TB(dut)
    dev = await tb.init()
    caps = await tb.capabilities()
    rw = _writable_bytes(tb, caps)
    await tb.cfg_write_dword(Hdr.COMMAND, Sts.RW1C << 16 | Cmd.MEM)   # clear any error bit
    before = await _raw_config_image(tb, 0, Hdr.EXT_START)
    ext = (Hdr.EXT_START, Hdr.EXT_START + 4, 0x400, Hdr.SIZE - 4)
    for a in ext:
        before[a] = await tb.cfg_read_dword(a)
    for pattern in (0xFFFF_FFFF, 0x0000_0000, 0x5AA5_C33C):
        for a in list(range(0, Hdr.EXT_START, 4)) + list(ext):
            fbe = sum(1 << i for i in range(4) if a + i not in rw)
            if fbe:
                await tb.cfg_write_dword(a, pattern, fbe=fbe)
    after = await _raw_config_image(tb, 0, Hdr.EXT_START)
    for a in ext:
        after[a] = await tb.cfg_read_dword(a)
    changed = {f"{a:#05x}": (f"{before[a]:#010x}", f"{after[a]:#010x}")
               for a in before if before[a] != after[a]}
    assert not changed, f"CAP-D2: read-only config bytes changed (before, after): {changed}"
    # the function still works after the sweep
    assert await tb.rc.mem_read(tb.bar_addr, 4) is not None
    assert dev.vendor_id == after[0] & 0xFFFF
    tb.check_clean()


@cocotb.test()
async def rw_fields_test(dut):
    """PCI-01: read-write fields keep exactly their writable bits (Command, Cache Line Size,
    Interrupt Line, MSI-X Enable/Function Mask, PCIe Device Control payload/read sizes), honour
    byte enables, and leave neighbouring read-only bytes alone."""
    tb = TB(dut)
    dev = await tb.init()
    caps = await tb.capabilities()

    expected = Cmd.PCIE_RW & ~(0 if tb.desc.io_bar else Cmd.IO)
    await tb.cfg_write_dword(Hdr.COMMAND, 0xFFFF, fbe=0b0011)
    got = await tb.cfg_read_dword(Hdr.COMMAND) & 0xFFFF
    assert got == expected, f"Command writable bits {got:#06x}, expected {expected:#06x}"
    await tb.cfg_write_dword(Hdr.COMMAND, 0, fbe=0b0011)
    assert await tb.cfg_read_dword(Hdr.COMMAND) & 0xFFFF == 0
    await tb.cfg_write_dword(Hdr.COMMAND, Cmd.MEM, fbe=0b0011)

    hdr3 = await tb.cfg_read_dword(Hdr.CACHE_LINE_SIZE)
    await tb.cfg_write_dword(Hdr.CACHE_LINE_SIZE, 0xFFFF_FF10, fbe=0b0001)
    assert await tb.cfg_read_dword(Hdr.CACHE_LINE_SIZE) == (hdr3 & ~0xFF) | 0x10

    line = await tb.cfg_read_dword(Hdr.INTERRUPT_LINE)
    assert line >> 8 & 0xFF == 1, "Interrupt Pin should be INTA (the ISR/INTx path needs it)"
    for v in (0xA5, 0x5A, 0x00):
        await tb.cfg_write_dword(Hdr.INTERRUPT_LINE, 0xFFFF_FF00 | v, fbe=0b0001)
        assert await tb.cfg_read_dword(Hdr.INTERRUPT_LINE) == (line & ~0xFF) | v

    mx = tb.find_cap(caps, CapId.MSIX).offset
    ctl = await tb.cfg_read_dword(mx)
    await tb.cfg_write_dword(mx, 0xFFFF_FFFF, fbe=0b1100)
    got = await tb.cfg_read_dword(mx)
    assert got == ctl | (MsixCap.ENABLE | MsixCap.FUNCTION_MASK) << 16, f"MSI-X control {got:#x}"
    await tb.cfg_write_dword(mx, MsixCap.FUNCTION_MASK << 16, fbe=0b1100)
    assert await tb.cfg_read_dword(mx) == ctl | MsixCap.FUNCTION_MASK << 16
    await tb.cfg_write_dword(mx, 0, fbe=0b1100)
    assert await tb.cfg_read_dword(mx) == ctl

    ex = tb.find_cap(caps, CapId.PCIE).offset
    devctl_addr = ex + PcieCap.DEVCTL
    orig = await tb.cfg_read_dword(devctl_addr)
    assert orig & DevCtl.INITIATE_FLR == 0, "Initiate FLR must read 0"
    mpss = (await tb.cfg_read_dword(ex + PcieCap.DEVCAP)) & 7
    for mps in range(mpss + 1):
        for mrrs in (0, 2, 5):
            v = (orig & ~(DevCtl.MPS_MASK | 0x7 << DevCtl.MRRS_SHIFT) & 0xFFFF
                 | mps << DevCtl.MPS_SHIFT | mrrs << DevCtl.MRRS_SHIFT)
            await tb.cfg_write_dword(devctl_addr, v, fbe=0b0011)
            got = await tb.cfg_read_dword(devctl_addr)
            assert got & 0xFFFF == v, f"Device Control wrote {v:#06x} read {got & 0xFFFF:#06x}"
            assert got >> 16 == orig >> 16, "a Device Control write changed Device Status"
    await tb.cfg_write_dword(devctl_addr, orig, fbe=0b0011)
    assert await dev.config_read_word(Hdr.VENDOR_ID) == dev.vendor_id
    tb.check_clean()


@cocotb.test()
async def rw1c_error_bits_test(dut):
    """PCI-01: error status bits are set by the events that define them and cleared only by
    writing 1: Unsupported Request Detected (non-posted and posted UR), Detected Parity Error
    (poisoned write, whose data is dropped), Fatal Error Detected (malformed TLP); with
    Role-Based Error Reporting a completed UR is advisory (Correctable Error Detected), a posted
    UR and a poisoned write are non-fatal (PCIe 6.2.3.2.4)."""
    tb = TB(dut)
    dev = await tb.init()
    caps = await tb.capabilities()
    devsta = tb.find_cap(caps, CapId.PCIE).offset + PcieCap.DEVSTA
    errs = DevSta.CORRECTABLE | DevSta.NONFATAL | DevSta.FATAL | DevSta.UNSUPPORTED_REQUEST

    async def devsta_read():
        return (await tb.cfg_read_dword(devsta & ~3)) >> 16

    async def devsta_w1c(bits):
        await tb.cfg_write_dword(devsta & ~3, bits << 16, fbe=0b1100)

    async def status_read():
        return (await tb.cfg_read_dword(Hdr.COMMAND)) >> 16

    await devsta_w1c(errs)
    await tb.cfg_write_dword(Hdr.COMMAND, Sts.RW1C << 16, fbe=0b1100)
    assert await devsta_read() & errs == 0
    assert await status_read() & Sts.RW1C == 0

    # non-posted UR: a config read of function 1
    other = PcieId(dev.bus_num, dev.device_num, 1)
    cpl = (await tb.raw_request(cfg_tlp(False, 0, dest=other)))[0]
    assert cpl.status == CplStatus.UR
    sta = await devsta_read()
    assert sta & errs == DevSta.UNSUPPORTED_REQUEST | DevSta.CORRECTABLE, \
        f"Device Status after a non-posted UR: {sta:#x}"
    await devsta_w1c(0)
    assert await devsta_read() & DevSta.UNSUPPORTED_REQUEST, "writing 0 cleared a RW1C bit"
    await devsta_w1c(DevSta.UNSUPPORTED_REQUEST | DevSta.CORRECTABLE)
    assert await devsta_read() & errs == 0, "writing 1 did not clear URD/CED"

    # posted UR: a write outside the BAR is dropped but logged
    await tb.expect_no_completion(mem_tlp(True, tb.bar_addr + tb.desc.mem_bar["size"], data=[1]))
    sta = await devsta_read()
    assert sta & errs == DevSta.UNSUPPORTED_REQUEST | DevSta.NONFATAL, \
        f"Device Status after a posted UR: {sta:#x}"
    await devsta_w1c(errs)

    # poisoned write: dropped, Detected Parity Error set
    entry = tb.bar_addr + tb.desc.regions["msix_table"]["offset"] + 8     # entry 0 message data
    await tb.rc.mem_write_dword(entry, 0x1234_5678)
    assert await tb.rc.mem_read_dword(entry) == 0x1234_5678
    bad = mem_tlp(True, entry, data=[0xDEAD_BEEF])
    bad.ep = True
    await tb.expect_no_completion(bad)
    assert await tb.rc.mem_read_dword(entry) == 0x1234_5678, "poisoned write data was used"
    sts = await status_read()
    assert sts & Sts.DETECTED_PARITY_ERROR, f"Detected Parity Error not set: {sts:#x}"
    assert await devsta_read() & errs == DevSta.NONFATAL, "a poisoned write is non-fatal"
    await tb.cfg_write_dword(Hdr.COMMAND, 0, fbe=0b1100)
    assert await status_read() & Sts.DETECTED_PARITY_ERROR
    await tb.cfg_write_dword(Hdr.COMMAND, Sts.DETECTED_PARITY_ERROR << 16, fbe=0b1100)
    assert await status_read() & Sts.RW1C == 0

    # malformed: a memory read whose length runs past a 4 KiB boundary
    await devsta_w1c(errs)
    await tb.expect_no_completion(mem_tlp(False, tb.bar_addr + 0x1000 - 4, 2))
    sta = await devsta_read()
    assert sta & DevSta.FATAL, f"Fatal Error Detected not set by a malformed TLP: {sta:#x}"
    await devsta_w1c(DevSta.FATAL)
    assert await devsta_read() & DevSta.FATAL == 0
    tb.check_clean()
