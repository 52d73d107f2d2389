"""Simulation support: software bit models, cocotb bus-functional models and build runners."""
