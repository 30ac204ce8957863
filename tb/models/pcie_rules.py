"""Python reference of what the receive side must do with one TLP, written from the PCI Express
Base Specification (4.0): 2.2 (formats, byte enable rules, 4 KiB rule), 2.3 (UR, malformed),
2.3.1.1 (read completion byte count, lower address, completion boundaries), 2.7.2.2 (poisoned
requests to control registers are handled as UR).

It works on raw DWs (the RTL stream convention of tb.tlp.convert), never on the RTL's layouts, so
the depacketizer is checked against an independent decoder.
"""
from dataclasses import dataclass

from virtio_pci.tlp.layouts import Space, CplStatus

__all__ = ["Env", "ref_ops", "byte_count", "first_be_offset", "split_read", "decode_header"]


@dataclass
class Env:
    """What the depacketizer sees from the rest of the function."""
    bar_base: int
    bar_size: int
    mem_enable: int = 1
    mps_code: int = 0             # Device Control Max_Payload_Size
    mps_supported: int = 256
    io_base: int = None           # None: no I/O BAR
    io_size: int = 0
    io_enable: int = 0

    @property
    def mps(self):
        """Effective Max_Payload_Size in bytes (reserved codes act as 128 bytes)."""
        if self.mps_code > 5:
            return 128
        return min(128 << self.mps_code, self.mps_supported)


def first_be_offset(fbe):
    return 0 if fbe == 0 else (fbe & -fbe).bit_length() - 1


def byte_count(length, fbe, lbe):
    """Byte count of a memory read (PCIe 4.0 Table 2-37), ``length`` in DWs (1..1024)."""
    if length == 1:
        if fbe == 0:
            return 1                            # zero-length read
        return fbe.bit_length() - first_be_offset(fbe)
    return (length - 1) * 4 - first_be_offset(fbe) + lbe.bit_length()


def split_read(dw_addr, length, fbe, lbe, mps):
    """Completions of a memory read of ``length`` DWs at DW address ``dw_addr``.

    The completer ends every completion but the last at a naturally aligned Max_Payload_Size
    boundary (so each carries at most MPS bytes and ends on a Read Completion Boundary, 2.3.1.1).
    Returns [(first DW index, DW count, byte count, lower address)].
    """
    total = byte_count(length, fbe, lbe)
    fo = first_be_offset(fbe)
    out = []
    start = 0
    for i in range(1, length + 1):
        if i == length or ((dw_addr + i) * 4) % mps == 0:
            done = 0 if start == 0 else start * 4 - fo        # bytes already returned
            la = ((dw_addr + start) * 4 + (fo if start == 0 else 0)) & 0x7F
            out.append((start, i - start, total - done, la))
            start = i
    # the rules themselves, independently of how the split was computed
    assert sum(n for _, n, _, _ in out) == length
    for k, (s, n, bc, la) in enumerate(out):
        assert n * 4 <= mps, "completion payload above Max_Payload_Size"
        if k < len(out) - 1:
            assert ((dw_addr + s + n) * 4) % 64 == 0, "completion does not end on an RCB"
    assert out[0][2] == total
    return out


def decode_header(dws):
    dw0 = dws[0]
    ft = dw0 >> 24
    fmt, typ = ft >> 5, ft & 0x1F
    h = dict(ft=ft, fmt=fmt, typ=typ, hdr=4 if fmt & 1 else 3, has_data=bool(fmt & 2),
             length=(dw0 & 0x3FF) or 1024, td=dw0 >> 15 & 1, ep=dw0 >> 14 & 1, tc=dw0 >> 20 & 7,
             attr=(dw0 >> 12 & 3) | (dw0 >> 18 & 1) << 2)
    if len(dws) > 1:
        dw1 = dws[1]
        h.update(fbe=dw1 & 0xF, lbe=dw1 >> 4 & 0xF, rid=dw1 >> 16,
                 tag=(dw1 >> 8 & 0xFF) | (dw0 >> 19 & 1) << 8 | (dw0 >> 23 & 1) << 9)
    return h


def classify(fmt, typ):
    if fmt & 0b100:
        return "prefix"
    three = fmt in (0b000, 0b010)
    if typ == 0x00:
        return "mrd" if fmt in (0b000, 0b001) else "mwr"
    if typ == 0x01 and fmt in (0b000, 0b001):
        return "mrdlk"
    if typ == 0x02 and three:
        return "io"
    if typ == 0x04 and three:
        return "cfg0"
    if typ == 0x05 and three:
        return "cfg1"
    if typ >> 3 == 0b10 and fmt in (0b001, 0b011):
        return "msg"
    if typ in (0x0A, 0x0B) and three:
        return "cpl"
    if typ in (0x0C, 0x0D, 0x0E) and fmt in (0b010, 0b011):
        return "atomic"
    return None


