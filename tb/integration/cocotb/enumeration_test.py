"""Enumeration, identity, BAR sizing and the capability list, through the root complex.

Every expectation comes from the specifications (``tb.host.pcispec``) and the build's parameters
(``VPCI_DESC``); the RTL is only ever read, never trusted.
"""
import cocotb
from cocotbext.pcie.core.tlp import CplStatus, TlpType

from tb.env.testbench import TB

from tb.tlp.requests import mem_tlp
from tb.host.pcispec import (CapId, CfgType, Hdr, MsixCap, PcieCap, Sts, TRANSITIONAL_DEVICE_IDS,
                        VIRTIO_MODERN_DEVICE_ID_BASE, VIRTIO_VENDOR_ID, VirtioCap)


@cocotb.test()
async def enumeration_ids_test(dut):
    """PCI-01, PCI-02, PCI-03, PCI-04, PCI-05, PCI-06, PCI-07 (PCI-08, PCI-09, PCI-10 when the build
    is transitional): the root complex finds one type-0 function and its identity registers."""
    tb = TB(dut)
    dev = await tb.init()
    p = tb.desc.params
    vtype = p["device_type"]

    assert dev.header_type == 0 and not dev.multifunction, "expected a single-function type-0 header"
    assert dev.function_num == 0
    assert dev.vendor_id == VIRTIO_VENDOR_ID, f"PCI-02: vendor ID {dev.vendor_id:#06x}"
    if p["transitional"]:
        assert dev.device_id == TRANSITIONAL_DEVICE_IDS[vtype], f"PCI-03: device ID {dev.device_id:#06x}"
        assert 0x1000 <= dev.device_id <= 0x103F, "PCI-10"
        assert dev.revision_id == 0, f"PCI-08: revision {dev.revision_id}"
        assert dev.subsystem_id == vtype, f"PCI-09: subsystem ID {dev.subsystem_id:#x}"
    else:
        assert dev.device_id == VIRTIO_MODERN_DEVICE_ID_BASE + vtype, \
            f"PCI-03: device ID {dev.device_id:#06x} for virtio type {vtype}"
        assert 0x1040 <= dev.device_id <= 0x107F, "PCI-05"
        assert dev.revision_id >= 1, f"PCI-06: revision {dev.revision_id}"
        assert dev.revision_id == p["revision"]
        assert dev.subsystem_id >= 0x40, f"PCI-07: subsystem ID {dev.subsystem_id:#x}"
        assert dev.subsystem_id == p["subsystem_id"]
    tb.log.info("PCI-04: subsystem vendor %#06x, subsystem %#06x", dev.subsystem_vendor_id,
                dev.subsystem_id)
    assert dev.subsystem_vendor_id == p["subsystem_vendor_id"]
    assert dev.class_code == tb.desc.ids["class_code"], f"class code {dev.class_code:#08x}"

    # the raw completion of a CfgRd0 follows the completion rules (PCIe 2.2.9)
    cpl = await tb.cfg_read(Hdr.VENDOR_ID)
    assert cpl.fmt_type == TlpType.CPL_DATA and cpl.status == CplStatus.SC
    assert cpl.length == 1 and cpl.byte_count == 4 and cpl.lower_address == 0
    assert cpl.completer_id == dev.pcie_id, f"completer ID {cpl.completer_id} is not {dev.pcie_id}"
    assert int.from_bytes(cpl.data, "little") == dev.vendor_id | dev.device_id << 16
    # a partial read returns the enabled bytes
    cpl = await tb.cfg_read(Hdr.VENDOR_ID, fbe=0b1100)
    assert cpl.status == CplStatus.SC and int.from_bytes(cpl.data[2:4], "little") == dev.device_id
    tb.check_clean()


