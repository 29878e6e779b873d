"""An idle monitor on moto: it slows down while there is nothing to do, each idle pass is one
read of the active index (no control read, no ready-queue query), and it still claims new
work when told of it."""

from __future__ import annotations

import threading
from collections import Counter
from typing import Any

from daylib import states as S
from daylib import wiring
from daylib.executors.local import LocalExecutor
from daylib.intake_events import ensure_intake, intake_queue_for
from tests.conftest import run_cli
from tests.support.deployment import Env


class Reads:
    """Idle-pass scans, control reads and ready-queue queries made through the store's
    client."""

    def __init__(self, client: Any) -> None:
        self.counts: Counter[str] = Counter()
        client.meta.events.register("before-parameter-build.dynamodb.*", self._seen)

    def _seen(self, model: Any, params: dict[str, Any], **_: Any) -> None:
        if model.name == "GetItem" and params.get("Key", {}).get("pk", {}).get("S") == "#control":
            self.counts["control"] += 1
        values = params.get("ExpressionAttributeValues", {})
        if model.name == "Query" and values.get(":s", {}).get("S") == S.READY \
                and "Select" not in params:
            self.counts["ready"] += 1
        if model.name == "Scan" and params.get("IndexName") == "active-index":
            self.counts["scan"] += 1


def test_idle_passes_are_one_read_each_and_the_monitor_still_claims(env: Env) -> None:
    reads = Reads(env.store.client)
    with env.running(idle_max_seconds=1.6) as mon:
        env.wait_for(lambda: mon.pacer.interval == 1.6)
        before = Counter(reads.counts)
        env.wait_for(lambda: reads.counts["scan"] >= before["scan"] + 3)
        during = reads.counts - before
        assert during["control"] == during["ready"] == 0, (before, reads.counts)
        env.upload("ws-idle", pipeline="germline")
        env.wait_for(lambda: env.state("ws-idle") == S.COMPLETE)
    assert mon.stats.claimed == 1


def test_an_operator_retry_wakes_an_idle_monitor_through_the_intake_queue(env: Env) -> None:
    """The monitor long-polls the intake queue; ``retry`` sends it a wake message, so the
    workset is claimed at once, with no idle pass in between (its next one is 25 s away)."""
    sqs = env.clients.client("sqs")
    url = ensure_intake(sqs, env.clients.client("s3"), env.bucket, env.prefix,
                        f"intake-{env.settings.state.table}")
    env.settings.intake.queue_url = url
    env.upload("ws-wake", pipeline="exit3", max_retries=0)
    assert env.monitor().run(once=True) == 0
    assert env.state("ws-wake") == S.FAILED
    reads = Reads(env.store.client)
    s = env.settings.model_copy(deep=True)
    s.monitor.idle_max_seconds = 3600.0
    mon = wiring.monitor_for(s, env.clients, store=env.store, s3=env.s3,
                             executor=LocalExecutor(),
                             intake_queue=intake_queue_for(sqs, env.settings))
    thread = threading.Thread(target=mon.run, daemon=True)
    thread.start()
    try:
        env.wait_for(lambda: reads.counts["scan"] >= 3 and mon.pacer.interval > 25)
        before = Counter(reads.counts)
        res = run_cli("retry", "ws-wake", env={
            "AWS_ENDPOINT_URL": s.aws.endpoint_url or "", "AWS_REGION": s.aws.region or "",
            "DAYLILY_STATE__TABLE": s.state.table, "DAYLILY_STORAGE__BUCKET": env.bucket,
            "DAYLILY_STORAGE__PREFIX": env.prefix, "DAYLILY_INTAKE__QUEUE_URL": url})
        assert res.returncode == 0, res.stderr
        env.wait_for(lambda: mon.stats.claimed == 1)
        assert reads.counts["scan"] == before["scan"], (before, reads.counts)
    finally:
        mon.request_stop()
        thread.join(30)
