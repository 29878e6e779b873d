"""Intake on moto (issue 10): one folder never stops, stalls or slows the others; Daylily
folders as its UI writes them; discovery with one listing; S3 events through SQS."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import yaml

from daylib import states as S
from daylib.intake import ScanReport
from daylib.intake_events import IntakeQueue, ensure_intake
from daylib.monitor import Monitor
from daylib.wiring import monitor_for
from tests.support.deployment import FASTQ, HANG_GUARD_SECONDS, Env
from tests.support.executors import NoOpStaging

# The env fixture's store is in memory: these tests are about the monitor, not DynamoDB.
pytestmark = pytest.mark.memory_store

DAYLILY = Path(__file__).resolve().parents[1] / "data" / "daylily" / "ws-daylily-example"


@contextmanager
def _running(mon: Monitor) -> Iterator[Monitor]:
    thread = threading.Thread(target=mon.run, daemon=True)
    thread.start()
    try:
        yield mon
    finally:
        mon.request_stop()
        thread.join(30)


def _count(env: Env, operation: str) -> list[int]:
    calls = [0]

    def hook(**_: Any) -> None:
        calls[0] += 1

    env.s3.client.meta.events.register(f"before-call.s3.{operation}", hook)
    return calls


def test_long_integer_does_not_stop_the_daemon(env: Env) -> None:
    env.put("aaa-poison", "daylily_work.yaml", "reference_genome: hg38\nmax_retries: "
            + "9" * 5000 + "\nsamples: []\n")
    env.upload("zzz-good")
    with env.running(executor=NoOpStaging()) as mon:
        env.wait_for(lambda: env.at("zzz-good", S.COMPLETE))
        env.wait_for(lambda: env.at("aaa-poison", S.FAILED))
        assert not mon._stopping.is_set()
    rec = env.store.require("aaa-poison")
    assert rec.error_category == "data" and "daylily_work.yaml" in (rec.error or "")


def test_empty_yaml_and_oversized_spec_do_not_block_later_folders(env: Env) -> None:
    env.settings.limits.max_samples = 20000
    env.settings.limits.max_tsv_bytes = 4 << 20
    env.put("aaa-empty", "daylily_work.yaml", b"")
    lanes = "".join(f"S{i % 50}\tsample_data/very/long/path/to/lane_{i:05d}_R1.fastq.gz\t"
                    f"sample_data/very/long/path/to/lane_{i:05d}_R2.fastq.gz\n"
                    for i in range(3000))
    env.put("aab-huge", "daylily_work.yaml", "dy-r: produce_snv\n")
    env.put("aab-huge", "stage_samples.tsv", "SAMPLE_ID\tR1_FQ\tR2_FQ\n" + lanes)
    env.put("aab-huge", "daylily.ready", "")
    env.upload("zzz-good")
    report = env.monitor().intake.scan()
    assert sorted(report.registered) == ["aaa-empty", "aab-huge", "zzz-good"]
    empty = env.store.require("aaa-empty")
    assert empty.intake_error and "must be a YAML mapping" in empty.intake_error
    huge = env.store.require("aab-huge")
    assert huge.intake_error and "split it into worksets of at most" in huge.intake_error
    assert huge.format == "daylily" and len(huge.intake_error) < 2100


def test_any_exception_reading_a_folder_is_that_workset_failing(env: Env) -> None:
    env.upload("aaa-broken")
    env.upload("zzz-good")
    mon = env.monitor(executor=NoOpStaging())
    real = mon.intake.s3.read_bytes

    def flaky(bucket: str, key: str, limit: int) -> bytes | None:
        if "aaa-broken" in key:
            raise RuntimeError("disk on fire")
        return real(bucket, key, limit)

    mon.intake.s3.read_bytes = flaky  # type: ignore[method-assign]
    mon.run(once=True)
    broken = env.store.require("aaa-broken")
    assert (broken.state, broken.error_category) == (S.FAILED, "data")
    assert "RuntimeError: disk on fire" in (broken.error or "")
    assert env.state("zzz-good") == S.COMPLETE


def test_daylily_folder_missing_tsv_is_daylily_and_gets_error_sentinel(env: Env) -> None:
    env.put("ws-notsv", "daylily_work.yaml", "day-clone: -d x\ndy-r: produce_snv\n")
    env.put("ws-notsv", "daylily.ready", "")
    env.monitor().run(once=True)
    rec = env.store.require("ws-notsv")
    assert (rec.state, rec.format) == (S.FAILED, "daylily")
    assert "stage_samples.tsv: is missing" in (rec.error or "")
    assert "daylily.error" in env.s3.files(env.bucket, f"{env.prefix}ws-notsv/")


def test_failed_dependency_is_configuration(env: Env) -> None:
    env.upload("ws-dep", pipeline="exit3", max_retries=0)
    env.monitor().run(once=True)
    assert env.state("ws-dep") == S.FAILED
    env.upload("ws-child", after=["ws-dep"])
    env.monitor().run(once=True)
    child = env.store.require("ws-child")
    assert (child.state, child.error_category) == (S.FAILED, "configuration")
    assert "'ws-dep' is failed" in (child.error or "")


def test_missing_fastqs_message_is_bounded(env: Env) -> None:
    doc = {"reference_genome": "hg38",
           "samples": [{"sample_id": f"S{i}", "fastq_r1": f"sample_data/S{i}_R1.fastq.gz"}
                       for i in range(1000)]}
    env.put("ws-thousand", "daylily_work.yaml", yaml.safe_dump(doc))
    env.monitor().run(once=True)
    rec = env.store.require("ws-thousand")
    assert rec.state == S.FAILED and rec.error_category == "data"
    assert len(rec.error or "") < 4000 and "more problem(s)" in (rec.error or "")


def test_daylily_example_runs_as_shipped(env: Env) -> None:
    env.settings.storage.allowed_buckets = [f"{env.bucket}-results"]
    env.s3.ensure_bucket(f"{env.bucket}-results", env.clients.region)
    wid = "ws-daylily-example"
    for path in sorted(DAYLILY.rglob("*")):
        if path.is_file():
            body = path.read_text().replace("s3://daylily-results/",
                                            f"s3://{env.bucket}-results/")
            env.put(wid, path.relative_to(DAYLILY).as_posix(), body)
    for name in ("HG002_L1", "HG002_L2", "HG003_L1"):
        for read in ("R1", "R2"):
            env.put(wid, f"sample_data/{name}_{read}.fastq", FASTQ)
    env.put(wid, "daylily.ready", "")
    env.settings.daylily.run_prefix = ("{python} -m tests.support.fakepipe --out {results_dir} "
                                       "--sleep 0 --exit 0 --")
    env.settings.daylily.clone_prefix = "true"
    env.monitor().run(once=True)
    rec = env.store.require(wid)
    assert (rec.state, rec.format) == (S.COMPLETE, "daylily"), rec.error
    assert rec.results_uri == f"s3://{env.bucket}-results/{wid}/"
    assert list(env.s3.keys(f"{env.bucket}-results", f"{wid}/"))


def test_discovery_lists_each_new_folder_once_and_remembers_waiting_folders(env: Env) -> None:
    for i in range(60):  # Daylily folders waiting for daylily.ready
        env.put(f"ws-wait{i:02d}", "daylily_work.yaml", "dy-r: produce_snv\n")
        env.put(f"ws-wait{i:02d}", "stage_samples.tsv", "SAMPLE_ID\tR1_FQ\nS1\ta.fq\n")
    intake = env.monitor().intake
    lists, gets = _count(env, "ListObjectsV2"), _count(env, "GetObject")
    report = intake.scan()
    assert len(report.waiting) == 60
    assert lists[0] == 1 + 60  # the names, then each folder's files
    assert report.list_requests == lists[0]
    lists[0] = gets[0] = 0
    report = intake.scan()
    assert report.waiting == []  # nothing changed: nothing read again
    assert (lists[0], gets[0]) == (report.list_requests, 0) == (1 + 60, 0)
    env.put("ws-wait07", "daylily.ready", "")
    assert intake.scan().registered == ["ws-wait07"]


def test_an_invalid_folder_name_is_warned_once_and_never_listed_inside(
        env: Env, caplog: pytest.LogCaptureFixture) -> None:
    env.upload("bad name!")
    env.upload("ws-good")
    intake = env.monitor().intake
    lists = _count(env, "ListObjectsV2")
    with caplog.at_level(logging.WARNING, logger="daylib.intake"):
        first, second = intake.scan(), intake.scan()
    assert (first.registered, first.skipped_invalid_names) == (["ws-good"], ["bad name!"])
    assert (second.registered, second.skipped_invalid_names) == ([], ["bad name!"])
    assert lists[0] == 1 + 1 + 1  # names, ws-good's files, names again
    assert ["not a valid workset id" in r.getMessage() for r in caplog.records] == [True]


def _fill(env: Env, folders: list[str], per_folder: int) -> None:
    """What a finished workset folder holds besides its spec: FASTQs, results/ and logs/."""
    keys = [(wid, name) for wid in folders for name in
            [f"sample_data/S{i}_R1.fastq" for i in range(per_folder // 3)]
            + [f"results/out{i}.vcf" for i in range(per_folder // 3)]
            + [f"logs/step{i}.log" for i in range(per_folder - 2 * (per_folder // 3))]]
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda k: env.put(k[0], k[1], b"x"), keys))


def test_reconciliation_lists_by_folders_not_by_the_objects_they_hold(env: Env) -> None:
    """Issue 11: a reconciliation over registered folders costs one delimited listing per
    1,000 folders, however many FASTQs, results and logs each holds; a monitor starting
    afresh asks the store about them, not S3."""
    folders = [f"ws-done{i:02d}" for i in range(20)]
    for wid in folders:
        env.upload(wid)
    assert sorted(env.monitor().intake.scan().registered) == folders
    intake = env.monitor().intake
    lists = _count(env, "ListObjectsV2")
    intake.scan()
    assert lists[0] == 1
    _fill(env, folders, 150)  # 3,000 objects: three pages if listed one by one
    lists[0] = 0
    full = intake.scan()
    assert (full.registered, full.waiting) == ([], [])
    assert lists[0] == 1
    assert full.list_requests == 1
    lists[0] = 0
    assert env.monitor().intake.scan().registered == []  # a fresh monitor: nothing in memory
    assert lists[0] == 1


def test_a_new_folder_beside_full_ones_costs_one_listing_of_its_own(env: Env) -> None:
    """Only the folders not registered are listed, each with one delimited listing (its
    results/ and logs/ are sub-folders, not pages)."""
    folders = [f"ws-done{i:02d}" for i in range(10)]
    for wid in folders:
        env.upload(wid)
    intake = env.monitor().intake
    intake.scan()
    _fill(env, folders, 150)
    env.upload("ws-new")
    _fill(env, ["ws-new"], 600)  # re-uploaded by hand with its old results and logs
    lists = _count(env, "ListObjectsV2")
    assert intake.scan().registered == ["ws-new"]
    assert lists[0] == 2


def test_staging_refuses_paths_outside_inputs(tmp_path: Path) -> None:
    manifest = tmp_path / "manifest.json"
    manifest.write_text(json.dumps({"samples": [
        {"sample_id": "..", "lanes": [{"r1": "s3://b/k/x.fq", "r2": None}]}]}))
    out = subprocess.run([sys.executable, "-m", "daylib.steps", "stage", "--manifest",
                          str(manifest), "--dest", str(tmp_path / "inputs")],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 65 and "would leave" in out.stderr


# ------------------------------------------------------------ S3 events through SQS

def _wire_events(env: Env) -> IntakeQueue:
    sqs = env.clients.client("sqs")
    url = ensure_intake(sqs, env.clients.client("s3"), env.bucket, env.prefix,
                        f"intake-{env.bucket}")
    return IntakeQueue(sqs, url, env.bucket, env.prefix, wait_seconds=1)


def test_events_register_without_listing(env: Env) -> None:
    queue = _wire_events(env)
    env.settings.intake.reconcile_seconds = 3600
    env.upload("ws-evt1")
    mon = monitor_for(env.settings, env.clients, store=env.store, s3=env.s3,
                      executor=NoOpStaging(), intake_queue=queue)
    lists = _count(env, "ListObjectsV2")
    with _running(mon):
        env.wait_for(lambda: env.at("ws-evt1", S.COMPLETE))
        at_start = lists[0]
        env.upload("ws-evt a+b")  # not a valid id: refused, message still consumed
        env.upload("ws-evt2")
        env.wait_for(lambda: env.at("ws-evt2", S.COMPLETE))
        assert lists[0] - at_start <= 2  # one folder LIST per event folder, no prefix scans
    time.sleep(0.2)
    left = queue.sqs.get_queue_attributes(QueueUrl=queue.queue_url, AttributeNames=[
        "ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"])["Attributes"]
    assert left == {"ApproximateNumberOfMessages": "0",
                    "ApproximateNumberOfMessagesNotVisible": "0"}


def test_gate_file_arriving_after_the_data_registers_the_folder(env: Env) -> None:
    queue = _wire_events(env)
    env.put("ws-gate", "sample_data/S1_R1.fastq", FASTQ)
    env.put("ws-gate", "stage_samples.tsv", "SAMPLE_ID\tR1_FQ\nS1\tsample_data/S1_R1.fastq\n")
    env.put("ws-gate", "daylily_work.yaml", "dy-r: produce_multiqc -j 1\n")
    intake = env.monitor().intake
    while queue.poll_once(intake.consider, wait_seconds=0):
        pass
    assert env.store.get("ws-gate") is None
    env.put("ws-gate", "daylily.ready", "")
    deadline = time.monotonic() + HANG_GUARD_SECONDS
    while env.store.get("ws-gate") is None and time.monotonic() < deadline:
        queue.poll_once(intake.consider, wait_seconds=1)
    assert env.state("ws-gate") == S.READY


def test_registration_that_cannot_be_stored_keeps_the_message(env: Env) -> None:
    queue = _wire_events(env)
    env.upload("ws-keep")
    outcomes = []

    def refuse(folder: str) -> str:
        outcomes.append(folder)
        return "refused"

    queue.poll_once(refuse, wait_seconds=1)
    assert "ws-keep" in outcomes
    attrs = queue.sqs.get_queue_attributes(QueueUrl=queue.queue_url, AttributeNames=[
        "ApproximateNumberOfMessagesNotVisible"])["Attributes"]
    assert int(attrs["ApproximateNumberOfMessagesNotVisible"]) >= 1


def test_a_wake_message_wakes_the_monitor_and_is_consumed(env: Env) -> None:
    """An operator's wake message (issue 11) names no folder: it wakes, nothing is handled
    or refused, and it leaves the queue."""
    queue = _wire_events(env)
    queue.wake("retry ws-x")
    woken: list[bool] = []
    handled: list[str] = []

    def handle(folder: str) -> str:
        handled.append(folder)
        return "registered"

    deadline = time.monotonic() + HANG_GUARD_SECONDS
    while not woken and time.monotonic() < deadline:
        queue.poll_once(handle, wait_seconds=1, wake=lambda: woken.append(True))
    assert woken == [True] and handled == []
    left = queue.sqs.get_queue_attributes(QueueUrl=queue.queue_url, AttributeNames=[
        "ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"])["Attributes"]
    assert left == {"ApproximateNumberOfMessages": "0",
                    "ApproximateNumberOfMessagesNotVisible": "0"}


def test_a_stalled_listing_does_not_block_claiming(env: Env) -> None:
    """The reconciliation listing runs in its own thread: while it hangs, registered work is
    still claimed and run."""
    mon = env.monitor(executor=NoOpStaging())
    release = threading.Event()
    entered = threading.Event()
    real = mon.intake.unregistered

    def stalled(report: ScanReport) -> list[str]:
        entered.set()
        release.wait(60)
        return real(report)

    mon.intake.unregistered = stalled  # type: ignore[method-assign]
    try:
        with _running(mon):
            assert entered.wait(30)
            env.upload("ws-direct")
            mon.intake.consider("ws-direct")  # what an S3 event would do
            env.wait_for(lambda: env.at("ws-direct", S.COMPLETE))
            assert not release.is_set()  # the listing was still hanging throughout
    finally:
        release.set()
