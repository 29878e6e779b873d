"""Riding out an AWS outage: a throttled or unreachable backend slows the daemon down and never
stops it. Each caller keeps one ``Outage`` per kind of call, so an outage costs one log line
when it starts and one when it ends (not one per failed call), and the wait between tries
grows with the outage instead of hammering a service that is already struggling."""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable

from daylib.errors import AwsThrottled, AwsUnavailable, DaylibError

TRANSIENT: tuple[type[DaylibError], ...] = (AwsThrottled, AwsUnavailable)


def is_transient(exc: BaseException) -> bool:
    """Worth trying again later: AWS throttled us or could not be reached."""
    return isinstance(exc, TRANSIENT)


class HandOver(DaylibError):
    """AWS stayed unavailable until this monitor's lease would lapse: the workset is left as
    it is (state, attempt, running job) for the next owner to resume and adopt."""


class Outage:
    """One kind of call through an outage: ``failed`` on each transient error (logs the first
    and returns the wait before the next try), ``ok`` on success (logs the recovery)."""

    def __init__(self, what: str, logger: logging.Logger, *, base: float = 0.1,
                 cap: float = 5.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.what = what
        self.log = logger
        self.base = base
        self.cap = cap
        self.clock = clock
        self.since: float | None = None
        self.failures = 0

    @property
    def active(self) -> bool:
        return self.since is not None

    def failed(self, exc: BaseException) -> float:
        if self.since is None:
            self.since = self.clock()
            self.log.warning("%s: AWS unavailable, retrying with backoff (logged once per "
                             "outage): %s", self.what, str(exc)[:300])
        self.failures += 1
        return self.delay()

    def delay(self) -> float:
        """Full-jitter exponential backoff, capped."""
        if not self.failures:
            return 0.0
        step: float = min(self.cap, self.base * 2.0 ** min(self.failures, 16))
        return random.uniform(0.5, 1.0) * step

    def ok(self) -> None:
        if self.since is not None:
            self.log.warning("%s: AWS reachable again after %.1f s (%d failed calls)",
                             self.what, self.clock() - self.since, self.failures)
        self.since = None
        self.failures = 0
