"""The accelerator evaluation (``make accel``): the decoder feeding a PE array, in RTL, and what
compression buys a whole model in latency and energy.

- :mod:`sim.accel.memory`: the simulation top, ``hw.accelerator.Accelerator`` with a main-memory
  model in HDL (bandwidth, latency, prefetch).
- :mod:`sim.accel.run`: runs layer slices through it on Verilator (``sim/tb_accel.py``),
  every output checked against numpy.
- :mod:`sim.accel.model`: the method: measured slice rates extrapolated to whole models, with a
  per-event energy model.
"""
