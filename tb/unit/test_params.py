"""VirtioPciParams: validation messages and the BAR layout it computes (DESIGN.md section 6)."""
import re

import pytest

from virtio_pci.params import VirtioPciParams, Feature, PAGE, DEVICE_TYPES, TRANSITIONAL_IDS

ND = 1 << Feature.NOTIFICATION_DATA
V1 = 1 << Feature.VERSION_1

BAD = [
    (dict(device_type=7), "device type must be one of [1, 2, 3, 4, 5, 8, 9, 16, 18, 19, 26], not 7"),
    (dict(num_queues=0), "queue count must be 1..32768, not 0"),
    (dict(num_queues=32769), "queue count must be 1..32768, not 32769"),
    (dict(queue_max_size=0), "queue maximum size must be a power of two up to 32768, not 0"),
    (dict(queue_max_size=100), "queue maximum size must be a power of two up to 32768, not 100"),
    (dict(queue_max_size=65536), "queue maximum size must be a power of two up to 32768, not 65536"),
    (dict(features=-1), "features must fit in 128 bits, not -1"),
    (dict(features=1 << 128), f"features must fit in 128 bits, not {1 << 128}"),
    (dict(features=1 << Feature.RING_RESET), "features must offer VERSION_1 (bit 32)"),
    (dict(msix_vectors=0), "MSI-X vector count must be 1..2048, not 0"),
    (dict(msix_vectors=2049), "MSI-X vector count must be 1..2048, not 2049"),
    (dict(notify_off_multiplier=1), "notify_off_multiplier must be 0 or an even power of two, not 1"),
    (dict(notify_off_multiplier=6), "notify_off_multiplier must be 0 or an even power of two, not 6"),
    (dict(notify_off_multiplier=2),
     "notify_off_multiplier must be 0 or a multiple of 4 with NOTIFICATION_DATA, not 2"),
    (dict(data_width=32), "TLP data width must be 64, 128 or 256, not 32"),
    (dict(data_width=512), "TLP data width must be 64, 128 or 256, not 512"),
    (dict(mem_bar=1), "memory BAR must be 0, 2 or 4 (64-bit BAR pair), not 1"),
    (dict(mem_bar=6), "memory BAR must be 0, 2 or 4 (64-bit BAR pair), not 6"),
    (dict(transitional=True),
     "a transitional device keeps BAR0 for the legacy I/O header: choose mem_bar 2 or 4"),
    (dict(transitional=True, mem_bar=2, device_type=16), "device type 16 has no transitional Device ID"),
    (dict(device_cfg_size=0), "device config size must be a multiple of 4 in 4..4096, not 0"),
    (dict(device_cfg_size=6), "device config size must be a multiple of 4 in 4..4096, not 6"),
    (dict(device_cfg_size=4100), "device config size must be a multiple of 4 in 4..4096, not 4100"),
    (dict(device_cfg_size=8, device_cfg_init=bytes(9)), "device_cfg_init is longer than device_cfg_size"),
    (dict(max_payload_supported=64),
     "max payload supported must be a power of two in 128..4096, not 64"),
    (dict(max_payload_supported=8192),
     "max payload supported must be a power of two in 128..4096, not 8192"),
    (dict(subsystem_id=0x3F),
     "a non-transitional device should have subsystem id >= 0x40 (PCI-07), not 0x3f"),
    (dict(transitional=True, mem_bar=2, io_bar_size=0x30), "I/O BAR size must be 32..256 bytes, not 48"),
    (dict(transitional=True, mem_bar=2, io_bar_size=0x200), "I/O BAR size must be 32..256 bytes, not 512"),
    (dict(transitional=True, mem_bar=2, device_cfg_size=0x40),
     "the legacy header (24 bytes with MSI-X) and 64 bytes of device configuration do not fit in an I/O BAR of 64 bytes (LEG-03)"),
    (dict(transitional=True, mem_bar=2, legacy_guard=True),
     "legacy_guard is for non-transitional devices (a transitional one has the legacy header)"),
    (dict(legacy_guard=True), "legacy_guard puts an I/O BAR in BAR0: choose mem_bar 2 or 4"),
    (dict(vendor_id=0x1_0000), "vendor ID must be 0..0xFFFF, not 0x10000"),
    (dict(subsystem_vendor_id=-1), "subsystem vendor ID must be 0..0xFFFF, not -0x1"),
    (dict(subsystem_id=0x1_2345), "subsystem ID must be 0..0xFFFF, not 0x12345"),
    (dict(revision=0x100), "revision must be 0..255, not 256"),
    (dict(device_cfg_backend="rom"),
     "device config back-end must be 'regfile' or 'external', not 'rom'"),
]


