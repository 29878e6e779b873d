"""Throttling and 5xx from AWS: a seeded share of the DynamoDB, S3 and SNS calls two monitors
make is answered with ThrottlingException / SlowDown / 5xx before it leaves botocore (a
``before-send`` handler, so botocore's own retries see a real error response). Every workset
must still complete exactly once (its pipeline ran once) and every event still arrives."""

from __future__ import annotations

import json
import random
import threading
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from botocore.awsrequest import AWSResponse
from botocore.retries import standard

from daylib import states as S
from daylib.aws import AwsClients
from daylib.s3 import S3Objects
from tests.support.deployment import Env, fake
from tests.support.executors import NoOpStaging

N_WORKSETS = 12
SHARE = 0.25


class _Raw:
    def __init__(self, data: bytes) -> None:
        self.data = data

    def stream(self, **_: Any) -> Any:
        yield self.data


class Faults:
    """Answers a seeded share of a client's calls with an error response botocore retries."""

    def __init__(self, seed: int, share: float) -> None:
        self.rng = random.Random(seed)
        self.share = share
        self.lock = threading.Lock()
        self.injected: Counter[str] = Counter()
        self.calls: Counter[str] = Counter()

    def attach(self, client: Any) -> None:
        service = client.meta.service_model.service_name
        client.meta.events.register(f"before-send.{service}.*",
                                    lambda request, **kw: self._maybe(service, request))

    def _maybe(self, service: str, request: Any) -> AWSResponse | None:
        with self.lock:
            self.calls[service] += 1
            if self.rng.random() >= self.share:
                return None
            server_error = self.rng.random() < 0.3
            self.injected[f"{service}:{'5xx' if server_error else 'throttle'}"] += 1
        if service == "s3":
            code, status = ("InternalError", 500) if server_error else ("SlowDown", 503)
            body = f"<Error><Code>{code}</Code><Message>injected</Message></Error>".encode()
            return AWSResponse(request.url, status, {}, _Raw(body))
        if service == "dynamodb":
            kind = "InternalServerError" if server_error else "ThrottlingException"
            body = json.dumps({"__type": f"com.amazonaws.dynamodb.v20120810#{kind}",
                               "message": "injected"}).encode()
            return AWSResponse(request.url, 500 if server_error else 400,
                               {"x-amzn-ErrorType": kind}, _Raw(body))
        code = "InternalError" if server_error else "Throttling"
        body = (f"<ErrorResponse><Error><Type>{'Receiver' if server_error else 'Sender'}"
                f"</Type><Code>{code}</Code><Message>injected</Message></Error>"
                f"</ErrorResponse>").encode()
        return AWSResponse(request.url, 500 if server_error else 400, {}, _Raw(body))


@pytest.fixture
def no_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    """botocore's standard retries without their sleeps and retry quota (a fast test)."""
    monkeypatch.setattr(standard.ExponentialBackoff, "delay_amount", lambda self, ctx: 0.0)
    monkeypatch.setattr(standard.RetryQuotaChecker, "acquire_retry_quota",
                        lambda self, ctx: True)


def test_every_workset_completes_exactly_once_under_throttling(
        env: Env, no_backoff: None) -> None:
    env.settings.workset.pipelines["counted-each"] = fake(
        0.2, 0, "--marker {workdir}/runs.txt")
    wiring = env.wire()
    for i in range(N_WORKSETS):
        env.upload(f"ws-t{i:02d}", pipeline="counted-each")
    faults = []
    monitors = []
    for n in range(2):
        s = env.settings.model_copy(deep=True)
        s.aws.max_attempts = 10  # 0.25**10: a call fails for good about once in a million
        clients = AwsClients(s.aws)
        f = Faults(seed=1000 + n, share=SHARE)
        for service in ("dynamodb", "s3", "sns"):
            f.attach(clients.client(service))
        faults.append(f)
        store, outbox = env.events(clients)
        monitors.append(env.monitor(executor=NoOpStaging(), store=store, outbox=outbox,
                                    s3=S3Objects(clients.client("s3")), monitor_id=f"m{n}",
                                    max_concurrent=4))
    threads = [threading.Thread(target=m.run, daemon=True) for m in monitors]
    for t in threads:
        t.start()
    ids = [f"ws-t{i:02d}" for i in range(N_WORKSETS)]
    try:
        env.wait_for(lambda: all(env.state(w) == S.COMPLETE for w in ids))
    finally:
        for m in monitors:
            m.request_stop()
        for t in threads:
            t.join(60)

    injected = sum((f.injected for f in faults), Counter())
    assert {k.split(":")[0] for k in injected} == {"dynamodb", "s3", "sns"}, injected
    assert sum(injected.values()) > 50
    work = Path(env.settings.monitor.workdir)
    for wid in ids:
        rec = env.store.require(wid)
        runs = (work / wid / "runs.txt").read_text().splitlines()
        assert len(runs) == 1, (wid, runs)  # the pipeline ran exactly once
        assert [h["to"] for h in rec.history].count(S.COMPLETE) == 1
        assert rec.attempt == 1 and rec.steps_done == ["stage", "run", "export"]
    msgs = wiring.inbox.take()
    for wid in ids:
        seen = {(m["seq"], m["event"]) for m in msgs if m["workset_id"] == wid}
        assert seen == {(1, "registered"), (2, "started"), (3, "step"), (4, "step"),
                        (5, "completed")}, wid  # at least once (dedupe on seq)
        first = []
        for m in msgs:
            if m["workset_id"] == wid and m["seq"] not in first:
                first.append(m["seq"])
        assert first == [1, 2, 3, 4, 5], (wid, first)  # in order
