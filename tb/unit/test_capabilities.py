"""The configuration space image as data (config/capabilities.py).

PCI Local Bus 3.0 section 6 (type-0 header), PCI Express Base 4.0 sections 7.5.2 (PM), 7.5.3 (PCI
Express capability), 7.7.2 (MSI-X), VIRTIO 1.3 sections 4.1.2 (identity) and 4.1.4 (virtio
capabilities).  Every check reads the image bytes with its own walker; the ``caps`` list the image
exports is only compared against those bytes.
"""
import pytest

from virtio_pci.params import VirtioPciParams, Feature
from virtio_pci.config.capabilities import build_config_image, CapId, CfgType

V1 = 1 << Feature.VERSION_1
ND = 1 << Feature.NOTIFICATION_DATA

PARAMS = {
    "default": VirtioPciParams(),
    "blk-64vec": VirtioPciParams(device_type=2, msix_vectors=64, num_queues=16, subsystem_id=0x4242,
                                 revision=7),
    "console-2048vec-bar4": VirtioPciParams(device_type=3, msix_vectors=2048, mem_bar=4,
                                            notify_off_multiplier=0, max_payload_supported=512),
    "net-mult2-noND": VirtioPciParams(features=V1, notify_off_multiplier=2, num_queues=9,
                                      msix_vectors=2),
    "net-transitional": VirtioPciParams(transitional=True, mem_bar=2, io_bar_size=0x80),
    "blk-transitional-bar4": VirtioPciParams(device_type=2, transitional=True, mem_bar=4,
                                             device_cfg_size=0x3C, io_bar_size=0x80),
}


@pytest.fixture(params=list(PARAMS), scope="module")
def case(request):
    p = PARAMS[request.param]
    return p, build_config_image(p)


def rd(img, off, n):
    return int.from_bytes(img.init[off:off + n], "little")


def walk(img):
    """Walk the capability list like Linux's __pci_find_next_cap_ttl: returns [(ptr, id)]."""
    assert rd(img, 0x06, 2) & (1 << 4), "Status.Capabilities List must be set"
    ptr = rd(img, 0x34, 1)
    out = []
    while ptr:
        assert len(out) < 48, "capability list does not terminate within 48 hops"
        assert 0x40 <= ptr <= 0xFC, f"capability pointer {ptr:#x} outside 0x40..0xFC"
        assert ptr % 4 == 0, f"capability pointer {ptr:#x} not dword aligned"
        assert ptr not in [p for p, _ in out], "capability list loops"
        out.append((ptr, rd(img, ptr, 1)))
        ptr = rd(img, ptr + 1, 1)
    return out


def test_identity(case):
    p, img = case
    assert rd(img, 0x00, 2) == 0x1AF4
    if p.transitional:
        did = {1: 0x1000, 2: 0x1001, 3: 0x1003}[p.device_type]
        assert rd(img, 0x02, 2) == did
        assert rd(img, 0x08, 1) == 0, "transitional devices have Revision ID 0"
        assert rd(img, 0x2E, 2) == p.device_type, "transitional Subsystem ID is the device type"
    else:
        assert rd(img, 0x02, 2) == 0x1040 + p.device_type
        assert rd(img, 0x08, 1) == p.revision >= 1
        assert rd(img, 0x2E, 2) == p.subsystem_id >= 0x40
    assert rd(img, 0x2C, 2) == p.subsystem_vendor_id
    assert rd(img, 0x09, 3) == {1: 0x020000, 2: 0x010000, 3: 0x078000}[p.device_type]
    assert rd(img, 0x0E, 1) == 0x00, "type-0 header, single function"
    assert rd(img, 0x3D, 1) == 0x01, "INTA"
    assert rd(img, 0x0F, 1) == 0 and rd(img, 0x0D, 1) == 0
    # BARs: one 64-bit non-prefetchable memory BAR; I/O BAR0 only when transitional
    for bar in range(6):
        v = rd(img, 0x10 + 4 * bar, 4)
        if bar == p.mem_bar:
            assert v == 0b100
        elif bar == p.mem_bar + 1:
            assert v == 0
        elif bar == 0 and p.transitional:
            assert v == 0b1
        else:
            assert v == 0
    assert rd(img, 0x30, 4) == 0, "no expansion ROM"


