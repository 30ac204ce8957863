"""Multi-DW memory reads: completion splitting and completion header fields (PCIe 2.3.1.1).

Reads go to the MSI-X table structure (side-effect free).  The expected data is first read one DW
at a time, so the checks hold whatever the table contains.
"""
import cocotb
from cocotbext.pcie.core.tlp import CplStatus, TlpAttr, TlpType

from tb.env.testbench import TB

from tb.tlp.requests import mem_tlp
from tb.host.pcispec import CapId, DevCtl, PcieCap

RCB = 128          # read completion boundary of a completer that is not a root complex


def _be_bytes(be):
    return [i for i in range(4) if be >> i & 1]


def check_split(cpls, req, mps, ref, base):
    """Check the completions of one MRd against the PCIe data-return rules.

    ``req``: the request (``Tlp``); ``mps``: Max_Payload_Size in bytes; ``ref``: dict DW address
    -> expected DW; ``base``: BAR address (for messages).  Returns a one-line summary."""
    n, addr = req.length, req.address
    fbe, lbe = req.first_be, (req.last_be if n > 1 else req.first_be)
    first_off = _be_bytes(fbe)[0]
    last_end = _be_bytes(lbe)[-1] + 1
    total = (n - 1) * 4 - first_off + last_end if n > 1 else last_end - first_off
    what = f"MRd {addr - base:#x}+{n}DW fbe {fbe:x} lbe {req.last_be:x}"

    remaining = total
    dw_addr = addr
    for i, c in enumerate(cpls):
        assert c.fmt_type == TlpType.CPL_DATA and c.status == CplStatus.SC, f"{what}: cpl {i}: {c!r}"
        assert c.tag == cpls[0].tag and c.requester_id == req.requester_id, f"{what}: cpl {i} IDs"
        assert c.tc == req.tc and c.attr == req.attr, f"{what}: cpl {i} TC/attributes"
        assert 1 <= c.length <= mps // 4, f"{what}: cpl {i} length {c.length} over MPS {mps}"
        assert len(c.data) == 4 * c.length
        assert c.byte_count == remaining, f"{what}: cpl {i} byte count {c.byte_count}, expected {remaining}"
        la = (dw_addr & 0x7C) | (first_off if i == 0 else 0)
        assert c.lower_address == la, f"{what}: cpl {i} lower address {c.lower_address:#x}, expected {la:#x}"
        start, end = dw_addr, dw_addr + 4 * c.length
        # never across a naturally aligned MPS boundary; every completion but the last ends on an RCB
        assert start // mps == (end - 1) // mps, f"{what}: cpl {i} [{start - base:#x},{end - base:#x}) crosses MPS"
        if i < len(cpls) - 1:
            assert end % RCB == 0, f"{what}: cpl {i} ends at {end - base:#x}, not on the RCB"
        for k in range(c.length):
            a = dw_addr + 4 * k
            got = int.from_bytes(c.data[4 * k:4 * k + 4], "little")
            be = fbe if a == addr else (lbe if a == addr + 4 * (n - 1) else 0xF)
            mask = sum(0xFF << 8 * j for j in _be_bytes(be))
            assert got & mask == ref[a] & mask, f"{what}: DW {a - base:#x} {got:#010x} != {ref[a]:#010x}"
        got_bytes = 4 * c.length - (first_off if i == 0 else 0)
        remaining -= got_bytes
        dw_addr = end
    assert dw_addr == addr + 4 * n, f"{what}: completions cover {(dw_addr - addr) // 4} of {n} DWs"
    assert remaining <= 0
    # the policy the depacketizer documents: one completion per MPS-aligned block touched
    blocks = (addr + 4 * n - 1) // mps - addr // mps + 1
    assert len(cpls) == blocks, f"{what}: {len(cpls)} completions for {blocks} MPS blocks"
    return f"{what}: {len(cpls)} cpl"


