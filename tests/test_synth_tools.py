"""How synth/flow.py starts its tools, with fake tools (small Python scripts) instead of YoWASP's:
a run killed by SIGBUS is started again a bounded number of times, any other failure is the
design's error at once, and the first run of a tool (its WebAssembly compiled into the cache)
happens in one process at a time.
"""

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from synth import flow


def fake_tool(path: Path, body: str) -> str:
    """An executable script at ``path``; ``body`` sees ``runs``, the number of earlier runs (counted
    in ``<path>.runs``), and ``argv``."""
    path.write_text(f"#!{sys.executable}\n" + textwrap.dedent(f"""\
        import os, signal, sys, time
        count = {str(path) + '.runs'!r}
        runs = len(open(count).read()) if os.path.exists(count) else 0
        open(count, "a").write("x")
        argv = sys.argv[1:]
        """) + textwrap.dedent(body))
    path.chmod(0o755)
    return str(path)


def runs(tool: str) -> int:
    return len(Path(tool + ".runs").read_text())


SIGBUS_ONCE = """
    if runs == 0:
        print("starting", flush=True)
        os.kill(os.getpid(), signal.SIGBUS)
    print("done")
"""


def test_a_run_killed_by_sigbus_is_started_again(tmp_path):
    tool = fake_tool(tmp_path / "tool", SIGBUS_ONCE)
    flow._call([tool], tmp_path, "tool.log", "fake: step", timeout=60)
    assert runs(tool) == 2
    log = (tmp_path / "tool.log").read_text()
    # The first run's output and why it was run again stay in the log, before the second run's.
    assert log.index("starting") < log.index("fake: step: killed by SIGBUS") < log.index("run 2 of 3") \
        < log.index("done")


def test_a_tool_that_always_dies_of_sigbus_fails_after_the_retries(tmp_path):
    tool = fake_tool(tmp_path / "tool", 'print("run", runs, flush=True)\nos.kill(os.getpid(), signal.SIGBUS)\n')
    with pytest.raises(flow.SynthError, match=rf"fake: step: killed by SIGBUS \(run {flow.TOOL_RETRIES + 1}; "
                                              rf"{flow.TOOL_RETRIES} before it killed by SIGBUS\)") as e:
        flow._call([tool], tmp_path, "tool.log", "fake: step", timeout=60)
    assert runs(tool) == flow.TOOL_RETRIES + 1
    last = flow.TOOL_RETRIES + 1
    assert str(e.value).endswith(f"run {last} of {last}:\nrun {last - 1}")     # the log's tail: the last run
    assert str(tmp_path / "tool.log") in str(e.value)


@pytest.mark.parametrize("body,status", [
    ('print("ERROR: Unable to place cell")\nsys.exit(1)\n', "exit 1"),
    ('print("ERROR: Unable to place cell", flush=True)\nos.kill(os.getpid(), signal.SIGSEGV)\n',
     "killed by SIGSEGV"),
], ids=["exit 1", "SIGSEGV"])
def test_any_other_failure_is_the_error_at_once(tmp_path, body, status):
    """A real failure (an error exit, a crash other than SIGBUS) is not run again: its status and
    its output are the design's error."""
    tool = fake_tool(tmp_path / "tool", body)
    with pytest.raises(flow.SynthError, match=rf"fake: step: {status} after .*\n.*Unable to place cell"):
        flow._call([tool], tmp_path, "tool.log", "fake: step", timeout=60)
    assert runs(tool) == 1


def test_run_warms_its_tool_once_per_process(tmp_path, monkeypatch):
    monkeypatch.setenv("YOWASP_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setattr(flow, "_warmed", set())
    tool = fake_tool(tmp_path / "yowasp-fake", 'print("version" if argv == ["--version"] else "ran")\n')
    for step in ("a", "b"):
        flow._run([tool, step], tmp_path, f"{step}.log", f"fake: {step}", timeout=60)
    assert runs(tool) == 3                          # one --version, then the two steps
    assert (tmp_path / "cache" / "yowasp-fake.warm.log").read_text() == "version\n"
    assert (tmp_path / "b.log").read_text() == "ran\n"


def test_a_tool_that_fails_to_start_fails_the_step(tmp_path, monkeypatch):
    monkeypatch.setenv("YOWASP_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setattr(flow, "_warmed", set())
    tool = fake_tool(tmp_path / "yowasp-fake", 'print("no such module")\nsys.exit(2)\n')
    with pytest.raises(flow.SynthError, match=r"yowasp-fake --version: exit 2 .*\nno such module"):
        flow._run([tool, "x"], tmp_path, "x.log", "fake: x", timeout=60)
    assert runs(tool) == 1


def test_first_runs_of_a_tool_in_two_processes_take_turns(tmp_path):
    """Two processes warming one tool at once: the second --version starts after the first ended
    (the first compiles the tool into the cache, the second then finds it there)."""
    tool = fake_tool(tmp_path / "yowasp-fake", f"""
        open({str(tmp_path / 'spans')!r}, "a").write(f"start {{time.time()}}\\n")
        time.sleep(1.0)
        open({str(tmp_path / 'spans')!r}, "a").write(f"end {{time.time()}}\\n")
    """)
    env = {**os.environ, "YOWASP_CACHE_DIR": str(tmp_path / "cache"),
           "PYTHONPATH": str(Path(flow.__file__).parent.parent)}
    code = f"from synth.flow import warm; warm({tool!r})"
    procs = [subprocess.Popen([sys.executable, "-c", code], env=env) for _ in range(2)]
    assert [p.wait(timeout=60) for p in procs] == [0, 0]
    events = [line.split()[0] for line in (tmp_path / "spans").read_text().splitlines()]
    assert events == ["start", "end", "start", "end"]
