"""Testbench package: TLP conversion, root-complex bridge, driver and back-end models."""
