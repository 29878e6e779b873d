"""Running one workset: its steps in order, each finished step checkpointed on the item by
the next write that happens anyway, and the failure decision (retry or fail) when one goes
wrong. No scheduling here: the monitor decides what
runs, the claimer what is claimed; a ``Runner`` only takes a claimed workset to its end."""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

from daylib import dependencies, logformat, steplogs
from daylib import states as S
from daylib import workdir as workdirs
from daylib.bounds import clip, too_large
from daylib.caps import Caps
from daylib.config import Settings
from daylib.errors import AwsError, AwsInvalidRequest, DaylibError, LeaseLost, SpecError, StoreError
from daylib.executors.base import STEPS, Executor, StepOutcome, StepRequest, next_step
from daylib.metrics import Metrics
from daylib.outage import HandOver, Outage, is_transient
from daylib.outbox import Outbox
from daylib.policy import Decision, Failure, Policy, aws_code_in
from daylib.running import Checkpoint, Running, Stats
from daylib.s3 import S3Objects
from daylib.sentinels import mirror
from daylib.spec import Workset
from daylib.stepcmd import step_request
from daylib.store.contract import Store
from daylib.store.records import WorksetRecord
from daylib.store.rules import Earlier, next_expiry
from daylib.trailing import Trailing
from daylib.validate import check_inputs

log = logging.getLogger(__name__)