@cocotb.test()
async def bar_sizing_test(dut):
    """PCI-01, CAP-D1: BAR sizing (all-ones write, read mask) finds exactly the described BARs; the
    64-bit memory BAR has the described size and type, decodes exactly its range, and follows a
    move above 4 GiB."""
    tb = TB(dut)
    dev = await tb.init()
    mb = tb.desc.mem_bar
    idx, size = mb["index"], mb["size"]
    io = tb.desc.io_bar

    assert dev.bar_size[idx] == size, f"root complex sized BAR{idx} at {dev.bar_size[idx]}"
    base = tb.bar_addr
    assert base % size == 0

    # size every BAR register ourselves (decode off while probing, as Linux does)
    cmd = await dev.config_read_word(Hdr.COMMAND)
    await dev.config_write_word(Hdr.COMMAND, 0)
    masks = []
    for i in range(6):
        a = Hdr.BAR0 + 4 * i
        orig = await dev.config_read_dword(a)
        await dev.config_write_dword(a, 0xFFFF_FFFF)
        masks.append(await dev.config_read_dword(a))
        await dev.config_write_dword(a, orig)
        assert await dev.config_read_dword(a) == orig, f"BAR{i} did not take its old value back"
    rom = await dev.config_read_dword(Hdr.EXPANSION_ROM)
    await dev.config_write_dword(Hdr.EXPANSION_ROM, 0xFFFF_F801)
    assert await dev.config_read_dword(Hdr.EXPANSION_ROM) == 0, "expansion ROM BAR is not implemented"
    await dev.config_write_dword(Hdr.EXPANSION_ROM, rom)
    await dev.config_write_word(Hdr.COMMAND, cmd)

    lo, hi = masks[idx], masks[idx + 1]
    assert lo & 0x1 == 0, "memory BAR reads as I/O"
    assert lo >> 1 & 0x3 == 0b10, f"BAR{idx} type {lo >> 1 & 3:#b} is not 64-bit"
    assert bool(lo & 0x8) == mb["prefetchable"], "prefetchable bit"
    mask64 = (hi << 32 | lo) & ~0xF
    assert (~mask64 & (2**64 - 1)) + 1 == size, f"BAR{idx} sizes to {(~mask64 & (2**64 - 1)) + 1}"
    assert size >= 128 and size & (size - 1) == 0
    for i in range(6):
        if i in (idx, idx + 1) or (io and i == io["index"]):
            continue
        assert masks[i] == 0, f"BAR{i} is not implemented but reads {masks[i]:#x} after all-ones"
    if io:
        m = masks[io["index"]]
        assert m & 1 and ((~m | 3) & 0xFFFF_FFFF) + 1 == io["size"], f"I/O BAR mask {m:#x}"

    # the low type bits are read-only
    lo_now = await dev.config_read_dword(Hdr.BAR0 + 4 * idx)
    await dev.config_write_dword(Hdr.BAR0 + 4 * idx, (lo_now & ~0xF) | 0x9)
    assert await dev.config_read_dword(Hdr.BAR0 + 4 * idx) == lo_now

    # exactly the range decodes
    for off in (0, size - 4):
        cpl = (await tb.raw_request(mem_tlp(False, base + off)))[0]
        assert cpl.status == CplStatus.SC and cpl.fmt_type == TlpType.CPL_DATA, f"+{off:#x}: {cpl!r}"
    for addr in (base + size, base - 4):
        cpl = (await tb.raw_request(mem_tlp(False, addr)))[0]
        assert cpl.status == CplStatus.UR and cpl.fmt_type == TlpType.CPL, f"{addr:#x}: {cpl!r}"
        assert cpl.length == 0

    # move the BAR above 4 GiB: 64-bit requests reach it there, the old address no longer does
    high = (0x1_0000_0000 * 0x12) + base
    await dev.config_write_dword(Hdr.BAR0 + 4 * (idx + 1), high >> 32)
    assert await dev.config_read_dword(Hdr.BAR0 + 4 * (idx + 1)) == high >> 32
    cpl = (await tb.raw_request(mem_tlp(False, high + 4, fmt64=True)))[0]
    assert cpl.status == CplStatus.SC, f"MRd64 above 4 GiB: {cpl!r}"
    cpl = (await tb.raw_request(mem_tlp(False, base + 4)))[0]
    assert cpl.status == CplStatus.UR, f"old address still decoded: {cpl!r}"
    await dev.config_write_dword(Hdr.BAR0 + 4 * (idx + 1), 0)
    assert (await tb.rc.mem_read(base, 4)) is not None
    tb.check_clean()


