"""The failure policy end to end: a monitor runs real subprocess steps that fail in each
category, and every workset must end in the right state after the right number of attempts,
with backoff inside its full-jitter bounds, more resources after resource failures, the
decision explained on the workset, and the right SNS messages. The table is the in-memory
store (this is about the monitor, not DynamoDB); S3, SNS, SQS and the DLQ are the moto
server's. Its speed exposed the races tests/unit/test_outbox_races.py replays."""

from __future__ import annotations

import dataclasses
import re
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

from daylib import states as S
from daylib.config import RuleSettings
from daylib.executors.base import StepOutcome, StepRequest
from daylib.formatters import format_show
from daylib.ordering import epoch
from daylib.policy import backoff_ceiling
from daylib.report import step_seconds
from daylib.store.records import WorksetRecord
from tests.conftest import make_settings
from tests.support.deployment import Env, fake
from tests.support.executors import NoOpStaging

MARK = "--marker {workdir}/runs.txt"
THROTTLED = "'An error occurred (ThrottlingException) when calling the GetObject operation'"
OOM = "'Out of memory: Killed process 4242 (bwa) total-vm:1024kB'"
PIPELINES = {
    "flaky-aws": fake(0, 1, f"{MARK} --fail-first 1 --stderr {THROTTLED}"),
    "throttled": fake(0, 1, f"{MARK} --stderr {THROTTLED}"),
    "oom-once": fake(0, 137, f"{MARK} --fail-first 1 --stderr {OOM}"),
    "oom-always": fake(0, 137, f"{MARK} --stderr {OOM}"),
    "slow-once": fake(3600, 0, f"{MARK} --fail-first 1"),  # only its time limit ends it
    "unknown-ref": fake(0, 2, f"{MARK} --stderr 'unknown reference hg99'"),
    "bad-fastq": fake(0, 65, MARK),
    "licence": fake(0, 1, f"{MARK} --stderr 'licence expired for module x'"),
    "odd": fake(0, 3, MARK),
}


STEP_TIMEOUT_SECONDS = 900.0  # no step reaches it by mere slowness of a loaded machine
# The one step that is about a time limit, and its limit, counted once its pipeline runs.
TIME_LIMITED = ("ws-timeout", "run", 1)
LIMIT_SECONDS = 2.0
HANG_GUARD_SECONDS = 600.0


class Recording(NoOpStaging):
    """The local executor (stage and export as no-ops: the policy is about the run step),
    remembering every request (to see the resources asked for). The time-limited step gets
    its short limit only once its pipeline has written its marker line, so the limit ends the
    pipeline's sleep and never a slow start."""

    def __init__(self) -> None:
        super().__init__()
        self.requests: list[StepRequest] = []
        self._rlock = threading.Lock()

    def submit(self, req: StepRequest) -> str:
        with self._rlock:
            self.requests.append(req)
        return super().submit(req)

    def wait(self, job_ref: str, req: StepRequest, stop: threading.Event) -> StepOutcome:
        if (req.workset_id, req.step, req.attempt) == TIME_LIMITED:
            marker = req.workdir / "runs.txt"
            deadline = time.monotonic() + HANG_GUARD_SECONDS
            while not (marker.exists() and marker.read_text()) and not stop.is_set():
                assert time.monotonic() < deadline, "the time-limited pipeline never started"
                time.sleep(0.05)
            req = dataclasses.replace(req, timeout_seconds=LIMIT_SECONDS)
        return super().wait(job_ref, req, stop)

    def runs(self, workset_id: str) -> list[StepRequest]:
        with self._rlock:
            return [r for r in self.requests if r.workset_id == workset_id and r.step == "run"]


CASES: dict[str, dict[str, Any]] = {
    # id: pipeline, extra spec keys, then the expected end
    "ws-transient": dict(pipeline="flaky-aws", state=S.COMPLETE, attempts=2, retries=1,
                         category=None, rule=None),
    "ws-throttled": dict(pipeline="throttled", spec={"max_retries": 2}, state=S.FAILED,
                         attempts=3, retries=2, category="transient", rule="throttled"),
    "ws-oom": dict(pipeline="oom-once", spec={"resources": {"memory_gb": 2}},
                   state=S.COMPLETE, attempts=2, retries=1, category=None, rule=None),
    "ws-oom-cap": dict(pipeline="oom-always", spec={"resources": {"memory_gb": 2},
                                                    "max_retries": 3},
                       state=S.FAILED, attempts=4, retries=3, category="resource",
                       rule="oom-kill"),
    "ws-timeout": dict(pipeline="slow-once", spec={"resources": {"walltime_minutes": 10}},
                       state=S.COMPLETE, attempts=2, retries=1, category=None, rule=None),
    "ws-config": dict(pipeline="unknown-ref", state=S.FAILED, attempts=1, retries=0,
                      category="configuration", rule="unknown-name"),
    "ws-data": dict(pipeline="bad-fastq", state=S.FAILED, attempts=1, retries=0,
                    category="data", rule="bad-fastq"),
    "ws-permanent": dict(pipeline="licence", state=S.FAILED, attempts=1, retries=0,
                         category="permanent", rule="licence"),
    "ws-unmatched": dict(pipeline="odd", spec={"max_retries": 5}, state=S.FAILED, attempts=2,
                         retries=1, category="transient", rule="unmatched"),
}


