"""Hard-IP mode of the configuration space (``VirtioPciParams(hard_ip="cfg_ext")``,
config/config_space.py): the hard IP owns header, BARs and enables; the core takes them from the
``hip`` status port and answers memory requests addressed by their offset inside the BAR."""
import pytest
from cocotbext.pcie.core.tlp import CplStatus, TlpType

from virtio_pci.config.capabilities import build_config_image
from virtio_pci.params import VirtioPciParams
from tb.tlp.requests import cfg_req, mem_req
from .test_endpoint_sim import Endpoint, run

BUS, DEV = 0x12, 3
OWN = (BUS << 8) | (DEV << 3)


def _hip(ctx, dut, **kw):
    v = {"mem_enable": 1, "bus_master": 1, "intx_disable": 0, "msix_enable": 0, "msix_fmask": 0,
         "mps": 1, "mrrs": 2, "bus": BUS, "device": DEV, "flr": 0}
    v.update(kw)
    for k, x in v.items():
        ctx.set(getattr(dut.hip, k), x)


def test_hard_ip_mode_state_from_status_port():
    """No requirement ID (issue 15 part 2): in hard-IP mode a memory read at the BAR offset of the common configuration
    is answered with the IP's bus/device number as completer ID (no CfgRd0 ever reached the core);
    with Memory Space Enable low on the status port it gets UR; a forwarded CfgRd0 of a virtio
    capability dword is still answered from the image; an FLR pulse on the status port resets
    device_status."""
    p = VirtioPciParams(hard_ip="cfg_ext")
    img = build_config_image(p)
    ep = Endpoint(p, "hard_ip_mode")
    common = p.regions["common"].offset
    vcap = next(c for c in img.caps if c.cap_id == 0x09)

    async def main(ctx):
        dut = ep.dut
        _hip(ctx, dut)
        await ctx.tick()
        await ep.send(ctx, [mem_req(common + 0x14, write=True, data=[1], fbe=0x1),
                            mem_req(common + 0x14, fbe=0x1, tag=1)])
        tlps = await ep.wait_tlps(ctx, 1)
        t = tlps[0][1]
        assert t.fmt_type == TlpType.CPL_DATA and t.status == CplStatus.SC and t.tag == 1
        assert int(t.completer_id) == OWN and t.get_data()[0] == 1
        assert ctx.get(dut.device_status) == 1
        _hip(ctx, dut, mem_enable=0)
        await ep.send(ctx, [mem_req(common + 0x14, fbe=0x1, tag=2)])
        t = (await ep.wait_tlps(ctx, 2))[1][1]
        assert t.status == CplStatus.UR and t.tag == 2
        _hip(ctx, dut)
        await ep.send(ctx, [cfg_req(vcap.offset // 4, bus=BUS, dev=DEV, tag=3)])
        t = (await ep.wait_tlps(ctx, 3))[2][1]
        assert int.from_bytes(t.get_data()[:4], "little") == img.dword(vcap.offset // 4)[0]
        _hip(ctx, dut, flr=1)
        await ctx.tick()
        _hip(ctx, dut)
        for _ in range(4):
            await ctx.tick()
        assert ctx.get(dut.device_status) == 0
    run(ep, main)


def test_hard_ip_mode_parameters():
    """No requirement ID: the soft mode stays the default; hard-IP mode refuses an I/O BAR and
    unknown modes."""
    assert VirtioPciParams().hard_ip is None
    with pytest.raises(ValueError, match="hard_ip must be None or 'cfg_ext', not 'x'"):
        VirtioPciParams(hard_ip="x")
    with pytest.raises(ValueError, match="hard-IP mode has no I/O BAR"):
        VirtioPciParams(hard_ip="cfg_ext", transitional=True, mem_bar=2)
