"""The one place where cocotbext-pcie TLPs meet the RTL's stream convention.

``Tlp.pack()`` gives wire bytes.  On the RTL port (hdl/virtio_pci/tlp/layouts.py) header DWs
carry the value as drawn in the PCIe specification (wire byte 0 in bits 31:24), payload DWs are
little-endian (lowest-address byte in bits 7:0), a TLP starts in lane 0 and a beat holds at most
one TLP.
"""
from cocotbext.pcie.core.tlp import Tlp

__all__ = ["tlp_to_dws", "dws_to_tlp", "dws_to_beats", "beats_to_dws", "Tlp"]


def tlp_to_dws(tlp):
    raw = tlp.pack()
    hdr_bytes = tlp.get_header_size()
    out = [int.from_bytes(raw[i:i + 4], "big") for i in range(0, hdr_bytes, 4)]
    out += [int.from_bytes(raw[i:i + 4], "little") for i in range(hdr_bytes, len(raw), 4)]
    return out


def header_size_dw(dw0):
    fmt = dw0 >> 29
    return 4 if fmt & 1 else 3


def dws_to_tlp(dws):
    h = header_size_dw(dws[0])
    raw = b"".join(d.to_bytes(4, "big") for d in dws[:h])
    raw += b"".join(d.to_bytes(4, "little") for d in dws[h:])
    return Tlp.unpack(raw)


def dws_to_beats(dws, width):
    """Split a TLP's DWs into beats: list of (data, keep, first, last)."""
    lanes = width // 32
    beats = []
    for i in range(0, len(dws), lanes):
        chunk = dws[i:i + lanes]
        data = 0
        for j, d in enumerate(chunk):
            data |= d << (32 * j)
        keep = (1 << len(chunk)) - 1
        beats.append((data, keep, i == 0, i + lanes >= len(dws)))
    return beats


def beats_to_dws(beats, width):
    lanes = width // 32
    out = []
    for data, keep, first, last in beats:
        for j in range(lanes):
            if keep >> j & 1:
                out.append((data >> (32 * j)) & 0xFFFF_FFFF)
    return out


def pack_beat(data, keep, first, last, width):
    """The integer value of the packed ``rx``/``tx`` payload (data, keep, first, last from bit 0)."""
    lanes = width // 32
    return data | (keep << width) | (int(first) << (width + lanes)) | (int(last) << (width + lanes + 1))


def unpack_beat(value, width):
    lanes = width // 32
    data = value & ((1 << width) - 1)
    keep = (value >> width) & ((1 << lanes) - 1)
    first = (value >> (width + lanes)) & 1
    last = (value >> (width + lanes + 1)) & 1
    return data, keep, first, last
