"""``poscodec synth``: area, Fmax and critical path of the decoder stages and lanes (``python -m synth``)."""

from __future__ import annotations

__all__ = ["add_commands"]


def add_commands(sub) -> None:
    from synth.__main__ import add_arguments, run

    p = sub.add_parser("synth", help="synthesize the decoder stages and lanes: area, Fmax, critical path "
                       "(python -m synth)", description="Yosys + nextpnr (ECP5 or iCE40) area, Fmax and "
                       "critical path per stage and lane, or --target generic for the technology-independent "
                       "estimate only; writes results/synth.json and results/synth.md.")
    add_arguments(p)
    p.set_defaults(func=run, requires=("hw", "synth"))
