"""Issue 11, writes per lifecycle: a step's job reference and a finished step's checkpoint
ride on writes that happen anyway (the lease heartbeat, the next step's checkpoint, the
failure, the final write), and a lease heartbeat is written only when no other write
extended the lease for ``heartbeat_seconds``. Counted on the store's
public surface, on the in-memory store (the writes a monitor makes, not how DynamoDB takes
them: tests/slurm counts the UpdateItems on moto with a real Slurm)."""

from __future__ import annotations

import itertools
import threading
import time
from typing import Any

import pytest

from daylib import states as S
from daylib.errors import AwsUnavailable
from daylib.executors.base import StepOutcome, StepRequest
from daylib.store.memory import MemoryStore
from daylib.store.records import Lease, WorksetRecord
from tests.support.deployment import Env

pytestmark = pytest.mark.memory_store


class Counting(MemoryStore):
    """The env's in-memory table, with each owner write noted: (what, monotonic time)."""

    def __init__(self, env: Env) -> None:
        assert isinstance(env.store, MemoryStore)
        super().__init__(env.store.memory)
        self.writes: list[tuple[str, float]] = []

    def transition(self, rec: WorksetRecord, to: str, **kw: Any) -> WorksetRecord:
        self.writes.append((f"transition {kw.get('reason') or '(no reason)'}",
                            time.monotonic()))
        return super().transition(rec, to, **kw)

    def heartbeat(self, lease: Lease, lease_seconds: float, *,
                  jobs: dict[str, str] | None = None) -> Lease:
        self.writes.append(("heartbeat", time.monotonic()))
        return super().heartbeat(lease, lease_seconds, jobs=jobs)

    def claim(self, workset_id: str, owner: str, lease_seconds: float,
              **kw: Any) -> tuple[WorksetRecord, Lease]:
        self.writes.append(("claim", time.monotonic()))
        return super().claim(workset_id, owner, lease_seconds, **kw)


class Scheduler:
    """A batch scheduler in this process: job ids that outlive the monitor (so the monitor
    records them), each step taking ``seconds[step]`` and failing where told to."""

    name = "scheduler"
    records_jobs = True

    def __init__(self, seconds: dict[str, float], fail: str | None = None) -> None:
        self.seconds = seconds
        self.fail = fail
        self.ids = itertools.count(101)
        self.submitted: dict[str, str] = {}

    def cluster_capacity(self) -> None:
        return None

    def submit(self, req: StepRequest) -> str:
        ref = str(next(self.ids))
        self.submitted[req.step] = ref
        return ref

    def find(self, req: StepRequest) -> str | None:
        return None

    def wait(self, job_ref: str, req: StepRequest, stop: threading.Event) -> StepOutcome:
        if stop.wait(self.seconds.get(req.step, 0.0)):
            return StepOutcome("RUNNING", job_ref=job_ref)
        if req.step == self.fail:
            return StepOutcome("FAILED", 3, stderr_tail="boom", job_ref=job_ref)
        return StepOutcome("COMPLETED", 0, job_ref=job_ref)

    def cancel(self, job_ref: str) -> None:
        return None


class Adopting(Scheduler):
    """Jobs that outlive their monitor and stay findable by their key (as a Slurm job or
    jobwrap's status file does), so a new owner adopts them instead of submitting again."""

    def __init__(self, seconds: dict[str, float]) -> None:
        super().__init__(seconds)
        self.submits: list[str] = []

    def submit(self, req: StepRequest) -> str:
        self.submits.append(req.step)
        return super().submit(req)

    def find(self, req: StepRequest) -> str | None:
        return self.submitted.get(req.step)


class CutOff(Counting):
    """The table as a monitor sees it once its endpoint is gone: every write of the owner
    after its claim fails, as an outage does."""

    def transition(self, rec: WorksetRecord, to: str, **kw: Any) -> WorksetRecord:
        raise AwsUnavailable("endpoint unreachable")

    def heartbeat(self, lease: Lease, lease_seconds: float, *,
                  jobs: dict[str, str] | None = None) -> Lease:
        raise AwsUnavailable("endpoint unreachable")


def _run(env: Env, store: Counting, executor: Scheduler, **monitor: Any) -> None:
    env.monitor(store=store, executor=executor, **monitor).run(once=True)


