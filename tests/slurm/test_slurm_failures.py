"""The failure policy on real Slurm: a monitor (built directly, with the Slurm executor) runs
worksets whose pipeline fails in each category as Slurm batch jobs, against a moto server
for the state table, S3, SNS and the dead-letter queue.

What Slurm itself decides is real here: the memory a retry asks for reaches the job
(``--mem`` -> ``SLURM_MEM_PER_NODE``), a walltime overrun ends as Slurm's TIMEOUT and the
retry gets a longer ``--time``, an ``scancel`` ends as CANCELLED, and an impossible request is
refused by ``sbatch``. The walltime case takes about a minute and a half (Slurm counts
walltime in whole minutes); the cases run side by side, so the module takes about that long.
"""

from __future__ import annotations

import re
import subprocess
import threading
import uuid
from pathlib import Path
from typing import Any

import pytest

from daylib import states as S
from daylib.emulator import MotoServer
from daylib.executors.slurm import SlurmExecutor
from daylib.policy import backoff_ceiling
from daylib.store.records import WorksetRecord
from daylib.wiring import monitor_for
from tests.conftest import make_settings
from tests.support.deployment import Env, fake
from tests.support.slurm import SlurmCluster

pytestmark = pytest.mark.slurm

MARK = "--marker {workdir}/runs.txt"
THROTTLED = "'An error occurred (SlowDown) when calling the GetObject operation'"
PIPELINES = {
    "flaky": fake(0, 1, f"{MARK} --fail-first 1 --stderr {THROTTLED}"),
    "hungry": fake(0, 0, f"{MARK} --need-mem-mb 1000"),
    "slow": fake(0, 0, f"{MARK} --need-walltime-min 2"),
    "unknown-ref": fake(0, 2, f"{MARK} --stderr 'unknown reference hg99'"),
    "bad-fastq": fake(0, 65, MARK),
    "long": fake(120, 0, MARK),
    "quick": fake(0, 0, MARK),
}
CASES: dict[str, dict[str, Any]] = {
    "sl-transient": dict(pipeline="flaky"),
    "sl-oom": dict(pipeline="hungry", resources={"memory_gb": 0.5}),
    "sl-walltime": dict(pipeline="slow", resources={"walltime_minutes": 1}),
    "sl-config": dict(pipeline="unknown-ref"),
    "sl-data": dict(pipeline="bad-fastq"),
    "sl-cancel": dict(pipeline="long"),
    "sl-too-big": dict(pipeline="quick", resources={"memory_gb": 20000}),
}


def _runs(env: Env, wid: str) -> list[str]:
    path = Path(env.settings.monitor.workdir) / wid / "runs.txt"
    return path.read_text().splitlines() if path.exists() else []


@pytest.fixture(scope="module")
def outcome(slurm_cluster: SlurmCluster, moto_server: MotoServer,
            tmp_path_factory: pytest.TempPathFactory
            ) -> tuple[Env, dict[str, WorksetRecord], list[dict[str, Any]]]:
    tmp = tmp_path_factory.mktemp("slurm-policy")
    s = make_settings(moto_server, tmp, f"slurm-{uuid.uuid4().hex[:10]}")
    s.workset.pipelines = PIPELINES
    s.monitor.cluster = "slurm-test"
    s.monitor.max_concurrent = len(CASES)
    s.monitor.lease_seconds = 60.0
    s.monitor.heartbeat_seconds = 5.0
    s.policy.max_memory_gb = slurm_cluster.memory_mb / 1024  # the largest node
    env = Env(s)
    wiring = env.wire()
    for wid, case in CASES.items():
        env.upload(wid, pipeline=case["pipeline"],
                   **({"resources": case["resources"]} if "resources" in case else {}))
    executor = SlurmExecutor(partition=slurm_cluster.partition, env=slurm_cluster.env,
                             poll_seconds=0.3, lost_grace_seconds=3.0, settle_seconds=10.0)
    store, outbox = env.events()
    monitor = monitor_for(s, env.clients, store=store, s3=env.s3, executor=executor,
                          outbox=outbox)
    thread = threading.Thread(target=monitor.run, daemon=True)
    thread.start()
    try:
        # an operator cancels one running job behind daylib's back
        env.wait_for(lambda: bool(_runs(env, "sl-cancel")))
        subprocess.run(["scancel", "--name", "daylib-sl-cancel-a1-run"],
                       env=slurm_cluster.client_env(), check=True, timeout=30)
        env.wait_for(lambda: all(env.state(w) in S.TERMINAL for w in CASES), timeout=400)
    finally:
        monitor.request_stop()
        thread.join(60)
    return env, {w: env.store.require(w) for w in CASES}, wiring.inbox.take()


