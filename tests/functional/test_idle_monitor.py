"""An idle monitor on moto: it slows down while there is nothing to do, each idle pass is one
read of the active index (no control read, no ready-queue query), and it still claims new
work when told of it."""

from __future__ import annotations

from collections import Counter
from typing import Any

from daylib import states as S
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
