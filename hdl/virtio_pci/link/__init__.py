"""Link layer adapters: clock-domain crossing and vendor PCIe hard-IP interfaces."""

__all__ = ["wrap_top", "LINK_KEYS"]

LINK_KEYS = ("hard_ip", "cdc", "cdc_depth")


def wrap_top(params, link):
    """The top level a ``link`` description selects (``make verilog``'s ``"link"`` object):
    ``{"cdc": true}``: ``CdcEndpoint``; ``{"hard_ip": "ptile", "cdc": bool}``: ``PTileEndpoint``."""
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
    raise ValueError(f"hard_ip must be 'ptile', not {hard_ip!r}")
