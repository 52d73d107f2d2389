"""Verification and simulation: the RTL checked against the reference codec, and its speed measured.

- Infrastructure: ``runner`` (Verilog per parameter set, cocotb on Verilator or Icarus),
  ``bfm`` (valid/ready stream models with pause generators), ``amaranth_tb`` (helpers for the
  Amaranth simulator).
- What the hardware should see and produce, from ``sw_codec``: ``bitstream_model``,
  ``block_parser_model``, ``traces``.
- Testbenches (cocotb modules): ``tb_*.py``; ``backend`` is a test-only top.
- ``rtl_decode``: decode real layers in RTL and compare (``poscodec sim``); ``bench``: decoder
  throughput per mode (``make sim-bench``).
- ``accel``: the accelerator evaluation (``make accel``).
"""
