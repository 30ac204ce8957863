"""`make docs`: the generated reference pages of docs/ (register map and port list).

    python -m sim.docs [--check]

writes ``docs/register-map.md`` from the data the RTL is built from: ``VirtioPciParams`` (BAR
layout, regions), ``build_config_image`` (every configuration-space dword: reset value, writable
and write-1-to-clear bits, named fields, the capability list) and ``describe`` (the port JSON that
``make verilog`` writes: every port and payload field).  The structures the virtio and PCIe
specifications fix (common configuration, ISR, notify, MSI-X, the legacy header) are listed from
the tables the testbench's driver models use, which the integration tests check against the RTL.
``--check`` exits 1 when the committed page differs from what the code gives
(tb/unit/test_docs.py runs the same comparison in `make test`).
"""
import argparse
import os
import sys

from virtio_pci.cli import describe
from virtio_pci.config.capabilities import build_config_image
from virtio_pci.params import VirtioPciParams

from tb.host.legacy_driver import LEGACY_NAMES
from tb.host.virtio_driver import COMMON

from .build import ROOT

__all__ = ["register_map", "main", "PAGE"]

PAGE = os.path.join(ROOT, "docs", "register-map.md")

#: parameter sets the page shows: the default build, and a transitional one for the legacy header
TRANSITIONAL = os.path.join(ROOT, "examples", "virtio-net-transitional.json")

CAP_NAMES = {0x01: "Power Management", 0x05: "MSI", 0x09: "Vendor-specific (virtio)",
             0x10: "PCI Express", 0x11: "MSI-X"}
CFG_TYPES = {1: "common", 2: "notify", 3: "ISR", 4: "device", 5: "PCI-cfg"}


def _bits(mask):
    return "-" if not mask else f"`{mask:#010x}`"


def _table(head, rows):
    out = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    out += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
    return out


def _fields_of_dword(img, index):
    names = []
    for name, f in img.fields.items():
        if f.dword == index or (f.offset < 4 * index + 4 and f.offset + (f.lsb + f.width + 7) // 8 > 4 * index
                                and f.width > 8):
            bit = f.bit if f.dword == index else 0
            hi = min(bit + f.width - 1, 31)
            names.append((bit, f"{name} [{hi}:{bit}]" if hi != bit else f"{name} [{bit}]"))
    if not names:
        for c in img.caps:
            if c.offset <= 4 * index < c.offset + c.length:
                return f"{c.name} capability +{4 * index - c.offset:#x}"
    return ", ".join(n for _, n in sorted(names))


def config_space(params):
    img = build_config_image(params)
    lines = ["Capability list (standard list from offset 0x34; Linux walks it the same way):", ""]
    rows = []
    for c in img.caps:
        where = ""
        if c.cfg_type is not None:
            where = (f"{CFG_TYPES.get(c.cfg_type, c.cfg_type)}: BAR {c.bar} offset {c.bar_offset:#x} "
                     f"length {c.bar_length:#x}")
        rows.append((f"`{c.offset:#04x}`", f"{c.cap_id:#04x} {CAP_NAMES.get(c.cap_id, '')}", c.length,
                     c.name, where))
    lines += _table(("offset", "ID", "length", "name", "virtio structure"), rows)
    lines += ["", "Every dword that does not read as constant zero (all others read 0 and ignore "
              "writes).  *writable*: bits a configuration write changes; *RW1C*: bits a write of 1 "
              "clears; *dynamic*: bits the hardware drives (status, strobes).", ""]
    rows = []
    dynamic = {f.dword for f in list(img.dynamic.values()) + list(img.strobes.values())}
    for i in sorted(set(img.used_dwords()) | {f.dword for f in img.fields.values()}):
        value, rw, rw1c = img.dword(i)
        rows.append((f"`{4 * i:#05x}`", f"`{value:#010x}`", _bits(rw), _bits(rw1c),
                     "yes" if i in dynamic else "", _fields_of_dword(img, i)))
    lines += _table(("offset", "reset value", "writable", "RW1C", "dynamic", "fields"), rows)
    return lines


def bar_regions(desc):
    rows = [(f"BAR{b['index']}", b["kind"], f"{b['size']:#x}") for b in desc["bars"]]
    lines = _table(("BAR", "kind", "size"), rows) + [""]
    rows = [(name, r["bar"], f"`{r['offset']:#06x}`", f"{r['length']:#x}", f"{r['span']:#x}")
            for name, r in desc["regions"].items()]
    lines += _table(("region", "BAR", "offset", "length advertised", "span decoded"), rows)
    return lines


