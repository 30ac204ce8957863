"""cocotb test modules (run inside the simulator through ``sim.run.run_cocotb``)."""
