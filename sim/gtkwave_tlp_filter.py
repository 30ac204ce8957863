#!/usr/bin/env python3
"""GTKWave translate filter: one rx/tx payload value (hex) per line in, a TLP name out.

The payload is {last, first, keep, data} from the MSB (see hdl/virtio_pci/tlp/layouts.py); on a
first beat the filter decodes DW0 (Fmt/Type, length) of lane 0, other beats show "..data".
"""
import sys

NAMES = {0x00: "MRd32", 0x20: "MRd64", 0x40: "MWr32", 0x60: "MWr64", 0x02: "IORd", 0x42: "IOWr",
         0x04: "CfgRd0", 0x44: "CfgWr0", 0x05: "CfgRd1", 0x45: "CfgWr1", 0x0A: "Cpl",
         0x4A: "CplD", 0x01: "MRdLk", 0x21: "MRdLk64"}


def decode(text):
    try:
        v = int(text, 16)
    except ValueError:
        return text
    # GTKWave passes the full vector width in hex digits: payload = W + W/32 + 2 bits
    w = {17: 64, 34: 128, 67: 256}.get(len(text), 128)
    first = (v >> (w + w // 32)) & 1
    if not first:
        return "..data"
    dw0 = v & 0xFFFF_FFFF
    ft = dw0 >> 24
    name = NAMES.get(ft)
    if name is None:
        name = "Msg" if (ft & 0xB8) == 0x30 else f"?{ft:02x}"
    length = dw0 & 0x3FF or 1024
    return f"{name} len={length}"


def main():
    for line in sys.stdin:
        sys.stdout.write(decode(line.strip()) + "\n")
        sys.stdout.flush()


if __name__ == "__main__":
    main()
