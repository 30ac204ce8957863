"""Unit tests on Amaranth's own simulator (DESIGN.md section 9): one file per module, no Verilator."""
