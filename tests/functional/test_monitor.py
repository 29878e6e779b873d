"""The monitor against a moto server over HTTP, running real subprocess steps; the store is in
memory where the test is about the monitor, DynamoDB where monitors are separate processes."""

from __future__ import annotations

import itertools
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from daylib import states as S
from daylib.store.records import WorksetRecord
from tests.conftest import ROOT
from tests.support.deployment import HANG_GUARD_SECONDS, Env, fake
from tests.support.executors import NoOpStaging


def _done_order(env: Env, ids: list[str]) -> list[str]:
    recs = [env.store.require(w) for w in ids]
    return [r.workset_id for r in sorted(recs, key=lambda r: r.updated_at)]


def _claimed_at(rec: WorksetRecord) -> str:
    return str(next(h["at"] for h in rec.history if h["to"] == S.LOCKED))


@pytest.mark.memory_store
def test_walks_all_steps_and_exports(env: Env) -> None:
    env.upload("ws-one", pipeline="germline")
    env.monitor().run(once=True)
    rec = env.store.require("ws-one")
    assert (rec.state, rec.steps_done, rec.cluster) == (S.COMPLETE, ["stage", "run", "export"],
                                                        "local")
    assert [h["to"] for h in rec.history] == ["ready", "locked", "in_progress", "in_progress",
                                              "complete"]
    keys = [k for k, _ in env.s3.keys(env.bucket, f"{env.prefix}ws-one/results/")]
    assert keys == [f"{env.prefix}ws-one/results/result.txt"]


@pytest.mark.memory_store
def test_priority_order_with_one_slot(env: Env) -> None:
    for wid, prio in [("ws-low", "low"), ("ws-normal", "normal"), ("ws-high", "high"),
                      ("ws-urgent", "urgent"), ("ws-normal2", "normal")]:
        env.upload(wid, priority=prio)
        env.monitor(max_concurrent=1).intake.scan()
    env.monitor(executor=NoOpStaging(), max_concurrent=1).run(once=True)
    assert _done_order(env, ["ws-low", "ws-normal", "ws-high", "ws-urgent", "ws-normal2"]) == [
        "ws-urgent", "ws-high", "ws-normal", "ws-normal2", "ws-low"]


class _Recorded:
    """The store, with the name of each public method called, in order."""

    def __init__(self, store: Any) -> None:
        self._store = store
        self.calls: list[str] = []

    def __getattr__(self, name: str) -> Any:
        value = getattr(self._store, name)
        if name.startswith("_") or not callable(value):
            return value

        def recorded(*args: Any, **kwargs: Any) -> Any:
            self.calls.append(name)
            return value(*args, **kwargs)
        return recorded


@pytest.mark.memory_store
def test_first_pass_claims_after_one_pause_read_and_reads_owned_ones_after(env: Env) -> None:
    """Slot refill: at start the pause flag is read once, before any claim; the owned
    worksets are read after the claims, since no lease can be judged dead at a first look."""
    env.upload("ws-first")
    env.monitor().intake.scan()
    store = _Recorded(env.store)
    env.monitor(store=store, executor=NoOpStaging()).run(once=True)  # type: ignore[arg-type]
    assert env.state("ws-first") == S.COMPLETE
    before = store.calls[:store.calls.index("claim")]
    assert before.count("control") == 1 and "owned" not in before, before
    assert "owned" in store.calls


class _ReadTogether(_Recorded):
    """The store, whose pause flag is answered only once the ready queue is being read
    (``waited_out`` if that never came within a few seconds), with each ready read's page
    size."""

    def __init__(self, store: Any) -> None:
        super().__init__(store)
        self.reading = threading.Event()
        self.waited_out = False
        self.page_sizes: list[int] = []

    def control(self) -> Any:
        self.calls.append("control")
        self.waited_out = self.waited_out or not self.reading.wait(5.0)
        return self._store.control()

    def ready_pages(self, page_size: int) -> Any:
        self.calls.append("ready_pages")
        self.page_sizes.append(page_size)
        self.reading.set()
        return self._store.ready_pages(page_size)


