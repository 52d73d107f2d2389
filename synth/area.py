"""Where a design's area goes: its FPGA cells per module instance.

The flow's FPGA step (``synth/flow.py``) flattens the design before mapping it, so its counts are
the whole design's. Here the same Yosys synthesis command runs with ``-noflatten``: every
Amaranth submodule stays a module of its own, mapped on its own. ``stat -json`` gives each
module's own cells; the submodule cells of the synthesized netlist (``write_rtlil -selected``:
which module each instantiates, under which name) give the instance hierarchy. Walking it from
the top gives, per instance path (``parser.core.huffman``; the top is ``""``), its *own* cells
and its *inclusive* cells (its own and those of every instance below it).

Amaranth names each submodule's module ``<top>.<path>``: the cells whose type starts with
``<top>.`` are the submodule instances. The walk's total is checked against ``stat``'s own total
of the design; a hierarchy the walk misses (a module named otherwise) is an error, not a short
count.

Without flattening no optimisation crosses a module boundary (constants on ports, logic shared
or removed across modules), so the total here is larger than the flattened synthesis of the
same netlist: the flattened figure is the design's area, this table says how it splits.
"""

from __future__ import annotations

from typing import Callable

__all__ = ["VERSION", "script", "read_hierarchy", "walk", "module_table", "markdown_lines"]

#: Version of a ``modules`` entry: a cached one of another version is made again.
VERSION = 1

#: The figures of the table (``synth.flow._cell_figures``'s keys).
FIGURES = ("luts", "lut4s", "ffs", "brams", "dsps", "lutram", "carry")


def script(top: str, synth: str, stat: str, hierarchy: str) -> str:
    """The Yosys script: ``<top>.il`` through ``synth`` (a target's synthesis command) with
    ``-noflatten``; the cell counts to ``stat``, the submodule cells to ``hierarchy``."""
    return (f"read_rtlil {top}.il\n"
            f"{synth} -noflatten -top {top}\n"
            f"tee -q -o {stat} stat -json\n"
            f"select t:{top}.*\n"
            f"write_rtlil -selected {hierarchy}\n")


def _name(rtlil_id: str) -> str:
    return rtlil_id[1:] if rtlil_id.startswith("\\") else rtlil_id


def read_hierarchy(rtlil: str) -> dict[str, list[tuple[str, str]]]:
    """Module -> its submodule cells ``(instance name, module)``, in the order of the RTLIL text."""
    children: dict[str, list[tuple[str, str]]] = {}
    module = None
    for line in rtlil.splitlines():
        words = line.split()
        if len(words) >= 2 and words[0] == "module":
            module = _name(words[1])
            children.setdefault(module, [])
        elif len(words) >= 3 and words[0] == "cell" and module is not None:
            children[module].append((_name(words[2]), _name(words[1])))
    return children


def _add(into: dict, cells: dict) -> None:
    for k, v in cells.items():
        into[k] = into.get(k, 0) + v


def walk(top: str, own_cells: dict[str, dict], children: dict[str, list[tuple[str, str]]],
         figures: Callable[[dict], dict]) -> list[dict]:
    """Every instance under ``top``, depth first, the larger (inclusive LUT4s) child first:
    ``path``, ``module``, ``depth``, ``own`` and ``inclusive`` figures (``figures`` of the cells by
    type; submodule cells are not cells of their parent). ``own_cells``: module -> its cells by
    type (``stat``); ``children``: module -> ``(instance, module)`` (:func:`read_hierarchy`)."""
    modules = set(own_cells)

    def visit(path: str, module: str, depth: int, stack: tuple) -> tuple[list[dict], dict]:
        if module in stack:
            raise ValueError(f"module {module} instantiates itself (through {' -> '.join(stack)})")
        own = {k: v for k, v in own_cells.get(module, {}).items() if k not in modules}
        inclusive = dict(own)
        subtrees = []
        for name, child in children.get(module, []):
            if child not in modules:
                raise ValueError(f"{path or top}: instance {name} of {child}, a module stat does not list")
            rows, cells = visit(f"{path}.{name}" if path else name, child, depth + 1, stack + (module,))
            _add(inclusive, cells)
            subtrees.append(rows)
        subtrees.sort(key=lambda rows: -rows[0]["inclusive"]["lut4s"])
        row = {"path": path, "module": module, "depth": depth, "own": figures(own),
               "inclusive": figures(inclusive)}
        return [row] + [r for rows in subtrees for r in rows], inclusive

    rows, _ = visit("", top, 0, ())
    return rows


def module_table(top: str, stat: dict, hierarchy_rtlil: str, figures: Callable[[dict], dict]) -> dict:
    """The ``modules`` entry of a result from ``stat -json`` (parsed) and the submodule cells'
    RTLIL: ``instances`` (:func:`walk`) and ``total`` (the top's inclusive figures). ValueError
    when the walk's total differs from ``stat``'s total of the design."""
    own_cells = {_name(k): m.get("num_cells_by_type", {}) for k, m in stat["modules"].items()}
    if top not in own_cells:
        raise ValueError(f"stat lists no module {top} (modules: {', '.join(sorted(own_cells))})")
    instances = walk(top, own_cells, read_hierarchy(hierarchy_rtlil), figures)
    total = instances[0]["inclusive"]
    design = stat.get("design", {}).get("num_cells_by_type")
    if design is not None and figures(design) != total:
        raise ValueError(f"{top}: the walk over the instances counts {total}, stat's design total is "
                         f"{figures(design)}: a submodule the walk did not find?")
    return {"version": VERSION, "instances": instances, "total": total}


def markdown_lines(result: dict) -> list[str]:
    """Markdown of one design's ``modules`` entry: per instance its own and inclusive LUT4s, its
    share of the total, its flip-flops and block RAMs; the total beside the flattened one."""
    mods = result.get("modules")
    if not mods:
        return []
    if mods.get("error"):
        return ["", f"{result['name']} by module: failed: {mods['error'].splitlines()[0]}"]
    total = mods["total"]
    lines = ["", f"{result['name']} by module ({mods.get('command', '-noflatten')}, {mods.get('seconds', '?')} s; "
             f"own / with submodules):", "",
             "| instance | LUT4s | of them carry | LUT4s with sub | % of total | FFs | FFs with sub | BRAMs with sub "
             "| LUT RAMs with sub |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in mods["instances"]:
        o, i = r["own"], r["inclusive"]
        share = 100 * i["lut4s"] / total["lut4s"] if total["lut4s"] else 0.0
        lines.append(f"| {r['path'] or '(top)'} | {o['lut4s']} | {o['lut4s'] - o['luts']} | {i['lut4s']} | "
                     f"{share:.1f} | {o['ffs']} | {i['ffs']} | {i['brams']} | {i['lutram']} |")
    if result.get("lut4s") is not None:
        d = total["lut4s"] - result["lut4s"]
        lines += ["", f"Total without flattening {total['lut4s']} LUT4s, {total['ffs']} FFs; flattened "
                  f"{result['lut4s']} LUT4s, {result['ffs']} FFs ({d:+d} LUT4s, "
                  f"{100 * d / result['lut4s']:+.1f} % without optimisation across modules)."]
    return lines

