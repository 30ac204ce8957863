"""How the function answers what it cannot or must not serve (PCIe 2.3: Unsupported Request,
malformed TLPs, unexpected completions, messages) and that none of it disturbs later traffic."""
import cocotb
from cocotb.triggers import RisingEdge
from cocotbext.pcie.core.tlp import CplStatus, Tlp, TlpAttr, TlpType
from cocotbext.pcie.core.utils import PcieId

from tb.env.testbench import TB

from tb.tlp.requests import RAW_REQUESTER, cfg_tlp, mem_tlp
from tb.host.pcispec import CapId, Cmd, DevCtl, DevSta, Hdr, PcieCap, Sts
from tb.tlp.convert import dws_to_beats, pack_beat, tlp_to_dws

ERRS = DevSta.CORRECTABLE | DevSta.NONFATAL | DevSta.FATAL | DevSta.UNSUPPORTED_REQUEST


class _Env:
    """Shared set-up: enumerated function, Device Status access, a side-effect-free RW register."""

    async def start(self, dut):
        self.tb = tb = TB(dut)
        self.dev = await tb.init()
        caps = await tb.capabilities()
        self.pcie = tb.find_cap(caps, CapId.PCIE).offset
        # MSI-X table entry 0 message data: 32 bits, read-write, no side effect while masked
        self.entry = tb.bar_addr + tb.desc.regions["msix_table"]["offset"] + 8
        await self.clear_errors()
        return self

    async def devsta(self):
        return (await self.tb.cfg_read_dword(self.pcie + PcieCap.DEVCTL)) >> 16

    async def clear_errors(self):
        await self.tb.cfg_write_dword(self.pcie + PcieCap.DEVCTL, ERRS << 16, fbe=0b1100)
        await self.tb.cfg_write_dword(Hdr.COMMAND, Sts.RW1C << 16, fbe=0b1100)

    async def sanity(self):
        """Ordinary traffic still works: a config read, a memory write and read back."""
        tb = self.tb
        assert await self.dev.config_read_dword(Hdr.VENDOR_ID) == \
            self.dev.vendor_id | self.dev.device_id << 16
        v = tb.bridge.rng.getrandbits(32)
        await tb.rc.mem_write_dword(self.entry, v)
        assert await tb.rc.mem_read_dword(self.entry) == v
        return v


def _check_ur(env, cpl, req, *, locked=False, what=""):
    """A UR completion answers ``req``: no data, its tag/requester/TC/attributes echoed."""
    want = TlpType.CPL_LOCKED if locked else TlpType.CPL
    assert cpl.status == CplStatus.UR, f"{what}: status {cpl.status!r}"
    assert cpl.fmt_type == want, f"{what}: {cpl.fmt_type} instead of {want}"
    assert cpl.length == 0 and not cpl.data, f"{what}: a UR completion carries no data"
    assert cpl.requester_id == req.requester_id and cpl.tc == req.tc and cpl.attr == req.attr, \
        f"{what}: {cpl!r}"
    assert cpl.completer_id.bus == env.dev.bus_num and cpl.completer_id.device == env.dev.device_num


@cocotb.test()
async def decode_disable_test(dut):
    """PCI-01: with Memory Space Enable clear, a memory read gets UR and a memory write is
    dropped (its data never lands); Unsupported Request Detected is set; re-enabling restores
    decoding and the old contents."""
    env = await _Env().start(dut)
    tb, dev = env.tb, env.dev
    kept = await env.sanity()

    cmd = await dev.config_read_word(Hdr.COMMAND)
    await dev.config_write_word(Hdr.COMMAND, cmd & ~Cmd.MEM)
    req = mem_tlp(False, env.entry)
    req.tc, req.attr = 1, TlpAttr.RO | TlpAttr.NS
    cpls = await tb.raw_request(req, settle=20)
    assert len(cpls) == 1, f"expected one completion, got {cpls}"
    _check_ur(env, cpls[0], req, what="MRd with decode off")
    await tb.expect_no_completion(mem_tlp(True, env.entry, data=[~kept & 0xFFFF_FFFF]))
    assert await env.devsta() & DevSta.UNSUPPORTED_REQUEST
    try:
        await tb.rc.mem_read_dword(env.entry)
        raise AssertionError("the root complex read a disabled BAR")
    except Exception as exc:
        assert "Unsuccessful completion" in str(exc), exc

    await dev.config_write_word(Hdr.COMMAND, cmd)
    assert await tb.rc.mem_read_dword(env.entry) == kept, "a write with decode off landed"
    await env.sanity()
    tb.check_clean()