def _op(space, *, write=0, addr=None, be=None, data=None, need_cpl=1, start=1, end=1, cpl=None):
    return dict(space=space, write=write, addr=addr, be=be, data=data, need_cpl=need_cpl,
                cpl_start=start, cpl_end=end, cpl=cpl)


def ref_ops(dws, env):
    """(ops, errors) for one received TLP.

    ``ops``: the DW operations, dicts; a field that is ``None`` is not checked (write data of a
    read, completion bookkeeping of an operation that does not start a completion).
    ``errors``: subset of {"malformed", "ur", "poisoned", "unexpected_cpl", "msg"}.
    """
    h = decode_header(dws)
    kind = classify(h["fmt"], h["typ"])
    if kind in (None, "prefix"):
        return [], {"malformed"}
    length, hdr = h["length"], h["hdr"]
    if len(dws) != hdr + (length if h["has_data"] else 0) + h["td"]:
        return [], {"malformed"}
    if h["has_data"] and 4 * length > env.mps:
        return [], {"malformed"}              # 2.2.2: any payload above Max_Payload_Size
    fbe, lbe = h["fbe"], h["lbe"]
    addr = ((dws[2] << 32) | dws[3]) if hdr == 4 else dws[2]
    addr &= ~3
    if kind in ("mrd", "mwr"):
        bad_be = (lbe != 0) if length == 1 else (fbe == 0 or lbe == 0)
        crosses = (addr & 0xFFF) + 4 * length > 4096
        if bad_be or crosses:
            return [], {"malformed"}
    if kind in ("io", "cfg0") and (length != 1 or lbe != 0 or h["tc"] != 0):
        return [], {"malformed"}

    poisoned = bool(h["ep"] and h["has_data"])
    errs = {"poisoned"} if poisoned else set()
    serve = False
    if kind in ("mrd", "mwr"):
        serve = env.mem_enable and env.bar_base <= addr < env.bar_base + env.bar_size
    elif kind == "io":
        serve = env.io_base is not None and env.io_enable and env.io_base <= addr < env.io_base + env.io_size
    elif kind == "cfg0":
        serve = (dws[2] >> 16) & 7 == 0
    claimed = serve
    serve = serve and not poisoned
    posted = kind in ("mwr", "msg", "cpl")

    cpl_common = dict(requester_id=h["rid"], tag=h["tag"], tc=h["tc"], attr=h["attr"])
    if not serve:
        # a poisoned request addressed to this function is a poisoned-TLP error, not a UR
        # (its non-posted form is still answered with UR status)
        if not claimed or kind in ("msg", "cpl"):
            errs.add({"msg": "msg", "cpl": "unexpected_cpl"}.get(kind, "ur"))
        if kind == "msg" and (h["lbe"] << 4 | h["fbe"]) == 0x7E:
            errs.add("ur")        # 2.2.8.6: unsupported Vendor_Defined Type 0 is a UR

        if posted:
            return [], errs
        memrd = kind in ("mrd", "mrdlk")
        cpl = dict(cpl_common, status=CplStatus.UR, has_data=0, length=0,
                   byte_count=byte_count(length, fbe, lbe) & 0xFFF if memrd else 4,
                   lower_addr=((addr + first_be_offset(fbe)) & 0x7F) if memrd else 0,
                   locked=int(kind == "mrdlk"))
        return [_op(Space.NONE, cpl=cpl)], errs

    payload = dws[hdr:hdr + length] if h["has_data"] else None
    if kind in ("cfg0", "io"):
        write = int(h["has_data"])
        if kind == "cfg0":
            space, a = Space.CFG, (dws[2] >> 2) & 0x3FF
        else:
            space, a = Space.IO, (addr - env.io_base) >> 2
        cpl = dict(cpl_common, status=CplStatus.SC, has_data=1 - write, length=1 - write,
                   byte_count=4, lower_addr=0, locked=0)
        return [_op(space, write=write, addr=a, be=fbe, data=payload[0] if write else None,
                    cpl=cpl)], errs

    base_dw = (addr - env.bar_base) >> 2

    def be_of(i):
        if length == 1:
            return fbe
        return fbe if i == 0 else lbe if i == length - 1 else 0xF

    if kind == "mwr":
        return [_op(Space.MEM, write=1, addr=base_dw + i, be=be_of(i), data=payload[i], need_cpl=0,
                    start=None, end=None) for i in range(length)], errs

    ops = [None] * length
    for s, n, bc, la in split_read(addr >> 2, length, fbe, lbe, env.mps):
        for i in range(s, s + n):
            cpl = None
            if i == s:
                cpl = dict(cpl_common, status=CplStatus.SC, has_data=1, length=n & 0x3FF,
                           byte_count=bc & 0xFFF, lower_addr=la, locked=0)
            ops[i] = _op(Space.MEM, addr=base_dw + i, be=be_of(i), start=int(i == s),
                         end=int(i == s + n - 1), cpl=cpl)
    return ops, errs
