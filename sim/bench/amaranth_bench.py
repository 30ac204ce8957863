"""Run the benchmark program on Amaranth's own simulator (cross-check of the Verilator figures).

Port names are those of the emitted Verilog (``rx__payload``: member ``rx``, then ``payload``), so
the engine is the same on both simulators.  Every port the engine may read is sampled at each edge
(``ctx.tick().sample``), which gives the value just before the edge, as cocotb does on Verilator.
"""
from amaranth.hdl import Value
from amaranth.sim import Simulator

from virtio_pci.top import VirtioPciEndpoint

from .engine import Engine
from .scenarios import program

__all__ = ["run_amaranth"]

SAMPLED = ("rx__ready", "tx__valid", "tx__payload", "doorbell__valid", "doorbell__payload",
           "irq__ready", "reset_req")


def _port(dut, name):
    obj = dut
    for part in name.split("__"):
        obj = getattr(obj, part)
    return Value.cast(obj)


class AmaranthIO:
    def __init__(self, ctx, dut):
        self.ctx = ctx
        self.dut = dut
        self.sampled = {}
        self._ports = {}

    def port(self, name):
        p = self._ports.get(name)
        if p is None:
            p = self._ports[name] = _port(self.dut, name)
        return p

    def get(self, name):
        return self.sampled[name]

    def set(self, name, value):
        self.ctx.set(self.port(name), value)


def run_amaranth(params, cfg, *, max_cycles=200_000):
    """Elaborate the endpoint for ``params`` and run ``program(cfg)`` on it; returns the results."""
    dut = VirtioPciEndpoint(params)
    sim = Simulator(dut)
    sim.add_clock(1e-8)
    result = {}

    async def bench(ctx):
        io = AmaranthIO(ctx, dut)
        eng = Engine(io, params, seed=cfg.get("seed", 1))
        gen = program(eng, cfg)
        sampled = [io.port(n) for n in SAMPLED]
        eng.drive()
        n = 0
        async for _, _, *vals in ctx.tick().sample(*sampled):
            io.sampled = dict(zip(SAMPLED, vals))
            eng.sample()
            try:
                next(gen)
            except StopIteration as stop:
                result.update(stop.value)
                return
            eng.drive()
            n += 1
            if n > max_cycles:
                raise RuntimeError(f"benchmark program still running after {max_cycles} cycles")

    sim.add_testbench(bench)
    sim.run()
    return result