@cocotb.test()
async def unsupported_requests_test(dut):
    """PCI-01: requests an endpoint does not support are answered with UR and change nothing:
    CfgRd1/CfgWr1, locked reads (answered with CplLk), AtomicOps, I/O requests without an I/O BAR,
    configuration requests to functions 1..7; each sets Unsupported Request Detected and (advisory
    non-fatal) Correctable Error Detected, nothing else."""
    env = await _Env().start(dut)
    tb, dev = env.tb, env.dev
    me = dev.pcie_id
    line = await tb.cfg_read_dword(Hdr.INTERRUPT_LINE)

    def atomic(kind, nops):
        t = Tlp()
        t.fmt_type = kind
        t.requester_id = RAW_REQUESTER
        t.address = env.entry & ~7
        t.first_be, t.last_be = 0xF, (0xF if nops > 1 else 0)
        t.data = bytearray(b"\x11\x22\x33\x44" * nops)
        t.length = nops
        return t

    def io(write):
        t = Tlp()
        t.fmt_type = TlpType.IO_WRITE if write else TlpType.IO_READ
        t.requester_id = RAW_REQUESTER
        t.address, t.length, t.first_be = 0x1000, 1, 0xF
        if write:
            t.data = bytearray(4)
        return t

    cases = [
        ("CfgRd1", cfg_tlp(False, Hdr.VENDOR_ID, dest=me, type1=True), False, 4),
        ("CfgWr1", cfg_tlp(True, Hdr.INTERRUPT_LINE, dest=me, type1=True, data=0x77, fbe=1), False, 4),
        ("MRdLk", mem_tlp(False, env.entry, locked=True), True, None),
        ("FetchAdd", atomic(TlpType.FETCH_ADD, 1), False, None),
        ("Swap", atomic(TlpType.SWAP, 1), False, None),
        ("CAS", atomic(TlpType.CAS, 2), False, None),
    ]
    if not tb.desc.io_bar:
        cases += [("IORd", io(False), False, 4), ("IOWr", io(True), False, 4)]
    for fn in range(1, 8):
        other = PcieId(me.bus, me.device, fn)
        cases.append((f"CfgRd0 fn{fn}", cfg_tlp(False, Hdr.VENDOR_ID, dest=other), False, 4))
    cases.append(("CfgWr0 fn3", cfg_tlp(True, Hdr.INTERRUPT_LINE, dest=PcieId(me.bus, me.device, 3),
                                         data=0x77, fbe=1), False, 4))

    ur0 = tb.error_count("err_ur")
    for name, req, locked, byte_count in cases:
        cpls = await tb.raw_request(req, settle=10)
        assert len(cpls) == 1, f"{name}: {len(cpls)} completions"
        _check_ur(env, cpls[0], req, locked=locked, what=name)
        if byte_count is not None:
            assert cpls[0].byte_count == byte_count, f"{name}: byte count {cpls[0].byte_count}"
        sta = await env.devsta()
        # a UR answered with a completion is advisory non-fatal (PCIe 6.2.3.2.4.1): URD + CED
        assert sta & ERRS == DevSta.UNSUPPORTED_REQUEST | DevSta.CORRECTABLE, \
            f"{name}: Device Status {sta:#x}, expected URD + CED"
        await env.clear_errors()
    if ur0 is not None:
        assert tb.error_count("err_ur") - ur0 == len(cases), "err_ur pulses"
    assert await tb.cfg_read_dword(Hdr.INTERRUPT_LINE) == line, "a refused config write landed"
    await env.sanity()
    tb.check_clean()


def _msg(routing, code, *, dw2=0, dw3=0, data=None):
    """A message TLP as DWs (cocotbext-pcie cannot pack messages): 4-DW header, Msg or MsgD."""
    fmt = 0b011 if data else 0b001
    dw0 = fmt << 29 | (0b10000 | routing) << 24 | (len(data) if data else 0)
    dw1 = int(RAW_REQUESTER) << 16 | code
    return [dw0, dw1, dw2, dw3] + list(data or [])