class Runner:
    """Takes claimed worksets through their steps; ``ended(workset_id)`` is called once
    each run is over and its cap slots are given back."""

    def __init__(self, settings: Settings, store: Store, s3: S3Objects, executor: Executor,
                 *, monitor_id: str, cluster: str, caps: Caps, metrics: Metrics,
                 stats: Stats, outbox: Outbox, step_env: dict[str, str],
                 rng: random.Random, ended: Callable[[str], None]) -> None:
        self.settings = settings
        self.cfg = settings.monitor
        self.store = store
        self.s3 = s3
        self.executor = executor
        self.monitor_id = monitor_id
        self.cluster = cluster
        self.caps = caps
        self.metrics = metrics
        self.stats = stats
        self.outbox = outbox
        self.policy = Policy.from_settings(settings)
        self.step_env = step_env
        self._rng = rng
        self._ended = ended
        self._trailing: dict[str, Trailing] = {}  # per running workset: S3 copies under way

    def run(self, run: Running) -> None:
        """Run one workset to its end, hand-back or hand-over; never raises."""
        wid = run.rec.workset_id
        self._trailing[wid] = Trailing(wid)
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
            if is_transient(exc) and (run.rec.steps_done or run.pending or run.jobs):
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
            if run.rec.state in S.OWNED:  # stopped owning it unwritten: ack what we published
                self.outbox.release(wid)  # (after any other end, our writes scheduled it)
            self._trailing.pop(wid).wait()  # its logs and sentinels copied before it ends
            self._ended(wid)

    def _write(self, run: Running, to: str, reason: str,
               events: tuple[tuple[str, str], ...] = (), at: float | None = None,
               finished: str | None = None, **fields: Any) -> WorksetRecord:
        """One fenced transition. It also records what the run holds unwritten: finished
        steps (``run.pending``, then ``finished``, the step this write completes) and new
        job references; while the workset stays owned it extends the lease as a heartbeat
        would (no extra write)."""
        with run.write_lock:
            return self._write_locked(run, to, reason, events, at, finished, fields,
                                      patient=True)

    def flush(self, run: Running) -> None:
        """The heartbeat's write for a run whose finished steps are not on the item yet:
        they ride on it, and it extends the lease as the heartbeat would have. Skipped while
        the run's own write is under way (that write records them). Raises what the store
        raises, for the heartbeat to handle; nothing is lost (they stay pending)."""
        if not run.write_lock.acquire(blocking=False):
            return
        try:
            if not run.pending or run.finished:
                return
            last = run.pending.pop()
            try:
                self._write_locked(run, S.IN_PROGRESS, f"{last.step} done",
                                   (("step", f"{last.step} done"),), last.at, last.step, {},
                                   patient=False)
            except BaseException:
                run.pending.append(last)
                raise
        finally:
            run.write_lock.release()

    def _write_locked(self, run: Running, to: str, reason: str,
                      events: tuple[tuple[str, str], ...], at: float | None,
                      finished: str | None, fields: dict[str, Any], *,
                      patient: bool) -> WorksetRecord:
        """``_write`` under the run's write lock; ``patient``: wait out an outage (up to a
        lease) instead of raising the first transient error."""
        run.finished = to not in S.OWNED
        before = run.rec.state
        earlier = tuple(Earlier(S.IN_PROGRESS, f"{c.step} done", c.at, next_step(c.step),
                                self.outbox.recorded((("step", f"{c.step} done"),)))
                        for c in run.pending)
        if earlier or finished:
            done = [*run.steps_done(), *([finished] if finished else [])]
            fields = {"steps_done": done, "step": next_step(done[-1]), "cluster": self.cluster,
                      **fields}
        if run.jobs != run.rec.jobs:
            fields.setdefault("jobs", run.jobs)
        extended_at = time.monotonic()
        expires = None
        if to in S.OWNED:
            expires = next_expiry(self.store.clock(), run.lease, self.cfg.lease_seconds)
            fields["lease_expires"] = expires
        outage = Outage(f"workset {run.rec.workset_id}: write {reason or to}", log)
        deadline = time.monotonic() + self.cfg.lease_seconds
        while True:
            try:
                run.rec = self.store.transition(
                    run.rec, to, actor=self.monitor_id, reason=reason, lease=run.lease,
                    fields=fields, events=self.outbox.recorded(events),
                    drop=self.outbox.delivered(run.rec.workset_id), at=at, earlier=earlier)
                break
            except AwsError as exc:
                if not is_transient(exc) or not patient:
                    raise
                wait = outage.failed(exc)
                if time.monotonic() + wait >= deadline or run.handed_over:
                    raise HandOver(f"could not write {reason or to}: {exc}") from exc
                time.sleep(wait)
        outage.ok()
        run.pending = []
        run.jobs_written = run.rec.jobs
        if expires is not None:
            run.lease = replace(run.lease, expires=expires)
            run.beat_ok = max(run.beat_ok, extended_at)
        self.outbox.written(run.rec)
        for state, why in (*((e.to, e.reason) for e in earlier), (to, reason)):
            if state != before:
                self.metrics.transition(state, run.rec.customer_id,
                                        workset_id=run.rec.workset_id, reason=why or None)
                before = state
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
        """Metric for the step, and its log copied to S3 while the run goes on (best effort:
        a failed copy is logged and never changes the workset's outcome)."""
        self.metrics.step_duration(req.step, seconds, outcome.state,
                                   workset_id=req.workset_id, attempt=req.attempt)
        if self.settings.step_logs.upload:
            self._trail(req.workset_id, lambda: self._publish_log(req))

    def _publish_log(self, req: StepRequest) -> None:
        try:
            steplogs.publish(self.s3, self.settings, req.workset_id,
                             steplogs.ref(req.step, req.attempt), req.log_file)
        except (DaylibError, OSError) as exc:
            log.warning("workset %s: could not copy the %s log to S3: %s", req.workset_id,
                        req.step, exc)

    def _launch(self, run: Running, req: StepRequest) -> str:
        """Adopt the step's job if one was already submitted (a restart or takeover at any
        instant: ``find`` goes by the job key), else submit it. The reference is recorded
        on the item by the next write that happens anyway (the lease heartbeat while the
        step runs, else its checkpoint or failure), not by a write of its own."""
        ref = self.executor.find(req)
        if ref:
            log.info("workset %s: adopted %s job %s for step %s", req.workset_id,
                     self.executor.name, ref, req.step)
        else:
            ref = self.executor.submit(req)
            if self.executor.records_jobs:
                log.info("workset %s: step %s submitted as %s job %s", req.workset_id,
                         req.step, self.executor.name, ref)
        if self.executor.records_jobs and run.jobs.get(req.step) != ref:
            run.jobs = {**run.jobs, req.step: ref}
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

    def _sentinel_for(self, rec: WorksetRecord, message: str = "",
                      state: str | None = None) -> None:
        if rec.format == "daylily" and self.cfg.mirror_sentinels:
            now = state or rec.state
            self._trail(rec.workset_id,
                        lambda: mirror(self.s3, self.settings, rec.workset_id, now, message))

    def _trail(self, workset_id: str, work: Callable[[], None]) -> None:
        """S3 copies that must not delay the next step or write: in order, in the background
        (daylib/trailing.py), waited for when the run ends."""
        self._trailing[workset_id].add(work)

    def _checkpoint(self, run: Running, step: str) -> None:
        """The last step's end is the final write; an earlier step's end is recorded by the
        next write that happens anyway (``run.pending``), so a short step costs none."""
        if step != STEPS[-1]:
            with run.write_lock:
                run.pending.append(Checkpoint(step, self.store.clock()))
            if step == "stage":
                self._sentinel_for(run.rec, state=S.IN_PROGRESS)
            log.info("workset %s: %s done, %s next", run.rec.workset_id, step, next_step(step))
            return
        rec = self._write(run, S.COMPLETE, "all steps done",
                          (("completed", f"results at {run.rec.results_uri}"),),
                          finished=step, error=None, error_category=None)
        self.stats.completed += 1
        self._sentinel_for(rec, f"results at {rec.results_uri}")
        log.info("workset %s complete; results at %s", rec.workset_id, rec.results_uri)

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
        now = self.store.clock()  # stamps the write too: retry_at is measured from it
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
                              at=common["failed_at"],
                              retry_at=common["failed_at"] + d.delay_seconds, **common)
            self.stats.retrying += 1
            log.warning("workset %s failed: %s: %s", rec.workset_id, d.explanation, message)
        else:
            rec = self._write(run, S.FAILED, d.explanation,
                              (("failed", message), ("dead_lettered", d.explanation)),
                              at=common["failed_at"], retry_at=None, **common)
            self.stats.failed += 1
            self._sentinel_for(rec, message)
            log.error("workset %s failed: %s: %s", rec.workset_id, d.explanation, message)