@pytest.mark.parametrize("kw,msg", BAD, ids=[next(iter(k)) + "=" + str(next(iter(k.values())))
                                             for k, _ in BAD])
def test_bad_value_raises_with_message(kw, msg):
    with pytest.raises(ValueError, match="^" + re.escape(msg) + "$"):
        VirtioPciParams(**kw)


@pytest.mark.parametrize("kw", [
    dict(), dict(notify_off_multiplier=0), dict(notify_off_multiplier=4096),
    dict(features=V1, notify_off_multiplier=2), dict(transitional=True, mem_bar=2),
    dict(transitional=True, mem_bar=4, device_type=2, io_bar_size=0x100),
    dict(num_queues=32768, queue_max_size=32768), dict(device_cfg_size=4096),
    dict(max_payload_supported=4096, data_width=64), dict(msix_vectors=2048),
])
def test_good_values_accepted(kw):
    VirtioPciParams(**kw)


def test_frozen():
    p = VirtioPciParams()
    with pytest.raises(Exception):
        p.num_queues = 5
    assert p.replace(num_queues=5).num_queues == 5
    with pytest.raises(ValueError, match="queue count"):
        p.replace(num_queues=0)


def test_round_trip_dict():
    p = VirtioPciParams(num_queues=7, device_cfg_init=b"\x01\x02", features=V1 | ND | (1 << 100))
    assert VirtioPciParams.from_dict(p.to_dict()) == p
    with pytest.raises(ValueError, match="^unknown parameters: bogus$"):
        VirtioPciParams.from_dict({**p.to_dict(), "bogus": 1})


def test_identity():
    p = VirtioPciParams(device_type=2, subsystem_id=0x1234, revision=3)
    assert (p.device_id, p.revision_id, p.subsystem_device_id, p.class_code) == (0x1042, 3, 0x1234, 0x010000)
    t = VirtioPciParams(device_type=2, transitional=True, mem_bar=2)
    assert (t.device_id, t.revision_id, t.subsystem_device_id) == (0x1001, 0, 2)
    for dt in DEVICE_TYPES:
        assert VirtioPciParams(device_type=dt).device_id == 0x1040 + dt
    for dt, did in TRANSITIONAL_IDS.items():
        assert VirtioPciParams(device_type=dt, transitional=True, mem_bar=2).device_id == did
    assert [VirtioPciParams(max_payload_supported=128 << c).mps_supported_code for c in range(6)] == \
        list(range(6))


LAYOUTS = [
    dict(msix_vectors=2), dict(msix_vectors=64), dict(msix_vectors=2048),
    dict(msix_vectors=65, num_queues=100), dict(num_queues=1024, notify_off_multiplier=4096),
    dict(features=V1, notify_off_multiplier=2, num_queues=2000), dict(notify_off_multiplier=0),
    dict(mem_bar=4, device_cfg_size=4096), dict(transitional=True, mem_bar=2, msix_vectors=2048),
]