@cocotb.test()
async def unexpected_and_messages_test(dut):
    """PCI-01: completions nobody asked for are dropped without an answer and set only Correctable
    Error Detected (advisory non-fatal); messages an endpoint ignores (Unlock,
    Set_Slot_Power_Limit, Vendor_Defined Type 1) are dropped without an answer and without an
    error bit; a Vendor_Defined Type 0 message is an Unsupported Request (PCIe 2.2.8.6): dropped,
    Unsupported Request Detected and Non-Fatal Error Detected; none of it stalls the link."""
    env = await _Env().start(dut)
    tb, dev = env.tb, env.dev

    def cpl(kind, status, ndw, tag):
        t = Tlp()
        t.fmt_type = kind
        t.completer_id = PcieId(0, 0, 0)
        t.requester_id = dev.pcie_id
        t.status = status
        t.tag = tag
        t.byte_count = 4 * ndw
        if ndw:
            t.data = bytearray(range(4 * ndw))
            t.length = ndw
        return tlp_to_dws(t)

    unexpected = [cpl(TlpType.CPL_DATA, CplStatus.SC, 1, 0x11), cpl(TlpType.CPL, CplStatus.UR, 0, 0x12),
                  cpl(TlpType.CPL_DATA, CplStatus.SC, 8, 0x13), cpl(TlpType.CPL_LOCKED, CplStatus.UR, 0, 0x14)]
    messages = [
        ("Unlock", _msg(0b011, 0x00)),
        ("Set_Slot_Power_Limit", _msg(0b100, 0x50, data=[0x0000_00FA])),
        ("Vendor_Defined Type 1", _msg(0b010, 0x7F, dw2=int(dev.pcie_id) << 16 | 0x1AF4, dw3=0xCAFE)),
        ("Vendor_Defined Type 1 with data", _msg(0b011, 0x7F, dw2=0x1AF4, data=[1, 2, 3])),
    ]
    uc0 = tb.error_count("err_unexpected_cpl")
    for dws in unexpected:
        await tb.expect_no_completion(dws)
        # PCIe 6.2.3.2.4.5: with Role-Based Error Reporting an Unexpected Completion is an
        # advisory non-fatal error, signalled as Correctable Error Detected
        sta = await env.devsta()
        assert sta & ERRS == DevSta.CORRECTABLE, f"unexpected completion: Device Status {sta:#x}"
        await env.clear_errors()
    for name, dws in messages:
        await tb.expect_no_completion(dws)
    await env.sanity()
    if uc0 is not None:
        assert tb.error_count("err_unexpected_cpl") - uc0 == len(unexpected), "err_unexpected_cpl"
    sta = await env.devsta()
    assert sta & ERRS == 0, f"ignored messages set Device Status {sta:#x}"
    # PCIe 2.2.8.6: an unsupported Vendor_Defined Type 0 message is an Unsupported Request
    # (posted: dropped, Unsupported Request Detected and Non-Fatal Error Detected)
    ur0 = tb.error_count("err_ur")
    for name, dws in (("Vendor_Defined Type 0", _msg(0b010, 0x7E, dw2=int(dev.pcie_id) << 16 | 0x1AF4)),
                      ("Vendor_Defined Type 0 with data", _msg(0b011, 0x7E, dw2=0x1AF4, data=[7]))):
        await tb.expect_no_completion(dws)
        sta = await env.devsta()
        assert sta & ERRS == DevSta.UNSUPPORTED_REQUEST | DevSta.NONFATAL, f"{name}: Device Status {sta:#x}"
        await env.clear_errors()
    if ur0 is not None:
        assert tb.error_count("err_ur") - ur0 == 2, "err_ur for Vendor_Defined Type 0"
    await env.sanity()
    assert not tb.bridge.messages, f"the function sent messages: {tb.bridge.messages}"
    tb.check_clean()


