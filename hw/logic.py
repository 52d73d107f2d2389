from amaranth.hdl import C


__all__ = ["or_all"]


def or_all(values):
    """Bitwise OR of an iterable of values (0 if empty), as a balanced tree: with one-hot
    selects, ``or_all(Mux(sel[k], v[k], 0) for k ...)`` is an AND-OR multiplexer. A chain of
    hundreds of ORs is deep enough to exhaust Yosys's stack (abc9 in WebAssembly)."""
    values = list(values) or [C(0, 1)]
    while len(values) > 1:
        values = [values[k] | values[k + 1] if k + 1 < len(values) else values[k]
                  for k in range(0, len(values), 2)]
    return values[0]
