"""Work that trails a workset's steps: copies to S3 (a step's log, Daylily's sentinels) that
must not delay its next step or its next write. They run in the order they were added, one at
a time, each on a short-lived thread; the run waits for them before it ends, so none is lost
when the monitor stops. A failure is logged and never changes the workset's outcome."""

from __future__ import annotations

import contextvars
import logging
import threading
from collections.abc import Callable

log = logging.getLogger(__name__)


class Trailing:
    """One workset's trailing work, in order."""

    def __init__(self, workset_id: str) -> None:
        self.workset_id = workset_id
        self._last: threading.Thread | None = None

    def add(self, work: Callable[[], None]) -> None:
        """Run ``work`` once everything added before it is done."""
        before = self._last

        def run() -> None:
            if before is not None:
                before.join()
            try:
                work()
            except Exception:  # a copy must never take the run (or the daemon) down
                log.exception("workset %s: trailing work failed", self.workset_id)

        context = contextvars.copy_context()  # its log lines keep the run's fields
        self._last = threading.Thread(target=context.run, args=(run,),
                                      name=f"trail-{self.workset_id}", daemon=True)
        self._last.start()

    def wait(self) -> None:
        """Until everything added so far is done."""
        if self._last is not None:
            self._last.join()