@cocotb.test()
async def malformed_test(dut):
    """PCI-01: malformed TLPs (length against payload, byte-enable rules, 4 KiB crossing (also
    where a read or write runs from one BAR structure into the next or past the BAR end: every
    structure is 4 KiB aligned), payload over Max_Payload_Size, config and I/O length/TC/last-BE
    rules, prefixes, reserved types) are dropped
    without a completion and without side effects, set Fatal Error Detected and leave the link
    usable; a TLP digest (TD=1) is accepted and ignored."""
    env = await _Env().start(dut)
    tb, dev = env.tb, env.dev
    kept = await env.sanity()
    entry = env.entry
    me = dev.pcie_id

    devctl = await tb.cfg_read_dword(env.pcie + PcieCap.DEVCTL)
    await tb.cfg_write_dword(env.pcie + PcieCap.DEVCTL, devctl & 0xFFFF & ~DevCtl.MPS_MASK, fbe=0b0011)

    def variant(tlp, fix):
        dws, tag = tb.dws(tlp)
        return fix(dws), tag

    def with_dw0(bits_set=0, bits_clear=0):
        return lambda d: [(d[0] | bits_set) & ~bits_clear] + d[1:]

    def set_len(n):
        return lambda d: [(d[0] & ~0x3FF) | n] + d[1:]

    size = tb.desc.mem_bar["size"]
    io_tags = [tb.alloc_tag() for _ in range(3)]

    def io_dws(write, *, tag, tc=0, length=1, lbe=0):
        """An I/O request as DWs (its malformed variants break the I/O rules of PCIe 2.2.7:
        TC 0, length 1, last BE 0)."""
        dw0 = (0b010 if write else 0b000) << 29 | 0b00010 << 24 | tc << 20 | length
        dws = [dw0, int(RAW_REQUESTER) << 16 | tag << 8 | lbe << 4 | 0xF, 0x1000]
        return dws + [0x5A5A_5A5A] * length if write else dws

    cases = [
        ("MWr length 2, 1 DW of data", variant(mem_tlp(True, entry, data=[1]), set_len(2))),
        ("MWr length 1, 2 DWs of data", variant(mem_tlp(True, entry, data=[1]), lambda d: d + [2])),
        ("MRd length 2, TLP carries a DW", variant(mem_tlp(False, entry, 2), lambda d: d + [0])),
        ("MRd crossing 4 KiB", variant(mem_tlp(False, tb.bar_addr + 0x1000 - 4, 2), lambda d: d)),
        ("MWr over Max_Payload_Size", variant(mem_tlp(True, entry & ~0x7F, 33, data=list(range(33))),
                                              lambda d: d)),
        ("MRd 1 DW with last BE", variant(mem_tlp(False, entry, 1, lbe=0xF), lambda d: d)),
        ("MRd 2 DW without first BE", variant(mem_tlp(False, entry, 2, fbe=0), lambda d: d)),
        ("MWr 2 DW without last BE", variant(mem_tlp(True, entry, 2, lbe=0, data=[1, 2]), lambda d: d)),
        ("CfgRd0 length 2", variant(cfg_tlp(False, 0, dest=me), set_len(2))),
        ("CfgWr0 with last BE", variant(cfg_tlp(True, Hdr.INTERRUPT_LINE, dest=me, data=0x55),
                                        lambda d: [d[0], d[1] | 0xF0] + d[2:])),
        ("CfgRd0 with TC 1", variant(cfg_tlp(False, 0, dest=me), with_dw0(1 << 20))),
        ("MRd crossing the BAR end", variant(mem_tlp(False, tb.bar_addr + size - 4, 2), lambda d: d)),
        ("MWr crossing 4 KiB", variant(mem_tlp(True, tb.bar_addr + 0x2000 - 4, 2, data=[1, 2]),
                                       lambda d: d)),
        ("IORd with TC 1", (io_dws(False, tag=io_tags[0], tc=1), io_tags[0])),
        ("IORd length 2", (io_dws(False, tag=io_tags[1], length=2), io_tags[1])),
        ("IOWr with last BE", (io_dws(True, tag=io_tags[2], lbe=0xF), io_tags[2])),
        ("MRd behind a TLP prefix", variant(mem_tlp(False, entry), lambda d: [0x9000_0000] + d)),
        ("reserved Fmt/Type", variant(mem_tlp(False, entry), with_dw0(0x1F << 24))),
    ]
    mf0 = tb.error_count("err_malformed")
    for name, (dws, tag) in cases:
        await tb.expect_no_completion(dws, tag=tag)
        sta = await env.devsta()
        assert sta & DevSta.FATAL, f"{name}: Fatal Error Detected not set ({sta:#x})"
        await env.clear_errors()
    if mf0 is not None:
        assert tb.error_count("err_malformed") - mf0 == len(cases), "err_malformed pulses"
    assert await tb.rc.mem_read_dword(entry) == kept, "a malformed write landed"
    line = await tb.cfg_read_dword(Hdr.INTERRUPT_LINE)
    assert line & 0xFF != 0x55, "a malformed config write landed"

    # digest present: accepted, digest ignored
    dws, tag = tb.dws(mem_tlp(True, entry, data=[0x0BAD_F00D]))
    await tb.raw_posted([dws[0] | 1 << 15] + dws[1:] + [0xFFFF_FFFF])
    dws, tag = tb.dws(mem_tlp(False, entry))
    cpls = await tb.raw_request([dws[0] | 1 << 15] + dws[1:] + [0x1234_5678])
    assert cpls[0].status == CplStatus.SC and int.from_bytes(cpls[0].data, "little") == 0x0BAD_F00D
    assert await env.devsta() & ERRS == 0
    await tb.cfg_write_dword(env.pcie + PcieCap.DEVCTL, devctl & 0xFFFF, fbe=0b0011)
    await env.sanity()
    tb.check_clean()