@pytest.mark.memory_store
def test_start_reads_the_queue_alongside_the_pause_flag_and_claims_from_that_read(
        env: Env) -> None:
    """Makespan: at start the ready queue (as many as there are free slots: claims are
    spread only once contended) is read while the pause flag is, and the first fill claims
    from that read; the cluster is published only after every start-up check, by the first
    pass's heartbeat after its claims (they wait for no put), without reading the other
    clusters again."""
    env.upload("ws-first")
    env.monitor().intake.scan()
    store = _ReadTogether(env.store)
    env.monitor(store=store, executor=NoOpStaging(),  # type: ignore[arg-type]
                max_concurrent=2).run(once=True)
    assert env.state("ws-first") == S.COMPLETE
    assert not store.waited_out
    calls = store.calls
    before = calls[:calls.index("claim")]
    assert (before.count("ready_pages"), store.page_sizes[0]) == (1, 2), before
    assert "put_cluster" not in before, before
    put = calls.index("put_cluster")
    assert put > max(calls.index("control"), calls.index("clusters")), calls
    assert calls[:put].count("clusters") == calls[:put + 2].count("clusters") == 1, calls


@pytest.mark.memory_store
def test_first_fill_reads_past_a_blocked_head_to_fill_every_slot(env: Env) -> None:
    """The start-up's read holds only as many worksets as there are free slots: when one of
    them may not run yet (its dependency has not completed), the first fill reads on and
    still fills every slot before the pass goes on to its housekeeping."""
    env.upload("ws-child", after=["ws-parent"], priority="urgent")
    env.upload("ws-parent")
    env.upload("ws-other")
    env.monitor().intake.scan()
    store = _ReadTogether(env.store)
    env.monitor(store=store, executor=NoOpStaging(),  # type: ignore[arg-type]
                max_concurrent=2).run(once=True)
    assert {env.state(w) for w in ("ws-child", "ws-parent", "ws-other")} == {S.COMPLETE}
    first_pass = store.calls[:store.calls.index("owned")]
    assert first_pass.count("claim") == 2, first_pass


class _HeldLogs:
    """S3 whose step log copies wait until ``release`` is set; every other call goes
    through."""

    def __init__(self, s3: Any) -> None:
        self._s3 = s3
        self.release = threading.Event()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._s3, name)

    def put_bytes(self, bucket: str, key: str, data: bytes) -> None:
        if "/logs/" in key:
            self.release.wait(HANG_GUARD_SECONDS)
        self._s3.put_bytes(bucket, key, data)


@pytest.mark.memory_store
def test_log_copies_delay_no_step_nor_the_final_write_and_all_land(env: Env) -> None:
    """Slot refill: a step's log is copied to S3 while the next step runs; the run waits for
    its copies before it ends, so every log is in S3 once the monitor is done."""
    env.upload("ws-logs")
    env.monitor().intake.scan()
    s3 = _HeldLogs(env.s3)
    mon = env.monitor(s3=s3, executor=NoOpStaging())  # type: ignore[arg-type]
    serving = threading.Thread(target=mon.run, kwargs={"once": True}, daemon=True)
    serving.start()
    try:
        env.wait_for(lambda: env.state("ws-logs") == S.COMPLETE, timeout=30)
        assert serving.is_alive(), "the run ended before its logs were copied"
    finally:
        s3.release.set()
        serving.join(HANG_GUARD_SECONDS)
    prefix = f"{env.prefix}ws-logs/logs/"
    assert sorted(k for k, _ in env.s3.keys(env.bucket, prefix)) == [
        prefix + name for name in ("export.a1.log", "run.a1.log", "stage.a1.log")]


