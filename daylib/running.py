"""What a monitor owns right now: one ``Running`` per claimed workset, and the counts."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

from daylib.store.records import Lease, WorksetRecord


@dataclass(frozen=True)
class Checkpoint:
    """A step that finished at ``at`` (store clock) and is not yet recorded on the item."""

    step: str
    at: float


@dataclass
class Running:
    """A workset this monitor owns right now."""

    rec: WorksetRecord
    lease: Lease
    stop: threading.Event = field(default_factory=threading.Event)
    lost: bool = False
    handing_back: bool = False
    finished: bool = False  # its last write is done or under way: no more heartbeats
    handed_over: bool = False  # AWS unreachable until the lease would lapse: left as it is
    beat_ok: float = field(default_factory=time.monotonic)  # last lease extension (monotonic)
    # Step job references as the item should hold them: a new one is recorded by the next
    # write that happens anyway (heartbeat or checkpoint), never by a write of its own.
    jobs: dict[str, str] = field(default_factory=dict)
    jobs_written: dict[str, str] = field(default_factory=dict)  # as the last write left them
    # Finished steps not yet on the item: each rides on the next write that happens anyway
    # (the heartbeat while the next step runs, or the next step's own write). Until then the
    # step's exit-status file is its record, and a monitor resuming the workset adopts it.
    pending: list[Checkpoint] = field(default_factory=list)
    write_lock: threading.Lock = field(default_factory=threading.Lock)  # one writer at a time

    def __post_init__(self) -> None:
        self.jobs = self.jobs or dict(self.rec.jobs)
        self.jobs_written = self.jobs_written or dict(self.rec.jobs)

    def unrecorded_jobs(self) -> dict[str, str] | None:
        """The jobs map if it holds a reference no write has recorded yet, else None."""
        jobs = self.jobs
        return jobs if jobs != self.jobs_written else None

    def steps_done(self) -> list[str]:
        """Finished steps, written or not (under ``write_lock``)."""
        return [*self.rec.steps_done, *(c.step for c in self.pending)]


@dataclass
class Stats:
    claimed: int = 0
    completed: int = 0
    failed: int = 0
    retrying: int = 0
    handed_back: int = 0
    conflicts: int = 0
    taken_over: int = 0
