"""The executor contract: submit a step, find it again after a crash, wait, cancel."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

STEPS = ("stage", "run", "export")


def next_step(step: str) -> str | None:
    """The step that follows ``step`` (None after the last)."""
    return STEPS[STEPS.index(step) + 1] if step != STEPS[-1] else None


def log_name(step: str, attempt: int) -> str:
    """The step attempt's log in its workset's work directory (and in S3: daylib/steplogs.py)."""
    return f"{step}.a{attempt}.log"


def status_name(step: str, attempt: int) -> str:
    """The wrapper's exit-status file beside the log; it exists once the step has ended."""
    return f".{step}.a{attempt}.status.json"


@dataclass(frozen=True)
class StepRequest:
    """Everything an executor needs to run one step of one attempt of a workset."""

    workset_id: str
    attempt: int
    step: str
    argv: list[str]
    workdir: Path
    env: dict[str, str] = field(default_factory=dict)
    vcpus: int | None = None
    memory_gb: float | None = None
    walltime_minutes: int | None = None
    timeout_seconds: float = 86400.0
    # Bounds of the live log (``step_logs.max_bytes`` / ``head_bytes``); None: unbounded.
    log_max_bytes: int | None = None
    log_head_bytes: int = 0

    @property
    def job_key(self) -> str:
        """Stable name that lets a restarted monitor find a job it already submitted."""
        return f"daylib-{self.workset_id}-a{self.attempt}-{self.step}"

    @property
    def status_file(self) -> Path:
        return self.workdir / status_name(self.step, self.attempt)

    @property
    def log_file(self) -> Path:
        return self.workdir / log_name(self.step, self.attempt)

    def wrapper_args(self) -> list[str]:
        """``jobwrap``'s arguments (after the script) for this step."""
        limits = [] if self.log_max_bytes is None else [
            "--max-bytes", str(self.log_max_bytes), "--head-bytes", str(self.log_head_bytes)]
        return ["--status", str(self.status_file), "--log", str(self.log_file), *limits,
                "--", *self.argv]


@dataclass(frozen=True)
class StepOutcome:
    """How a step ended. ``state`` uses Slurm's words where they apply (COMPLETED, FAILED,
    TIMEOUT, OUT_OF_MEMORY, CANCELLED, NODE_FAIL) plus LOST for a job nobody knows."""

    state: str
    exit_code: int | None = None
    signal: int | None = None
    stderr_tail: str = ""
    job_ref: str = ""

    @property
    def ok(self) -> bool:
        return self.state == "COMPLETED" and self.exit_code == 0


class Executor(Protocol):
    """What an executor offers; the monitor asks nothing else of it (no name checks)."""

    name: str
    # Job references outlive this process (a batch scheduler's ids), so the monitor writes
    # them on the workset for ``show`` and for adoption by another monitor.
    records_jobs: bool

    def cluster_capacity(self) -> dict[str, Any] | None:
        """The cluster's CPUs and memory for the registry, or None: this machine's."""

    def submit(self, req: StepRequest) -> str:
        """Start the step; return a job reference (pid, Slurm job id) to record on the item."""

    def find(self, req: StepRequest) -> str | None:
        """A job already submitted for this request (by key), or None. Used for adoption."""

    def wait(self, job_ref: str, req: StepRequest, stop: threading.Event) -> StepOutcome:
        """Block until the job ends, or until ``stop`` is set (then return state CANCELLED
        only if the job was cancelled; a job left running returns state RUNNING)."""

    def cancel(self, job_ref: str) -> None:
        """Stop the job; safe to call on a job that already ended."""
