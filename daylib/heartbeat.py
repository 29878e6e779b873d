"""The heartbeat thread: extends the lease of each running workset, and stops a run whose
lease was lost (cancelled, taken over) or could not be extended for a whole lease."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from daylib.config import MonitorSettings
from daylib.errors import DaylibError, LeaseLost
from daylib.outage import Outage, is_transient
from daylib.running import Running
from daylib.store.contract import Store

log = logging.getLogger(__name__)


class Heartbeat:
    """Runs until ``done()`` is true; ``snapshot()`` lists the runs to keep alive. A run is
    beaten only ``heartbeat_seconds`` after its last lease extension, which the owner's
    checkpoints also make: a step shorter than that costs no heartbeat write. A run with
    finished steps not yet on the item is beaten by ``flush(run)``, the write that records
    them (and extends the lease)."""

    def __init__(self, cfg: MonitorSettings, store: Store,
                 snapshot: Callable[[], list[Running]], done: Callable[[], bool],
                 flush: Callable[[Running], None]) -> None:
        self.cfg = cfg
        self.store = store
        self._snapshot = snapshot
        self._done = done
        self._flush = flush
        self._outage = Outage("heartbeat", log)

    def loop(self) -> None:
        while not self._done():
            time.sleep(min(self.cfg.heartbeat_seconds, 0.5))
            for run in self._snapshot():
                if run.finished or time.monotonic() - run.beat_ok < self.cfg.heartbeat_seconds:
                    continue
                self._beat(run)

    def _beat(self, run: Running) -> None:
        try:
            if run.pending:
                self._flush(run)
            else:
                jobs = run.unrecorded_jobs()  # a step's new job rides on the beat
                run.lease = self.store.heartbeat(run.lease, self.cfg.lease_seconds, jobs=jobs)
                run.beat_ok = time.monotonic()
                if jobs is not None:
                    run.jobs_written = jobs
            self._outage.ok()
        except LeaseLost:
            if run.finished:  # raced our own last write
                return
            log.warning("lost the lease on %s (cancelled or taken over); stopping it",
                        run.rec.workset_id)
            run.lost = True
            run.stop.set()
        except DaylibError as exc:
            self._failed(run, exc)

    def _failed(self, run: Running, exc: DaylibError) -> None:
        """Keep trying until the lease would lapse, then stop the run without touching its
        job or its record: whoever claims the expired lease resumes it and adopts the job."""
        if is_transient(exc):
            self._outage.failed(exc)
        else:
            log.error("heartbeat for %s failed: %s", run.rec.workset_id, exc)
        if time.monotonic() - run.beat_ok >= self.cfg.lease_seconds and not run.handed_over:
            log.warning("workset %s: lease not extended for %.0f s; handing it over, its job "
                        "left running", run.rec.workset_id, self.cfg.lease_seconds)
            run.handed_over = True
            run.stop.set()
