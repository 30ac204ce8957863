#!/usr/bin/env python3
"""GTKWave translate filter for the `rx` and `tx` TLP streams: one value per line in (hex of
``{valid, payload}``, valid as the most significant bit), one label per line out.

A label is written only for a beat that carries the start of a TLP (`valid` and `first`); every
other value, idle cycles and the rest of a TLP included, shows blank.  The label names the TLP
kind, what it addresses (register name from the build's register map, or the address), the tag
and the length in DWs:

    MRd32 common.queue_select tag=0x81 len=1
    CfgWr0 0x004 command tag=0x02 len=1
    CplD tag=0x81 len=1 bc=4 SC
    MWr32 0xfee00000 tag=0x00 len=1 data=0x00000001
    Msg Assert_INTA

``python gtkwave_tlp_filter.py CONFIG.json``: the register map of the build (written beside the
waveform by ``sim/waves.py``); without it the labels carry addresses only.
"""
import json
import sys

KINDS = {0x00: "MRd32", 0x20: "MRd64", 0x40: "MWr32", 0x60: "MWr64", 0x02: "IORd", 0x42: "IOWr",
         0x04: "CfgRd0", 0x44: "CfgWr0", 0x05: "CfgRd1", 0x45: "CfgWr1", 0x0A: "Cpl",
         0x4A: "CplD", 0x0B: "CplLk", 0x4B: "CplDLk", 0x01: "MRdLk32", 0x21: "MRdLk64",
         0x4C: "FetchAdd32", 0x6C: "FetchAdd64", 0x4D: "Swap32", 0x6D: "Swap64", 0x4E: "CAS32",
         0x6E: "CAS64"}
MESSAGES = {0x20: "Assert_INTA", 0x21: "Assert_INTB", 0x22: "Assert_INTC", 0x23: "Assert_INTD",
            0x24: "Deassert_INTA", 0x25: "Deassert_INTB", 0x26: "Deassert_INTC",
            0x27: "Deassert_INTD", 0x00: "Unlock", 0x50: "Set_Slot_Power_Limit",
            0x7E: "Vendor_Defined0", 0x7F: "Vendor_Defined1"}
STATUS = {0: "SC", 1: "UR", 2: "CRS", 4: "CA"}


class Decoder:
    def __init__(self, config=None):
        c = config or {}
        self.width = c.get("width", 128)
        self.bar_size = c.get("bar_size", 0)
        self.regions = sorted((r["offset"], r["offset"] + r["span"], name, r.get("fields", {}))
                              for name, r in c.get("regions", {}).items())
        self.config_fields = {int(k): v for k, v in c.get("config_fields", {}).items()}
        self.io_fields = {int(k): v for k, v in c.get("io_fields", {}).items()}
        self.io_bar_size = c.get("io_bar_size", 0)

    # -- register names ---------------------------------------------------------------------
    def mem_name(self, addr):
        if not self.bar_size:
            return f"{addr:#x}"
        off = addr & (self.bar_size - 1)
        for lo, hi, name, fields in self.regions:
            if lo <= off < hi:
                field = fields.get(str(off - lo))
                return f"{name}.{field}" if field else f"{name}+{off - lo:#x}"
        return f"{addr:#x}"

    def io_name(self, addr):
        if not self.io_bar_size:
            return f"{addr:#x}"
        off = addr & (self.io_bar_size - 1)
        field = self.io_fields.get(off)
        return f"legacy.{field}" if field else f"legacy+{off:#x}"

    # -- one value --------------------------------------------------------------------------
    def decode(self, text):
        try:
            v = int(text, 16)
        except ValueError:
            return ""
        w = self.width
        lanes = w // 32
        pw = w + lanes + 2
        valid = v >> pw & 1
        first = v >> (w + lanes) & 1
        if not (valid and first):
            return ""
        keep = v >> w & ((1 << lanes) - 1)
        dws = [v >> (32 * i) & 0xFFFF_FFFF for i in range(lanes) if keep >> i & 1]
        return self.label(dws)

    def label(self, dws):
        dw0 = dws[0]
        ft = dw0 >> 24
        length = dw0 & 0x3FF or 1024
        tag = lambda dw: (dw >> 8 & 0xFF) | (dw0 >> 19 & 1) << 8 | (dw0 >> 23 & 1) << 9  # noqa: E731
        hdr = dws + [None] * 4
        if ft & 0xB8 == 0x30:                                    # Msg / MsgD
            code = hdr[1] & 0xFF if hdr[1] is not None else None
            return "Msg " + (MESSAGES.get(code, f"code={code:#04x}") if code is not None else "")
        kind = KINDS.get(ft)
        if kind is None:
            return f"?{ft:02x} len={length}"
        if kind.startswith("Cpl"):
            out = kind
            if hdr[2] is not None:
                out += f" tag={tag(hdr[2]):#04x}"
            out += f" len={length}" if ft & 0x40 else ""
            if hdr[1] is not None:
                out += f" bc={hdr[1] & 0xFFF or 4096} {STATUS.get(hdr[1] >> 13 & 7, '?')}"
            return out
        t = f" tag={tag(hdr[1]):#04x}" if hdr[1] is not None else ""
        if kind.startswith("Cfg"):
            where = ""
            if hdr[2] is not None:
                reg = hdr[2] & 0xFFC
                name = self.config_fields.get(reg)
                where = f" {reg:#05x}" + (f" {name}" if name else "")
            return f"{kind}{where}{t} len={length}"
        is64 = ft & 0x20 and ft not in (0x42, 0x02)
        addr = None
        if is64 and hdr[3] is not None:
            addr = hdr[2] << 32 | (hdr[3] & ~3)
        elif not is64 and hdr[2] is not None:
            addr = hdr[2] & ~3
        where = ""
        if addr is not None and hdr[1] is not None and hdr[1] & 0xF:
            fbe = hdr[1] & 0xF
            addr += (fbe & -fbe).bit_length() - 1      # the first enabled byte names the field
        if addr is not None:
            where = " " + (self.io_name(addr) if kind.startswith("IO") else self.mem_name(addr))
        out = f"{kind}{where}{t} len={length}"
        nh = 4 if is64 else 3
        if kind.startswith("MWr") and length == 1 and len(dws) > nh:
            out += f" data={dws[nh]:#010x}"
        return out


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    config = None
    if argv:
        with open(argv[0]) as f:
            config = json.load(f)
    d = Decoder(config)
    for line in sys.stdin:
        sys.stdout.write(d.decode(line.strip()) + "\n")
        sys.stdout.flush()


if __name__ == "__main__":
    main()