def test_capability_chain(case):
    p, img = case
    chain = walk(img)
    ids = [cid for _, cid in chain]
    assert ids.count(CapId.PM) == 1 and ids.count(CapId.PCIE) == 1 and ids.count(CapId.MSIX) == 1
    assert CapId.MSI not in ids
    assert [(c.offset, c.cap_id) for c in img.caps] == chain
    # structures do not overlap and stay in the first 256 bytes
    spans = sorted((c.offset, c.offset + c.length) for c in img.caps)
    for (a0, a1), (b0, b1) in zip(spans, spans[1:]):
        assert a1 <= b0
    assert spans[-1][1] <= 0x100
    assert img.capability_chain() == chain


def vendor_caps(img):
    return {rd(img, ptr + 3, 1): ptr for ptr, cid in walk(img) if cid == CapId.VENDOR}


def test_virtio_caps(case):
    p, img = case
    caps = vendor_caps(img)
    assert sorted(caps) == [CfgType.COMMON, CfgType.NOTIFY, CfgType.ISR, CfgType.DEVICE, CfgType.PCI_CFG]
    regions = p.regions
    names = {CfgType.COMMON: "common", CfgType.NOTIFY: "notify", CfgType.ISR: "isr",
             CfgType.DEVICE: "device"}
    for cfg_type, name in names.items():
        ptr = caps[cfg_type]
        r = regions[name]
        cap_len = rd(img, ptr + 2, 1)
        assert cap_len == (20 if cfg_type == CfgType.NOTIFY else 16)
        bar, off, length = rd(img, ptr + 4, 1), rd(img, ptr + 8, 4), rd(img, ptr + 12, 4)
        assert (bar, off, length) == (p.mem_bar, r.offset, r.length), name
        assert rd(img, ptr + 5, 3) == 0, "id and padding are zero"
        assert off + length <= p.mem_bar_size, f"{name} runs past the BAR"
        assert length > 0
        cap = next(c for c in img.caps if c.offset == ptr)
        assert (cap.cfg_type, cap.bar, cap.bar_offset, cap.bar_length, cap.length) == \
            (cfg_type, bar, off, length, cap_len)
    common, notify, device = (caps[t] for t in (CfgType.COMMON, CfgType.NOTIFY, CfgType.DEVICE))
    assert rd(img, common + 8, 4) % 4 == 0 and rd(img, common + 12, 4) >= 0x38
    notify_align = 4 if p.offers(Feature.NOTIFICATION_DATA) else 2
    assert rd(img, notify + 8, 4) % notify_align == 0
    assert rd(img, device + 8, 4) % 4 == 0
    mult = rd(img, notify + 16, 4)
    assert mult == p.notify_off_multiplier
    assert mult == 0 or (mult & (mult - 1) == 0 and mult % notify_align == 0)
    # every queue's doorbell (queue_notify_off = queue index) is inside the notify structure
    assert (p.num_queues - 1) * mult + notify_align <= rd(img, notify + 12, 4)
    # PCI configuration access capability: 20 bytes, fields start at zero
    pc = caps[CfgType.PCI_CFG]
    assert rd(img, pc + 2, 1) == 20
    assert all(b == 0 for b in img.init[pc + 4:pc + 20])


def test_pm_pcie_msix(case):
    p, img = case
    chain = dict((cid, ptr) for ptr, cid in walk(img))
    pm, ex, mx = chain[CapId.PM], chain[CapId.PCIE], chain[CapId.MSIX]
    assert rd(img, pm + 2, 2) & 0x7 == 3, "PM version 3"
    assert rd(img, pm + 4, 2) & 0x3 == 0, "reset power state D0"
    assert rd(img, ex + 2, 2) & 0xF == 2, "PCIe capability version 2"
    assert (rd(img, ex + 2, 2) >> 4) & 0xF == 0, "PCI Express Endpoint"
    devcap = rd(img, ex + 4, 4)
    assert devcap & 0x7 == p.mps_supported_code
    assert 128 << (devcap & 0x7) == p.max_payload_supported
    assert devcap >> 28 & 1, "Function Level Reset capable"
    assert (devcap >> 3) & 0x3 == 0, "no phantom functions"
    devctl = rd(img, ex + 8, 2)
    assert (devctl >> 5) & 7 == 0, "MPS resets to 128 bytes"
    assert (devctl >> 12) & 7 == 2, "MRRS resets to 512 bytes"
    # MSI-X
    ctl = rd(img, mx + 2, 2)
    assert ctl & 0x7FF == p.msix_vectors - 1
    assert ctl & 0xC000 == 0, "MSI-X disabled and unmasked at reset"
    tbl, pba = rd(img, mx + 4, 4), rd(img, mx + 8, 4)
    regions = p.regions
    assert tbl & 7 == p.mem_bar and tbl & ~7 == regions["msix_table"].offset
    assert pba & 7 == p.mem_bar and pba & ~7 == regions["msix_pba"].offset
    assert regions["msix_table"].length == 16 * p.msix_vectors
    assert regions["msix_pba"].length * 8 >= p.msix_vectors


