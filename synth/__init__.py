"""Synthesis flow for the poscodec decoder: area, Fmax, checks and energy (``python -m synth``)."""
