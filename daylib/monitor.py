"""The monitor daemon: discover, register, claim, validate and run worksets.

One main thread decides (discovery, lease reaping, retry promotion, claiming); a
ThreadPoolExecutor runs claimed worksets, one slot each; a heartbeat thread extends the
leases. A finished workset wakes the main thread at once, so a free slot is refilled
without waiting for the next poll or for the rest of a batch.
"""

from __future__ import annotations

import logging
import random
import signal
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from daylib import dependencies, logformat, steplogs
from daylib import states as S
from daylib import workdir as workdirs
from daylib.bounds import clip, too_large
from daylib.caps import Caps
from daylib.clusters import local_cluster_name
from daylib.config import Settings
from daylib.errors import (
    AwsError,
    AwsInvalidRequest,
    ConflictError,
    DaylibError,
    LeaseLost,
    SpecError,
    StoreError,
)
from daylib.executors.base import STEPS, Executor, StepOutcome, StepRequest
from daylib.intake import Intake
from daylib.intake_events import IntakeQueue
from daylib.intake_service import IntakeService, settings_listing_seconds
from daylib.late_setup import LateSetup
from daylib.leases import LeaseWatch
from daylib.metrics import Metrics
from daylib.ordering import claim_order, spread
from daylib.outage import HandOver, Outage, is_transient
from daylib.outbox import Outbox
from daylib.policy import Decision, Failure, Policy, aws_code_in
from daylib.registry import Registry, local_capacity
from daylib.s3 import S3Objects
from daylib.sdnotify import notify as sd_notify
from daylib.sentinels import mirror
from daylib.spec import Workset
from daylib.stepcmd import step_request
from daylib.store.dynamodb import DynamoStore
from daylib.store.records import Lease, WorksetRecord
from daylib.validate import check_inputs

log = logging.getLogger(__name__)
CONTENTION_MEMORY_SECONDS = 10.0
CONTENDED_WINDOW_FACTOR = 4
MAX_CANDIDATE_PAGES = 10


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


@dataclass
class Stats:
    claimed: int = 0
    completed: int = 0
    failed: int = 0
    retrying: int = 0
    handed_back: int = 0
    conflicts: int = 0
    taken_over: int = 0


def _package_root() -> str:
    """Steps run ``python -m daylib...``; this makes that work from a checkout too."""
    import os

    root = str(Path(__file__).resolve().parent.parent)
    existing = os.environ.get("PYTHONPATH")
    return f"{root}{os.pathsep}{existing}" if existing else root