def test_job_references_and_checkpoints_cost_no_write_of_their_own(env: Env) -> None:
    env.upload("ws-jobs")
    store, executor = Counting(env), Scheduler({})
    _run(env, store, executor, heartbeat_seconds=60.0, lease_seconds=180.0)
    rec = store.require("ws-jobs")
    assert rec.state == S.COMPLETE
    assert rec.jobs == executor.submitted == {"stage": "101", "run": "102", "export": "103"}
    assert [w for w, _ in store.writes] == ["claim", "transition all steps done"]
    steps = [(h["from"], h["to"], h["reason"]) for h in rec.history[-3:]]
    assert steps == [(S.LOCKED, S.IN_PROGRESS, "stage done"),
                     (S.IN_PROGRESS, S.IN_PROGRESS, "run done"),
                     (S.IN_PROGRESS, S.COMPLETE, "all steps done")]
    stamps = [h["at"] for h in rec.history[-3:]]
    assert stamps == sorted(stamps)  # each checkpoint keeps the time its step ended
    assert not rec.outbox  # no notifications configured: no event left waiting for a sink


def test_a_failed_step_records_its_job_and_the_finished_steps_in_the_failure_write(
        env: Env) -> None:
    env.upload("ws-jobfail")
    env.settings.policy.unmatched_max_retries = 0
    store, executor = Counting(env), Scheduler({}, fail="run")
    _run(env, store, executor, heartbeat_seconds=60.0, lease_seconds=180.0)
    rec = store.require("ws-jobfail")
    assert rec.state in (S.FAILED, S.RETRYING) and rec.error and "run step failed" in rec.error
    assert rec.jobs == {"stage": "101", "run": "102"}
    assert (rec.steps_done, rec.step) == (["stage"], "run")  # a retry resumes at run
    assert len(store.writes) == 2  # the claim; the failure, with stage's checkpoint and jobs


def test_finished_steps_ride_on_the_lease_extension_that_is_due_anyway(env: Env) -> None:
    """Steps of 0.5, 3 and 0.2 s, a 2 s heartbeat: the one write between claim and
    completion is the lease extension due 2 s after the claim, while ``run`` runs, and it
    records the stage step's end; ``run``'s end rides on the final write."""
    env.upload("ws-short")
    store = Counting(env)
    executor = Scheduler({"stage": 0.5, "run": 3.0, "export": 0.2})
    _run(env, store, executor, heartbeat_seconds=2.0, lease_seconds=6.0)
    rec = store.require("ws-short")
    assert rec.state == S.COMPLETE
    assert [w for w, _ in store.writes] == [
        "claim", "transition stage done", "transition all steps done"]
    claimed, flushed = (t for _, t in store.writes[:2])
    assert flushed - claimed >= 2.0 - 0.05, "a checkpoint was written before it was due"
    assert [h["reason"] for h in rec.history[-3:]] == ["stage done", "run done",
                                                        "all steps done"]


def test_a_long_step_is_heartbeaten_no_more_often_than_heartbeat_seconds(env: Env) -> None:
    """A 4 s run step with a 1 s heartbeat: beats come at least a heartbeat apart, counted
    from the last write that extended the lease, and the first records the step's job."""
    env.upload("ws-long")
    store, executor = Counting(env), Scheduler({"run": 4.0})
    seen: list[dict[str, str]] = []

    def watch() -> None:
        while not seen or seen[-1].get("run") is None:
            rec = store.get("ws-long")
            if rec is not None and rec.state == S.COMPLETE:
                return
            if rec is not None and rec.step == "run" and "run" in rec.jobs:
                seen.append(dict(rec.jobs))  # recorded while the run step still runs
            time.sleep(0.05)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    _run(env, store, executor, heartbeat_seconds=1.0, lease_seconds=3.0)
    watcher.join(30)
    assert store.require("ws-long").state == S.COMPLETE
    assert seen and seen[-1] == {"stage": "101", "run": "102"}
    beats = [t for w, t in store.writes if w == "heartbeat"]
    assert beats, "a 4 s step with a 1 s heartbeat was never heartbeaten"
    for beat in beats:
        before = max(t for w, t in store.writes if t < beat)
        assert beat - before >= 1.0 - 0.05, store.writes


def test_a_finished_step_not_yet_written_is_adopted_not_rerun_by_the_next_owner(
        env: Env) -> None:
    """The owner loses the table after ``stage`` ended, before any write recorded it: the
    next owner resumes at ``stage`` and adopts its finished job; nothing runs twice."""
    env.upload("ws-adopt")
    executor = Adopting({"run": 3.0})
    env.monitor(store=CutOff(env), executor=executor, monitor_id="cut-off",
                lease_seconds=2.0, heartbeat_seconds=0.5).run(once=True)
    rec = env.store.require("ws-adopt")
    assert (rec.state, rec.owner, rec.steps_done) == (S.LOCKED, "cut-off", [])
    with env.running(executor=executor, monitor_id="next", lease_seconds=2.0,
                     heartbeat_seconds=0.5):
        env.wait_for(lambda: env.state("ws-adopt") == S.COMPLETE, timeout=60)
    rec = env.store.require("ws-adopt")
    assert executor.submits == ["stage", "run", "export"]  # none submitted twice
    assert rec.steps_done == ["stage", "run", "export"] and rec.owner is None
