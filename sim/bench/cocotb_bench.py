"""cocotb module of the benchmark: the cycle engine on the Verilator model, no root complex.

Run through ``sim.bench.cycles.run_verilator`` (``sim.run.run_cocotb``): ``VPCI_DESC`` names the
build, ``VPCI_BENCH`` is the JSON of what to run (see ``scenarios.DEFAULT_CFG``) plus ``out``, the
file the results are written to.  One coroutine does everything once per clock edge: it reads the
few ports it needs right after ``RisingEdge`` (the values the edge sampled) and writes the inputs,
which take effect after the edge (tb/host/rc_bridge.py relies on the same ordering).
"""
import json
import os

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import ClockCycles, RisingEdge

from virtio_pci.params import VirtioPciParams

from .engine import Engine
from .scenarios import program

CLK_PERIOD_NS = 4


class CocotbIO:
    def __init__(self, dut):
        self.dut = dut
        self._h = {}

    def _handle(self, name):
        h = self._h.get(name)
        if h is None:
            h = self._h[name] = getattr(self.dut, name)
        return h

    def get(self, name):
        return int(self._handle(name).value)

    def set(self, name, value):
        self._handle(name).value = value


@cocotb.test()
async def bench_test(dut):
    cfg = json.loads(os.environ["VPCI_BENCH"])
    params = VirtioPciParams.from_dict(json.loads(os.environ["VPCI_DESC"])["parameters"])
    cocotb.start_soon(Clock(dut.clk, CLK_PERIOD_NS, unit="ns").start())
    io = CocotbIO(dut)
    dut.rst.value = 1
    eng = Engine(io, params, seed=cfg.get("seed", 1))
    await ClockCycles(dut.clk, 4)
    dut.rst.value = 0
    await RisingEdge(dut.clk)
    gen = program(eng, cfg)
    edge = RisingEdge(dut.clk)
    eng.drive()
    while True:
        await edge
        eng.sample()
        try:
            next(gen)
        except StopIteration as stop:
            result = stop.value
            break
        eng.drive()
    with open(cfg["out"], "w") as f:
        json.dump(result, f, indent=1)