def _check_virtio_cap(tb, cap, bar_sizes):
    """CAP-01, CAP-D1 and the per-type rules for one vendor capability; returns its fields."""
    d = tb.desc
    cfg_type = cap.byte(VirtioCap.CFG_TYPE)
    cap_len = cap.byte(VirtioCap.CAP_LEN)
    f = {"cfg_type": cfg_type, "cap_len": cap_len, "bar": cap.byte(VirtioCap.BAR),
         "offset": cap.dword(VirtioCap.OFFSET), "length": cap.dword(VirtioCap.LENGTH)}
    where = f"virtio cap at {cap.offset:#x} (cfg_type {cfg_type})"
    assert cfg_type in CfgType.MIN_LEN, f"{where}: reserved cfg_type"
    assert cap_len >= CfgType.MIN_LEN[cfg_type], f"CAP-01: {where}: cap_len {cap_len}"
    assert cap.offset + cap_len <= 0x100, f"PCI-D1: {where} runs past 0xFF"
    described = d.cap_at(cap.offset)
    assert described is not None and described["cfg_type"] == cfg_type, \
        f"{where} is not in the description"
    assert cap_len == described["cap_len"]
    if cfg_type in CfgType.STRUCTURES:
        assert 0 <= f["bar"] <= 5, f"CAP-D1: {where}: bar {f['bar']}"
        assert bar_sizes.get(f["bar"]), f"CAP-D1: {where}: BAR{f['bar']} is not implemented"
        assert f["offset"] + f["length"] <= bar_sizes[f["bar"]], \
            f"CAP-D1: {where}: {f['offset']:#x}+{f['length']:#x} beyond BAR size"
        assert (f["bar"], f["offset"], f["length"]) == \
            (described["bar"], described["offset"], described["length"])
        assert f["length"] > 0, f"{where}: zero length"
    return f


