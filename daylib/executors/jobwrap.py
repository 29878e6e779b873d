"""Runs one step command inside a batch job and always leaves an exit-status file behind.

Why: without Slurm accounting a finished job vanishes from ``squeue``/``scontrol`` after
``MinJobAge``, taking its exit code with it. The status file is the durable record the executor
reads instead. Standard library only and no daylib imports, so it starts fast on a compute node
(the Slurm executor runs this file by path with ``python -I``; ``python -m`` works too)::

    python -m daylib.executors.jobwrap --status FILE --log FILE -- argv...

The command runs directly (no shell) in its own session, with stdout and stderr appended to the
log. Termination signals sent to the wrapper (``scancel``, walltime) are forwarded to the
command's whole process group. The exit code is the command's; a command killed by signal N
gives 128+N, and 127 means it could not be started.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType
from typing import BinaryIO

FORWARDED = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGCONT, signal.SIGUSR1,
             signal.SIGUSR2)
CANNOT_START = 127


def _now() -> str:
    return datetime.now(UTC).isoformat()


def write_json(path: Path, data: dict[str, object]) -> None:
    """Write-then-rename, so a reader never sees a half-written file (also on NFS/Lustre)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    with open(tmp, "w", encoding="utf-8") as fh:
        json.dump(data, fh)
        fh.write("\n")
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


class _Forwarder:
    """Signal handler that passes signals on to the child's process group. A signal that
    arrives before the child exists is delivered as soon as it does."""

    def __init__(self) -> None:
        self.proc: subprocess.Popen[bytes] | None = None
        self.pending: list[int] = []

    def __call__(self, signum: int, frame: FrameType | None) -> None:
        if self.proc is None:
            self.pending.append(signum)
        else:
            self._send(signum)

    def attach(self, proc: subprocess.Popen[bytes]) -> None:
        self.proc = proc
        for signum in self.pending:
            self._send(signum)
        self.pending.clear()

    def _send(self, signum: int) -> None:
        if self.proc is None or self.proc.returncode is not None:
            return
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, signum)


def run(status_file: Path, log_file: Path, argv: Sequence[str]) -> int:
    """Run argv, write the status file whatever happens, and return the exit code to use."""
    status: dict[str, object] = {
        "exit_code": None, "signal": None, "started_at": _now(), "ended_at": None,
        "argv0": argv[0] if argv else None, "host": socket.gethostname(),
        "job_id": os.environ.get("SLURM_JOB_ID"), "pid": None,
    }
    forward = _Forwarder()
    for signum in FORWARDED:
        signal.signal(signum, forward)
    code = CANNOT_START
    try:
        log_file.parent.mkdir(parents=True, exist_ok=True)
        log = open(log_file, "ab")  # noqa: SIM115 - also used after the child has started
    except OSError as exc:
        print(f"jobwrap: cannot open log {log_file}: {exc}", file=sys.stderr, flush=True)
        status["exit_code"] = code
    else:
        with log:
            code = _run_child(argv, log, forward, status)
    status["ended_at"] = _now()
    try:
        write_json(status_file, status)
    except OSError as exc:
        print(f"jobwrap: cannot write status {status_file}: {exc}", file=sys.stderr, flush=True)
    return code


def _run_child(argv: Sequence[str], log: BinaryIO, forward: _Forwarder,
               status: dict[str, object]) -> int:
    try:
        if not argv:
            raise FileNotFoundError(0, "no command given")
        proc = subprocess.Popen(list(argv), stdin=subprocess.DEVNULL, stdout=log,
                                stderr=subprocess.STDOUT, start_new_session=True)
    except (OSError, ValueError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        log.write(f"jobwrap: cannot start {status['argv0']!r}: {reason}\n".encode())
        status["exit_code"] = CANNOT_START
        return CANNOT_START
    status["pid"] = proc.pid
    forward.attach(proc)
    rc = proc.wait()
    if rc < 0:
        status["signal"] = -rc
        return 128 - rc
    status["exit_code"] = rc
    return rc


def main(args: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m daylib.executors.jobwrap",
                                     description="Run a command, always record how it ended.")
    parser.add_argument("--status", required=True, type=Path, help="exit-status JSON file")
    parser.add_argument("--log", required=True, type=Path, help="stdout+stderr, appended")
    parser.add_argument("argv", nargs=argparse.REMAINDER, help="-- command [args...]")
    ns = parser.parse_args(args)
    argv: list[str] = ns.argv[1:] if ns.argv[:1] == ["--"] else ns.argv
    return run(ns.status, ns.log, argv)


if __name__ == "__main__":
    sys.exit(main())
