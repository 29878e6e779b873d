"""Set-up lookups retried once AWS answers. A monitor started during an outage cannot find its
SNS topic, dead-letter queue or intake queue; without a retry, notifications, dead-lettering
and event intake would stay off for the whole life of the process. A resource that is really
missing, or that we may not see, is an answer: that lookup is not retried."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from daylib.errors import AwsError
from daylib.outage import is_transient

log = logging.getLogger(__name__)


class LateSetup:
    """``attempt`` runs a lookup now and keeps it if AWS did not answer; ``retry`` (called on
    the monitor's housekeeping passes) runs the kept ones again, at most every
    ``every_seconds``, until each succeeds."""

    def __init__(self, every_seconds: float = 10.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.every_seconds = every_seconds
        self.clock = clock
        self._pending: dict[str, Callable[[], None]] = {}
        self._next = 0.0
        self._lock = threading.Lock()

    @property
    def pending(self) -> list[str]:
        return sorted(self._pending)

    def attempt(self, what: str, fn: Callable[[], None]) -> bool:
        """Run ``fn``; True when it is done (or failed for good), False when kept for later."""
        try:
            fn()
        except AwsError as exc:
            if not is_transient(exc):
                log.warning("%s is off: cannot look it up: %s", what, str(exc)[:300])
                return True
            with self._lock:
                first = what not in self._pending
                self._pending[what] = fn
                self._next = self.clock() + self.every_seconds
            if first:
                log.warning("%s is off until AWS answers (retried every %.0f s): %s", what,
                            self.every_seconds, str(exc)[:300])
            return False
        with self._lock:
            if self._pending.pop(what, None) is not None:
                log.info("%s is on: AWS answered", what)
        return True

    def retry(self) -> None:
        """Try the kept lookups again if their time has come."""
        with self._lock:
            if not self._pending or self.clock() < self._next:
                return
            due = list(self._pending.items())
        for what, fn in due:
            self.attempt(what, fn)