def _shown(rec: WorksetRecord) -> str:
    """What ``show`` prints for the record (the extras as cmd_show computes them)."""
    return format_show(rec, {"step_seconds": step_seconds(rec.history), "logs_uri": "-",
                             "attempt_of": f"attempt {rec.attempt}"})


@pytest.fixture(scope="module")
def outcome(tmp_path_factory: pytest.TempPathFactory, moto_server: Any
            ) -> tuple[Env, Recording, dict[str, WorksetRecord], list[dict[str, Any]]]:
    """Every case in one monitor run (they run side by side), then the records."""
    tmp = tmp_path_factory.mktemp("policy")
    s = make_settings(moto_server, tmp, f"policy-{uuid.uuid4().hex[:10]}")
    s.workset.pipelines = PIPELINES
    s.policy.rules = [RuleSettings(name="licence", category="permanent",
                                   stderr="licence expired")]
    s.policy.max_memory_gb = 6.0
    s.monitor.step_timeout_seconds = STEP_TIMEOUT_SECONDS
    s.monitor.max_concurrent = 9
    env = Env(s, memory=True)
    wiring = env.wire()
    for wid, case in CASES.items():
        env.upload(wid, pipeline=case["pipeline"], **case.get("spec", {}))
    executor = Recording()
    with env.running(executor=executor):
        env.wait_for(lambda: all(env.state(w) in S.TERMINAL for w in CASES),
                     timeout=HANG_GUARD_SECONDS)
    records = {w: env.store.require(w) for w in CASES}
    return env, executor, records, wiring.inbox.take()


@pytest.mark.parametrize("wid", list(CASES))
def test_each_failure_class_ends_right(outcome: Any, wid: str) -> None:
    env, _, records, _ = outcome
    case, rec = CASES[wid], records[wid]
    assert rec.state == case["state"], (rec.error, rec.decision)
    assert rec.attempt == case["attempts"]
    assert [h["to"] for h in rec.history].count(S.RETRYING) == case["retries"]
    assert [h["to"] for h in rec.history].count(S.LOCKED) == case["attempts"]
    runs = (Path(env.settings.monitor.workdir) / wid / "runs.txt").read_text().splitlines()
    # the pipeline ran once per attempt, never more
    assert len(runs) == case["attempts"], (runs, rec.history)
    if case["state"] == S.FAILED:
        assert (rec.error_category, rec.error_rule) == (case["category"], case["rule"])
        assert rec.decision and rec.decision.startswith(f"{case['category']} (rule ")
        assert rec.decision.endswith("failed")
        shown = _shown(rec)
        assert f"decision    {rec.decision}" in shown
        assert f"[{rec.error_category}]" in shown


@pytest.mark.parametrize("wid", [w for w, c in CASES.items() if c["retries"]])
def test_backoff_stays_within_full_jitter_bounds(outcome: Any, wid: str) -> None:
    env, _, records, _ = outcome
    r = env.settings.retry
    rec = records[wid]
    entries = rec.history
    for i, h in enumerate(entries):
        if h["to"] != S.RETRYING:
            continue
        m = re.search(r"retry (\d+) of (\d+) in ([\d.]+) s", h["reason"])
        assert m, h["reason"]
        n, delay = int(m.group(1)), float(m.group(3))
        assert 0 <= delay <= backoff_ceiling(n, base=r.base_seconds, factor=r.factor,
                                             cap=r.cap_seconds) + 0.05
        ready = next(x for x in entries[i + 1:] if x["to"] == S.READY)
        assert ready["reason"] == f"retry {rec.attempt_base + n} due"
        # promoted by a conditional write only once retry_at had passed
        assert epoch(ready["at"]) - epoch(h["at"]) >= delay - 0.05


