"""Runs one step command inside a batch job and always leaves an exit-status file behind.

Why: without Slurm accounting a finished job vanishes from ``squeue``/``scontrol`` after
``MinJobAge``, taking its exit code with it. The status file is the durable record the executor
reads instead. The executors run its POSIX sh twin, ``jobwrap.sh`` (same arguments, same
files, no interpreter start per step); this module is the contract's reference, and the
tests hold both to it. Standard library only, no daylib imports::

    python -m daylib.executors.jobwrap --status FILE --log FILE [--max-bytes N] [--fifo FILE]
        -- argv...

The command runs directly (no shell) in its own session, with stdout and stderr appended to the
log. With ``--max-bytes`` (and ``--head-bytes``) the output goes through a pipe and the log
stays bounded: its head, a marker line saying how much was cut, and a rolling tail, so a step
printing gigabytes cannot fill the shared file system. Termination signals sent to the
wrapper (``scancel``, walltime) are forwarded to the command's whole process group. The
exit code is the command's; a command killed by signal N gives 128+N, and 127 means it could
not be started.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import select
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
MARKER_ROOM = 120  # bytes kept free for the marker line (steplogs.bounded uses the same)
CHUNK_BYTES = 65_536
POLL_SECONDS = 0.5  # how often a silent child is checked for having exited
DRAIN_CHUNKS = 16  # what a pipe can hold once the child has exited, with room to spare


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


class BoundedLog:
    """An append-only log file kept under ``max_bytes``: once full, it is replaced (write,
    then rename) by its head, a marker line and the newest half of the room left for the
    tail. Each file is only ever appended to, so a follower reading one open file sees a
    consistent text; a new inode tells it the log was cut (``steplogs.follow``)."""

    def __init__(self, path: Path, max_bytes: int, head_bytes: int) -> None:
        self.path = path
        self.max_bytes = max_bytes
        self.head_bytes = min(head_bytes, max_bytes // 2)
        self.keep_bytes = max(0, max_bytes - self.head_bytes - MARKER_ROOM) // 2
        self.fh = open(path, "ab", buffering=0)  # noqa: SIM115 - replaced when cut
        self.size = os.fstat(self.fh.fileno()).st_size
        self.total = self.size  # bytes written to the log, cut ones included

    def write(self, data: bytes) -> None:
        self.fh.write(data)
        self.size += len(data)
        self.total += len(data)
        if self.size > self.max_bytes:
            self._cut()

    def close(self) -> None:
        self.fh.close()

    def _cut(self) -> None:
        with open(self.path, "rb") as old:
            head = old.read(self.head_bytes)
            old.seek(self.size - self.keep_bytes)
            tail = old.read(self.keep_bytes)
        omitted = self.total - len(head) - len(tail)
        marker = (f"\n[daylib: {omitted} bytes of this log omitted after the first "
                  f"{len(head)} bytes]\n").encode()
        tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.cut")
        try:
            with open(tmp, "wb") as fh:
                fh.write(head + marker + tail)
            os.replace(tmp, self.path)
        except OSError:
            tmp.unlink(missing_ok=True)  # a full disk: leave no half-written copy behind
            raise
        self.fh.close()
        self.fh = open(self.path, "ab", buffering=0)  # noqa: SIM115 - replaced when cut
        self.size = len(head) + len(marker) + len(tail)


def pump(proc: subprocess.Popen[bytes], fd: int, log: BoundedLog) -> None:
    """Copy the child's output to ``log`` until the pipe closes or the child has exited; then
    only what the pipe already holds (a grandchild keeping the pipe open must not keep the
    wrapper, and so the status file, waiting)."""
    sink = _Sink(log)
    while proc.poll() is None:
        ready, _, _ = select.select([fd], [], [], POLL_SECONDS)
        if ready and not sink.take(os.read(fd, CHUNK_BYTES)):
            return
    for _ in range(DRAIN_CHUNKS):
        ready, _, _ = select.select([fd], [], [], 0)
        if not ready or not sink.take(os.read(fd, CHUNK_BYTES)):
            return


class _Sink:
    """Writes to the log until a write fails (a full disk), then discards, so the child
    never blocks on a full pipe."""

    def __init__(self, log: BoundedLog) -> None:
        self.log = log
        self.failed = False

    def take(self, data: bytes) -> bool:
        """Write ``data``; False at end of output."""
        if data and not self.failed:
            try:
                self.log.write(data)
            except OSError as exc:
                self.failed = True
                print(f"jobwrap: cannot write log {self.log.path}: {exc}", file=sys.stderr,
                      flush=True)
        return bool(data)


def run(status_file: Path, log_file: Path, argv: Sequence[str],
        limits: tuple[int, int] | None = None) -> int:
    """Run argv, write the status file whatever happens, and return the exit code to use.
    ``limits`` (max bytes, head bytes) bound the log."""
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
        log: BinaryIO | BoundedLog = (open(log_file, "ab") if limits is None  # noqa: SIM115
                                      else BoundedLog(log_file, *limits))
    except OSError as exc:
        print(f"jobwrap: cannot open log {log_file}: {exc}", file=sys.stderr, flush=True)
        status["exit_code"] = code
    else:
        try:
            code = _run_child(argv, log, forward, status)
        finally:
            log.close()
    status["ended_at"] = _now()
    try:
        write_json(status_file, status)
    except OSError as exc:
        print(f"jobwrap: cannot write status {status_file}: {exc}", file=sys.stderr, flush=True)
    return code


def _run_child(argv: Sequence[str], log: BinaryIO | BoundedLog, forward: _Forwarder,
               status: dict[str, object]) -> int:
    try:
        if not argv:
            raise FileNotFoundError(0, "no command given")
        proc = subprocess.Popen(list(argv), stdin=subprocess.DEVNULL,
                                stdout=subprocess.PIPE if isinstance(log, BoundedLog) else log,
                                stderr=subprocess.STDOUT, start_new_session=True)
    except (OSError, ValueError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        log.write(f"jobwrap: cannot start {status['argv0']!r}: {reason}\n".encode())
        status["exit_code"] = CANNOT_START
        return CANNOT_START
    status["pid"] = proc.pid
    forward.attach(proc)
    if isinstance(log, BoundedLog) and proc.stdout is not None:
        with proc.stdout:
            pump(proc, proc.stdout.fileno(), log)
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
    parser.add_argument("--max-bytes", type=int, help="keep the log under this many bytes")
    parser.add_argument("--head-bytes", type=int, default=0,
                        help="with --max-bytes: the first bytes always kept")
    parser.add_argument("--fifo", type=Path,
                        help="a fifo the caller made for the output: removed (a pipe is used)")
    parser.add_argument("argv", nargs=argparse.REMAINDER, help="-- command [args...]")
    ns = parser.parse_args(args)
    if ns.fifo is not None and ns.fifo.is_fifo():
        ns.fifo.unlink(missing_ok=True)
    argv: list[str] = ns.argv[1:] if ns.argv[:1] == ["--"] else ns.argv
    limits = None if ns.max_bytes is None else (ns.max_bytes, ns.head_bytes)
    return run(ns.status, ns.log, argv, limits)


if __name__ == "__main__":
    sys.exit(main())