@pytest.mark.memory_store
def test_free_slot_is_refilled_without_waiting_for_the_batch(env: Env, tmp_path: Path) -> None:
    """With an hour's poll, only the finish-wakeup can refill a slot; the first workset is
    held running until the three others have finished through the second slot."""
    gate = tmp_path / "gate"
    env.settings.workset.pipelines["gated"] = fake(0.0, 0, f"--gate {gate}")
    env.upload("ws-long", pipeline="gated", priority="urgent")
    shorts = [f"ws-short{i}" for i in range(3)]
    for wid in shorts:
        env.upload(wid, pipeline="short")
    mon = env.monitor(executor=NoOpStaging(), max_concurrent=2, poll_seconds=3600.0)
    thread = threading.Thread(target=mon.run, kwargs={"once": True}, daemon=True)
    thread.start()
    try:
        env.wait_for(lambda: all(env.state(w) == S.COMPLETE for w in shorts))
        # ws-long still runs, held by its gate (the item may show stage until its next write)
        long = env.store.require("ws-long")
        assert long.state in (S.LOCKED, S.IN_PROGRESS) and long.owner
    finally:
        gate.touch()
        thread.join(HANG_GUARD_SECONDS)
        if thread.is_alive():
            mon.request_stop()
            thread.join(HANG_GUARD_SECONDS)
    assert env.state("ws-long") == S.COMPLETE
    done = sorted((env.store.require(w) for w in shorts), key=lambda r: r.updated_at)
    for prev, nxt in itertools.pairwise(done):  # one slot, handed on from each to the next
        assert _claimed_at(nxt) >= prev.updated_at


def test_a_busy_monitor_reads_aged_worksets_once_per_sixtieth_of_the_ageing_time(
        env: Env) -> None:
    """Promotion needs an hour's wait by default: reading each priority level for aged
    worksets on every reap (5 s) is three index reads that find nothing, per monitor."""
    for i in range(4):
        env.upload(f"ws-a{i}", pipeline="short")
    aged_reads: list[str] = []

    def seen(params: dict[str, Any], **_: Any) -> None:
        if "BETWEEN" in params.get("KeyConditionExpression", ""):
            aged_reads.append(params["ExpressionAttributeValues"][":lo"]["S"])

    env.store.client.meta.events.register("before-parameter-build.dynamodb.Query", seen)
    mon = env.monitor(executor=NoOpStaging(), max_concurrent=1, reap_seconds=0.01,
                      poll_seconds=0.01)
    assert mon.run(once=True) == 0
    assert all(env.state(f"ws-a{i}") == S.COMPLETE for i in range(4))
    assert sorted(aged_reads) == ["1#", "2#", "3#"], aged_reads


@pytest.mark.memory_store
def test_bad_input_never_stops_the_daemon(env: Env) -> None:
    env.upload("ws-good1")
    env.put("ws-garbage", "daylily_work.yaml", "samples: [unclosed\n  - : :")
    env.put("ws-nofastq", "daylily_work.yaml", yaml.safe_dump(
        {"samples": [{"sample_id": "S1", "fastq_r1": "sample_data/missing.fq"}],
         "reference_genome": "hg38"}))
    env.put("ws-shell", "daylily_work.yaml", yaml.safe_dump(
        {"dy-r": "produce_snv; rm -rf /", "reference_genome": "hg38"}))
    env.put("ws-shell", "stage_samples.tsv", "SAMPLE_ID\tR1_FQ\nS1\tx.fq\n")
    env.put("ws-shell", "daylily.ready", "")
    env.put("bad name!", "daylily_work.yaml", "samples: []")
    env.put("ws-badref", "daylily_work.yaml", yaml.safe_dump(
        {"samples": [{"sample_id": "S1", "fastq_r1": "a.fq"}], "reference_genome": "hg99"}))
    env.upload("ws-good2")
    env.monitor(executor=NoOpStaging()).run(once=True)
    assert env.state("ws-good1") == env.state("ws-good2") == S.COMPLETE
    garbage = env.store.require("ws-garbage")
    assert garbage.state == S.FAILED and garbage.error_category == "data"
    assert "not valid YAML at line" in (garbage.error or "")
    nofastq = env.store.require("ws-nofastq")
    assert nofastq.error_category == "data" and "missing.fq does not exist" in nofastq.error
    shell = env.store.require("ws-shell")
    assert shell.state == S.FAILED and "shell operator ';'" in (shell.error or "")
    badref = env.store.require("ws-badref")
    assert badref.error_category == "configuration" and "hg99" in (badref.error or "")
    assert env.store.get("bad name!") is None


