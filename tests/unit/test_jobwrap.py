"""jobwrap without Slurm: exit codes, signals, unstartable commands; the status file always.
Every test here runs against both wrappers: ``jobwrap.sh`` (what the executors start) and the
Python reference ``jobwrap.py``; what is about one of them is in test_executor_wrapper.py."""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from daylib.executors import jobwrap
from tests.support.waiting import wait_for

JOBWRAP = Path(jobwrap.__file__)
JOBWRAP_SH = JOBWRAP.with_name("jobwrap.sh")
HANG_GUARD_SECONDS = 120.0
WRAPPERS = {"sh": ["/bin/bash", str(JOBWRAP_SH)], "python": [sys.executable, "-I", str(JOBWRAP)]}
WRAPPER: list[str] = []


@pytest.fixture(autouse=True, params=sorted(WRAPPERS))
def wrapper(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    monkeypatch.setattr(sys.modules[__name__], "WRAPPER", WRAPPERS[request.param])
    yield request.param


@pytest.fixture(autouse=True)
def interrupts_as_a_monitor_leaves_them() -> Iterator[None]:
    """The monitor installs its own SIGINT handler, so the wrappers it starts begin with
    SIGINT's default disposition. A test process started in the background by a
    non-interactive shell has SIGINT ignored, which its children inherit, and bash cannot
    trap a signal ignored at its start: give the wrappers what a monitor gives them."""
    before = signal.getsignal(signal.SIGINT)
    if before == signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, before)


BOUNDS = ["--max-bytes", "8192", "--head-bytes", "1024"]