def expected_masks(p, img):
    """The only writable bits of the image: {byte offset: (rw, rw1c)}, built from the specs."""
    chain = dict((cid, ptr) for ptr, cid in walk(img))
    ex, pm, mx = chain[CapId.PCIE], chain[CapId.PM], chain[CapId.MSIX]
    pc = vendor_caps(img)[CfgType.PCI_CFG]
    bar_bits = (p.mem_bar_size - 1).bit_length()
    out = {}

    def put(off, n, rw=0, rw1c=0):
        for i in range(n):
            out[off + i] = ((rw >> 8 * i) & 0xFF, (rw1c >> 8 * i) & 0xFF)

    # Command: I/O space (transitional only), memory space, bus master, parity error response,
    # SERR# enable, interrupt disable
    put(0x04, 2, rw=(1 if p.transitional else 0) | 0x2 | 0x4 | 0x40 | 0x100 | 0x400)
    # Status: master data parity error, signaled/received target abort, received master abort,
    # signaled system error, detected parity error
    put(0x06, 2, rw1c=0xF900)
    put(0x0C, 1, rw=0xFF)                                       # Cache Line Size
    lo = 0x10 + 4 * p.mem_bar
    put(lo, 4, rw=(0xFFFF_FFFF << bar_bits) & 0xFFFF_FFFF)      # BAR: address bits above its size
    put(lo + 4, 4, rw=0xFFFF_FFFF)
    if p.transitional:
        put(0x10, 4, rw=(0xFFFF_FFFF << (p.io_bar_size - 1).bit_length()) & 0xFFFF_FFFF)
    put(0x3C, 1, rw=0xFF)                                       # Interrupt Line
    put(pm + 4, 2, rw=0x0003)                                   # PMCSR PowerState
    # Device Control: everything but Phantom Functions Enable and Aux Power PM Enable (the
    # function implements neither, so they are hardwired to 0) and bit 15 (Initiate FLR reads 0)
    put(ex + 8, 2, rw=0x7FFF & ~(1 << 9) & ~(1 << 10))
    put(ex + 0xA, 2, rw1c=0x000F)                               # Device Status error bits
    put(ex + 0x10, 2, rw=0x00CB)          # Link Control: ASPM, RCB, common clock, extended synch
    put(ex + 0x28, 2, rw=0x0010)          # Device Control 2: Completion Timeout Disable (DMA-14)
    put(mx + 2, 2, rw=0xC000)                                   # MSI-X Enable, Function Mask
    put(pc + 4, 1, rw=0xFF)                                     # virtio_pci_cfg_cap.cap.bar
    put(pc + 8, 8, rw=(1 << 64) - 1)                            # cap.offset, cap.length
    # pci_cfg_data is not a register of the image: virtio/pci_cfg_window.py serves it
    return out


def test_write_masks(case):
    p, img = case
    exp = expected_masks(p, img)
    for off in range(img.size):
        rw, rw1c = exp.get(off, (0, 0))
        assert (img.rw[off], img.rw1c[off]) == (rw, rw1c), \
            f"byte {off:#05x}: rw {img.rw[off]:#04x} rw1c {img.rw1c[off]:#04x}, expected {rw:#04x} {rw1c:#04x}"
        assert not (img.rw[off] & img.rw1c[off])


def test_extended_space_zero(case):
    p, img = case
    assert not any(img.init[0x100:]) and not any(img.rw[0x100:]) and not any(img.rw1c[0x100:])
    assert img.size == 4096
    assert all(i < 0x40 for i in img.used_dwords())


def test_bar_sizing_arithmetic(case):
    """Writing all ones to the BAR pair and reading back gives the BAR size (PCI 3.0 6.2.5.1)."""
    p, img = case
    lo = 0x10 + 4 * p.mem_bar
    v_lo = (rd(img, lo, 4) & ~img.dword(lo // 4)[1]) | (0xFFFF_FFFF & img.dword(lo // 4)[1])
    v_hi = img.dword(lo // 4 + 1)[1]
    size = (~((v_hi << 32) | (v_lo & ~0xF)) & (2 ** 64 - 1)) + 1
    assert size == p.mem_bar_size
    assert v_lo & 0xF == 0b0100, "64-bit, non-prefetchable memory BAR"
