"""Drives the small checker module of tb/integration/test_verilator_assertions.py (``checks_dut``) through
one scenario, ``VPCI_CHECKS_SCENARIO``: a list of per-cycle input tuples in
tb/integration/test_verilator_assertions.py ``SCENARIOS``.  A failing simulation assertion stops Verilator
(``--assert``), which ends this test as a failure."""
import json
import os

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import ClockCycles, RisingEdge


@cocotb.test()
async def checks_scenario_test(dut):
    steps = json.loads(os.environ["VPCI_CHECKS_STEPS"])
    Clock(dut.clk, 10, unit="ns").start()
    dut.rst.value = 1
    for name in ("valid", "ready", "payload", "op_accept", "cpl_sent"):
        getattr(dut, name).value = 0
    await ClockCycles(dut.clk, 2)
    dut.rst.value = 0
    for valid, ready, payload, acc, sent in steps:
        dut.valid.value = valid
        dut.ready.value = ready
        dut.payload.value = payload
        dut.op_accept.value = acc
        dut.cpl_sent.value = sent
        await RisingEdge(dut.clk)
    await ClockCycles(dut.clk, 4)
    dut._log.info("CHECKS scenario finished without an assertion")
