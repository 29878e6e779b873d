"""Issue 9 items 1, 2, 3, 4, 6 and 7, each reproduced as it was seen (each failed on the code
before its fix).
Faults come from outside the product: the chaos suite's HTTP fault proxy, botocore
``before-send`` handlers on the test's own clients, and monitor processes whose clock is
shifted in-process (the system clock is not touched)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from botocore.awsrequest import AWSResponse
from botocore.retries import standard

from bench.chaos.proxy import FaultProxy, throttle_response
from daylib import states as S
from daylib.aws import AwsClients
from daylib.caps import Caps
from daylib.config import CapSettings
from daylib.emulator import MotoServer
from daylib.intake_events import ensure_intake
from daylib.store.dynamodb import DynamoStore
from tests.conftest import ROOT
from tests.support.deployment import Env, fake

SKEWED = ("import runpy, sys, time\n_real = time.time\n"
          "time.time = lambda: _real() + {skew}\n"
          "sys.argv = ['daylily-workset', 'monitor']\n"
          "runpy.run_module('daylib.cli', run_name='__main__')\n")


class _Raw:
    def __init__(self, data: bytes) -> None:
        self.data = data

    def stream(self, **_: Any) -> Iterator[bytes]:
        yield self.data


@pytest.fixture
def no_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    """botocore's standard retries without their sleeps and retry quota (a fast test)."""
    monkeypatch.setattr(standard.ExponentialBackoff, "delay_amount", lambda self, ctx: 0.0)
    monkeypatch.setattr(standard.RetryQuotaChecker, "acquire_retry_quota",
                        lambda self, ctx: True)


def _throttle_when(client: Any, op: str, pred: Callable[[bytes], bool]) -> list[int]:
    """Answer ``op`` calls whose body matches ``pred`` with the service's throttling error."""
    service = client.meta.service_model.service_name
    hits: list[int] = []

    def handler(request: Any, **_: Any) -> AWSResponse | None:
        body = request.body if isinstance(request.body, bytes) else (request.body or b"")
        if not pred(body if isinstance(body, bytes) else str(body).encode()):
            return None
        hits.append(1)
        status, headers, payload = throttle_response(service, service in ("dynamodb", "sqs"))
        return AWSResponse(request.url, status, headers, _Raw(payload))

    client.meta.events.register(f"before-send.{service}.{op}", handler)
    return hits