def _events(msgs: list[dict[str, Any]], wid: str) -> list[str]:
    return [m["event"] for m in msgs if m["workset_id"] == wid]


def test_transient_failure_is_retried_once_after_backoff(outcome: Any) -> None:
    env, recs, msgs = outcome
    rec = recs["sl-transient"]
    assert (rec.state, rec.attempt, rec.steps_done) == (S.COMPLETE, 2, ["stage", "run",
                                                                        "export"])
    assert len(_runs(env, "sl-transient")) == 2
    retry = next(h for h in rec.history if h["to"] == S.RETRYING)
    assert retry["reason"].startswith("transient (rule throttled): retry 1 of 3 in")
    delay = float(re.search(r"in ([\d.]+) s", retry["reason"]).group(1))  # type: ignore
    r = env.settings.retry
    assert 0 <= delay <= backoff_ceiling(1, base=r.base_seconds, factor=r.factor,
                                         cap=r.cap_seconds) + 0.05
    assert _events(msgs, "sl-transient") == ["registered", "started", "step", "retrying",
                                             "started", "step", "completed"]
    work = Path(env.settings.monitor.workdir) / "sl-transient"
    assert sorted(p.name for p in work.glob("stage.a*.log")) == ["stage.a1.log"]


def test_out_of_memory_retry_gets_more_memory_from_slurm(outcome: Any) -> None:
    env, recs, msgs = outcome
    rec = recs["sl-oom"]
    assert (rec.state, rec.attempt) == (S.COMPLETE, 2), rec.decision
    mems = [re.search(r"mem=(\S+)", line).group(1) for line in _runs(env, "sl-oom")]  # type: ignore
    assert mems == ["512", "1024"]  # what Slurm gave the job each time
    assert rec.resources == {"memory_gb": 1} and rec.resource_retries == 1
    retry = next(h for h in rec.history if h["to"] == S.RETRYING)
    assert "resource (rule oom-kill)" in retry["reason"]
    assert "memory 0.5 -> 1 GB" in retry["reason"]
    assert _events(msgs, "sl-oom") == ["registered", "started", "step", "retrying", "started",
                                       "step", "completed"]


def test_walltime_overrun_retry_gets_more_walltime(outcome: Any) -> None:
    env, recs, _ = outcome
    rec = recs["sl-walltime"]
    assert (rec.state, rec.attempt) == (S.COMPLETE, 2), rec.decision
    limits = [re.search(r"limit=(\S+)", line).group(1)  # type: ignore
              for line in _runs(env, "sl-walltime")]
    assert limits == ["1", "2"]
    retry = next(h for h in rec.history if h["to"] == S.RETRYING)
    assert retry["reason"].startswith("resource (rule walltime): retry 1 of 3")
    assert "walltime 1 -> 2 min" in retry["reason"]
    assert rec.resources == {"walltime_minutes": 2}


@pytest.mark.parametrize(("wid", "category", "rule"), [
    ("sl-config", "configuration", "unknown-name"),
    ("sl-data", "data", "bad-fastq"),
    ("sl-cancel", "permanent", "cancelled"),
    ("sl-too-big", "configuration", "unsatisfiable"),
])
def test_non_retryable_failures_fail_at_once_and_are_dead_lettered(
        outcome: Any, wid: str, category: str, rule: str) -> None:
    env, recs, msgs = outcome
    rec = recs[wid]
    assert (rec.state, rec.attempt, rec.error_category, rec.error_rule) == (
        S.FAILED, 1, category, rule), (rec.error, rec.decision)
    assert rec.decision == f"{category} (rule {rule}): not retryable; failed"
    assert len(_runs(env, wid)) == (0 if wid == "sl-too-big" else 1)
    steps = [] if wid == "sl-too-big" else ["step"]
    assert _events(msgs, wid) == ["registered", "started", *steps, "failed", "dead_lettered"]
    assert env.wiring is not None
    letters = [d for d in env.wiring.dlq.letters() if d.workset_id == wid]
    assert [(d.category, d.rule, d.attempts) for d in letters] == [(category, rule, 1)]


def test_refused_request_names_slurms_reason(outcome: Any) -> None:
    _, recs, _ = outcome
    rec = recs["sl-too-big"]
    assert re.search(r"sbatch: error: .*(Memory specification can not be satisfied|"
                     r"Requested node configuration is not available)", rec.error or "")
    assert rec.steps_done == [] and rec.step == "stage"  # refused before anything ran
