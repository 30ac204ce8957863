"""Simulation runner: Verilog emission, Verilator builds shared between tests, wave files."""
