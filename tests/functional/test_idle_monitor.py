"""An idle monitor on moto: it slows down while there is nothing to do, reads the ready queue
once per pass (not twice when it is empty), and still claims new work when told of it."""

from __future__ import annotations

from collections import Counter
from typing import Any

from daylib import states as S
from tests.support.deployment import Env


class Reads:
    """Control reads and ready-queue queries made through the store's client."""

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


def test_idle_monitor_slows_down_reads_ready_once_and_still_claims(env: Env) -> None:
    reads = Reads(env.store.client)
    with env.running(idle_max_seconds=1.6) as mon:
        env.wait_for(lambda: mon.pacer.interval == 1.6)
        passes = reads.counts["control"]
        env.wait_for(lambda: reads.counts["control"] >= passes + 3)
        # one ready query per pass (and per wake), where an empty queue was read twice
        assert reads.counts["ready"] <= reads.counts["control"] + 2, reads.counts
        env.upload("ws-idle", pipeline="germline")
        env.wait_for(lambda: env.state("ws-idle") == S.COMPLETE)
    assert mon.stats.claimed == 1