def test_a_retry_resumes_at_the_failed_step(outcome: Any) -> None:
    env, _, records, _ = outcome
    work = Path(env.settings.monitor.workdir) / "ws-transient"
    assert sorted(p.name for p in work.glob("stage.a*.log")) == ["stage.a1.log"]
    assert sorted(p.name for p in work.glob("run.a*.log")) == ["run.a1.log", "run.a2.log"]
    assert records["ws-transient"].steps_done == ["stage", "run", "export"]


def test_out_of_memory_retries_with_more_memory_up_to_the_cap(outcome: Any) -> None:
    _, executor, records, _ = outcome
    assert [r.memory_gb for r in executor.runs("ws-oom")] == [2, 4.0]
    assert records["ws-oom"].resources == {"memory_gb": 4.0}
    assert records["ws-oom"].resource_retries == 1
    assert [r.memory_gb for r in executor.runs("ws-oom-cap")] == [2, 4.0, 6.0, 6.0]
    capped = records["ws-oom-cap"]
    assert capped.resources == {"memory_gb": 6.0} and capped.resource_retries == 2
    reasons = [h["reason"] for h in capped.history if h["to"] == S.RETRYING]
    assert "memory 2 -> 4 GB" in reasons[0] and "memory 4 -> 6 GB" in reasons[1]
    assert "memory already at the cap" in reasons[2]


def test_every_step_is_given_the_configured_timeout(outcome: Any) -> None:
    _, executor, _, _ = outcome
    assert executor.requests
    assert {r.timeout_seconds for r in executor.requests} == {STEP_TIMEOUT_SECONDS}


def test_time_out_retries_with_more_walltime(outcome: Any) -> None:
    _, executor, records, _ = outcome
    runs = executor.runs("ws-timeout")
    assert [r.walltime_minutes for r in runs] == [10, 20]
    assert [r.memory_gb for r in runs] == [None, None]  # a time-out does not raise memory
    rec = records["ws-timeout"]
    assert rec.resources == {"walltime_minutes": 20}
    retry = next(h for h in rec.history if h["to"] == S.RETRYING)
    assert retry["reason"].startswith("resource (rule walltime): retry 1 of 3")


def test_show_explains_a_retry_decision(outcome: Any) -> None:
    _, _, records, _ = outcome
    rec = records["ws-oom"]
    data = rec.public()
    assert data["decision"].startswith("resource (rule oom-kill): retry 1 of 3 in")
    assert data["resources"] == {"memory_gb": 4.0} and data["retries_used"] == 1
    shown = _shown(rec)
    assert "resources   memory_gb=4  (raised by 1 resource retry)" in shown
    assert "retries     1 of 3 used" in shown


EXPECTED_EVENTS = {
    "ws-transient": ["registered", "started", "step", "retrying", "started", "step",
                     "completed"],
    "ws-throttled": ["registered", "started", "step", "retrying", "started", "retrying",
                     "started", "failed", "dead_lettered"],
    "ws-oom": ["registered", "started", "step", "retrying", "started", "step", "completed"],
    "ws-config": ["registered", "started", "step", "failed", "dead_lettered"],
    "ws-data": ["registered", "started", "step", "failed", "dead_lettered"],
    "ws-permanent": ["registered", "started", "step", "failed", "dead_lettered"],
}


@pytest.mark.parametrize("wid", list(EXPECTED_EVENTS))
def test_sns_messages_per_failure_class(outcome: Any, wid: str) -> None:
    _, _, records, msgs = outcome
    mine = [m for m in msgs if m["workset_id"] == wid]
    assert [m["event"] for m in mine] == EXPECTED_EVENTS[wid]
    assert [m["seq"] for m in mine] == list(range(1, len(mine) + 1))
    retrying = [m for m in mine if m["event"] == "retrying"]
    assert all(m["state"] == S.RETRYING and m["error_category"] for m in retrying)
    assert records[wid].outbox == {}


def test_dead_letter_queue_holds_exactly_the_failed(outcome: Any) -> None:
    env, _, records, _ = outcome
    assert env.wiring is not None
    letters = {d.workset_id: d for d in env.wiring.dlq.letters()}
    failed = {w for w, r in records.items() if r.state == S.FAILED}
    assert set(letters) == failed
    for wid in failed:
        rec, letter = records[wid], letters[wid]
        assert (letter.category, letter.rule, letter.attempts) == (
            rec.error_category, rec.error_rule, rec.attempt)
        assert letter.error == rec.error and letter.decision == rec.decision
