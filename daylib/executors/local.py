"""Runs steps as subprocesses on this machine (argv, no shell), for the demo and tests."""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time

from daylib.executors.base import StepOutcome, StepRequest

TAIL_BYTES = 4096


def tail(path: os.PathLike[str] | str, limit: int = TAIL_BYTES) -> str:
    try:
        with open(path, "rb") as fh:
            fh.seek(0, os.SEEK_END)
            size = fh.tell()
            fh.seek(max(0, size - limit))
            return fh.read().decode("utf-8", errors="replace")
    except OSError:
        return ""


class LocalExecutor:
    """One process group per step so cancel reaches the step's children too."""

    name = "local"

    def __init__(self, poll_seconds: float = 0.05) -> None:
        self.poll_seconds = poll_seconds
        self._procs: dict[str, subprocess.Popen[bytes]] = {}
        self._lock = threading.Lock()

    def submit(self, req: StepRequest) -> str:
        req.workdir.mkdir(parents=True, exist_ok=True)
        with open(req.log_file, "ab") as log:
            try:
                proc = subprocess.Popen(
                    req.argv, cwd=req.workdir, env={**os.environ, **req.env},
                    stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            except OSError as exc:
                log.write(f"cannot start {req.argv[0]!r}: {exc.strerror}\n".encode())
                return f"failed:{exc.errno}"
        ref = str(proc.pid)
        with self._lock:
            self._procs[ref] = proc
        return ref

    def find(self, req: StepRequest) -> str | None:
        return None

    def wait(self, job_ref: str, req: StepRequest, stop: threading.Event) -> StepOutcome:
        if job_ref.startswith("failed:"):
            return StepOutcome("FAILED", 127, None, tail(req.log_file), job_ref)
        with self._lock:
            proc = self._procs.get(job_ref)
        if proc is None:
            return StepOutcome("LOST", None, None, tail(req.log_file), job_ref)
        deadline = time.monotonic() + req.timeout_seconds
        try:
            while True:
                try:
                    rc = proc.wait(timeout=self.poll_seconds)
                    break
                except subprocess.TimeoutExpired:
                    pass
                if stop.is_set():
                    self.cancel(job_ref)
                    rc = proc.wait()
                    return StepOutcome("CANCELLED", None, signal.SIGTERM, tail(req.log_file),
                                       job_ref)
                if time.monotonic() > deadline:
                    self.cancel(job_ref)
                    proc.wait()
                    return StepOutcome("TIMEOUT", None, signal.SIGTERM, tail(req.log_file),
                                       job_ref)
        finally:
            if proc.returncode is not None:
                with self._lock:
                    self._procs.pop(job_ref, None)
        if rc < 0:
            return StepOutcome("FAILED", 128 - rc, -rc, tail(req.log_file), job_ref)
        return StepOutcome("COMPLETED" if rc == 0 else "FAILED", rc, None,
                           tail(req.log_file), job_ref)

    def cancel(self, job_ref: str) -> None:
        with self._lock:
            proc = self._procs.get(job_ref)
        if proc is None or proc.poll() is not None:
            return
        try:
            os.killpg(proc.pid, signal.SIGTERM)
        except ProcessLookupError:
            return
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
