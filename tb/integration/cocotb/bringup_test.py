"""`make sim`: the bring-up scenario.

The root complex enumerates the RTL, the capability list is walked with config reads and
printed (type, BAR, offset, length), and, when the virtio driver model is available, the driver
takes the device to DRIVER_OK, rings every queue's doorbell and prints a TLP transcript.  A
transitional build is driven by the legacy driver model (tb/scenarios/bringup_legacy.py) instead;
``VPCI_BRINGUP_DRIVER=modern|legacy`` chooses explicitly.
"""
import os

import cocotb

from tb.env.testbench import TB

CFG_TYPES = {1: "common", 2: "notify", 3: "isr", 4: "device", 5: "pci_cfg", 8: "shm", 9: "vendor"}
CAP_NAMES = {0x01: "power management", 0x05: "MSI", 0x09: "vendor (virtio)", 0x10: "PCI Express",
             0x11: "MSI-X"}


async def walk_caps(tb):
    caps = []
    ptr = (await tb.cfg_read_dword(0x34)) & 0xFC
    hops = 0
    while ptr >= 0x40 and hops < 48:
        dw0 = await tb.cfg_read_dword(ptr)
        cap_id, nxt = dw0 & 0xFF, (dw0 >> 8) & 0xFC
        entry = {"offset": ptr, "id": cap_id}
        if cap_id == 0x09:
            entry["cap_len"] = (dw0 >> 16) & 0xFF
            entry["cfg_type"] = dw0 >> 24
            entry["bar"] = (await tb.cfg_read_dword(ptr + 4)) & 0xFF
            entry["bar_offset"] = await tb.cfg_read_dword(ptr + 8)
            entry["length"] = await tb.cfg_read_dword(ptr + 12)
        caps.append(entry)
        ptr = nxt
        hops += 1
    return caps


@cocotb.test()
async def bringup_test(dut):
    """PCI-02, PCI-03: enumerate and list the capabilities; with the driver scenario, bring the
    device up, ring the doorbells and show MSI-X and INTx interrupts (a transitional build, or
    VPCI_BRINGUP_DRIVER=legacy: the legacy driver through I/O BAR0)."""
    tb = TB(dut)
    await tb.init()
    dev = tb.dev
    lines = [f"enumerated {dev.pcie_id}: vendor {dev.vendor_id:#06x} device {dev.device_id:#06x} "
             f"class {dev.class_code:#08x} rev {dev.revision_id}"]
    for i, (addr, size) in enumerate(zip(dev.bar_addr, dev.bar_size)):
        if size:
            lines.append(f"  BAR{i}: {addr:#x} size {size:#x}")
    caps = await walk_caps(tb)
    lines.append("capabilities:")
    for c in caps:
        if c["id"] == 0x09:
            lines.append(f"  {c['offset']:#04x} virtio {CFG_TYPES.get(c['cfg_type'], c['cfg_type']):8s}"
                         f" bar {c['bar']} offset {c['bar_offset']:#07x} length {c['length']:#x}"
                         f" (cap_len {c['cap_len']})")
        else:
            lines.append(f"  {c['offset']:#04x} {CAP_NAMES.get(c['id'], hex(c['id']))}")
    assert any(c["id"] == 0x09 and c["cfg_type"] == 1 for c in caps)
    driver = os.environ.get("VPCI_BRINGUP_DRIVER") or ("legacy" if tb.desc.params["transitional"]
                                                       else "modern")
    if driver not in ("legacy", "modern"):
        raise ValueError(f"VPCI_BRINGUP_DRIVER must be 'legacy' or 'modern', not {driver!r}")
    if driver == "legacy" and not tb.desc.params["transitional"]:
        raise ValueError("the legacy driver needs a transitional build (\"transitional\": true)")
    try:
        from tb.scenarios.bringup_modern import run_driver_scenario
    except ImportError:
        run_driver_scenario = None
    if driver == "legacy":
        from tb.scenarios.bringup_legacy import run_legacy_scenario
        lines += await run_legacy_scenario(tb)
    elif run_driver_scenario is not None:
        lines += await run_driver_scenario(tb)
        from tb.scenarios.bringup_interrupts import run_interrupt_scenario
        lines += await run_interrupt_scenario(tb)
    text = "\n".join(lines)
    print(text)
    out = os.environ.get("VPCI_BRINGUP_OUT")
    if out:
        with open(out, "w") as f:
            f.write(text + "\n")
