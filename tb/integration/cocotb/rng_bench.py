"""`make bench`: virtio-rng throughput (sim/bench/rng.py runs this module).

The driver keeps the request queue full of ``VPCI_RNG_BENCH`` = {"buffers", "size", "qsize"}
device-writable buffers (refilled as they come back, kicks as EVENT_IDX asks) with every stream
ready (no rx idle, no tx stall, no requester stand-in idle) and counts the core clock cycles from
the first kick to the last used buffer.  Results (JSON) go to the file named in the config."""
import json
import os

import cocotb
from cocotb.triggers import RisingEdge

from tb.env.rng import RngTB


@cocotb.test()
async def rng_bench_test(dut):
    """VQP-02, VQP-04: throughput of the whole device (measured, not asserted)."""
    cfg = json.loads(os.environ["VPCI_RNG_BENCH"])
    tb = RngTB(dut, rx_idle=0.0, tx_stall=0.0)
    if tb.dma_model is not None:
        tb.dma_model.idle = 0.0
    rq = await tb.start(size=cfg["qsize"])
    cycle = [0]

    async def count():
        while True:
            await RisingEdge(dut.clk)
            cycle[0] += 1
    cocotb.start_soon(count())
    total, posted, done, nbytes = cfg["buffers"], 0, 0, 0
    start = None
    while done < total:
        n = min(len(rq.sq.free), total - posted)
        if n:
            rq.add_inbuf(cfg["size"], n)
            posted += n
            if start is None:
                start = cycle[0]
            await rq.kick()
        await tb.cycles(4)          # polling granularity: the figure is late by < 4 cycles
        for _, ulen, datas in rq.sq.used():
            done += 1
            nbytes += ulen
    cycles = cycle[0] - start
    res = {"buffers": done, "bytes": nbytes, "cycles": cycles, "size": cfg["size"],
           "qsize": cfg["qsize"], "width": tb.width, "kicks": rq.kicks,
           "requester": "testbench stand-in" if tb.dma_model is not None else "RTL requester"}
    with open(cfg["out"], "w") as f:
        json.dump(res, f)