@cocotb.test()
async def poisoned_requests_test(dut):
    """PCI-01: poisoned requests (EP=1) addressed to the function are never used (PCIe 2.7.2.2):
    a poisoned configuration write is discarded and answered with UR; poisoned memory writes
    (one DW and several) are dropped.  Each sets Detected Parity Error (Status) and Non-Fatal
    Error Detected, and neither counts as an Unsupported Request: it is a Poisoned TLP Received
    error."""
    env = await _Env().start(dut)
    tb, dev = env.tb, env.dev
    kept = await env.sanity()
    line = await tb.cfg_read_dword(Hdr.INTERRUPT_LINE)

    async def check_logged(what):
        sts = (await tb.cfg_read_dword(Hdr.COMMAND)) >> 16
        assert sts & Sts.DETECTED_PARITY_ERROR, f"{what}: Detected Parity Error not set ({sts:#x})"
        sta = await env.devsta()
        assert sta & ERRS == DevSta.NONFATAL, f"{what}: Device Status {sta:#x}"
        await env.clear_errors()

    req = cfg_tlp(True, Hdr.INTERRUPT_LINE, dest=dev.pcie_id, data=(line ^ 0xFF) & 0xFF, fbe=0x1)
    req.ep = True
    cpls = await tb.raw_request(req, settle=10)
    assert len(cpls) == 1, f"poisoned CfgWr0: {cpls}"
    _check_ur(env, cpls[0], req, what="poisoned CfgWr0")
    assert cpls[0].byte_count == 4
    assert await tb.cfg_read_dword(Hdr.INTERRUPT_LINE) == line, "poisoned config write landed"
    await check_logged("poisoned CfgWr0")

    for n in (1, 2):
        bad = mem_tlp(True, env.entry - 4 * (n - 1), n, data=[~kept & 0xFFFF_FFFF] * n)
        bad.ep = True
        await tb.expect_no_completion(bad)
        assert await tb.rc.mem_read_dword(env.entry) == kept, f"{n}-DW poisoned write landed"
        await check_logged(f"{n}-DW poisoned MWr")
    await env.sanity()
    tb.check_clean()


async def _drive_beats(tb, beats):
    """Drive raw ``(data, keep, first, last)`` beats on rx while the bridge is idle (it only
    drives ``rx`` when it has a TLP queued), as the bridge does: from clock-edge callbacks, each
    beat held until accepted; ``valid`` is dropped afterwards."""
    dut, w = tb.dut, tb.width
    await tb.rx_drained()
    await RisingEdge(dut.clk)
    for b in beats:
        dut.rx__payload.value = pack_beat(*b, w)
        dut.rx__valid.value = 1
        while True:
            await RisingEdge(dut.clk)
            if dut.rx__ready.value:
                break
    dut.rx__valid.value = 0
    await tb.cycles(10)


