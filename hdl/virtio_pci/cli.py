"""Command line: emit the Verilog of the endpoint and its machine-readable port description.

    python -m virtio_pci.cli [PARAMS.json] -o OUTDIR [--name virtio_pci_ep]

writes ``OUTDIR/<name>.v`` and ``OUTDIR/<name>.json``.  A ``"link"`` object in the parameter file
selects a wrapped top instead of the bare endpoint (``link.wrap_top``): ``{"cdc": true}`` (the
endpoint behind the clock-domain crossing, hdl/virtio_pci/link/cdc.py) or ``{"hard_ip": "ptile"}``
(the Intel P-Tile adapter, with ``"cdc": false`` to run it on the IP's clock).  Otherwise, for a device type with a complete device
in ``devices/`` (4, virtio-rng) the top level is that whole device (endpoint, ring engine and
device function); ``--endpoint-only`` emits the bare endpoint instead.  The JSON lists every top-level port
(name, direction, width, and for packed payloads the bit range of each field), the parameters, the
BAR layout, the capability list and the register regions.  Users integrate from it; the tests
read it instead of hard-coding offsets.
"""
import argparse
import json
import os

from amaranth.back import verilog
from amaranth.lib import data, wiring

from .params import VirtioPciParams
from .config.capabilities import build_config_image
from .top import VirtioPciEndpoint
from .link import silence, wrap_top

__all__ = ["describe", "emit", "main", "top_level"]


def _devices():
    from .devices.rng import VirtioRng
    return {4: ("virtio-rng", VirtioRng)}


def top_level(params, endpoint_only=False):
    """The component ``make verilog`` emits for ``params``: ``(device name or None, component)``."""
    dev = None if endpoint_only else _devices().get(params.device_type)
    if dev is None:
        return None, VirtioPciEndpoint(params)
    return dev[0], dev[1](params)


def _fields(shape, base=0):
    """Bit ranges of a (possibly nested) data layout: {path: [lsb, msb]}."""
    out = {}
    if isinstance(shape, data.Layout):
        for name, fld in shape:
            sub = _fields(fld.shape, base + fld.offset)
            if sub:
                for k, v in sub.items():
                    out[f"{name}.{k}"] = v
            width = data.Layout.cast(fld.shape).size if isinstance(fld.shape, data.Layout) \
                else __import__("amaranth").hdl.Shape.cast(fld.shape).width
            out[name] = [base + fld.offset, base + fld.offset + width - 1]
    return out


def _ports(sig, prefix=""):
    ports = []
    for path, member in sig.members.flatten():
        if not member.is_port:
            continue
        name = "__".join(str(p) for p in path)
        shape = member.shape
        try:
            layout = data.Layout.cast(shape)
            width = layout.size
        except TypeError:
            layout = None
            width = __import__("amaranth").hdl.Shape.cast(shape).width
        port = {"name": name, "direction": "input" if member.flow == wiring.In else "output",
                "width": width}
        if layout is not None:
            port["fields"] = _fields(layout)
        ports.append(port)
    return ports


def describe(params, name="virtio_pci_ep", link=None, endpoint_only=False):
    device, top = (None, wrap_top(params, link)) if link else top_level(params, endpoint_only)
    silence(top)                          # only its signature is needed here
    img = build_config_image(params)
    clocks = ["", "link_"] if link and link.get("cdc", True) else [""]
    ports = [{"name": f"{c}{s}", "direction": "input", "width": 1}
             for c in clocks for s in ("clk", "rst")] + _ports(top.signature)
    return {
        "top": name,
        "link": dict(link or {}),
        "device": device,
        "parameters": params.to_dict(),
        "ids": {"vendor_id": params.vendor_id, "device_id": params.device_id,
                "revision_id": params.revision_id, "class_code": params.class_code,
                "subsystem_vendor_id": params.subsystem_vendor_id,
                "subsystem_id": params.subsystem_device_id},
        "ports": ports,
        "bars": [b for b in [
            {"index": 0, "kind": "io", "size": params.io_bar_size} if params.has_io_bar else None,
            {"index": params.mem_bar, "kind": "mem64", "prefetchable": False,
             "size": params.mem_bar_size},
        ] if b],
        "regions": {r.name: {"bar": r.bar, "offset": r.offset, "length": r.length, "span": r.span}
                    for r in params.regions.values()},
        "capabilities": [c.to_dict() for c in img.caps],
        "config_fields": {k: {"offset": f.offset, "width": f.width, "lsb": f.lsb}
                          for k, f in img.fields.items()},
    }


def emit(params, outdir, name="virtio_pci_ep", link=None, endpoint_only=False):
    os.makedirs(outdir, exist_ok=True)
    top = wrap_top(params, link) if link else top_level(params, endpoint_only)[1]
    text = verilog.convert(top, name=name, emit_src=True)
    vpath = os.path.join(outdir, f"{name}.v")
    jpath = os.path.join(outdir, f"{name}.json")
    with open(vpath, "w") as f:
        f.write(text)
    with open(jpath, "w") as f:
        json.dump(describe(params, name, link, endpoint_only), f, indent=2)
    return vpath, jpath


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("params", nargs="?", help="parameter file (JSON); defaults if omitted")
    ap.add_argument("-o", "--outdir", default="build/verilog")
    ap.add_argument("--name", default="virtio_pci_ep")
    ap.add_argument("--endpoint-only", action="store_true",
                    help="emit the bare endpoint even for a device type with a complete device")
    args = ap.parse_args(argv)
    link = None
    params = VirtioPciParams()
    if args.params:
        with open(args.params) as f:
            d = json.load(f)
        link = d.pop("link", None)
        params = VirtioPciParams.from_dict(d)
    v, j = emit(params, args.outdir, args.name, link, args.endpoint_only)
    print(f"wrote {v}\nwrote {j}")


if __name__ == "__main__":
    main()
