"""The monitor on a real single-node Slurm: all three steps as batch jobs, adoption after
kill -9, cancel, and two monitors (two cluster names) sharing one table and one Slurm."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from daylib import states as S
from daylib.executors.slurm import SlurmExecutor
from daylib.monitor import Monitor
from daylib.store.dynamodb import DynamoStore
from daylib.store.records import WorksetRecord
from daylib.wiring import monitor_for
from tests.conftest import ROOT, run_cli
from tests.support.deployment import Env
from tests.support.slurm import SlurmCluster


@pytest.fixture
def slurm_env(env: Env, slurm_cluster: SlurmCluster, tmp_path: Path) -> Iterator[Env]:
    """A deployment whose monitors run steps through the test Slurm."""
    old = os.environ.get("SLURM_CONF")
    os.environ["SLURM_CONF"] = slurm_cluster.env["SLURM_CONF"]
    env.settings.monitor.workdir = str(tmp_path / "shared")
    yield env
    if old is None:
        os.environ.pop("SLURM_CONF", None)
    else:
        os.environ["SLURM_CONF"] = old


def slurm_monitor(env: Env, cluster: str, **overrides: object) -> Monitor:
    s = env.settings.model_copy(deep=True)
    s.monitor.cluster = cluster
    s.monitor.monitor_id = f"mon-{cluster}"
    for key, value in overrides.items():
        setattr(s.monitor, key, value)
    return monitor_for(s, env.clients, store=env.store, s3=env.s3,
                       executor=SlurmExecutor(poll_seconds=0.2))


def jobs_of(env: Env, workset_id: str) -> dict[str, str]:
    rec = env.store.get(workset_id)
    return rec.jobs if rec else {}


def jobs_named(workset_id: str) -> Counter[str]:
    """Every job Slurm still knows for a workset, by name (MinJobAge keeps finished ones)."""
    out = subprocess.run(["squeue", "--states=all", "--noheader", "--format=%j"],
                         capture_output=True, text=True, check=True).stdout
    return Counter(n for n in out.split() if n.startswith(f"daylib-{workset_id}-"))


def test_all_three_steps_run_as_slurm_jobs(slurm_env: Env) -> None:
    slurm_env.upload("ws-slurm1", resources={"vcpus": 1, "memory_gb": 0.5,
                                             "walltime_minutes": 5})
    slurm_monitor(slurm_env, "alpha").run(once=True)
    rec = slurm_env.store.require("ws-slurm1")
    assert (rec.state, rec.cluster, rec.steps_done) == (S.COMPLETE, "alpha",
                                                        ["stage", "run", "export"])
    assert set(rec.jobs) == {"stage", "run", "export"} and all(j.isdigit()
                                                              for j in rec.jobs.values())
    assert jobs_named("ws-slurm1") == {f"daylib-ws-slurm1-a1-{s}": 1
                                       for s in ("stage", "run", "export")}
    keys = [k for k, _ in slurm_env.s3.keys(slurm_env.bucket, "worksets/ws-slurm1/results/")]
    assert keys == ["worksets/ws-slurm1/results/result.txt"]
    assert rec.route and "alpha" in (rec.cluster or "")


def test_a_slurm_lifecycle_writes_no_job_id_of_its_own(slurm_env: Env) -> None:
    """Issue 11: each step's job id and each finished step's checkpoint ride on the next
    write that happens anyway (a heartbeat, or the final write), so with steps shorter
    than a heartbeat the item takes the claim and the final write, as on the local
    executor (was seven, then four)."""
    slurm_env.upload("ws-lean")
    assert isinstance(slurm_env.store, DynamoStore)
    updates: list[str] = []
    slurm_env.store.client.meta.events.register(
        "before-parameter-build.dynamodb.UpdateItem",
        lambda params, **_: updates.append(params["UpdateExpression"])
        if params["Key"]["pk"]["S"] == "ws-lean" else None)
    slurm_monitor(slurm_env, "alpha", heartbeat_seconds=60.0, lease_seconds=180.0).run(
        once=True)
    rec = slurm_env.store.require("ws-lean")
    assert rec.state == S.COMPLETE and set(rec.jobs) == {"stage", "run", "export"}
    assert jobs_named("ws-lean") == {f"daylib-ws-lean-a1-{s}": 1
                                     for s in ("stage", "run", "export")}
    assert len(updates) == 2, updates  # the claim, the final write


def test_show_names_the_running_steps_slurm_job(slurm_env: Env) -> None:
    """The run step's job id reaches the item with the next heartbeat, while it runs."""
    slurm_env.upload("ws-shown", pipeline="sleepy")
    mon = slurm_monitor(slurm_env, "alpha", heartbeat_seconds=0.3, lease_seconds=3.0)
    thread = threading.Thread(target=mon.run, daemon=True)
    thread.start()
    s = slurm_env.settings
    cli_env = {"AWS_ENDPOINT_URL": s.aws.endpoint_url or "", "AWS_REGION": s.aws.region or "",
               "DAYLILY_STATE__TABLE": s.state.table, "DAYLILY_STORAGE__BUCKET": s.storage.bucket}
    try:
        slurm_env.wait_for(lambda: "run" in jobs_of(slurm_env, "ws-shown"))
        job = jobs_of(slurm_env, "ws-shown")["run"]
        rec = slurm_env.store.require("ws-shown")
        assert rec.step == "run" and rec.steps_done == ["stage"]  # still running
        out = run_cli("show", "ws-shown", env=cli_env)
        assert out.returncode == 0, out.stderr
        assert f"run={job}" in out.stdout and "step run" in out.stdout
        assert jobs_named("ws-shown")["daylib-ws-shown-a1-run"] == 1
        slurm_env.store.edit("ws-shown", lambda r: (S.CANCELLED, {}), actor="op", reason="stop")
    finally:
        mon.request_stop()
        thread.join(30)


