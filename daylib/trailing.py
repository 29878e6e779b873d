"""Work that trails a workset's steps: copies to S3 (a step's log, Daylily's sentinels) that
must not delay its next step or its next write. They run in the order they were added, one at
a time, on one thread per workset (started by the first, without waiting for it: see
daylib/threads.py); the run waits for them before it ends, so none is lost when the monitor
stops. A failure is logged and never changes the workset's outcome.

Adding work only queues it: the run goes on to its next step or write while the copy waits
for the interpreter. (A thread started per copy, and waited for, ran the copy's own start-up
first, at each step's end.)"""

from __future__ import annotations

import contextvars
import logging
import queue
import threading
from collections.abc import Callable

from daylib.threads import start_soon

log = logging.getLogger(__name__)

_Item = tuple[contextvars.Context, Callable[[], None]]


class Trailing:
    """One workset's trailing work, in order."""

    def __init__(self, workset_id: str) -> None:
        self.workset_id = workset_id
        self._queue: queue.SimpleQueue[_Item | None] = queue.SimpleQueue()
        self._served: threading.Event | None = None  # set once the thread has ended

    def add(self, work: Callable[[], None]) -> None:
        """Run ``work`` once everything added before it is done; its log lines keep the
        fields the caller's have now."""
        self._queue.put((contextvars.copy_context(), work))
        if self._served is None:
            self._served = threading.Event()
            start_soon(self._serve, self._served)

    def wait(self) -> None:
        """Until everything added so far is done; nothing may be added after."""
        if self._served is not None:
            self._queue.put(None)
            self._served.wait()

    def _serve(self, served: threading.Event) -> None:
        try:
            while (item := self._queue.get()) is not None:
                context, work = item
                try:
                    context.run(work)
                except Exception:  # a copy must never take the run (or the daemon) down
                    log.exception("workset %s: trailing work failed", self.workset_id)
        finally:
            served.set()