@pytest.mark.memory_store
def test_daylily_gate_files(env: Env) -> None:
    tsv = "SAMPLE_ID\tR1_FQ\tR2_FQ\nS1\tsample_data/S1_R1.fastq\t\n"
    for wid in ("ws-notready", "ws-ignored"):
        env.upload(wid)
        env.put(wid, "daylily_work.yaml", "dy-r: produce_multiqc -j 1\n")
        env.put(wid, "stage_samples.tsv", tsv)
    env.put("ws-ignored", "daylily.ready", "")
    env.put("ws-ignored", "daylily.ignore", "")
    mon = env.monitor()
    mon.intake.scan()
    assert env.store.get("ws-notready") is None and env.store.get("ws-ignored") is None
    env.put("ws-notready", "daylily.ready", "")
    mon.run(once=True)
    rec = env.store.require("ws-notready")
    assert (rec.state, rec.format) == (S.COMPLETE, "daylily")
    assert env.store.get("ws-ignored") is None
    # state mirrored back as Daylily's sentinel files, only the current one kept
    files = env.s3.files(env.bucket, f"{env.prefix}ws-notready/")
    assert "daylily.complete" in files
    assert not files & {"daylily.lock", "daylily.in_progress", "daylily.error"}


@pytest.mark.memory_store
def test_pause_stops_claiming_and_resume_restarts(env: Env) -> None:
    env.upload("ws-paused")
    env.store.set_paused(True, actor="op")
    env.monitor().run(once=True)
    assert env.state("ws-paused") == S.READY
    env.store.set_paused(False, actor="op")
    env.monitor().run(once=True)
    assert env.state("ws-paused") == S.COMPLETE


@pytest.mark.memory_store
def test_dependencies_wait_and_unknown_ones_fail(env: Env) -> None:
    env.upload("ws-second", after=["ws-first"], priority="urgent")
    env.upload("ws-first", pipeline="short", priority="low")
    env.upload("ws-orphan", after=["ws-nobody"])
    env.monitor(executor=NoOpStaging(), max_concurrent=3).run(once=True)
    first, second = env.store.require("ws-first"), env.store.require("ws-second")
    assert first.state == second.state == S.COMPLETE
    # history times are to the millisecond: a claim right after the completing write can
    # share its stamp, never precede it
    assert _claimed_at(second) >= first.updated_at
    assert [h["to"] for h in second.history].count(S.LOCKED) == 1  # never claimed early
    orphan = env.store.require("ws-orphan")
    assert orphan.state == S.FAILED and "ws-nobody" in (orphan.error or "")


@pytest.mark.memory_store
def test_step_failure_is_classified_and_retried_then_failed(env: Env) -> None:
    env.upload("ws-exit3", pipeline="exit3", max_retries=3)
    env.upload("ws-data", pipeline="bad-fastq")
    with env.running():
        env.wait_for(lambda: env.state("ws-exit3") == S.FAILED
                     and env.state("ws-data") == S.FAILED)
    exit3 = env.store.require("ws-exit3")
    assert exit3.attempt == 2 and exit3.error_rule == "unmatched"
    assert [h["to"] for h in exit3.history].count(S.RETRYING) == 1
    assert exit3.steps_done == ["stage"]  # the retry resumed at run, stage not repeated
    data = env.store.require("ws-data")
    assert (data.error_category, data.error_rule, data.attempt) == ("data", "bad-fastq", 1)


