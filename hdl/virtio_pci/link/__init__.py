"""Link layer adapters: clock-domain crossing and vendor PCIe hard-IP interfaces."""

__all__ = ["wrap_top", "silence", "LINK_KEYS"]

LINK_KEYS = ("hard_ip", "cdc", "cdc_depth")


def wrap_top(params, link):
    """The top level a ``link`` description selects (``make verilog``'s ``"link"`` object):
    ``{"cdc": true}``: ``CdcEndpoint``; ``{"hard_ip": "ptile", "cdc": bool}``: ``PTileEndpoint``; ``"usplus"``: ``UsPlusEndpoint``."""
    link = dict(link or {})
    unknown = set(link) - set(LINK_KEYS)
    if unknown:
        raise ValueError(f"unknown link settings: {', '.join(sorted(unknown))}")
    hard_ip = link.get("hard_ip")
    cdc = link.get("cdc", True)
    depth = link.get("cdc_depth", 16)
    if hard_ip is None:
        if not cdc:
            raise ValueError("a link section needs \"hard_ip\" or \"cdc\": true")
        from .cdc import CdcEndpoint
        return CdcEndpoint(params, depth=depth)
    if hard_ip == "ptile":
        from .ptile import PTileEndpoint
        return PTileEndpoint(params, cdc=cdc, cdc_depth=depth)
    if hard_ip == "usplus":
        from .usplus import UsPlusEndpoint
        return UsPlusEndpoint(params, cdc=cdc, cdc_depth=depth)
    raise ValueError(f"hard_ip must be 'ptile' or 'usplus', not {hard_ip!r}")


def silence(top):
    """Mark a wrapped top and the components it made in its constructor as deliberately unused
    (``describe`` only needs signatures: no UnusedElaboratable warnings)."""
    seen = set()

    def walk(obj):
        if obj is None or id(obj) in seen or not hasattr(obj, "elaborate"):
            return
        seen.add(id(obj))
        obj._MustUse__silence = True
        for attr in ("endpoint", "adapter", "tlp_cdc", "cdc", "rx", "tx", "cii", "cq", "cfg"):
            walk(getattr(obj, attr, None))
    walk(top)