def test_kill_9_mid_job_is_adopted_not_resubmitted(slurm_env: Env, tmp_path: Path,
                                                    slurm_cluster: SlurmCluster) -> None:
    slurm_env.upload("ws-adopt", pipeline="counted")
    s = slurm_env.settings
    env_vars = {**slurm_cluster.client_env(), "PYTHONPATH": str(ROOT),
                "AWS_ENDPOINT_URL": s.aws.endpoint_url or "", "AWS_REGION": "us-west-2",
                "DAYLILY_STATE__TABLE": s.state.table, "DAYLILY_STORAGE__BUCKET": s.storage.bucket,
                "DAYLILY_MONITOR__WORKDIR": s.monitor.workdir,
                "DAYLILY_MONITOR__MONITOR_ID": "doomed", "DAYLILY_MONITOR__CLUSTER": "alpha",
                "DAYLILY_MONITOR__LEASE_SECONDS": "3", "DAYLILY_MONITOR__HEARTBEAT_SECONDS": "1",
                "DAYLILY_MONITOR__POLL_SECONDS": "0.2", "DAYLILY_SLURM__POLL_SECONDS": "0.2",
                "DAYLILY_WORKSET__PIPELINES": yaml.safe_dump(s.workset.pipelines)}
    with open(tmp_path / "doomed.log", "wb") as log:
        proc = subprocess.Popen([sys.executable, "-m", "daylib.cli", "monitor", "--executor",
                                 "slurm"], env=env_vars, stdout=subprocess.DEVNULL, stderr=log)
    try:
        slurm_env.wait_for(lambda: "run" in jobs_of(slurm_env, "ws-adopt"))
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    finally:
        if proc.poll() is None:
            proc.kill()
    mon = slurm_monitor(slurm_env, "alpha", lease_seconds=3.0, heartbeat_seconds=1.0)
    thread = threading.Thread(target=mon.run, daemon=True)
    thread.start()
    try:
        slurm_env.wait_for(lambda: slurm_env.state("ws-adopt") == S.COMPLETE)
    finally:
        mon.request_stop()
        thread.join(30)
    assert jobs_named("ws-adopt") == {f"daylib-ws-adopt-a1-{s}": 1
                                      for s in ("stage", "run", "export")}
    assert len((tmp_path / "runs.txt").read_text().splitlines()) == 1
    assert mon.stats.taken_over == 1


