"""The ``poscodec`` command line: the one package that may import every other.

``cli`` builds the parser and runs a command; each group of commands is one module
(``codec_commands``, ``hardware_commands``, ``synth_commands``, ``accel_commands``), a thin layer
over a documented function of ``sw_codec``, ``sim``, ``synth``.
"""