async def _setup(dut):
    tb = TB(dut)
    dev = await tb.init()
    caps = await tb.capabilities()
    pcie = tb.find_cap(caps, CapId.PCIE).offset
    region = tb.desc.regions["msix_table"]
    base = tb.bar_addr + region["offset"]
    span = region["span"]
    # give the table distinctive contents where it stores them (writes elsewhere are ignored)
    for i in range(region["length"] // 4):
        if i % 4 != 3:                       # leave Vector Control (mask bits) alone
            await tb.rc.mem_write_dword(base + 4 * i, 0x5A00_0000 | i << 8 | i)
    await tb.flush()
    ref = {}
    for a in range(base, base + span, 4):
        cpl = (await tb.raw_request(mem_tlp(False, a)))[0]
        assert cpl.status == CplStatus.SC and cpl.length == 1
        ref[a] = int.from_bytes(cpl.data, "little")
    return tb, dev, pcie, base, span, ref


async def _set_mps(tb, pcie, mps):
    code = (mps // 128).bit_length() - 1
    v = await tb.cfg_read_dword(pcie + PcieCap.DEVCTL) & 0xFFFF
    await tb.cfg_write_dword(pcie + PcieCap.DEVCTL, (v & ~DevCtl.MPS_MASK) | code << DevCtl.MPS_SHIFT,
                             fbe=0b0011)
    got = (await tb.cfg_read_dword(pcie + PcieCap.DEVCTL) & DevCtl.MPS_MASK) >> DevCtl.MPS_SHIFT
    assert got == code, f"Max_Payload_Size {128 << got} after writing {mps}"


async def _sweep(tb, base, span, ref, mps, *, lengths, offsets):
    rng = tb.bridge.rng
    done = 0
    for n in lengths:
        for off in offsets(n):
            if off + 4 * n > span or (base + off) // 0x1000 != (base + off + 4 * n - 1) // 0x1000:
                continue
            if n == 1:         # any pattern, even non-contiguous
                fbe, lbe = rng.choice((0xF, 0xE, 0xC, 0x8, 0x1, 0x3, 0x6, 0x9)), 0
            else:              # contiguous across the DW boundaries
                fbe, lbe = rng.choice((0xF, 0xE, 0xC, 0x8)), rng.choice((0xF, 0x7, 0x3, 0x1))
            req = mem_tlp(False, base + off, n, fbe=fbe, lbe=lbe)
            req.tc = rng.randrange(8) if rng.random() < 0.3 else 0
            req.attr = TlpAttr(rng.randrange(8))
            cpls = await tb.raw_request(req)
            check_split(cpls, req, mps, ref, base)
            done += 1
    return done


def _offsets(mps, span):
    def pick(n):
        near = [0, 4, mps - 4 * n, mps - 4, mps, mps + 4 * (n % 7), 2 * mps - 4 * (n // 2),
                span - 4 * n, 0x7C, 0x84]
        return sorted({o for o in near if 0 <= o and o % 4 == 0})
    return pick


@cocotb.test()
async def read_split_mps128_test(dut):
    """PCI-01: with Max_Payload_Size 128 bytes, MRds of 1..64 DWs at offsets around the MPS
    boundaries return the right data in completions that never exceed or cross the MPS, end on
    the RCB, and carry correct length, byte count, lower address, tag, TC and attributes."""
    tb, dev, pcie, base, span, ref = await _setup(dut)
    await _set_mps(tb, pcie, 128)
    n = await _sweep(tb, base, span, ref, 128, lengths=range(1, 65), offsets=_offsets(128, span))
    tb.log.info("%d reads checked", n)
    # and through the root complex, which splits and reassembles on its own
    data = await tb.rc.mem_read(base + 4, 250)
    exp = b"".join(ref[a].to_bytes(4, "little") for a in range(base, base + 256, 4))[4:254]
    assert data == exp
    tb.check_clean()


@cocotb.test()
async def read_split_mps256_test(dut):
    """PCI-01: the same read checks after Max_Payload_Size is raised to 256 bytes through Device
    Control (and back to 128: the split follows the register)."""
    tb, dev, pcie, base, span, ref = await _setup(dut)
    supported = 128 << (await tb.cfg_read_dword(pcie + PcieCap.DEVCAP) & 7)
    for mps in sorted({min(256, supported), 128}, reverse=True):
        await _set_mps(tb, pcie, mps)
        n = await _sweep(tb, base, span, ref, mps, lengths=list(range(1, 65, 3)) + [64],
                         offsets=_offsets(mps, span))
        tb.log.info("MPS %d: %d reads checked", mps, n)
    tb.check_clean()
