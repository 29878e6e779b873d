"""Intake off the claiming path: one thread long-polls the S3 event queue, another runs the
reconciliation listing (at start, then every ``intake.reconcile_seconds``, longer when it took
more than a few list requests: thousands of folders, or many waiting ones; every
``monitor.discovery_seconds`` when there is no queue). Each registration, and each wake message
an operator's command sent, wakes the monitor so the work is claimed at once."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from daylib.config import Settings
from daylib.intake import Intake
from daylib.intake_events import IntakeQueue
from daylib.outage import Outage, is_transient

log = logging.getLogger(__name__)
ERROR_PAUSE_SECONDS = 1.0
# With the event queue the listing only reconciles: at most one list request per this many
# seconds on average, so its cost stays flat however many worksets the prefix holds.
RECONCILE_SECONDS_PER_REQUEST = 240.0


class IntakeService:
    """``start`` / ``stop``: the two intake threads of one monitor."""

    def __init__(self, intake: Intake, queue: IntakeQueue | None, listing_seconds: float,
                 wake: Callable[[], None]) -> None:
        self.intake = intake
        self.queue = queue
        self.listing_seconds = listing_seconds
        self.listing_pause = listing_seconds  # after the last listing
        self.wake = wake
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    def start(self) -> None:
        self._threads = [threading.Thread(target=self._listing_loop, name="intake-list",
                                          daemon=True)]
        if self.queue is not None:
            self._threads.append(threading.Thread(target=self._event_loop, name="intake-events",
                                                  daemon=True))
        for thread in self._threads:
            thread.start()

    def use_queue(self, queue: IntakeQueue, listing_seconds: float) -> None:
        """Start polling a queue found after start (the listing slows to reconciliation)."""
        if self.queue is not None or self._stop.is_set():
            return
        self.queue, self.listing_seconds = queue, listing_seconds
        if self._threads:
            thread = threading.Thread(target=self._event_loop, name="intake-events",
                                      daemon=True)
            self._threads.append(thread)
            thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        """Stops both loops; a long poll in flight ends by itself within its wait."""
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout)

    def _handle(self, folder: str) -> str:
        """A folder event wakes the monitor when it registered the workset, or found it
        registered already (``submit`` registers before it uploads): an idle monitor then
        looks at the queue at once instead of at its next idle pass."""
        outcome = self.intake.consider(folder)
        if outcome in ("registered", "known"):
            self.wake()
        return outcome

    @staticmethod
    def _failed(outage: Outage, what: str, exc: Exception) -> float:
        """An outage logs once; anything else each time."""
        if is_transient(exc):
            return outage.failed(exc)
        log.warning("intake %s failed, will retry: %s", what, str(exc)[:300])
        return 0.0

    def _event_loop(self) -> None:
        assert self.queue is not None
        outage = Outage("intake queue", log)
        while not self._stop.is_set():
            try:
                self.queue.poll_once(self._handle, wake=self.wake)
                outage.ok()
            except Exception as exc:  # intake keeps going through outages
                self._stop.wait(max(ERROR_PAUSE_SECONDS, self._failed(outage, "queue", exc)))

    def _listing_loop(self) -> None:
        outage = Outage("intake listing", log)
        while not self._stop.is_set():
            pause = 0.0
            try:
                report = self.intake.scan()
                if report.registered:
                    self.wake()
                self.listing_pause = self._pace(report.list_requests)
                outage.ok()
            except Exception as exc:
                pause = self._failed(outage, "listing", exc)
            self._stop.wait(max(self.listing_pause, pause))

    def _pace(self, list_requests: int) -> float:
        """The pause after a reconciliation that made ``list_requests`` ListObjectsV2 calls."""
        if self.queue is None:  # the listing is the intake: its interval as configured
            return self.listing_seconds
        return max(self.listing_seconds, max(1, list_requests) * RECONCILE_SECONDS_PER_REQUEST)


def settings_listing_seconds(settings: Settings, with_queue: bool) -> float:
    """Reconciliation interval with an event queue; plain discovery interval without."""
    return settings.intake.reconcile_seconds if with_queue else settings.monitor.discovery_seconds