def wrap(tmp_path: Path, *argv: str, limits: list[str] | None = None) -> subprocess.Popen[bytes]:
    """Start the wrapper the way the executors do (by path)."""
    return subprocess.Popen([*WRAPPER, "--status",
                             str(tmp_path / "st" / "status.json"), "--log",
                             str(tmp_path / "logs" / "step.log"), *(limits or []), "--", *argv],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def finish(tmp_path: Path, *argv: str,
           limits: list[str] | None = None) -> tuple[int, dict[str, object], str]:
    proc = wrap(tmp_path, *argv, limits=limits)
    proc.communicate(timeout=HANG_GUARD_SECONDS)
    return proc.returncode, status(tmp_path), log_text(tmp_path)


def status(tmp_path: Path) -> dict[str, object]:
    data = json.loads((tmp_path / "st" / "status.json").read_text())
    assert isinstance(data, dict)
    return data


def log_text(tmp_path: Path) -> str:
    path = tmp_path / "logs" / "step.log"
    return path.read_text() if path.exists() else ""


def py(code: str) -> list[str]:
    return [sys.executable, "-c", code]


def alive(pid: int) -> bool:
    """True unless gone or a zombie (init may take a while to reap orphans)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[-1].split()[0] != "Z"


def test_success_appends_output_and_writes_status(tmp_path: Path) -> None:
    code = "import sys; print('out'); print('err', file=sys.stderr)"
    rc1, _, _ = finish(tmp_path, *py(code))
    rc2, st2, log = finish(tmp_path, *py(code))
    assert rc1 == rc2 == 0
    assert st2["exit_code"] == 0 and st2["signal"] is None
    assert st2["argv0"] == sys.executable and st2["host"]
    assert str(st2["started_at"]) <= str(st2["ended_at"])
    assert log.count("out\n") == 2 and log.count("err\n") == 2  # appended, both streams
    assert sorted(p.name for p in (tmp_path / "st").iterdir()) == ["status.json"]  # no temp


def test_exit_code_is_passed_through(tmp_path: Path) -> None:
    rc, st, _ = finish(tmp_path, *py("import sys; sys.exit(3)"))
    assert rc == 3
    assert (st["exit_code"], st["signal"]) == (3, None)


def test_child_killed_by_signal(tmp_path: Path) -> None:
    rc, st, _ = finish(tmp_path, *py("import os, signal; os.kill(os.getpid(), signal.SIGKILL)"))
    assert rc == 128 + signal.SIGKILL
    assert (st["exit_code"], st["signal"]) == (None, signal.SIGKILL)


def test_exit_code_above_128_is_an_exit_not_a_signal(tmp_path: Path) -> None:
    """A command exiting 137 (as an OOM-aware tool may) is not one killed by SIGKILL."""
    rc, st, _ = finish(tmp_path, *py("import sys; sys.exit(137)"))
    assert rc == 137
    assert (st["exit_code"], st["signal"]) == (137, None)


def test_argv_is_not_interpreted_by_a_shell(tmp_path: Path) -> None:
    rc, _, log = finish(tmp_path, *py("import sys; print(sys.argv[1:])"), "$HOME; echo hi",
                        "--status", "*")
    assert rc == 0
    assert "['$HOME; echo hi', '--status', '*']" in log


@pytest.mark.parametrize("argv", [["/nonexistent/tool", "-x"], []])
def test_unstartable_command_is_127_with_status(tmp_path: Path, argv: list[str]) -> None:
    rc, st, log = finish(tmp_path, *argv)
    assert rc == 127
    assert (st["exit_code"], st["signal"]) == (127, None)
    assert "jobwrap: cannot start" in log


def test_not_executable_is_127(tmp_path: Path) -> None:
    script = tmp_path / "script.sh"
    script.write_text("#!/bin/sh\necho hi\n")
    rc, st, log = finish(tmp_path, str(script))
    assert (rc, st["exit_code"]) == (127, 127)
    assert "Permission denied" in log


def test_unopenable_log_still_writes_status(tmp_path: Path) -> None:
    (tmp_path / "logs" / "step.log").mkdir(parents=True)  # a directory: cannot be opened
    proc = wrap(tmp_path, *py("print('never')"))
    _, err = proc.communicate(timeout=HANG_GUARD_SECONDS)
    assert proc.returncode == 127
    assert status(tmp_path)["exit_code"] == 127
    assert b"cannot open log" in err


@pytest.mark.parametrize("limits", [None, BOUNDS], ids=["direct", "bounded"])
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_signal_to_wrapper_reaches_child_and_grandchild(tmp_path: Path, sig: signal.Signals,
                                                       limits: list[str] | None) -> None:
    # The pid file appears by rename only once closed: a SIGINT that landed inside a file
    # object's close (its flush checks for signals) would be swallowed as "exception ignored".
    pids = tmp_path / "pids"
    code = f"""
import os, signal, subprocess, sys, time
kid = subprocess.Popen(["sleep", "60"])
with open({str(pids)!r} + ".tmp", "w") as fh:
    fh.write(str(kid.pid))
os.replace({str(pids)!r} + ".tmp", {str(pids)!r})
time.sleep(60)
"""
    proc = wrap(tmp_path, *py(code), limits=limits)
    wait_for(pids)
    grandchild = int(pids.read_text())
    proc.send_signal(sig)
    proc.communicate(timeout=HANG_GUARD_SECONDS)
    st = status(tmp_path)
    assert (st["exit_code"], st["signal"]) == (None, sig)
    assert proc.returncode == 128 + sig
    deadline = time.monotonic() + HANG_GUARD_SECONDS
    while alive(grandchild):
        assert time.monotonic() < deadline, "the grandchild survived"
        time.sleep(0.02)


@pytest.mark.parametrize("limits", [None, BOUNDS], ids=["direct", "bounded"])
def test_child_handling_sigterm_decides_exit_code(tmp_path: Path,
                                                  limits: list[str] | None) -> None:
    """SIGTERM is forwarded, not fatal to the wrapper: a child that cleans up and exits 7
    yields 7, and SIGCONT is forwarded too."""
    ready, cont = tmp_path / "ready", tmp_path / "cont"
    code = f"""
import signal, sys, time
signal.signal(signal.SIGCONT, lambda *a: open({str(cont)!r}, "w").close())
signal.signal(signal.SIGTERM, lambda *a: sys.exit(7))
open({str(ready)!r}, "w").close()
time.sleep(60)
"""
    proc = wrap(tmp_path, *py(code), limits=limits)
    wait_for(ready)
    os.kill(proc.pid, signal.SIGCONT)
    wait_for(cont)
    proc.terminate()
    proc.communicate(timeout=HANG_GUARD_SECONDS)
    assert proc.returncode == 7
    assert (status(tmp_path)["exit_code"], status(tmp_path)["signal"]) == (7, None)


NOISY = "import sys\nfor i in range(200_000):\n    print(f'line {i:06d}', flush=i % 997 == 0)\n" \
        "print('the end', file=sys.stderr)\nsys.exit(5)\n"


def test_bounded_log_keeps_head_marker_and_tail(tmp_path: Path) -> None:
    """A step printing megabytes leaves a log under --max-bytes: its head, a marker saying
    how much was cut, and its newest lines; the exit code and status are as before."""
    rc, st, log = finish(tmp_path, *py(NOISY), limits=BOUNDS)
    assert (rc, st["exit_code"], st["signal"]) == (5, 5, None)
    assert (tmp_path / "logs" / "step.log").stat().st_size <= 8192
    whole = "".join(f"line {i:06d}\n" for i in range(200_000)) + "the end\n"
    head, marker, tail = re.split(r"\n(\[daylib: .*\])\n", log)
    assert whole.startswith(head) and len(head) == 1024
    assert whole.endswith(tail) and tail.endswith("line 199999\nthe end\n")
    omitted = int(re.findall(r"[0-9]+", marker)[0])
    assert marker == f"[daylib: {omitted} bytes of this log omitted after the first 1024 bytes]"
    assert 1024 + omitted + len(tail) == len(whole)
    assert sorted(p.name for p in (tmp_path / "logs").iterdir()) == ["step.log"]  # no temp


def test_bounded_log_under_its_limit_is_untouched_and_appended(tmp_path: Path) -> None:
    code = "import sys; print('out'); print('err', file=sys.stderr)"
    finish(tmp_path, *py(code), limits=BOUNDS)
    rc, _, log = finish(tmp_path, *py(code), limits=BOUNDS)
    assert rc == 0 and log == "out\nerr\n" * 2


def test_a_fifo_made_by_the_caller_for_the_bounded_log_is_removed(tmp_path: Path) -> None:
    """``--fifo``: the executor on the same host makes the fifo (no mkfifo process per step);
    the output reaches the log as without it, and the fifo is gone once the step ends."""
    fifo = tmp_path / "given.fifo"
    os.mkfifo(fifo, 0o600)
    rc, st, log = finish(tmp_path, *py("print('out')"), limits=[*BOUNDS, "--fifo", str(fifo)])
    assert (rc, st["exit_code"], log) == (0, 0, "out\n")
    assert not fifo.exists()


def test_bounded_wrapper_does_not_wait_for_a_grandchild_holding_the_pipe(tmp_path: Path) -> None:
    """The child exits while a grandchild it left keeps stdout open: the wrapper ends with
    the child, as it does writing the log directly."""
    code = f"""
import subprocess
kid = subprocess.Popen(["sleep", "120"])
open({str(tmp_path / "pids")!r}, "w").write(str(kid.pid))
print("bye", flush=True)
"""
    try:
        rc, st, log = finish(tmp_path, *py(code), limits=BOUNDS)
        assert (rc, st["exit_code"]) == (0, 0)
        assert log == "bye\n"
    finally:
        with contextlib.suppress(OSError, ValueError):
            os.kill(int((tmp_path / "pids").read_text()), signal.SIGKILL)