def _sleepy_steps(env: Env) -> list[str]:
    """Command lines of this test's 30 s steps still alive (other tests' are not ours)."""
    mine = f"--out {env.settings.monitor.workdir}"
    found = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            args = cmdline.read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:  # exited while we looked
            continue
        if mine in args and "--sleep 30" in args:
            found.append(args)
    return found


@pytest.mark.memory_store
def test_operator_cancel_stops_the_running_step(env: Env) -> None:
    env.upload("ws-cancel", pipeline="sleepy")
    with env.running(heartbeat_seconds=0.2, lease_seconds=2.0) as mon:
        env.wait_for(lambda: env.at("ws-cancel", S.IN_PROGRESS, "run"))
        env.wait_for(lambda: bool(_sleepy_steps(env)))
        env.store.edit("ws-cancel", lambda r: (S.CANCELLED, {}), actor="op", reason="stop")
        env.wait_for(lambda: not mon._snapshot())
    rec = env.store.require("ws-cancel")
    assert rec.state == S.CANCELLED and rec.history[-1]["actor"] == "op"
    assert _sleepy_steps(env) == []


def _monitor_process(env: Env, tmp: Path, monitor_id: str) -> subprocess.Popen[bytes]:
    s = env.settings
    env_vars = {**os.environ, "PYTHONPATH": str(ROOT),
                "AWS_ENDPOINT_URL": s.aws.endpoint_url or "", "AWS_REGION": "us-west-2",
                "DAYLILY_STATE__TABLE": s.state.table, "DAYLILY_STORAGE__BUCKET": env.bucket,
                "DAYLILY_MONITOR__WORKDIR": s.monitor.workdir,
                "DAYLILY_MONITOR__MONITOR_ID": monitor_id,
                "DAYLILY_MONITOR__LEASE_SECONDS": "2", "DAYLILY_MONITOR__HEARTBEAT_SECONDS": "0.5",
                "DAYLILY_MONITOR__POLL_SECONDS": "0.1",
                "DAYLILY_WORKSET__PIPELINES": yaml.safe_dump(s.workset.pipelines)}
    return subprocess.Popen([sys.executable, "-m", "daylib.cli", "monitor"], env=env_vars,
                            stdout=subprocess.DEVNULL, stderr=open(tmp / f"{monitor_id}.log",
                                                                   "wb"))


def test_kill_9_mid_run_is_taken_over_and_finished(env: Env, tmp_path: Path) -> None:
    env.upload("ws-crash", pipeline="counted")
    proc = _monitor_process(env, tmp_path, "doomed")
    try:
        env.wait_for(lambda: env.at("ws-crash", S.IN_PROGRESS, "run"))
        time.sleep(0.5)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    finally:
        if proc.poll() is None:
            proc.kill()
    assert env.store.require("ws-crash").owner == "doomed"
    with env.running(lease_seconds=2.0, heartbeat_seconds=0.5):
        env.wait_for(lambda: env.state("ws-crash") == S.COMPLETE)
    rec = env.store.require("ws-crash")
    assert rec.lease_token == 2 and rec.steps_done == ["stage", "run", "export"]
    assert any("lease of doomed expired" in h["reason"] for h in rec.history)
    # the orphaned run step was adopted, not started a second time
    assert len((tmp_path / "runs.txt").read_text().splitlines()) == 1


def test_sigterm_hands_back_and_exits_zero(env: Env, tmp_path: Path) -> None:
    env.upload("ws-term", pipeline="sleepy")
    proc = _monitor_process(env, tmp_path, "graceful")
    try:
        env.wait_for(lambda: env.at("ws-term", S.IN_PROGRESS, "run"))
        proc.send_signal(signal.SIGTERM)
        time.sleep(0.3)
        proc.send_signal(signal.SIGTERM)  # second signal: cold, hand back now
        assert proc.wait(30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
    rec = env.store.require("ws-term")
    assert (rec.state, rec.owner, rec.step, rec.steps_done) == (S.READY, None, "run", ["stage"])
    assert "handed back" in rec.history[-1]["reason"]
