"""Amaranth gateware for the poscodec decoder pipeline, one stage per module."""
