"""Device-specific configuration layouts for the provided register-file back-end.

VIRTIO 1.3 section 5.1.4 (virtio-net ``struct virtio_net_config``) and 5.2.4 (virtio-blk
``struct virtio_blk_config``).  Each builder returns the little-endian bytes of the structure
and the device feature bits that make its optional fields valid; ``VirtioPciParams.virtio_net()``
and ``VirtioPciParams.virtio_blk()`` use them to select a back-end by parameter.
"""
import struct

__all__ = ["net_config", "blk_config", "NET_FIELDS", "BLK_FIELDS"]

# field name -> (byte offset, struct format)
NET_FIELDS = {
    "mac": (0, "6s"), "status": (6, "<H"), "max_virtqueue_pairs": (8, "<H"), "mtu": (10, "<H"),
    "speed": (12, "<I"), "duplex": (16, "B"), "rss_max_key_size": (17, "B"),
    "rss_max_indirection_table_length": (18, "<H"), "supported_hash_types": (20, "<I"),
}
NET_SIZE = 24
NET_F_MTU, NET_F_MAC, NET_F_STATUS, NET_F_CTRL_VQ, NET_F_MQ, NET_F_SPEED_DUPLEX = \
    3, 5, 16, 17, 22, 63

BLK_FIELDS = {
    "capacity": (0, "<Q"), "size_max": (8, "<I"), "seg_max": (12, "<I"), "cylinders": (16, "<H"),
    "heads": (18, "B"), "sectors": (19, "B"), "blk_size": (20, "<I"),
    "physical_block_exp": (24, "B"), "alignment_offset": (25, "B"), "min_io_size": (26, "<H"),
    "opt_io_size": (28, "<I"), "writeback": (32, "B"), "num_queues": (34, "<H"),
    "max_discard_sectors": (36, "<I"), "max_discard_seg": (40, "<I"),
    "discard_sector_alignment": (44, "<I"), "max_write_zeroes_sectors": (48, "<I"),
    "max_write_zeroes_seg": (52, "<I"), "write_zeroes_may_unmap": (56, "B"),
}
BLK_SIZE = 60
BLK_F_SIZE_MAX, BLK_F_SEG_MAX, BLK_F_GEOMETRY, BLK_F_BLK_SIZE, BLK_F_TOPOLOGY, BLK_F_MQ = \
    1, 2, 4, 6, 10, 12


def _pack(fields, size, values):
    buf = bytearray(size)
    for name, value in values.items():
        if name not in fields:
            raise ValueError(f"unknown configuration field {name!r}")
        off, fmt = fields[name]
        struct.pack_into(fmt, buf, off, value)
    return bytes(buf)


def net_config(mac=b"\x52\x54\x00\x12\x34\x56", status=1, max_virtqueue_pairs=1, mtu=1500):
    """virtio-net configuration: MAC, link up, queue pairs and MTU (with their feature bits).

    More than one queue pair offers VIRTIO_NET_F_MQ, and with it VIRTIO_NET_F_CTRL_VQ, which MQ
    requires (5.1.3.1; the driver sets the number of pairs through the control queue)."""
    if len(mac) != 6:
        raise ValueError(f"a MAC address has 6 bytes, not {len(mac)}")
    data = _pack(NET_FIELDS, NET_SIZE, {"mac": bytes(mac), "status": status,
                                        "max_virtqueue_pairs": max_virtqueue_pairs, "mtu": mtu})
    feats = (1 << NET_F_MAC) | (1 << NET_F_STATUS) | (1 << NET_F_MTU)
    if max_virtqueue_pairs > 1:
        feats |= (1 << NET_F_MQ) | (1 << NET_F_CTRL_VQ)
    return data, feats


def blk_config(capacity=0x10000, blk_size=512, seg_max=126, size_max=0x10000, num_queues=1):
    """virtio-blk configuration: capacity in 512-byte sectors, block size, segment limits."""
    data = _pack(BLK_FIELDS, BLK_SIZE, {"capacity": capacity, "blk_size": blk_size,
                                        "seg_max": seg_max, "size_max": size_max,
                                        "num_queues": num_queues})
    feats = (1 << BLK_F_SIZE_MAX) | (1 << BLK_F_SEG_MAX) | (1 << BLK_F_BLK_SIZE)
    if num_queues > 1:
        feats |= 1 << BLK_F_MQ
    return data, feats
