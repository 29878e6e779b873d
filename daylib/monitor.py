"""The monitor daemon: its lifecycle and its tick.

One main thread decides (discovery, lease reaping, retry promotion, claiming: see
daylib/claiming.py); a ThreadPoolExecutor runs claimed worksets, one slot each
(daylib/runner.py); a heartbeat thread extends the leases (daylib/heartbeat.py). A finished
workset wakes the main thread at once, so a free slot is refilled without waiting for the
next poll or for the rest of a batch.
"""

from __future__ import annotations

import logging
import random
import signal
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from daylib import logformat
from daylib.caps import Caps
from daylib.claiming import Claimer
from daylib.clusters import local_cluster_name
from daylib.config import Settings
from daylib.errors import DaylibError
from daylib.executors.base import Executor
from daylib.heartbeat import Heartbeat
from daylib.idle import IdlePacer, look
from daylib.intake import Intake
from daylib.intake_events import IntakeQueue
from daylib.intake_service import IntakeService, settings_listing_seconds
from daylib.late_setup import LateSetup
from daylib.leases import LeaseWatch
from daylib.metrics import Metrics
from daylib.outage import Outage, is_transient
from daylib.outbox import Outbox
from daylib.registry import Registry, local_capacity
from daylib.runner import Runner
from daylib.running import Running, Stats
from daylib.s3 import S3Objects
from daylib.sdnotify import notify as sd_notify
from daylib.store.contract import Store
from daylib.store.records import Lease, WorksetRecord

log = logging.getLogger(__name__)

__all__ = ["Monitor", "Running", "Stats"]
AGED_READS_PER_PROMOTION = 60


def _package_root() -> str:
    """Steps run ``python -m daylib...``; this makes that work from a checkout too."""
    import os

    root = str(Path(__file__).resolve().parent.parent)
    existing = os.environ.get("PYTHONPATH")
    return f"{root}{os.pathsep}{existing}" if existing else root