@cocotb.test()
async def capability_walk_test(dut):
    """PCI-D1, CAP-01, CAP-D1, CC-01, CC-02, NTF-01, NTF-02, ISR-01, DCF-01, DCF-02, PCC-01,
    MSX-01, MSX-02: walk the whole capability list with config reads and check every
    capability against the rules and the build description."""
    tb = TB(dut)
    dev = await tb.init()
    d = tb.desc
    p = d.params

    status = await dev.config_read_word(Hdr.STATUS)
    assert status & Sts.CAP_LIST, "PCI-D1: Status.Capabilities List is 0"
    caps = await tb.capabilities()
    walked = [(c.offset, c.cap_id) for c in caps]
    described = [(c["config_offset"], c["cap_id"]) for c in d.caps]
    assert walked == described, f"walked {walked}, described {described}"
    ids = [c.cap_id for c in caps]
    for need in (CapId.PM, CapId.PCIE, CapId.MSIX):
        assert need in ids, f"capability {need:#x} missing"

    # PCI Express capability: an endpoint that can do FLR
    ex = tb.find_cap(caps, CapId.PCIE)
    assert ex.word(PcieCap.CAPS) & 0xF == 2, "PCIe capability version"
    assert ex.word(PcieCap.CAPS) >> 4 & 0xF == PcieCap.TYPE_ENDPOINT, "device/port type"
    assert ex.dword(PcieCap.DEVCAP) & PcieCap.DEVCAP_FLR, "Function Level Reset capability"
    mpss = 128 << (ex.dword(PcieCap.DEVCAP) & 7)
    assert mpss == p["max_payload_supported"], f"Max_Payload_Size Supported {mpss}"

    # BAR sizes as a driver measures them
    bar_sizes = {}
    for i in range(6):
        if i - 1 in bar_sizes and bar_sizes[i - 1] and dev.bar_raw[i - 1] & 0x4:
            continue
        bar_sizes[i] = dev.bar_size[i]

    # MSI-X: table and PBA inside the memory BAR where the description puts them
    mx = tb.find_cap(caps, CapId.MSIX)
    n = (mx.word(MsixCap.CONTROL) & MsixCap.TABLE_SIZE_MASK) + 1
    assert n == p["msix_vectors"], f"MSX-02: table size {n}"
    assert 2 <= n <= 0x800, f"MSX-01: {n} vectors"
    for reg, name, length in ((MsixCap.TABLE, "msix_table", n * MsixCap.ENTRY_SIZE),
                              (MsixCap.PBA, "msix_pba", 8 * ((n + 63) // 64))):
        v = mx.dword(reg)
        bir, off = v & 7, v & ~7
        assert bar_sizes.get(bir), f"MSX-02: {name} in unimplemented BAR{bir}"
        assert off + length <= bar_sizes[bir], f"MSX-02: {name} runs past BAR{bir}"
        r = d.regions[name]
        assert (bir, off) == (r["bar"], r["offset"]), f"{name} at BAR{bir}+{off:#x}"

    # virtio vendor capabilities
    vcaps = {}
    for c in caps:
        if c.cap_id == CapId.VENDOR:
            assert c.byte(VirtioCap.VNDR) == CapId.VENDOR
            f = _check_virtio_cap(tb, c, bar_sizes)
            vcaps.setdefault(f["cfg_type"], []).append((c, f))
    for t, req in ((CfgType.COMMON, "CC-02"), (CfgType.NOTIFY, "NTF-01"), (CfgType.ISR, "ISR-01"),
                   (CfgType.DEVICE, "DCF-01"), (CfgType.PCI_CFG, "PCC-01")):
        assert t in vcaps, f"{req}: no capability with cfg_type {t}"

    _, common = vcaps[CfgType.COMMON][0]
    assert common["offset"] % 4 == 0, f"CC-01: common cfg offset {common['offset']:#x}"
    assert common["length"] >= 0x38, "common cfg shorter than the 1.0 layout"
    if d.offers(40):      # RING_RESET: queue_reset at 0x3A
        assert common["length"] >= 0x3C, "common cfg too short for queue_reset"

    ncap, notify = vcaps[CfgType.NOTIFY][0]
    mult = ncap.dword(VirtioCap.NOTIFY_OFF_MULTIPLIER)
    assert mult == p["notify_off_multiplier"]
    nd = d.offers(38)     # NOTIFICATION_DATA
    assert notify["offset"] % 2 == 0, f"NTF-02: notify offset {notify['offset']:#x}"
    if nd:
        assert notify["offset"] % 4 == 0, "notify offset must be 4-aligned with NOTIFICATION_DATA"
        assert mult == 0 or (mult & (mult - 1) == 0 and mult % 4 == 0), f"multiplier {mult}"
    else:
        assert mult == 0 or (mult & (mult - 1) == 0 and mult >= 2), f"multiplier {mult}"
    assert notify["length"] >= (4 if nd else 2)

    _, isr = vcaps[CfgType.ISR][0]
    assert isr["length"] >= 1

    _, dev_cfg = vcaps[CfgType.DEVICE][0]
    assert dev_cfg["offset"] % 4 == 0, f"DCF-02: device cfg offset {dev_cfg['offset']:#x}"
    assert dev_cfg["length"] == p["device_cfg_size"]

    pcap, _ = vcaps[CfgType.PCI_CFG][0]
    assert pcap.byte(VirtioCap.CAP_LEN) >= VirtioCap.PCI_CFG_LEN
    tb.check_clean()


@cocotb.test()
async def pci_cfg_cap_test(dut):
    """PCC-D1, CAP-D2: the PCI configuration access capability's bar, offset, length and
    pci_cfg_data fields are writable (byte by byte too) and its other bytes are not; data written
    through a valid window reads back through it and through the BAR."""
    tb = TB(dut)
    await tb.init()
    caps = await tb.capabilities()
    pc = tb.find_cap(caps, CapId.VENDOR, CfgType.PCI_CFG).offset
    head = await tb.cfg_read_dword(pc)
    head2 = await tb.cfg_read_dword(pc + 4) & 0xFFFF_FF00

    for field, pattern in ((VirtioCap.BAR, 0xA5), (VirtioCap.OFFSET, 0x1234_5678),
                           (VirtioCap.LENGTH, 0x8765_4321), (VirtioCap.PCI_CFG_DATA, 0xC3C3_3C3C)):
        width = 1 if field == VirtioCap.BAR else 4
        for value in (pattern, ~pattern & ((1 << 8 * width) - 1), 0):
            await tb.cfg_write_dword(pc + field, value, fbe=(1 << width) - 1)
            got = await tb.cfg_read_dword(pc + field)
            if field == VirtioCap.PCI_CFG_DATA:
                continue       # with no valid window a read of the data is not a read-back
            assert got & ((1 << 8 * width) - 1) == value, f"PCC-D1: +{field} wrote {value:#x} read {got:#x}"
    # byte-granular writes touch one byte
    await tb.cfg_write_dword(pc + VirtioCap.OFFSET, 0x1122_3344)
    await tb.cfg_write_dword(pc + VirtioCap.OFFSET, 0xAA00_0000, fbe=0b1000)
    assert await tb.cfg_read_dword(pc + VirtioCap.OFFSET) == 0xAA22_3344
    # the fixed bytes of the capability ignore writes
    await tb.cfg_write_dword(pc, 0xFFFF_FFFF)
    await tb.cfg_write_dword(pc + 4, 0xFFFF_FF00, fbe=0b1110)
    assert await tb.cfg_read_dword(pc) == head, "CAP-D2: cap_vndr/next/len/cfg_type changed"
    assert await tb.cfg_read_dword(pc + 4) & 0xFFFF_FF00 == head2, "CAP-D2: id/padding changed"

    # a valid window onto driver_feature_select (common cfg +0x08, 32-bit RW, select 0..3)
    common = tb.desc.regions["common"]
    sel = common["offset"] + 0x08
    await tb.cfg_write_dword(pc + VirtioCap.BAR, tb.mem_bar_index, fbe=0b0001)
    await tb.cfg_write_dword(pc + VirtioCap.OFFSET, sel)
    await tb.cfg_write_dword(pc + VirtioCap.LENGTH, 4)
    for value in (2, 1):
        await tb.cfg_write_dword(pc + VirtioCap.PCI_CFG_DATA, value)
        assert await tb.cfg_read_dword(pc + VirtioCap.PCI_CFG_DATA) == value, "PCC-D1: data"
        assert await tb.rc.mem_read_dword(tb.bar_addr + sel) == value, "window write missed the BAR"
    tb.check_clean()


@cocotb.test()
async def virtio_cap_fields_test(dut):
    """CAP-02, CAP-03, CAP-D3: every virtio capability's cap_len covers its structure (a
    driver must accept a longer one, so the length read back is what the walk uses to find the
    next capability's bytes); one capability per cfg_type, so the first one a driver finds is
    the preferred one; the id byte is 0 (no device type here defines it) and the padding is 0."""
    tb = TB(dut)
    await tb.init()
    caps = await tb.capabilities()
    seen = {}
    for c in caps:
        if c.cap_id != CapId.VENDOR:
            continue
        t = c.byte(VirtioCap.CFG_TYPE)
        minimum = VirtioCap.NOTIFY_LEN if t in (CfgType.NOTIFY, CfgType.PCI_CFG) else VirtioCap.LEN
        cap_len = c.byte(VirtioCap.CAP_LEN)
        assert cap_len >= minimum and cap_len % 4 == 0, f"cfg_type {t}: cap_len {cap_len}"
        assert t not in seen, f"CAP-03: cfg_type {t} appears twice ({seen[t]:#x}, {c.offset:#x})"
        seen[t] = c.offset
        assert c.byte(VirtioCap.ID) == 0, f"CAP-D3: id byte of cfg_type {t}"
        assert c.byte(6) == 0 and c.byte(7) == 0, f"padding of cfg_type {t}"
        # the next capability starts at or after the end of this one
        nxt = c.byte(VirtioCap.NEXT)
        assert nxt == 0 or nxt >= c.offset + cap_len, f"cap at {c.offset:#x} overlaps the next"
    assert set(seen) == {CfgType.COMMON, CfgType.NOTIFY, CfgType.ISR, CfgType.DEVICE,
                         CfgType.PCI_CFG}, f"cfg_types present: {sorted(seen)}"
    tb.check_clean()
