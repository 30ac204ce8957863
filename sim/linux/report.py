"""What Linux saw, formatted: the capability list in the style of ``lspci -vv`` (decoded from the
config space bytes Linux read through sysfs), driver, status, features, MSI-X interrupts."""

__all__ = ["capabilities", "feature_names", "format_report", "STATUS_BITS"]

STATUS_BITS = {1: "ACKNOWLEDGE", 2: "DRIVER", 4: "DRIVER_OK", 8: "FEATURES_OK",
               0x40: "NEEDS_RESET", 0x80: "FAILED"}
VIRTIO_CFG = {1: "CommonCfg", 2: "Notify", 3: "ISR", 4: "DeviceCfg", 5: "PCI-Cfg",
              8: "SharedMemory", 9: "VendorCfg"}
FEATURES = {0: "CSUM", 1: "GUEST_CSUM", 3: "MTU", 5: "MAC", 16: "STATUS", 17: "CTRL_VQ",
            22: "MQ", 28: "INDIRECT_DESC", 29: "EVENT_IDX", 32: "VERSION_1",
            33: "ACCESS_PLATFORM", 34: "RING_PACKED", 35: "IN_ORDER", 36: "ORDER_PLATFORM",
            37: "SR_IOV", 38: "NOTIFICATION_DATA", 39: "NOTIF_CONFIG_DATA", 40: "RING_RESET"}


def _u16(b, o):
    return b[o] | b[o + 1] << 8


def _u32(b, o):
    return _u16(b, o) | _u16(b, o + 2) << 16


def capabilities(cfg):
    """``lspci -vv``-style lines for the capability list in ``cfg`` (bytes, at least 64)."""
    out = []
    if not _u16(cfg, 6) & 0x10:
        return ["Capabilities: none"]
    ptr, seen = cfg[0x34] & 0xFC, set()
    while ptr and ptr not in seen and ptr + 4 <= len(cfg):
        seen.add(ptr)
        cid, nxt = cfg[ptr], cfg[ptr + 1] & 0xFC
        if cid == 0x01:
            pmc = _u16(cfg, ptr + 2)
            s = f"Power Management version {pmc & 7}: PMCSR {_u16(cfg, ptr + 4):#06x}"
        elif cid == 0x10:
            pcie = _u16(cfg, ptr + 2)
            devcap = _u32(cfg, ptr + 4)
            devctl = _u16(cfg, ptr + 8)
            s = (f"Express (v{pcie & 0xF}) Endpoint: DevCap MaxPayload "
                 f"{128 << (devcap & 7)} bytes, FLReset{'+' if devcap >> 28 & 1 else '-'}; "
                 f"DevCtl MaxPayload {128 << (devctl >> 5 & 7)} bytes, "
                 f"MaxReadReq {128 << (devctl >> 12 & 7)} bytes")
        elif cid == 0x11:
            ctl = _u16(cfg, ptr + 2)
            tbl, pba = _u32(cfg, ptr + 4), _u32(cfg, ptr + 8)
            s = (f"MSI-X: Enable{'+' if ctl >> 15 & 1 else '-'} Count={(ctl & 0x7FF) + 1} "
                 f"Masked{'+' if ctl >> 14 & 1 else '-'}; Vector table: BAR={tbl & 7} "
                 f"offset={tbl & ~7:08x}; PBA: BAR={pba & 7} offset={pba & ~7:08x}")
        elif cid == 0x09:
            kind = cfg[ptr + 3]
            bar, off, length = cfg[ptr + 4], _u32(cfg, ptr + 8), _u32(cfg, ptr + 12)
            s = (f"Vendor Specific Information: VirtIO: {VIRTIO_CFG.get(kind, kind)} "
                 f"BAR={bar} offset={off:08x} size={length:08x}")
            if kind == 2 and ptr + 20 <= len(cfg):
                s += f" multiplier={_u32(cfg, ptr + 16):08x}"
        else:
            s = f"Capability ID {cid:#04x}"
        out.append(f"Capabilities: [{ptr:02x}] {s}")
        ptr = nxt
    return out


def feature_names(bits):
    """Names of the set bits of sysfs ``features`` (a string of '0'/'1', bit 0 first)."""
    return [FEATURES.get(i, f"bit{i}") for i, c in enumerate(bits) if c == "1"]


def format_report(run, label="boot"):
    """Text block of what Linux reported in snapshot ``label`` of a ``LinuxRun``."""
    g = lambda k, d="?": run.get(f"{label}.{k}", d)     # noqa: E731
    lines = []
    dev = run.get("device", "?")
    lines.append(f"{dev} class {g('class')}: [{g('vendor')[2:]}:{g('device')[2:]}] "
                 f"(rev {g('revision')[2:]}) subsystem [{g('subsystem_vendor')[2:]}:"
                 f"{g('subsystem_device')[2:]}]")
    for k in sorted(run.facts):
        if k.startswith(f"{label}.resource"):
            start, end, flags = run.get(k).split()
            lines.append(f"\tRegion {k[len(label) + 9:]}: Memory at {int(start, 16):x} "
                         f"({'64' if int(flags, 16) & 0x100000 else '32'}-bit) "
                         f"[size={(int(end, 16) - int(start, 16) + 1) // 1024}K]")
    cfg = bytes(int(x, 16) for x in g("config", "").split())
    if len(cfg) >= 64:
        lines += ["\t" + c for c in capabilities(cfg)]
    lines.append(f"\tKernel driver in use: {g('driver')}")
    lines.append(f"\tReset methods: {g('reset_method', 'none')}")
    status = int(g("status", "0"), 16)
    names = "|".join(n for b, n in STATUS_BITS.items() if status & b) or "0"
    lines.append(f"{g('virtio', '?')}: virtio device {g('virtio_device')}, driver "
                 f"{g('virtio_driver', 'none')}, status {status:#04x} ({names})")
    lines.append(f"\tnegotiated features: {' '.join(feature_names(g('features', '')))}")
    for n in run.all(f"{label}.netdev"):
        lines.append(f"\tnetwork interface: {n}")
    for b in run.all(f"{label}.block"):
        lines.append(f"\tblock device: {b} sectors")
    lines.append("/proc/interrupts (virtio lines):")
    lines += ["\t" + i for i in run.all(f"{label}.interrupts")]
    return "\n".join(lines)
