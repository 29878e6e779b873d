"""How long the monitor sleeps between passes, and what an idle pass looks at.

``poll_seconds`` while there is work, growing fourfold up to ``idle_max_seconds`` while passes
find none. Events do not wait for a pass: a registration (intake), an operator's command (a
wake message on the intake queue), a finished step and a stop request wake the monitor at
once, and a retry known to fall due is waited for exactly.

While idle a pass is one read (``Store.active_items``: the sparse active index, so its cost
does not grow with finished worksets); only what it shows as work brings the full pass
(control, ready queue, leases, retries). So an idle monitor costs a read and a heartbeat a
minute without reacting later to anything it can be told about."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from daylib import states as S
from daylib.store.records import ActiveItems


class IdlePacer:
    """``quiet()`` after a pass that found nothing, ``busy()`` after one that did (or on an
    event); ``interval`` is the current pause between passes."""

    def __init__(self, poll_seconds: float, idle_max_seconds: float) -> None:
        self.poll_seconds = poll_seconds
        self.max_seconds = max(poll_seconds, idle_max_seconds)
        self.interval = poll_seconds

    @property
    def idle(self) -> bool:
        return self.interval > self.poll_seconds

    def busy(self) -> None:
        self.interval = self.poll_seconds

    def quiet(self) -> None:
        self.interval = min(self.max_seconds, self.interval * 4)

    def due(self, now: float, due_at: float | None) -> float:
        """When the next pass is due: after the interval, or sooner when something is."""
        return min(now + self.interval, due_at if due_at is not None else float("inf"))


@dataclass(frozen=True)
class Look:
    """What an idle pass saw: ``work`` for the full pass (something ready, owned by any
    monitor, whose lease must be watched, or a retry due), the earliest retry still to come,
    and the clusters."""

    work: bool
    next_retry_at: float | None = None
    clusters: list[dict[str, Any]] = field(default_factory=list)


def look(items: ActiveItems, now: float) -> Look:
    retries = [r.retry_at or 0.0 for r in items.worksets if r.state == S.RETRYING]
    work = any(r.state != S.RETRYING for r in items.worksets) or any(t <= now for t in retries)
    return Look(work, min(retries, default=None), items.clusters)