@pytest.mark.parametrize("kw", LAYOUTS, ids=lambda kw: ",".join(f"{k}={v}" for k, v in kw.items()))
def test_region_layout(kw):
    p = VirtioPciParams(**kw)
    regions = p.regions
    assert list(regions) == ["common", "isr", "device", "notify", "msix_table", "msix_pba"]
    size = p.mem_bar_size
    assert size & (size - 1) == 0 and size >= 4 * PAGE, "BAR size is a power of two, at least 16 KiB"
    spans = []
    for r in regions.values():
        assert r.bar == p.mem_bar
        assert r.offset % PAGE == 0, f"{r.name} not page aligned"
        assert r.span % PAGE == 0 and r.span & (r.span - 1) == 0
        assert r.offset % r.span == 0, f"{r.name} not naturally aligned to its decoded span"
        assert r.length <= r.span
        assert r.offset + r.span <= size, f"{r.name} runs past the BAR"
        spans.append((r.offset, r.offset + r.span))
    spans.sort()
    for (a0, a1), (b0, b1) in zip(spans, spans[1:]):
        assert a1 <= b0, "regions overlap"

    # MSI-X table: 16 bytes per vector; PBA: one bit per vector in whole QWORDs
    v = p.msix_vectors
    assert regions["msix_table"].length == 16 * v
    assert regions["msix_pba"].length == 8 * -(-v // 64)
    assert regions["msix_pba"].length * 8 >= v

    # notify: every queue's doorbell (queue_notify_off = queue index) fits the advertised length
    width = 4 if p.offers(Feature.NOTIFICATION_DATA) else 2
    m = p.notify_off_multiplier
    for q in (0, p.num_queues - 1):
        assert q * m + width <= regions["notify"].length
    if m:
        assert (p.num_queues - 1) * m + width <= regions["notify"].length
    assert regions["common"].length >= 0x38 and regions["isr"].length >= 1
    assert regions["device"].length == p.device_cfg_size


def test_msix_sizes():
    for v, table, pba in ((2, 32, 8), (64, 1024, 8), (65, 1040, 16), (2048, 32768, 256)):
        p = VirtioPciParams(msix_vectors=v)
        assert (p.msix_table_length, p.msix_pba_length) == (table, pba)
        assert p.regions["msix_table"].span >= table


@pytest.mark.parametrize("bit", [30, 37, 41, 45])
def test_unimplemented_transport_features_refused(bit):
    """FEA-03: never offer a feature the device could not support if accepted."""
    from virtio_pci.params import Feature
    with pytest.raises(ValueError, match=r"reserved or unimplemented transport bits \(FEA-03\)"):
        VirtioPciParams(features=(1 << Feature.VERSION_1) | (1 << bit))


def test_legacy_only_features_need_transitional():
    """FEA-03: NOTIFY_ON_EMPTY and ANY_LAYOUT exist only for legacy drivers."""
    from virtio_pci.params import Feature
    f = (1 << Feature.VERSION_1) | (1 << Feature.ANY_LAYOUT)
    with pytest.raises(ValueError, match="FEA-03"):
        VirtioPciParams(features=f)
    VirtioPciParams(features=f, transitional=True, mem_bar=2)


@pytest.mark.parametrize("bits, message, needed", [
    ((22,), "features offer bit 22 without its prerequisite bit 17 (FEA-01)", (17,)),
    ((11,), "features offer bit 11 without its prerequisite bit 0 (FEA-01)", (0,)),
    ((0, 13), "features offer bit 13 without its prerequisite bit 11 or 12 (FEA-01)", (12,)),
    ((1, 9), "features offer bit 9 without its prerequisite bit 7 or 8 (FEA-01)", (7,)),
    ((18,), "features offer bit 18 without its prerequisite bit 17 (FEA-01)", (17,)),
])
def test_device_feature_prerequisites(bits, message, needed):
    """FEA-01: an offered virtio-net bit without its prerequisites (VIRTIO 1.3 5.1.3.1) is a
    construction error naming the missing bit; the same bits with their prerequisites build."""
    feats = V1 | sum(1 << b for b in bits)
    with pytest.raises(ValueError, match=re.escape(message)):
        VirtioPciParams(device_type=1, features=feats)
    fixed = feats | sum(1 << b for b in needed)
    assert VirtioPciParams(device_type=1, features=fixed).features == fixed
    # the same bits on a device type without those rules (blk: 5.2.3 states none) are accepted
    assert VirtioPciParams(device_type=2, features=feats).features == feats


@pytest.mark.parametrize("pairs", [1, 2, 8])
def test_net_preset_offers_legal_set(pairs):
    """FEA-01: the virtio-net preset offers VIRTIO_NET_F_MQ only with VIRTIO_NET_F_CTRL_VQ
    (5.1.3.1), so device_feature select 0 reads 0x00430028 with more than one pair."""
    p = VirtioPciParams.virtio_net(queue_pairs=pairs)
    assert p.offers(22) == (pairs > 1)
    assert p.offers(17) == (pairs > 1)
    assert p.feature_words[0] == (0x00430028 if pairs > 1 else 0x00010028)
