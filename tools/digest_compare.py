"""The shared end of the digest tools: write a digest JSON and compare it with another version's."""

from __future__ import annotations

import json


def write_and_compare(result: dict, out: str, compare: str | None, what: str, names=None) -> int:
    """Write ``result`` to ``out``; with ``compare`` (another version's file), print the entries
    that differ or are missing on either side (only ``names`` if given) and return 1 if any does."""
    with open(out, "w") as f:
        json.dump(result, f, indent=1)
    print(f"{len(result)} {what} -> {out}")
    if not compare:
        return 0
    with open(compare) as f:
        other = json.load(f)
    names = set(names) if names is not None else set(result) | set(other)
    differ = sorted(k for k in names if result.get(k) != other.get(k))
    for k in differ[:20]:
        print(f"DIFFERS {k}: {other.get(k)} vs {result.get(k)}")
    print(f"{len(differ)} of {len(names)} {what} differ")
    return 1 if differ else 0
