"""The bring-up steps both vendor hard-IP adapter tests (P-Tile, UltraScale+) run after the root
complex enumerated the function: on cocotbext-pcie's model of the IP, with ``tb`` giving ``rc``,
``bar_addr``, ``backend`` (tb.models.virtio_backend) and ``desc``.

* ``driver_ok_and_doorbells``: the driver model's init to DRIVER_OK, then one doorbell per queue,
  each reaching the back-end;
* ``msix_every_vector``: MSI-X as Linux's vp_find_vqs does it (enable with Function Mask, program
  every entry masked, unmask, vectors to config and queues), then one interrupt request per
  queue and one configuration change, each delivered to its target (32- and 64-bit addresses
  alternate);
* ``common_read_matches``: a 14-DW memory read of the common configuration equals 14 single-DW
  reads (multi-DW payload realigned by the adapter); returns its bytes.
"""
from cocotb.triggers import with_timeout

from tb.host.virtio_driver import Status

__all__ = ["driver_ok_and_doorbells", "msix_every_vector", "common_read_matches"]


async def driver_ok_and_doorbells(tb, drv):
    nq = tb.desc.params["num_queues"]
    await drv.init()
    assert await drv.get_status() & Status.DRIVER_OK
    for vq in drv.vqs.values():
        await drv.kick(vq, 1)
    await with_timeout(tb.backend.wait_doorbells(nq), 200, "us")
    assert sorted(d.queue for d in tb.backend.doorbells) == list(range(nq))


async def msix_every_vector(tb, drv, mx):
    """Returns the number of vectors used."""
    nq = tb.desc.params["num_queues"]
    nvec = min(((await mx.control()) & 0x7FF) + 1, nq + 1)
    await mx.set_control(enable=True, fmask=True)
    targets = [mx.alloc(1, wide=(v % 2 == 1))[0] for v in range(nvec)]
    await mx.program(targets, masked=True)
    await mx.set_control(fmask=False)
    for v in range(nvec):
        await mx.mask(v, False)
    assert await drv.config_vector(0) == 0
    for q in range(nq):
        vec = min(1 + q, nvec - 1)
        assert await drv.queue_vector(q, vec) == vec
    await drv.common_read("device_status")
    for q in range(nq):
        vec = min(1 + q, nvec - 1)
        targets[vec].event.clear()
        tb.backend.irq(queue=q)
        await with_timeout(targets[vec].event.wait(), 100, "us")
    targets[0].event.clear()
    tb.backend.irq(config=True)
    await with_timeout(targets[0].event.wait(), 100, "us")
    return nvec


async def common_read_matches(tb):
    base = tb.bar_addr + tb.desc.regions["common"]["offset"]
    raw = await tb.rc.mem_read(base, 56)
    single = b"".join([(await tb.rc.mem_read_dword(base + 4 * i)).to_bytes(4, "little")
                       for i in range(14)])
    assert raw == single, f"14-DW read {raw.hex()} != DW by DW {single.hex()}"
    assert raw[0x14] & Status.DRIVER_OK, raw.hex()                       # device_status
    return raw