class Monitor:
    """Worker API in the style of dramatiq/rq: ``run``, ``pause``/``resume`` (central, via
    the control item), ``request_stop`` (warm on the first call, cold on the second)."""

    def __init__(self, settings: Settings, store: Store, s3: S3Objects,
                 executor: Executor, *, notifier: Outbox | None = None,
                 step_env: dict[str, str] | None = None, region: str = "",
                 intake_queue: IntakeQueue | None = None,
                 late: LateSetup | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        self.settings = settings
        self.clock = clock
        self.cfg = settings.monitor
        self.store = store
        self.s3 = s3
        self.executor = executor
        # Events ride on the store's writes; each writer hands what it wrote to ``notifier``.
        self.outbox = notifier
        box = notifier or Outbox.off()
        self.monitor_id = self.cfg.resolved_monitor_id()
        self.intake = Intake(s3, store, settings, self.monitor_id, outbox=box)
        self.intake_service: IntakeService | None = None
        self._intake_queue = intake_queue
        self.late = late  # set-up lookups an outage at start left undone
        self.cluster = local_cluster_name(self.cfg.cluster) or "local"

        def capacity() -> dict[str, Any]:
            return executor.cluster_capacity() or local_capacity()

        self.registry = Registry(settings, store, self.cluster, self.monitor_id,
                                 region or settings.aws.region or "", capacity, clock=clock)
        self.caps = Caps(settings.caps, store, self.cluster, self.monitor_id)
        self.leases = LeaseWatch(self.cfg.lease_seconds)
        self.metrics = Metrics.from_settings(settings, self.cluster)
        self._next_metrics = 0.0
        logformat.set_process_fields(monitor_id=self.monitor_id)
        self.stats = Stats()
        self._running: dict[str, Running] = {}
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._cold = threading.Event()
        self._pool = ThreadPoolExecutor(max_workers=self.cfg.max_concurrent,
                                        thread_name_prefix="workset")
        self._next_discovery = 0.0
        self._next_reap = 0.0
        self._next_aged = 0.0
        self._paused = False
        self._next_control = 0.0
        self.pacer = IdlePacer(self.cfg.poll_seconds, self.cfg.idle_max_seconds)
        self._next_pass = 0.0
        self._passed = False  # a pass succeeded (systemd readiness)
        self._owned_seen = False  # the last lease check found owned worksets (anyone's)
        self._finished = self._finished_seen = 0  # worksets ended; as of the last tick
        rng = random.Random(self.monitor_id)
        self._tick_outage = Outage("monitor pass", log)
        self.claimer = Claimer(
            self.cfg, store, monitor_id=self.monitor_id, cluster=self.cluster,
            registry=self.registry, caps=self.caps, metrics=self.metrics, stats=self.stats,
            outbox=box, rng=rng, free=self._free, active=self._claiming,
            owns=lambda wid: wid in self._running, start=self._start)
        self.runner = Runner(
            settings, store, s3, executor, monitor_id=self.monitor_id, cluster=self.cluster,
            caps=self.caps, metrics=self.metrics, stats=self.stats, outbox=box,
            step_env={**(step_env or {}), "PYTHONPATH": _package_root()}, rng=rng,
            ended=self._ended)
        self.heartbeat = Heartbeat(self.cfg, store, self._snapshot,
                                   lambda: self._stopping.is_set() and not self._snapshot(),
                                   self.runner.flush)

    # ------------------------------------------------------------------ lifecycle

    def request_stop(self, *_: Any) -> None:
        if self._stopping.is_set():
            log.warning("second stop request: handing back running worksets now")
            self._cold.set()
            for run in self._snapshot():
                run.handing_back = True
                run.stop.set()
        else:
            log.info("stop requested: no new claims; running worksets finish within %.0f s "
                     "or are handed back", self.cfg.shutdown_grace_seconds)
            self._stopping.set()
        self._wake.set()

    def install_signal_handlers(self) -> None:
        signal.signal(signal.SIGTERM, self.request_stop)
        signal.signal(signal.SIGINT, self.request_stop)

    def use_intake_queue(self, queue: IntakeQueue) -> None:
        """Event intake found late (after an outage at start): the running service takes it."""
        self._intake_queue = queue
        if self.intake_service is not None:
            self.intake_service.use_queue(queue, settings_listing_seconds(self.settings, True))

    def run(self, *, once: bool = False) -> int:
        """Serve until stopped. ``once``: one pass (discover, claim, run to the end)."""
        log.info("monitor %s serving cluster %s with %d slot(s), executor %s",
                 self.monitor_id, self.cluster, self.cfg.max_concurrent, self.executor.name)
        beat = threading.Thread(target=self.heartbeat.loop, name="heartbeat", daemon=True)
        beat.start()
        try:
            self._start_serving()
            if not once:  # intake runs in its own threads, off the claiming path
                self.intake_service = IntakeService(
                    self.intake, self._intake_queue,
                    settings_listing_seconds(self.settings, self._intake_queue is not None),
                    self._wake.set)
                self.intake_service.start()
            if once:
                self._tick(force=True)
                while self._busy() and not self._stopping.is_set():
                    self._wake.wait(self.cfg.poll_seconds)
                    self._wake.clear()
                    self._tick(force=False, discover=False)
            else:
                ready_sent = False
                while not self._stopping.is_set():
                    due = self.step(self.clock())
                    if self._passed and not ready_sent:  # systemd Type=notify: a good pass
                        ready_sent = sd_notify("READY=1")
                    if self._wake.wait(max(due - self.clock(), self._tick_outage.delay())):
                        self._woken()
                    self._wake.clear()
        finally:
            if self.intake_service is not None:
                self.intake_service.stop()
            self._drain()
            self._stopping.set()
            beat.join(timeout=5)
            if not once:
                self._quietly(self.registry.mark_stopped)
            if self.outbox is not None:
                self.outbox.drain(self.store)
        log.info("monitor %s stopped: %s", self.monitor_id, self.stats)
        return 0

    def step(self, now: float) -> float:
        """One turn of the serving loop: a pass when one is due (while idle, the one-read
        look of daylib/idle.py), else the cluster heartbeat; discovery is the intake
        service's. Returns when the next turn is due; an event (``_wake``) may come sooner."""
        if now >= self._next_pass:
            passed = self._look(now) if self.pacer.idle else self._tick(force=False,
                                                                        discover=False)
            self._passed = self._passed or passed
            self._next_pass = self.pacer.due(self.clock(), self.claimer.next_retry_at)
        else:
            self._beat_quietly()
        return min(self._next_pass, self.registry.next_beat_at)

    def _woken(self, *, reap: bool = False) -> None:
        """An event (registration, finished run, an operator's command) or work the look
        saw: a full pass now, at the busy pace, reading the pause flag before claiming
        however long the idle pause was."""
        self._next_pass = 0.0
        if self.pacer.idle:
            self.pacer.busy()
            self.registry.busy()
            self._next_control = 0.0
            self._next_reap = 0.0 if reap else min(self._next_reap,
                                                   self.clock() + self.cfg.reap_seconds)

    def _look(self, now: float) -> bool:
        """The idle pass: one read of everything active (daylib/idle.py says what counts
        as work). Work: the full pass at once. None: idle housekeeping, at its idle pace."""
        try:
            seen = look(self.store.active_items(), now)
            self.registry.seen(seen.clusters)
            self.claimer.next_retry_at = seen.next_retry_at
            if seen.work:
                self._woken(reap=True)
                return self._tick(force=False, discover=False)
            if self.outbox is not None:
                self.outbox.tick(self.store, now=now, idle=True)
            if self.late is not None:
                self.late.retry()
            if now >= self._next_metrics:
                self._next_metrics = now + self.settings.metrics.interval_seconds
                self.metrics.sample_queue(self.store, self.cfg.max_concurrent - self._free(),
                                          known_empty=True)
        except DaylibError as exc:
            return self._failed(exc)
        self.pacer.quiet()
        self._tick_outage.ok()
        return True

    def _failed(self, exc: DaylibError) -> bool:
        if is_transient(exc):
            self._tick_outage.failed(exc)
        else:
            log.error("monitor pass failed, will retry: %s", exc)
        return False

    def _beat_quietly(self) -> None:
        try:
            self.registry.beat(self.cfg.max_concurrent - self._free(), self._paused,
                               idle=self.pacer.idle)
        except DaylibError as exc:
            log.warning("cluster heartbeat failed, will retry: %s", exc)

    def _start_serving(self) -> None:
        """Read the pause flag, check the bucket and register the cluster, waiting out an
        outage at start: only a signal or a configuration error ends the daemon. The reads
        the pause flag does not decide (the bucket, the other clusters, the ready queue the
        first fill starts from) run alongside it. The cluster is published once all passed
        (a monitor that ends on a check never shows as up), by the first pass's beat, which
        comes after its claims."""
        while True:
            try:
                with ThreadPoolExecutor(max_workers=3, thread_name_prefix="start") as pool:
                    bucket = pool.submit(self.s3.require_bucket, self.settings.storage.bucket,
                                         self.settings.storage.prefix)
                    clusters = pool.submit(self.store.clusters)
                    ahead = pool.submit(self.claimer.read_ahead, self.clock())
                    self._paused = self.store.control().paused  # no table: configuration
                    self._next_control = self.clock() + self.pacer.interval  # not at once
                    bucket.result()
                    ahead.result()
                    self.registry.enter(clusters.result(), self._paused)
                self._tick_outage.ok()
                return
            except DaylibError as exc:
                if not is_transient(exc):
                    raise
                if self._stopping.wait(self._tick_outage.failed(exc)):
                    return

    @staticmethod
    def _quietly(fn: Any) -> None:
        try:
            fn()
        except DaylibError as exc:
            log.warning("shutdown step failed: %s", exc)

    def _busy(self) -> bool:
        """In ``--once`` mode: keep going while something runs or the last look at the
        queue found claimable work."""
        with self._lock:
            if self._running or self._finished != self._finished_seen:
                return True  # running, or something ended after the last look at the queue
        return not self._paused and self.claimer.saw_ready

    def _drain(self) -> None:
        deadline = time.monotonic() + self.cfg.shutdown_grace_seconds
        while self._snapshot() and time.monotonic() < deadline and not self._cold.is_set():
            self._wake.wait(0.2)
            self._wake.clear()
        for run in self._snapshot():
            run.handing_back = True
            run.stop.set()
        self._pool.shutdown(wait=True)

    def _snapshot(self) -> list[Running]:
        with self._lock:
            return list(self._running.values())

    # ------------------------------------------------------------------ main loop

    def _tick(self, *, force: bool, discover: bool = True) -> bool:
        """Claim first (cheap, and what latency depends on), then housekeeping; claim again
        if housekeeping made work ready. The pause flag is read before any claim and dead
        leases are taken over before new work; the read of owned worksets waits until after
        the claims while it cannot find a dead lease (none watched yet). False if the pass
        failed."""
        now = self.clock()
        idle = self.pacer.idle
        with self._lock:
            self._finished_seen = self._finished
        try:
            if now >= self._next_control:
                self._next_control = now + self.pacer.interval
                self._paused = self.store.control().paused
            watch = (force or now >= self._next_reap) and not self._paused
            early = watch and self.leases.watching
            if early:
                self._watch_leases()
            self.claimer.take_over_expired()  # a dead monitor's work before new work: it is older
            self._fill_if_allowed(now)
            # after the claims: a due heartbeat (a put and a read) must not hold them back
            self.registry.beat(self.cfg.max_concurrent - self._free(), self._paused, idle=idle)
            if watch and not early:
                self._watch_leases()
            found = 0
            if discover and self.intake_service is None and (force or
                                                             now >= self._next_discovery):
                self._next_discovery = now + self.cfg.discovery_seconds
                found += len(self.intake.scan().registered)
            retry_due = (self.claimer.next_retry_at or float("inf")) <= now
            if force or now >= self._next_reap or retry_due:
                self._next_reap = now + max(self.cfg.reap_seconds, self.pacer.interval)
                found += self.claimer.promote_retries(now)
                if self.outbox is not None:
                    self.outbox.tick(self.store, now=now)
                if self.late is not None:
                    self.late.retry()
                # nothing ready at all: nothing to age (skip one read per priority level);
                # else one read per level per 1/60 of the ageing time, not per reap: ageing
                # is then at most that late (a minute on an hour's promotion)
                if idle and not self.claimer.ready_any:
                    self.claimer.aged, self._next_aged = [], 0.0
                elif now >= self._next_aged:
                    self._next_aged = now + (self.cfg.promote_after_seconds
                                             / AGED_READS_PER_PROMOTION)
                    self.claimer.aged = self.store.aged(self.cfg.max_concurrent,
                                                        now - self.cfg.promote_after_seconds)
                self.caps.reconcile()
                found += len(self.claimer.aged)
            if now >= self._next_metrics:
                self._next_metrics = now + self.settings.metrics.interval_seconds
                self.metrics.sample_queue(self.store, self.cfg.max_concurrent - self._free(),
                                          known_empty=idle and not self.claimer.ready_any)
            if found:
                self._fill_if_allowed(self.clock())
            self._pace(found)
        except DaylibError as exc:
            return self._failed(exc)
        self._tick_outage.ok()
        return True

    def _watch_leases(self) -> None:
        owned = self.store.owned()
        self._owned_seen = bool(owned)
        self.claimer.saw_owned(owned)
        self.claimer.orphans = self.leases.expired(owned)

    def _pace(self, found: int) -> None:
        """Slow down after a pass with nothing to do; back to ``poll_seconds`` otherwise."""
        with self._lock:
            working = bool(self._running)
        if (working or found or self.claimer.ready_any or self.claimer.orphans
                or self._owned_seen):  # a retry not yet due is waited for exactly
            self.pacer.busy()
        else:
            self.pacer.quiet()

    def _claiming(self) -> bool:
        return not self._paused and not self._stopping.is_set()

    def _fill_if_allowed(self, now: float) -> None:
        if self._claiming():
            self.claimer.fill(now)

    def _free(self) -> int:
        with self._lock:
            return self.cfg.max_concurrent - len(self._running)

    def _start(self, rec: WorksetRecord, lease: Lease) -> None:
        run = Running(rec, lease)
        with self._lock:
            self._running[rec.workset_id] = run
        self._pool.submit(self.runner.run, run)

    def _ended(self, workset_id: str) -> None:
        """A run is over: free its slot and wake the main thread to refill it."""
        self.claimer.forget(workset_id)
        with self._lock:
            self._running.pop(workset_id, None)
            self._finished += 1
        self._wake.set()