def _monitor_process(env: Env, tmp: Path, monitor_id: str, *, endpoint: str | None = None,
                     skew: float = 0.0,
                     extra: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    s = env.settings
    env_vars = {**os.environ, "PYTHONPATH": str(ROOT),
                "AWS_ENDPOINT_URL": endpoint or s.aws.endpoint_url or "",
                "AWS_REGION": "us-west-2",
                "DAYLILY_STATE__TABLE": s.state.table, "DAYLILY_STORAGE__BUCKET": env.bucket,
                "DAYLILY_MONITOR__WORKDIR": s.monitor.workdir,
                "DAYLILY_MONITOR__MONITOR_ID": monitor_id,
                "DAYLILY_MONITOR__LEASE_SECONDS": "2", "DAYLILY_MONITOR__HEARTBEAT_SECONDS": "0.5",
                "DAYLILY_MONITOR__POLL_SECONDS": "0.1", "DAYLILY_MONITOR__REAP_SECONDS": "0.2",
                "DAYLILY_WORKSET__PIPELINES": yaml.safe_dump(s.workset.pipelines), **(extra or {})}
    argv = [sys.executable, "-c", SKEWED.format(skew=skew)]
    return subprocess.Popen(argv, env=env_vars, stdout=subprocess.DEVNULL,
                            stderr=open(tmp / f"{monitor_id}.log", "wb"))


def _stop(*procs: subprocess.Popen[bytes]) -> None:
    for proc in procs:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
    for proc in procs:
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _runs(tmp: Path) -> int:
    marker = tmp / "runs.txt"
    return len(marker.read_text().splitlines()) if marker.exists() else 0


def test_endpoint_down_5s_the_daemon_rides_it_out(env: Env, moto_server: MotoServer,
                                                  tmp_path: Path) -> None:
    env.settings.workset.pipelines["counted-long"] = fake(6.0, 0, f"--marker {tmp_path}/runs.txt")
    env.upload("ws-outage", pipeline="counted-long")
    proxy = FaultProxy(moto_server.endpoint_url)
    proc = _monitor_process(env, tmp_path, "steady", endpoint=proxy.url,
                            extra={"DAYLILY_AWS__MAX_ATTEMPTS": "2"})
    try:
        env.wait_for(lambda: env.at("ws-outage", S.IN_PROGRESS, "run"))
        proxy.down()
        time.sleep(5.0)
        proxy.up()
        env.wait_for(lambda: env.state("ws-outage") == S.COMPLETE)
        time.sleep(2.0)  # a monitor that stopped serving exits once its running work is done
        assert proc.poll() is None, f"the monitor exited with {proc.returncode} after an outage"
    finally:
        _stop(proc)
        proxy.close()
    assert _runs(tmp_path) == 1


def test_claim_race_loser_cannot_free_the_winners_cap_slot(env: Env) -> None:
    cfg = CapSettings(global_max=1)
    for wid in ("ws-cap1", "ws-cap2"):
        env.store.register(wid, actor="test")
    winner, loser, third = (Caps(cfg, env.store, "local", m) for m in ("a", "b", "c"))
    assert winner.acquire("ws-cap1", None) is None
    env.store.claim("ws-cap1", "a", 30.0)  # a wins the claim and runs ws-cap1
    if loser.acquire("ws-cap1", None) is None:  # b raced for the same candidate ...
        loser.release("ws-cap1", None)  # ... lost the claim, and gives back what it took
    assert third.acquire("ws-cap2", None) is not None, \
        "a second workset got a slot while the cap of 1 is held by a running one"


def test_finished_step_never_runs_again_when_its_checkpoint_fails(
        env: Env, tmp_path: Path, no_backoff: None) -> None:
    env.upload("ws-ckpt", pipeline="counted")
    clients = AwsClients(env.settings.aws)
    ddb = clients.client("dynamodb")
    attempts = env.settings.aws.max_attempts + 1  # botocore's max_attempts counts retries
    hits = _throttle_when(ddb, "UpdateItem",
                          lambda body: b"run done" in body and len(hits) < attempts)
    store = DynamoStore(ddb, env.settings.state.table)
    env.monitor(store=store, lease_seconds=2.0, heartbeat_seconds=0.5).run(once=True)
    assert len(hits) == attempts  # the checkpoint after ``run`` failed past its retries
    assert env.state("ws-ckpt") == S.COMPLETE
    assert _runs(tmp_path) == 1, "the finished run step was executed again"


def test_monitor_60s_ahead_does_not_steal_a_live_lease(env: Env, tmp_path: Path) -> None:
    env.settings.workset.pipelines["counted-long"] = fake(20.0, 0,
                                                          f"--marker {tmp_path}/runs.txt")
    env.upload("ws-live", pipeline="counted-long")
    owner = _monitor_process(env, tmp_path, "owner")
    ahead = None
    try:
        env.wait_for(lambda: env.at("ws-live", S.IN_PROGRESS, "run"))
        ahead = _monitor_process(env, tmp_path, "ahead", skew=60.0)
        env.wait_for(lambda: env.state("ws-live") == S.COMPLETE)
    finally:
        _stop(owner, *([ahead] if ahead else []))
    rec = env.store.require("ws-live")
    assert not [h for h in rec.history if "taken over" in h.get("reason", "")], \
        "a live lease (heartbeating owner) was taken over"
    assert _runs(tmp_path) == 1


def test_monitor_60s_behind_takes_over_a_dead_monitor_promptly(env: Env,
                                                               tmp_path: Path) -> None:
    env.settings.workset.pipelines["counted-long"] = fake(3.0, 0, f"--marker {tmp_path}/runs.txt")
    env.upload("ws-orphan", pipeline="counted-long")
    doomed = _monitor_process(env, tmp_path, "doomed")
    behind = None
    try:
        env.wait_for(lambda: env.at("ws-orphan", S.IN_PROGRESS, "run"))
        doomed.kill()
        doomed.wait()
        behind = _monitor_process(env, tmp_path, "behind", skew=-60.0)
        # lease 2 s: a takeover is due within a few leases, not after the skew
        env.wait_for(lambda: env.state("ws-orphan") == S.COMPLETE, timeout=25)
    finally:
        _stop(*([behind] if behind else []))
    assert _runs(tmp_path) == 1


def test_failure_too_large_to_record_still_ends_failed(env: Env) -> None:
    long = "x" * 960
    samples = [{"sample_id": f"S{i}", "fastq_r1": f"sample_data/{long}-{i}_R1.fq",
                "fastq_r2": f"sample_data/{long}-{i}_R2.fq"} for i in range(110)]
    env.put("ws-huge", "daylily_work.yaml", yaml.safe_dump(
        {"samples": samples, "reference_genome": "hg38"}, width=4096))
    with env.running(lease_seconds=2.0, heartbeat_seconds=0.5):
        env.wait_for(lambda: env.state("ws-huge") == S.FAILED, timeout=45)
    rec = env.store.require("ws-huge")
    assert rec.error_category == "data" and len(rec.error or "") <= 8192


def test_outbox_stays_bounded_while_sns_is_down(env: Env, no_backoff: None) -> None:
    env.wire()
    clients = AwsClients(env.settings.aws)
    _throttle_when(clients.client("sns"), "Publish", lambda body: True)
    store, outbox = env.events(clients)
    first = store.register("ws-chatty", actor="test", events=(("registered", "by test"),))
    assert first is not None
    outbox.written(first)
    for _ in range(40):  # 80 transitions, each with its event, none published
        outbox.written(store.edit("ws-chatty", lambda r: (S.CANCELLED, {}), actor="op",
                                  reason="stop", events=(("cancelled", "cancelled by op"),)))
        outbox.written(store.edit("ws-chatty", lambda r: (S.READY, {}), actor="op",
                                  reason="again", events=(("retrying", "retried by op"),)))
    item = env.clients.client("dynamodb").get_item(
        TableName=env.settings.state.table, Key={"pk": {"S": "ws-chatty"}})["Item"]
    size = len(json.dumps(item))
    assert size < 16 * 1024, f"the workset item grew to {size} bytes with SNS down"


def test_monitor_started_during_an_outage_waits_it_out(env: Env, moto_server: MotoServer,
                                                        tmp_path: Path) -> None:
    """Issue 9 item 1, at start: only a signal or a configuration error ends the daemon."""
    env.upload("ws-late", pipeline="counted")
    proxy = FaultProxy(moto_server.endpoint_url)
    proxy.down()
    proc = _monitor_process(env, tmp_path, "early", endpoint=proxy.url,
                            extra={"DAYLILY_AWS__MAX_ATTEMPTS": "2"})
    log = tmp_path / "early.log"
    try:  # down until the monitor has been trying for a while (its start-up may be slow)
        env.wait_for(lambda: proc.poll() is not None or "serving cluster" in log.read_text(),
                     timeout=60)
        time.sleep(3.0)
        assert proc.poll() is None, f"the monitor exited with {proc.returncode} while AWS was down"
        proxy.up()
        env.wait_for(lambda: env.state("ws-late") == S.COMPLETE, timeout=60)
        assert proc.poll() is None
    finally:
        _stop(proc)
        proxy.close()
    assert _runs(tmp_path) == 1


def test_monitor_started_during_an_outage_brings_events_and_intake_up(
        env: Env, moto_server: MotoServer, tmp_path: Path) -> None:
    """Issue 9: the SNS topic, dead-letter queue and intake queue (looked up by name) that an
    outage at start hid are found once AWS answers, not left off for the process's life."""
    wiring = env.wire()
    sqs = env.clients.client("sqs")
    ensure_intake(sqs, env.clients.client("s3"), env.bucket, env.prefix, f"in-{env.bucket}")
    env.upload("ws-first", pipeline="counted")
    proxy = FaultProxy(moto_server.endpoint_url)
    proxy.down()
    proc = _monitor_process(env, tmp_path, "blind", endpoint=proxy.url, extra={
        "DAYLILY_AWS__MAX_ATTEMPTS": "2",
        "DAYLILY_NOTIFY__TOPIC_NAME": wiring.topic_arn.rsplit(":", 1)[1],
        "DAYLILY_DLQ__QUEUE_NAME": wiring.dlq.queue_url.rsplit("/", 1)[1],
        "DAYLILY_INTAKE__QUEUE_NAME": f"in-{env.bucket}", "DAYLILY_INTAKE__WAIT_SECONDS": "1",
        "DAYLILY_INTAKE__RECONCILE_SECONDS": "3600",
        "DAYLILY_MONITOR__DISCOVERY_SECONDS": "3600"})
    log = tmp_path / "blind.log"
    try:
        env.wait_for(lambda: proc.poll() is not None or "serving cluster" in log.read_text(),
                     timeout=60)
        time.sleep(2.0)
        proxy.up()
        env.wait_for(lambda: env.state("ws-first") == S.COMPLETE, timeout=60)
        env.upload("ws-evented")  # only the intake queue can find it (listing every hour)
        env.wait_for(lambda: env.state("ws-evented") == S.COMPLETE, timeout=60)
        env.upload("ws-unroutable", pipeline="not-configured")
        env.wait_for(lambda: env.state("ws-unroutable") == S.FAILED, timeout=60)
        env.wait_for(lambda: any(d.workset_id == "ws-unroutable"
                                 for d in wiring.dlq.letters()), timeout=30)
        events = [(e["workset_id"], e["event"]) for e in wiring.inbox.take()]
        assert ("ws-evented", "completed") in events, events
        assert proc.poll() is None
    finally:
        _stop(proc)
        proxy.close()