class Monitor:
    """Worker API in the style of dramatiq/rq: ``run``, ``pause``/``resume`` (central, via
    the control item), ``request_stop`` (warm on the first call, cold on the second)."""

    def __init__(self, settings: Settings, store: DynamoStore, s3: S3Objects,
                 executor: Executor, *, notifier: Outbox | None = None,
                 step_env: dict[str, str] | None = None, region: str = "",
                 intake_queue: IntakeQueue | None = None,
                 late: LateSetup | None = None) -> None:
        self.settings = settings
        self.cfg = settings.monitor
        self.store = store
        self.s3 = s3
        self.executor = executor
        # Events ride on the store's writes; ``notifier`` attaches an outbox if it has none.
        if notifier is not None and store.outbox is None:
            store.outbox = notifier
        self.outbox = store.outbox if isinstance(store.outbox, Outbox) else None
        self.policy = Policy.from_settings(settings)
        self.step_env = {**(step_env or {}), "PYTHONPATH": _package_root()}
        self.monitor_id = self.cfg.resolved_monitor_id()
        self.intake = Intake(s3, store, settings, self.monitor_id)
        self.intake_service: IntakeService | None = None
        self._intake_queue = intake_queue
        self.late = late  # set-up lookups an outage at start left undone
        self.cluster = local_cluster_name(self.cfg.cluster) or "local"

        def capacity() -> dict[str, Any]:
            return executor.cluster_capacity() or local_capacity()

        self.registry = Registry(settings, store, self.cluster, self.monitor_id,
                                 region or settings.aws.region or "", capacity)
        self.caps = Caps(settings.caps, store, self.cluster, self.monitor_id)
        self.leases = LeaseWatch(self.cfg.lease_seconds)
        self._orphans: list[WorksetRecord] = []  # dead leases seen, awaiting a free slot
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
        self._paused = False
        self._next_control = 0.0
        self._saw_ready = False
        self._finished = self._finished_seen = 0  # worksets ended; as of the last tick
        self._aged: list[WorksetRecord] = []
        self._cands: list[WorksetRecord] = []
        self._cands_expire = 0.0
        self._contended_until = 0.0
        self._rng = random.Random(self.monitor_id)
        self._routes: dict[str, str] = {}
        self._tick_outage = Outage("monitor pass", log)
        self._beat_outage = Outage("heartbeat", log)

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
        beat = threading.Thread(target=self._heartbeat_loop, name="heartbeat", daemon=True)
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
                    passed = self._tick(force=False)
                    if passed and not ready_sent:  # systemd Type=notify: after a good pass
                        ready_sent = sd_notify("READY=1")
                    self._wake.wait(max(self.cfg.poll_seconds, self._tick_outage.delay()))
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

    def _start_serving(self) -> None:
        """Read the pause flag and register the cluster, waiting out an outage at start:
        only a signal or a configuration error ends the daemon."""
        while True:
            try:
                self._paused = self.store.control().paused  # no table: configuration error
                self.s3.require_bucket(self.settings.storage.bucket,
                                       self.settings.storage.prefix)
                self.registry.beat(0, self._paused, force=True)
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
        return not self._paused and self._saw_ready

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
        if housekeeping made work ready. False if the pass failed."""
        now = time.time()
        with self._lock:
            self._finished_seen = self._finished
        try:
            if force or now >= self._next_control:
                self._next_control = now + self.cfg.poll_seconds
                self._paused = self.store.control().paused
            self.registry.beat(self.cfg.max_concurrent - self._free(), self._paused)
            if (force or now >= self._next_reap) and not self._paused:
                self._orphans = self.leases.expired(self.store.owned())
            self._take_over_expired()  # a dead monitor's work before new work: it is older
            self._fill_if_allowed(now)
            found = 0
            if discover and self.intake_service is None and (force or
                                                             now >= self._next_discovery):
                self._next_discovery = now + self.cfg.discovery_seconds
                found += len(self.intake.scan().registered)
            if force or now >= self._next_reap:
                self._next_reap = now + self.cfg.reap_seconds
                found += self._promote_retries(now)
                if self.outbox is not None:
                    self.outbox.tick(self.store, now=now)
                if self.late is not None:
                    self.late.retry()
                self._aged = self.store.aged(self.cfg.max_concurrent,
                                             now - self.cfg.promote_after_seconds)
                self.caps.reconcile()
                found += len(self._aged)
            if now >= self._next_metrics:
                self._next_metrics = now + self.settings.metrics.interval_seconds
                self.metrics.sample_queue(self.store, self.cfg.max_concurrent - self._free())
            if found:
                self._fill_if_allowed(time.time())
        except DaylibError as exc:
            if is_transient(exc):
                self._tick_outage.failed(exc)
            else:
                log.error("monitor pass failed, will retry: %s", exc)
            return False
        self._tick_outage.ok()
        return True

    def _fill_if_allowed(self, now: float) -> None:
        if not self._paused and not self._stopping.is_set():
            self._fill(now)

    def _free(self) -> int:
        with self._lock:
            return self.cfg.max_concurrent - len(self._running)

    def _promote_retries(self, now: float) -> int:
        promoted = 0
        for rec in self.store.due_retries(now):
            full = self.store.get(rec.workset_id)
            if full is None or full.state != S.RETRYING or (full.retry_at or 0) > now:
                continue
            try:
                new = self.store.transition(full, S.READY, actor=self.monitor_id,
                                            reason=f"retry {full.attempt + 1} due",
                                            fields={"attempt": full.attempt + 1,
                                                    "retry_at": None})
            except ConflictError:
                continue
            promoted += 1
            log.info("workset %s ready again for attempt %d", new.workset_id, new.attempt)
        return promoted

    def _take_over_expired(self) -> None:
        """Adopt worksets whose lease version stood still for a lease on this monitor's
        monotonic clock (daylib/leases.py); the claim is conditioned on that version, so one
        kept until a slot frees is still safe to try."""
        while self._orphans and not self._paused and not self._stopping.is_set():
            if self._free() <= 0:
                return
            rec = self._orphans.pop(0)
            # only this cluster can adopt its jobs; a workset not yet placed may go anywhere
            if rec.workset_id in self._running or rec.cluster not in (None, self.cluster):
                continue
            try:
                full, lease = self.store.claim(rec.workset_id, self.monitor_id,
                                               self.cfg.lease_seconds, expired=rec,
                                               fields={"cluster": self.cluster})
            except ConflictError:
                continue
            capped = self.caps.adopt(full.workset_id, full.customer_id)
            if capped:  # it held no slot and the cap is full: queue it again
                self.store.transition(full, S.READY, actor=self.monitor_id, reason=capped,
                                      lease=lease)
                continue
            self.stats.taken_over += 1
            self.metrics.emit("LeaseTakeovers", 1, workset_id=full.workset_id)
            log.warning("took over workset %s from %s (lease expired); resuming at %s",
                        full.workset_id, rec.owner, full.step)
            self._start(full, lease)

    def _fill(self, now: float) -> None:
        """Claim up to the free slots. Candidates come from one index Query, kept for up to
        a poll interval so a refill usually costs just the claim; the claim itself is the
        conditional write on the item, so a stale candidate only costs a lost race."""
        free = self._free()
        if free <= 0:
            return
        if not self._cands or now >= self._cands_expire:
            self._refresh_candidates(now, free)
        refreshed = False
        while free > 0 and not self._stopping.is_set():
            if not self._cands:
                if refreshed:
                    return
                self._refresh_candidates(now, free)
                refreshed = True
                continue
            cand = self._cands.pop(0)
            self._aged = [r for r in self._aged if r.workset_id != cand.workset_id]
            capped = self.caps.acquire(cand.workset_id, cand.customer_id)
            if capped:
                self._note(cand, capped)
                continue
            try:
                rec, lease = self.store.claim(
                    cand.workset_id, self.monitor_id, self.cfg.lease_seconds,
                    fields={"cluster": self.cluster,
                            "route": self._routes.get(cand.workset_id)})
            except ConflictError:
                self.caps.release(cand.workset_id, cand.customer_id)
                self.stats.conflicts += 1
                self.metrics.emit("ClaimConflicts", 1, workset_id=cand.workset_id)
                self._contended_until = time.time() + CONTENTION_MEMORY_SECONDS
                continue
            self.stats.claimed += 1
            self.metrics.transition(rec.state, rec.customer_id, workset_id=rec.workset_id)
            free -= 1
            log.info("claimed workset %s (priority %s, attempt %d)", rec.workset_id,
                     rec.priority, rec.attempt)
            self._start(rec, lease)

    def _refresh_candidates(self, now: float, free: int) -> None:
        contended = now < self._contended_until
        window = free * self.cfg.claim_spread * (CONTENDED_WINDOW_FACTOR if contended else 1)
        head = self._routable(window + 4, now)
        merged = {r.workset_id: r for r in [*head, *self._aged]
                  if r.workset_id in self._routes}
        ordered = claim_order(merged.values(), now, self.cfg.promote_after_seconds)
        blocked = dependencies.blocked(ordered, self.store.many)
        cands = [r for r in ordered if r.workset_id not in blocked]
        self._saw_ready = bool(cands)
        if contended:
            cands = spread(cands, window, now, self.cfg.promote_after_seconds, self._rng)
        self._cands = cands
        self._cands_expire = now + self.cfg.poll_seconds

    def _routable(self, want: int, now: float) -> list[WorksetRecord]:
        """The first ``want`` ready worksets routed to this cluster, in queue order. Those
        routed nowhere get the reason noted on them; those routed elsewhere are skipped."""
        mine: list[WorksetRecord] = []
        for pages, page in enumerate(self.store.ready_pages(want), start=1):
            for rec in page:
                decision = self.registry.route(rec, now)
                if decision.cluster == self.cluster:
                    self._routes[rec.workset_id] = decision.reason
                    mine.append(rec)
                elif decision.cluster is None:
                    self._note(rec, decision.reason)
            if len(mine) >= want or pages >= MAX_CANDIDATE_PAGES:
                break
        for rec in self._aged:
            decision = self.registry.route(rec, now)
            if decision.cluster == self.cluster:
                self._routes[rec.workset_id] = decision.reason
        return mine

    def _note(self, rec: WorksetRecord, reason: str) -> None:
        if rec.reason != reason:
            self.store.note_waiting(rec.workset_id, reason)
            log.info("workset %s %s", rec.workset_id, reason)

    def _start(self, rec: WorksetRecord, lease: Lease) -> None:
        run = Running(rec, lease)
        with self._lock:
            self._running[rec.workset_id] = run
        self._pool.submit(self._guarded, run)

    # ------------------------------------------------------------------ heartbeat

    def _heartbeat_loop(self) -> None:
        while not (self._stopping.is_set() and not self._snapshot()):
            time.sleep(min(self.cfg.heartbeat_seconds, 0.5))
            for run in self._snapshot():
                if run.finished or time.monotonic() - run.beat_ok < self.cfg.heartbeat_seconds:
                    continue
                try:
                    run.lease = self.store.heartbeat(run.lease, self.cfg.lease_seconds)
                    run.beat_ok = time.monotonic()
                    self._beat_outage.ok()
                except LeaseLost:
                    if run.finished:  # raced our own last write
                        continue
                    log.warning("lost the lease on %s (cancelled or taken over); stopping it",
                                run.rec.workset_id)
                    run.lost = True
                    run.stop.set()
                except DaylibError as exc:
                    self._beat_failed(run, exc)

    def _beat_failed(self, run: Running, exc: DaylibError) -> None:
        """Keep trying until the lease would lapse, then stop the run without touching its
        job or its record: whoever claims the expired lease resumes it and adopts the job."""
        if is_transient(exc):
            self._beat_outage.failed(exc)
        else:
            log.error("heartbeat for %s failed: %s", run.rec.workset_id, exc)
        if time.monotonic() - run.beat_ok >= self.cfg.lease_seconds and not run.handed_over:
            log.warning("workset %s: lease not extended for %.0f s; handing it over, its job "
                        "left running", run.rec.workset_id, self.cfg.lease_seconds)
            run.handed_over = True
            run.stop.set()

    # ------------------------------------------------------------------ one workset

    def _guarded(self, run: Running) -> None:
        wid = run.rec.workset_id
        try:
            with logformat.bind(workset_id=wid, attempt=run.rec.attempt, step=run.rec.step,
                                actor=self.monitor_id):
                self._process(run)
        except LeaseLost as exc:
            log.warning("workset %s: %s; this monitor stops touching it", wid, exc)
        except HandOver as exc:
            log.warning("workset %s handed over as it is (resumed after the outage): %s",
                        wid, exc)
        except SpecError as exc:  # found while building a step: unsafe workdir, bad template
            self._fail(run, Failure(message=str(exc), category=exc.category))
        except AwsError as exc:  # AWS kept failing past the client's own retries
            if is_transient(exc) and (run.rec.steps_done or run.rec.jobs):
                # steps ran or run: a new attempt would lose them; resume after the outage
                log.warning("workset %s handed over as it is (resumed after the outage): %s",
                            wid, exc)
                return
            log.warning("workset %s: AWS error: %s", wid, exc)
            self._fail(run, Failure(message=f"AWS error: {exc}", aws_code=exc.code or None))
        except Exception as exc:  # the daemon must outlive any one workset
            log.exception("workset %s: unexpected error", wid)
            what = f"{exc.__class__.__name__}: {exc}"
            self._fail(run, Failure(message=f"internal error: {what}", aws_code=aws_code_in(what)))
        finally:
            self._routes.pop(wid, None)
            try:
                # A slot is given back only once the workset no longer counts as running:
                # after a failed last write it is still ours (until its lease runs out and
                # reconcile frees it); after a takeover the new owner holds the same slot.
                current = self.store.get(wid) if run.lost else run.rec
                if current is None or current.state not in S.OWNED:
                    self.caps.release(wid, run.rec.customer_id)
                else:
                    self.caps.forget(wid)
            except DaylibError as exc:
                log.warning("workset %s: could not release its cap slots (reclaimed later): %s",
                            wid, exc)
            if self.outbox is not None:
                self.outbox.release(wid)
            with self._lock:
                self._running.pop(wid, None)
                self._finished += 1
            self._wake.set()

    def _write(self, run: Running, to: str, reason: str,
               events: tuple[tuple[str, str], ...] = (), **fields: Any) -> WorksetRecord:
        run.finished = to not in S.OWNED
        before = run.rec.state
        outage = Outage(f"workset {run.rec.workset_id}: write {reason or to}", log)
        deadline = time.monotonic() + self.cfg.lease_seconds
        while True:
            try:
                run.rec = self.store.transition(run.rec, to, actor=self.monitor_id,
                                                reason=reason, lease=run.lease, fields=fields,
                                                events=events)
                break
            except AwsError as exc:
                if not is_transient(exc):
                    raise
                wait = outage.failed(exc)
                if time.monotonic() + wait >= deadline or run.handed_over:
                    raise HandOver(f"could not write {reason or to}: {exc}") from exc
                time.sleep(wait)
        outage.ok()
        if to != before:
            self.metrics.transition(to, run.rec.customer_id, workset_id=run.rec.workset_id,
                                    reason=reason or None)
        return run.rec

    def _process(self, run: Running) -> None:
        rec = run.rec
        if rec.intake_error:
            self._fail(run, Failure(message=rec.intake_error, category=rec.error_category or
                                    "data"))
            return
        ws = Workset.model_validate_json(rec.spec_json or "{}")
        problem = dependencies.problem(ws.workset_id, ws.after, self.store.many)
        if problem:
            # a cycle is the user's data; a dependency that is unknown or failed is not
            self._fail(run, Failure(message=problem, category="data" if "cycle" in problem
                                    else "configuration"))
            return
        if "stage" not in rec.steps_done:
            try:
                check_inputs(ws, self.s3, self.settings)
            except SpecError as exc:
                self._fail(run, Failure(message=str(exc), category=exc.category))
                return
        workdir = workdirs.prepare(Path(self.cfg.workdir), ws.workset_id)
        if rec.state == S.LOCKED:
            self._sentinel_for(rec, f"claimed by {self.monitor_id}")
        for step in STEPS:
            if step in run.rec.steps_done:
                continue
            req = step_request(self.settings, ws, run.rec, step, workdir, self.step_env,
                               self.monitor_id)
            logformat.update(step=step)
            started = time.monotonic()
            ref = self._launch(run, req)
            outcome = self.executor.wait(ref, req, run.stop)
            if not run.handing_back and outcome.state != "RUNNING":
                self._step_ended(req, outcome, time.monotonic() - started)
            if run.handed_over:
                raise HandOver(f"AWS unreachable during {step}; job {ref} left running")
            if run.lost:
                self._after_lost(run, ref, outcome)
                return
            if run.handing_back:
                self._hand_back(run, step)
                return
            if not outcome.ok:
                self._fail(run, self._failure(step, outcome))
                return
            self._checkpoint(run, step)

    def _step_ended(self, req: StepRequest, outcome: StepOutcome, seconds: float) -> None:
        """Metric for the step, and its log copied to S3 (best effort: a failed copy is
        logged and never changes the workset's outcome)."""
        self.metrics.step_duration(req.step, seconds, outcome.state,
                                   workset_id=req.workset_id, attempt=req.attempt)
        if not self.settings.step_logs.upload:
            return
        try:
            steplogs.publish(self.s3, self.settings, req.workset_id,
                             steplogs.ref(req.step, req.attempt), req.log_file)
        except (DaylibError, OSError) as exc:
            log.warning("workset %s: could not copy the %s log to S3: %s", req.workset_id,
                        req.step, exc)

    def _launch(self, run: Running, req: StepRequest) -> str:
        """Adopt the step's job if one was already submitted (a restart or takeover at any
        instant), else submit it and record the job on the item, fenced by the lease."""
        found = self.executor.find(req)
        if found:
            log.info("workset %s: adopted %s job %s for step %s", req.workset_id,
                     self.executor.name, found, req.step)
            return found
        ref = self.executor.submit(req)
        if self.executor.records_jobs:
            self._write(run, run.rec.state, "", jobs={**run.rec.jobs, req.step: ref})
            log.info("workset %s: step %s submitted as %s job %s", req.workset_id, req.step,
                     self.executor.name, ref)
        return ref

    def _after_lost(self, run: Running, ref: str, outcome: StepOutcome) -> None:
        """Cancelled by an operator: stop the job too. Taken over: leave it for the new
        owner to adopt."""
        current = self.store.get(run.rec.workset_id)
        if current is not None and current.state == S.CANCELLED:
            self.executor.cancel(ref)
            log.info("workset %s cancelled by %s; job %s stopped", run.rec.workset_id,
                     (current.history or [{}])[-1].get("actor"), ref)
        else:
            log.info("workset %s is no longer ours (now %s); job %s left as it is (%s)",
                     run.rec.workset_id, current.state if current else "gone", ref,
                     outcome.state)

    def _sentinel_for(self, rec: WorksetRecord, message: str = "") -> None:
        if rec.format == "daylily" and self.cfg.mirror_sentinels:
            mirror(self.s3, self.settings, rec.workset_id, rec.state, message)

    def _checkpoint(self, run: Running, step: str) -> None:
        done = [*run.rec.steps_done, step]
        nxt = STEPS[STEPS.index(step) + 1] if step != STEPS[-1] else None
        if nxt is None:
            rec = self._write(run, S.COMPLETE, "all steps done",
                              (("completed", f"results at {run.rec.results_uri}"),),
                              step=None, steps_done=done, cluster=self.cluster, error=None,
                              error_category=None)
            self.stats.completed += 1
            self._sentinel_for(rec, f"results at {rec.results_uri}")
            log.info("workset %s complete; results at %s", rec.workset_id, rec.results_uri)
            return
        rec = self._write(run, S.IN_PROGRESS, f"{step} done", (("step", f"{step} done"),),
                          step=nxt, steps_done=done, cluster=self.cluster)
        if step == "stage":
            self._sentinel_for(rec)
        log.info("workset %s: %s done, %s next", rec.workset_id, step, nxt)

    def _hand_back(self, run: Running, step: str) -> None:
        rec = self._write(run, S.READY, f"monitor {self.monitor_id} stopping during {step}; "
                          "handed back")
        self.stats.handed_back += 1
        log.info("workset %s handed back at step %s", rec.workset_id, step)

    @staticmethod
    def _failure(step: str, out: StepOutcome) -> Failure:
        last = (out.stderr_tail.strip().splitlines() or [""])[-1]
        what = f"exit code {out.exit_code}" if out.exit_code is not None else out.state
        return Failure(message=f"{step} step failed ({out.state}, {what}): {last}"[:2000],
                       step=step, exit_code=out.exit_code, signal=out.signal,
                       state=out.state, aws_code=aws_code_in(out.stderr_tail),
                       stderr_tail=out.stderr_tail[-4096:])

    def _fail(self, run: Running, failure: Failure) -> None:
        """Classify, then retrying (backoff, maybe more resources) or failed (and the
        dead-letter queue). The decision is recorded on the workset for ``show``."""
        rec = run.rec
        try:
            ws_res = Workset.model_validate_json(rec.spec_json).resources.model_dump() \
                if rec.spec_json else {}
        except ValueError:
            ws_res = {}
        resources = {k: v for k, v in {**ws_res, **rec.resources}.items()
                     if k in ("memory_gb", "walltime_minutes") and v is not None}
        d = self.policy.decide(failure, retries_used=rec.retries_used,
                               max_retries=rec.max_retries, resources=resources, rng=self._rng)
        now = time.time()
        self.metrics.failure(d.category, d.retry, rec.customer_id, workset_id=rec.workset_id,
                             attempt=rec.attempt)
        message = clip(failure.message)
        common: dict[str, Any] = {
            "error": message, "error_category": d.category, "error_rule": d.rule,
            "stderr_tail": failure.stderr_tail[-2048:] or None, "decision": d.explanation,
            "failed_at": now}
        try:
            try:
                self._record_failure(run, d, message, common)
            except AwsInvalidRequest as exc:
                if not too_large(exc):
                    raise
                short = (f"failure too large to record ({len(failure.message)} characters); "
                         "the monitor log has it")
                log.error("workset %s: %s: %s", rec.workset_id, short, clip(failure.message))
                self._record_failure(run, d, short, {**common, "error": short,
                                                     "stderr_tail": None})
        except (LeaseLost, StoreError, AwsError, HandOver) as exc:
            log.warning("workset %s: could not record failure: %s", run.rec.workset_id, exc)

    def _record_failure(self, run: Running, d: Decision, message: str,
                        common: dict[str, Any]) -> None:
        rec = run.rec
        if d.retry:
            if d.escalated:
                common.update(resources=d.resources, resource_retries=rec.resource_retries + 1)
            rec = self._write(run, S.RETRYING, d.explanation, (("retrying", message),),
                              retry_at=common["failed_at"] + d.delay_seconds, **common)
            self.stats.retrying += 1
            log.warning("workset %s failed: %s: %s", rec.workset_id, d.explanation, message)
        else:
            rec = self._write(run, S.FAILED, d.explanation,
                              (("failed", message), ("dead_lettered", d.explanation)),
                              retry_at=None, **common)
            self.stats.failed += 1
            self._sentinel_for(rec, message)
            log.error("workset %s failed: %s: %s", rec.workset_id, d.explanation, message)
