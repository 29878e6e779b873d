"""Runs steps as processes on this machine (argv, no shell), for the demo and tests.

Each step runs under the same wrapper as on Slurm (``jobwrap.sh``: no interpreter start),
detached in its own session, leaving a pid record and an exit-status file in the work
directory. So a monitor restarted or taken over at any instant finds the step still running
(or its result) and adopts it instead of starting it twice. For the same reason ``wait``
leaves a step running when told to stop (a takeover or hand-back): only ``cancel`` ends one.

Every wrapper started here gets a thread blocked in ``waitpid`` on it, so a step that ends
is reaped at once, whoever is (or is no longer) waiting for it: no ``<defunct>`` entries. The
same thread wakes ``wait``, so a step's end is seen when its wrapper exits, not a poll later;
polling the status file remains for steps adopted from another run of the monitor.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
import tempfile
import threading
import time
from pathlib import Path

from daylib.executors.base import StepOutcome, StepRequest
from daylib.threads import start_soon

TAIL_BYTES = 4096
JOBWRAP = Path(__file__).resolve().with_name("jobwrap.sh")
DONE_REF = "done"
LOST_GRACE_SECONDS = 2.0


def tail(path: os.PathLike[str] | str, limit: int = TAIL_BYTES) -> str:
    try:
        with open(path, "rb") as fh:
            fh.seek(0, os.SEEK_END)
            size = fh.tell()
            fh.seek(max(0, size - limit))
            return fh.read().decode("utf-8", errors="replace")
    except OSError:
        return ""


def _pid_file(req: StepRequest) -> Path:
    return req.status_file.with_name(req.status_file.name + ".pid")


def _alive(pid: int, status_file: Path) -> bool:
    """The process exists and is our wrapper for this step (pids get reused)."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False
    if str(status_file).encode() not in cmdline:
        return False
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def _outcome(req: StepRequest, ref: str) -> StepOutcome | None:
    try:
        status = json.loads(req.status_file.read_text())
    except (OSError, ValueError):
        return None
    code = status.get("exit_code")
    sig = status.get("signal")
    if code == 0:
        return StepOutcome("COMPLETED", 0, None, tail(req.log_file), ref)
    return StepOutcome("FAILED", code, sig, tail(req.log_file), ref)


def _fifo() -> Path:
    """The bounded log's fifo, made here (a system call) rather than by the wrapper (a
    mkfifo process before every step's command); the wrapper's pump removes it."""
    path = Path(tempfile.gettempdir()) / f"jobwrap.{secrets.token_hex(8)}.fifo"
    os.mkfifo(path, 0o600)
    return path


class LocalExecutor:
    name = "local"
    records_jobs = False  # pids die with the host; adoption uses the status file

    def cluster_capacity(self) -> None:
        """This machine: the registry measures it."""
        return None

    def __init__(self, poll_seconds: float = 0.05) -> None:
        self.poll_seconds = poll_seconds
        self._procs: dict[str, subprocess.Popen[bytes]] = {}
        self._exits: dict[str, threading.Event] = {}  # set when the wrapper has exited
        self._lock = threading.Lock()

    def submit(self, req: StepRequest) -> str:
        req.workdir.mkdir(parents=True, exist_ok=True)
        req.status_file.unlink(missing_ok=True)
        fifo = _fifo() if req.log_max_bytes is not None else None
        argv = ["/bin/bash", str(JOBWRAP), *(["--fifo", str(fifo)] if fifo else []),
                *req.wrapper_args()]
        try:
            proc = subprocess.Popen(argv, cwd=req.workdir, env={**os.environ, **req.env},
                                    stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                    stderr=subprocess.DEVNULL, start_new_session=True,
                                    umask=0o077)  # inputs, logs, results: the monitor's only
        except BaseException:
            if fifo is not None:
                fifo.unlink(missing_ok=True)
            raise
        fd = os.open(_pid_file(req), os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW,
                     0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(str(proc.pid))
        ref = str(proc.pid)
        exited = threading.Event()
        with self._lock:
            self._procs[ref] = proc
            self._exits[ref] = exited
        start_soon(self._reaper, ref, proc, exited)
        return ref

    def _reaper(self, ref: str, proc: subprocess.Popen[bytes], exited: threading.Event) -> None:
        """Collect the wrapper's exit status as soon as it ends (no zombie lingers)."""
        proc.wait()
        with self._lock:
            self._procs.pop(ref, None)
            self._exits.pop(ref, None)
        exited.set()

    def find(self, req: StepRequest) -> str | None:
        if req.status_file.exists():
            return DONE_REF
        try:
            pid = int(_pid_file(req).read_text())
        except (OSError, ValueError):
            return None
        return str(pid) if _alive(pid, req.status_file) else None

    def wait(self, job_ref: str, req: StepRequest, stop: threading.Event) -> StepOutcome:
        deadline = time.monotonic() + req.timeout_seconds
        gone_since: float | None = None
        with self._lock:
            exited = self._exits.get(job_ref)  # None: not started here, or already over
        while True:
            done = _outcome(req, job_ref)
            if done is not None:
                return done
            if stop.is_set():  # taken over or handed back: the next owner adopts the step
                return StepOutcome("RUNNING", None, None, tail(req.log_file), job_ref)
            if time.monotonic() > deadline:
                self.cancel(job_ref)
                return StepOutcome("TIMEOUT", None, signal.SIGTERM, tail(req.log_file),
                                   job_ref)
            if not job_ref.isdigit() or not _alive(int(job_ref), req.status_file):
                gone_since = gone_since or time.monotonic()
                if time.monotonic() - gone_since > LOST_GRACE_SECONDS:
                    return StepOutcome("LOST", None, None, tail(req.log_file), job_ref)
            if exited is not None and not exited.is_set():
                exited.wait(self.poll_seconds)  # returns as the wrapper exits
            else:
                time.sleep(self.poll_seconds)

    def cancel(self, job_ref: str) -> None:
        if not job_ref.isdigit():
            return
        pid = int(job_ref)
        try:
            os.killpg(pid, signal.SIGTERM)
        except (ProcessLookupError, PermissionError):
            return
        for _ in range(100):
            with self._lock:
                proc = self._procs.get(job_ref)
            if proc is not None:
                if proc.poll() is not None:
                    return
            elif not Path(f"/proc/{pid}").exists():
                return
            time.sleep(0.05)
        try:
            os.killpg(pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            return