def test_cancel_stops_the_running_slurm_job(slurm_env: Env) -> None:
    slurm_env.upload("ws-scancel", pipeline="sleepy")
    mon = slurm_monitor(slurm_env, "alpha", heartbeat_seconds=0.3, lease_seconds=3.0)
    thread = threading.Thread(target=mon.run, daemon=True)
    thread.start()
    try:
        slurm_env.wait_for(lambda: "run" in jobs_of(slurm_env, "ws-scancel"))
        job = slurm_env.store.require("ws-scancel").jobs["run"]
        slurm_env.store.edit("ws-scancel", lambda r: (S.CANCELLED, {}), actor="op",
                             reason="stop")

        def job_state() -> str:
            return subprocess.run(["squeue", "--states=all", "--noheader", "--format=%T",
                                   "--job", job], capture_output=True, text=True).stdout.strip()

        slurm_env.wait_for(lambda: job_state() in ("CANCELLED", ""))
    finally:
        mon.request_stop()
        thread.join(30)
    assert slurm_env.state("ws-scancel") == S.CANCELLED


def _owned_spans(rec: WorksetRecord) -> list[tuple[str, str]]:
    """When the workset was owned (claimed until it left the owned states), from its history:
    the recorded order, not a sampler's view of several items read one after another."""
    spans: list[tuple[str, str]] = []
    start: str | None = None
    for h in rec.history:
        if h["to"] == S.LOCKED and start is None:
            start = h["at"]
        elif h["to"] not in S.OWNED and start is not None:
            spans.append((start, h["at"]))
            start = None
    assert start is None, f"{rec.workset_id} still owned"
    return spans


def _most_at_once(spans: dict[str, list[tuple[str, str]]], ids: list[str]) -> int:
    """The most worksets among ``ids`` owned at the same instant (an end at the same instant
    as a start does not overlap it: the slot was handed on)."""
    edges = sorted((at, +1 if start else -1) for w in ids for span in spans[w]
                   for at, start in ((span[0], True), (span[1], False)))
    most = now = 0
    for _, step in edges:
        now += step
        most = max(most, now)
    return most


def test_two_clusters_affinity_caps_and_stale(slurm_env: Env) -> None:
    env = slurm_env
    env.settings.caps.global_max = 3
    env.settings.caps.customer_max = {"lab-a": 1}
    env.store.put_cluster({"name": "gamma", "region": "us-west-2", "heartbeat_at": 1.0,
                           "lease_seconds": 30.0, "cpus_free": 999, "cpus_total": 999})
    plan = {**{f"ws-a{i}": {"preferred_cluster": "alpha"} for i in range(3)},
            **{f"ws-b{i}": {"preferred_cluster": "beta"} for i in range(3)},
            **{f"ws-c{i}": {"customer_id": "lab-a"} for i in range(3)},
            **{f"ws-free{i}": {} for i in range(2)},
            "ws-gamma": {"preferred_cluster": "gamma"}}
    for wid, extra in plan.items():
        env.upload(wid, pipeline="short", **extra)
    env.monitor().intake.scan()
    alpha, beta = slurm_monitor(env, "alpha"), slurm_monitor(env, "beta")
    threads = [threading.Thread(target=m.run, daemon=True) for m in (alpha, beta)]
    for t in threads:
        t.start()
    try:
        env.wait_for(lambda: all(env.state(w) == S.COMPLETE for w in plan if w != "ws-gamma"))
    finally:
        for m in (alpha, beta):
            m.request_stop()
        for t in threads:
            t.join(60)
    recs = env.store.many(list(plan))
    owned = {w: _owned_spans(r) for w, r in recs.items()}
    assert _most_at_once(owned, list(plan)) <= 3
    assert _most_at_once(owned, [w for w in plan if recs[w].customer_id == "lab-a"]) <= 1
    assert all(recs[f"ws-a{i}"].cluster == "alpha" for i in range(3))
    assert all(recs[f"ws-b{i}"].cluster == "beta" for i in range(3))
    assert not any(r.cluster == "gamma" for r in recs.values())
    gamma = recs["ws-gamma"]
    assert gamma.state == S.READY and "gamma" in (gamma.reason or "")
    assert "stale" in (gamma.reason or "")
    assert env.store.slot_holders("global") == {}