@cocotb.test()
async def broken_frames_test(dut):
    """PCI-01, DESIGN.md section 3: beats that break the stream framing are a malformed TLP
    (dropped, Fatal Error Detected) and never desynchronise the link: the tail of a TLP without
    its ``first`` beat, a TLP cut short by the ``first`` beat of the next one (the next one is
    served), a single-beat TLP without ``first``.  The broken write's data never lands."""
    env = await _Env().start(dut)
    tb = env.tb
    kept = await env.sanity()
    table = tb.bar_addr + tb.desc.regions["msix_table"]["offset"]
    # 16 DWs over entries 0..3: at least three beats at every width; entry 0's data is env.entry
    long_wr, _ = tb.dws(mem_tlp(True, table, 16, data=[0xBAD0_0000 + i for i in range(16)]))
    beats = dws_to_beats(long_wr, tb.width)
    assert len(beats) >= 3
    one, _ = tb.dws(mem_tlp(True, env.entry, data=[~kept & 0xFFFF_FFFF]))
    one_beats = dws_to_beats(one, tb.width)
    nofirst = [(d, k, False, last) for d, k, _, last in one_beats]
    mf0 = tb.error_count("err_malformed")

    async def check(what):
        sta = await env.devsta()
        assert sta & DevSta.FATAL, f"{what}: Fatal Error Detected not set ({sta:#x})"
        await env.clear_errors()
        # the link is in step: a read completes with the old value
        assert await tb.rc.mem_read_dword(env.entry) == kept, f"{what}: broken write landed"

    await _drive_beats(tb, beats[1:])
    await check("TLP without its first beat")
    await _drive_beats(tb, beats[:2])
    # the next TLP's first beat cuts the open one; that TLP itself is served
    cpls = await tb.raw_request(mem_tlp(False, env.entry))
    assert cpls[0].status == CplStatus.SC and int.from_bytes(cpls[0].data, "little") == kept, \
        f"the TLP after a cut one: {cpls[0]!r}"
    await check("TLP cut by a new first beat")
    await _drive_beats(tb, nofirst)
    await check("single-beat TLP without first")
    if mf0 is not None:
        assert tb.error_count("err_malformed") - mf0 == 3, "err_malformed pulses"
    await env.sanity()
    tb.check_clean()


@cocotb.test()
async def power_states_test(dut):
    """PCI-01: through the root complex, PowerState 1 and 2 are discarded (PMC: no D1, no D2;
    PCI PM 1.2 3.2.4); in D3hot a memory read gets UR and a memory write is dropped (PCIe
    5.3.1.4.1) while configuration requests are served; back in D0 the BAR answers with its old
    contents (No_Soft_Reset)."""
    env = await _Env().start(dut)
    tb, dev = env.tb, env.dev
    kept = await env.sanity()
    caps = await tb.capabilities()
    pm = tb.find_cap(caps, CapId.PM).offset
    pmc = (await tb.cfg_read_dword(pm)) >> 16
    assert not pmc >> 9 & 3, f"PMC {pmc:#06x} advertises D1 / D2"
    csr = pm + 4
    for state, want in ((1, 0), (2, 0), (3, 3), (1, 3), (2, 3), (0, 0)):
        await tb.cfg_write_dword(csr, state, fbe=0b0001)
        got = await tb.cfg_read_dword(csr) & 3
        assert got == want, f"PowerState {state} written: reads {got}, expected {want}"
    await tb.cfg_write_dword(csr, 3, fbe=0b0001)
    req = mem_tlp(False, env.entry)
    cpls = await tb.raw_request(req, settle=20)
    assert len(cpls) == 1, f"expected one completion, got {cpls}"
    _check_ur(env, cpls[0], req, what="MRd in D3hot")
    await tb.expect_no_completion(mem_tlp(True, env.entry, data=[~kept & 0xFFFF_FFFF]))
    assert await env.devsta() & DevSta.UNSUPPORTED_REQUEST
    assert await dev.config_read_dword(Hdr.VENDOR_ID) == dev.vendor_id | dev.device_id << 16
    await tb.cfg_write_dword(csr, 0, fbe=0b0001)
    assert await tb.rc.mem_read_dword(env.entry) == kept, "a write in D3hot landed"
    await env.clear_errors()
    await env.sanity()
    tb.check_clean()
