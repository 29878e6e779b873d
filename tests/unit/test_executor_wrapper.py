"""Tests about one wrapper each, so they run once and are never skipped: the executors start
``jobwrap.sh`` (no interpreter per step), and the Python reference ``jobwrap.py`` has entry
points of its own. What both wrappers must do alike is in test_jobwrap.py."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from daylib.executors import jobwrap
from daylib.executors.base import StepRequest
from daylib.executors.local import LocalExecutor
from daylib.executors.slurm import SlurmExecutor
from tests.support.waiting import wait_for

JOBWRAP_SH = Path(jobwrap.__file__).with_name("jobwrap.sh")


def test_runs_as_module_too(tmp_path: Path) -> None:
    st_file = tmp_path / "s.json"
    res = subprocess.run([sys.executable, "-m", "daylib.executors.jobwrap", "--status",
                          str(st_file), "--log", str(tmp_path / "l.log"), "--", "true"],
                         cwd=Path(__file__).resolve().parents[2], timeout=30, check=False)
    assert res.returncode == 0
    assert json.loads(st_file.read_text())["exit_code"] == 0


def test_write_json_replaces_atomically(tmp_path: Path) -> None:
    target = tmp_path / "deep" / "x.json"
    jobwrap.write_json(target, {"a": 1})
    jobwrap.write_json(target, {"a": 2})
    assert json.loads(target.read_text()) == {"a": 2}
    assert [p.name for p in target.parent.iterdir()] == ["x.json"]


def _request(tmp_path: Path) -> StepRequest:
    ready = tmp_path / "ready"
    return StepRequest("ws-1", 1, "run", ["sh", "-c", f"touch {ready}; exec sleep 30"],
                       tmp_path / "work")


def _exe(pid: int) -> str:
    return os.path.basename(os.readlink(f"/proc/{pid}/exe"))


def test_local_executor_starts_no_interpreter_per_step(tmp_path: Path) -> None:
    """Slot refill: the wrapper around each step is sh, not a Python interpreter start."""
    ex = LocalExecutor()
    req = _request(tmp_path)
    ref = ex.submit(req)
    try:
        wait_for(tmp_path / "ready")
        assert "python" not in _exe(int(ref))
        assert ex.find(req) == ref  # adoption still finds the running step by its pid file
    finally:
        ex.cancel(ref)
    assert status_of(req)["signal"] == signal.SIGTERM


def status_of(req: StepRequest) -> dict[str, object]:
    wait_for(req.status_file)
    data = json.loads(req.status_file.read_text())
    assert isinstance(data, dict)
    return data


def test_slurm_batch_script_starts_no_interpreter(tmp_path: Path) -> None:
    script = SlurmExecutor().batch_script(_request(tmp_path))
    assert "python" not in script
    assert f"exec /bin/bash {JOBWRAP_SH} --status" in script


@pytest.mark.parametrize("limits", [[], ["--max-bytes", "8192", "--head-bytes", "1024"]],
                         ids=["direct", "bounded"])
def test_sh_wrapper_starts_only_the_status_rename_after_the_command(
        tmp_path: Path, limits: list[str]) -> None:
    """The runner waits for the wrapper's exit: whatever it starts once the command has ended
    is on every step's path. Only the status file's rename is; nothing is left behind."""
    shims, tmp = tmp_path / "shims", tmp_path / "tmp"
    shims.mkdir()
    tmp.mkdir()
    ended = tmp_path / "ended"
    for tool in ("rm", "mv", "mkfifo"):
        shim = shims / tool
        shim.write_text(f"#!/bin/sh\n[ -e {ended} ] && echo {tool} >>{tmp_path / 'after'}\n"
                        f"exec {shutil.which(tool)} \"$@\"\n")
        shim.chmod(0o755)
    status = tmp_path / "st" / "status.json"
    env = {**os.environ, "PATH": f"{shims}:{os.environ['PATH']}", "TMPDIR": str(tmp)}
    res = subprocess.run(["/bin/bash", str(JOBWRAP_SH), "--status", str(status), "--log",
                          str(tmp_path / "l.log"), *limits, "--", "sh", "-c",
                          f"sleep 0.3; : >{ended}"], env=env, timeout=30, check=False)
    assert res.returncode == 0
    assert json.loads(status.read_text())["exit_code"] == 0
    assert (tmp_path / "after").read_text().split() == ["mv"]
    assert list(tmp.iterdir()) == []
    assert [p.name for p in status.parent.iterdir()] == ["status.json"]


def _shims(tmp_path: Path, log: Path, tools: tuple[str, ...]) -> Path:
    """A PATH directory whose ``tools`` record each start in ``log``, then run the real one."""
    shims = tmp_path / "shims"
    shims.mkdir()
    for tool in tools:
        shim = shims / tool
        shim.write_text(f"#!/bin/sh\necho {tool} >>{log}\nexec {shutil.which(tool)} \"$@\"\n")
        shim.chmod(0o755)
    return shims


def test_sh_wrapper_given_a_fifo_uses_it_and_removes_it(tmp_path: Path) -> None:
    """The local executor makes the bounded log's fifo itself (a system call): the wrapper
    then starts no mkfifo before the command, and its pump still removes the fifo."""
    tmp, started = tmp_path / "tmp", tmp_path / "started"
    tmp.mkdir()
    fifo = tmp / "given.fifo"
    os.mkfifo(fifo, 0o600)
    env = {**os.environ, "PATH": f"{_shims(tmp_path, started, ('mkfifo',))}:"
                                 f"{os.environ['PATH']}", "TMPDIR": str(tmp)}
    status, log = tmp_path / "status.json", tmp_path / "l.log"
    res = subprocess.run(["/bin/bash", str(JOBWRAP_SH), "--fifo", str(fifo), "--status",
                          str(status), "--log", str(log), "--max-bytes", "8192",
                          "--head-bytes", "1024", "--", "sh", "-c", "echo out; echo err >&2"],
                         env=env, timeout=30, check=False)
    assert res.returncode == 0
    assert json.loads(status.read_text())["exit_code"] == 0
    assert log.read_text() == "out\nerr\n"
    assert not started.exists()  # no mkfifo
    assert list(tmp.iterdir()) == []


def test_local_executor_makes_a_bounded_logs_fifo_without_a_process(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    tmp, started = tmp_path / "tmp", tmp_path / "started"
    tmp.mkdir()
    monkeypatch.setattr("tempfile.tempdir", str(tmp))
    shims = _shims(tmp_path, started, ("mkfifo",))
    req = StepRequest("ws-1", 1, "run", ["sh", "-c", "echo out"], tmp_path / "work",
                      env={"PATH": f"{shims}:{os.environ['PATH']}", "TMPDIR": str(tmp)},
                      log_max_bytes=8192, log_head_bytes=1024)
    ex = LocalExecutor(poll_seconds=0.01)
    out = ex.wait(ex.submit(req), req, threading.Event())
    assert (out.state, out.exit_code) == ("COMPLETED", 0)
    assert req.log_file.read_text() == "out\n"
    assert not started.exists()  # no mkfifo
    assert list(tmp.iterdir()) == []
