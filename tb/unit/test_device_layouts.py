"""The provided device-config back-ends: virtio-net and virtio-blk layouts selected by parameter,
read through the register file exactly as the DEVICE region serves them (DCF-D1: little-endian)."""
import struct

import pytest

from virtio_pci.params import VirtioPciParams
from virtio_pci.virtio.device_cfg import DeviceCfgRegFile
from virtio_pci.virtio.device_layouts import BLK_FIELDS, NET_FIELDS

from .helpers import Bench


def read_all(params):
    """Read every DW of the register file through its request port."""
    dut = DeviceCfgRegFile(params)
    bench = Bench(dut, "dcfg_layout")
    out = []

    async def tb(ctx):
        ctx.set(dut.resp.ready, 1)
        for i in range(params.device_cfg_size // 4):
            ctx.set(dut.req.valid, 1)
            ctx.set(dut.req.payload, {"addr": i, "write": 0, "be": 0xF, "data": 0})
            assert ctx.get(dut.resp.valid), "the register file answers in the request's cycle"
            out.append(ctx.get(dut.resp.payload))
            await ctx.tick()
        ctx.set(dut.req.valid, 0)

    bench.add(tb)
    bench.run()
    return b"".join(v.to_bytes(4, "little") for v in out)


def field(raw, fields, name):
    off, fmt = fields[name]
    return struct.unpack_from(fmt, raw, off)[0]


def test_virtio_net_layout():
    """DCF-01, DCF-D1, DCF-D2, FEA-01: virtio-net preset: MAC, status, queue pairs and MTU at
    their 5.1.4 offsets, little-endian, with VIRTIO_NET_F_MAC/STATUS/MTU/MQ offered, and
    VIRTIO_NET_F_CTRL_VQ with MQ (MQ requires it, VIRTIO 1.3 5.1.3.1)."""
    p = VirtioPciParams.virtio_net(mac=b"\x02\x11\x22\x33\x44\x55", queue_pairs=2, mtu=9000)
    raw = read_all(p)
    assert field(raw, NET_FIELDS, "mac") == b"\x02\x11\x22\x33\x44\x55"
    assert field(raw, NET_FIELDS, "status") == 1
    assert field(raw, NET_FIELDS, "max_virtqueue_pairs") == 2
    assert field(raw, NET_FIELDS, "mtu") == 9000
    assert p.num_queues == 5 and p.device_type == 1
    for bit in (3, 5, 16, 17, 22):
        assert p.offers(bit), f"feature {bit} not offered"
    assert p.device_cfg_size >= 12       # covers every field of the offered features


def test_virtio_blk_layout():
    """DCF-01, DCF-D1, DCF-D2: virtio-blk preset: capacity (64-bit), block size and segment
    limits at their 5.2.4 offsets, little-endian."""
    p = VirtioPciParams.virtio_blk(capacity=0x1_2345_6789, blk_size=4096, queues=4)
    raw = read_all(p)
    assert field(raw, BLK_FIELDS, "capacity") == 0x1_2345_6789
    assert field(raw, BLK_FIELDS, "blk_size") == 4096
    assert field(raw, BLK_FIELDS, "num_queues") == 4
    assert p.device_id == 0x1042 and p.num_queues == 4
    for bit in (1, 2, 6, 12):
        assert p.offers(bit), f"feature {bit} not offered"


def test_layout_rejects_bad_mac():
    with pytest.raises(ValueError, match="a MAC address has 6 bytes, not 5"):
        VirtioPciParams.virtio_net(mac=b"\x00" * 5)


@pytest.mark.parametrize("name", ["virtio-net.json", "virtio-blk.json", "virtio-net-w256-m0.json"])
def test_example_parameter_files(name):
    """The example parameter files of `make verilog PARAMS=...` / `make sim PARAMS=...` load."""
    import os
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    p = VirtioPciParams.from_file(os.path.join(root, "examples", name))
    assert p.features >> 32 & 1


def test_preset_unknown():
    with pytest.raises(ValueError, match="preset must be 'virtio_net', 'virtio_blk' or 'virtio_rng', not 'x'"):
        VirtioPciParams.from_dict({"preset": "x"})