def common_cfg(params):
    rows = []
    for name, (off, size) in sorted(COMMON.items(), key=lambda kv: kv[1][0]):
        if off >= params.common_cfg_length:
            continue
        rows.append((f"`{off:#04x}`", 8 * size, name))
    return _table(("offset", "bits", "field (VIRTIO 1.3 4.1.4.3)"), rows)


def notify(params, desc):
    base = desc["regions"]["notify"]["offset"]
    m = params.notify_off_multiplier
    rows = [(q, q if m else 0, f"`{base + (q if m else 0) * m:#06x}`")
            for q in range(min(params.num_queues, 8))]
    more = [] if params.num_queues <= 8 else [f"... (queue *q* at `{base:#x} + q * {m}`)"]
    return _table(("queue", "queue_notify_off", "doorbell (BAR offset)"), rows) + more


def legacy_header():
    rows = [(f"`{off:#04x}`", 8 * size, name) for (off, size), name in sorted(LEGACY_NAMES.items())]
    return _table(("offset", "bits", "register (I/O BAR0)"), rows)


def ports(desc):
    rows = []
    for p in desc["ports"]:
        fields = ", ".join(f"{n} [{hi}:{lo}]" if hi != lo else f"{n} [{lo}]"
                           for n, (lo, hi) in p.get("fields", {}).items() if "." not in n)
        rows.append((f"`{p['name']}`", p["direction"], p["width"], fields))
    return _table(("port", "direction", "width", "payload fields (bits)"), rows)


def register_map():
    """The text of docs/register-map.md."""
    p = VirtioPciParams()
    d = describe(p)
    t = VirtioPciParams.from_file(TRANSITIONAL)
    dt = describe(t)
    io = dt["bars"][0]
    out = ["# Register map", "",
           "Generated by `make docs` (`python -m sim.docs`) from the parameter object, the "
           "configuration-space image and the port description the RTL is built from; "
           "`tb/unit/test_docs.py` fails when this page and the code disagree.  Do not edit by "
           "hand.  Figures are for the default parameters (`VirtioPciParams()`) unless a section "
           "says otherwise; `make verilog PARAMS=file.json` writes the same data for any build "
           "as JSON.", "",
           "## Memory BAR and its regions", ""]
    out += bar_regions(d)
    out += ["", "## Configuration space", ""]
    out += config_space(p)
    out += ["", "## Common configuration (region `common`)", ""]
    out += common_cfg(p)
    out += ["", "## ISR status (region `isr`)", "",
            "One byte: bit 0 queue interrupt, bit 1 device-configuration change; a read returns and "
            "clears both (VIRTIO 1.3 4.1.4.5).", "",
            "## Notify (region `notify`)", "",
            f"`notify_off_multiplier` {p.notify_off_multiplier}: a doorbell is a write of the queue "
            "index (16 bits, or 32 bits with NOTIFICATION_DATA) at the queue's address.", ""]
    out += notify(p, d)
    out += ["", "## Device configuration (region `device`)", "",
            f"{p.device_cfg_size} bytes, served by the `{p.device_cfg_backend}` back-end "
            "(docs/backend-contract.md).", "",
            "## MSI-X table and PBA (regions `msix_table`, `msix_pba`)", "",
            f"{p.msix_vectors} entries of 16 bytes: message address low (`+0x0`), high (`+0x4`), "
            "data (`+0x8`), vector control (`+0xC`, bit 0 mask; 1 after reset).  The PBA holds one "
            "pending bit per entry, read only (PCI 3.0 6.8.2).", "",
            f"## Legacy header (transitional builds: `{os.path.relpath(TRANSITIONAL, ROOT)}`)", "",
            f"I/O BAR0 of {io['size']} bytes; the device configuration follows at 0x14, or at "
            "0x18 while MSI-X is enabled (VIRTIO 1.3 4.1.4.10).", ""]
    out += legacy_header()
    out += ["", "## Ports", "",
            "Every top-level port of the emitted Verilog (`make verilog` writes the same list as "
            "JSON).  Timing and ordering: docs/backend-contract.md.", ""]
    out += ports(d)
    return "\n".join(out) + "\n"


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--check", action="store_true", help="compare with the committed page only")
    a = ap.parse_args(argv)
    text = register_map()
    if a.check:
        with open(PAGE) as f:
            same = f.read() == text
        print(f"{os.path.relpath(PAGE, ROOT)}: {'up to date' if same else 'stale: run make docs'}")
        return 0 if same else 1
    os.makedirs(os.path.dirname(PAGE), exist_ok=True)
    with open(PAGE, "w") as f:
        f.write(text)
    print(f"wrote {os.path.relpath(PAGE, ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
