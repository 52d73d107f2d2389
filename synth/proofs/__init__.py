"""Formal proofs of the hardware units, one module per unit (``synth.formal`` runs them)."""
