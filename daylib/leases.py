"""Judging a lease dead without trusting anyone's clock (the record-version approach of
dynamodb-lock-client).

The owner's heartbeat rewrites ``lease_expires`` with a new value each time; other monitors
read it only as a version. A claimant that sees the same (state, owner, token, version) for
``lease_seconds`` on its own monotonic clock judges the lease dead, and its takeover write is
conditioned on exactly that version: a heartbeat in between makes the takeover fail. No two
machines' clocks are ever compared, so a skewed monitor neither steals a live lease nor waits
for its skew before adopting a dead one."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from daylib.store.records import WorksetRecord


def lease_version(rec: WorksetRecord) -> tuple[Any, ...]:
    """What changes whenever the owner shows life (heartbeat, takeover, state change)."""
    return rec.state, rec.owner, rec.lease_token, rec.lease_expires


@dataclass
class _Seen:
    version: tuple[Any, ...]
    since: float  # on this monitor's monotonic clock


class LeaseWatch:
    """Remembers, per owned workset, since when its lease version has not changed."""

    def __init__(self, lease_seconds: float,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.lease_seconds = lease_seconds
        self.clock = clock
        self._seen: dict[str, _Seen] = {}

    @property
    def watching(self) -> bool:
        """False: the next ``expired`` cannot find a dead lease, as each must first be seen
        standing still (a monitor may claim new work before reading the owned ones)."""
        return bool(self._seen)

    def expired(self, owned: Iterable[WorksetRecord]) -> list[WorksetRecord]:
        """Of ``owned`` (every owned workset, as read now), those whose version has stood
        still for ``lease_seconds``; worksets no longer owned are forgotten."""
        now = self.clock()
        seen: dict[str, _Seen] = {}
        dead: list[WorksetRecord] = []
        for rec in owned:
            version = lease_version(rec)
            last = self._seen.get(rec.workset_id)
            if last is None or last.version != version:
                last = _Seen(version, now)
            seen[rec.workset_id] = last
            if now - last.since >= self.lease_seconds:
                dead.append(rec)
        self._seen = seen
        return dead
