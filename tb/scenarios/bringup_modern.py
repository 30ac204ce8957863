"""The driver part of `make sim` (called by tb/integration/cocotb/bringup_test.py after enumeration).

The Linux-like driver model takes the device from reset to DRIVER_OK, reads the device
configuration with the generation loop, rings every queue's doorbell and, when RING_RESET is
negotiated, resets and re-enables the last queue.  The back-end model acknowledges resets and
records what reaches the back-end ports.  Returns the printable lines: the access transcript
(time, space, direction, address, register, value) and the back-end's view.
"""
from tb.models.virtio_backend import VirtioBackend
from tb.host.virtio_driver import CfgType, F, VirtioPciDriver

__all__ = ["run_driver_scenario", "backend_lines"]


async def run_driver_scenario(tb):
    be = VirtioBackend(tb.dut, tb.desc)
    drv = VirtioPciDriver(tb)
    # a readable transcript: the first 8 queues at most (the parameters allow 32768)
    await drv.init(queues=range(min(tb.desc.params["num_queues"], 8)))
    tr = drv.transcript
    if CfgType.DEVICE in drv.maps:
        tr.note("device configuration (generation loop)")
        n = min(drv.maps[CfgType.DEVICE].length, 8)
        await drv.config_read(0, n if n in (1, 2, 4, 8) else 4)
    tr.note("kick every queue")
    for vq in drv.vqs.values():
        await drv.kick(vq, 1)
    if drv.negotiated(F.RING_RESET) and drv.vqs:
        vq = drv.vqs[max(drv.vqs)]
        await drv.queue_reset(vq.index)
        tr.note(f"re-enable queue {vq.index}")
        await drv.reenable_vq(vq)
        await drv.kick(vq, 1)
    await drv.common_read("device_status")
    await be.wait_doorbells(len(drv.vqs) + (1 if drv.negotiated(F.RING_RESET) else 0))
    lines = ["", f"driver transcript ({len(tr.accesses())} accesses):"]
    lines += ["  " + line for line in tr.lines()]
    lines.append("")
    lines.append(f"negotiated features: {drv.features:#x}; queues: "
                 + ", ".join(f"{q.index} (size {q.size}, doorbell {q.notify_addr:#x})"
                             for q in drv.vqs.values()))
    lines += backend_lines(be)
    return lines


def backend_lines(be, value_digits=8):
    """What the back-end model saw (resets, queue events, doorbells), in time order."""
    events = [(t_req, f"virtio reset requested, acknowledged at {t_ack:.0f} ns")
              for t_req, t_ack in be.resets]
    events += [(e.time_ns, f"queue {e.queue} {'enabled' if e.kind == 0 else 'reset requested'}")
               for e in be.qevents]
    events += [(t, f"queue {q} reset done") for t, q in be.qresets_done]
    events += [(d.time_ns, f"doorbell queue {d.queue} value {d.value:#0{value_digits + 2}x}"
                           f"{' (32-bit)' if d.wide else ''}") for d in be.doorbells]
    return ["back-end ports:"] + [f"  {t:10.0f} ns  {text}"
                                  for t, text in sorted(events, key=lambda e: e[0])]
