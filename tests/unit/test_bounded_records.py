"""Issue 9 items 6 and 7 as pure logic (in-memory store): failure messages clipped with a
count of the rest; the outbox capped while publishing fails, the dropped events counted."""

from __future__ import annotations

from typing import Any

from daylib import states as S
from daylib.bounds import clip
from daylib.errors import AwsUnavailable
from daylib.outbox import Outbox
from daylib.store.memory import MemoryStore


class _DownTopic:
    """An SNS topic that is down: every publish fails."""

    def publish(self, body: dict[str, Any]) -> None:
        raise AwsUnavailable("Publish: connection refused")


def test_a_long_message_is_clipped_with_a_count_of_the_rest() -> None:
    text = "x" * 10_000
    out = clip(text, 4096)
    assert out.startswith("x" * 4096) and "5904 more characters" in out
    assert clip("short", 4096) == "short"


def test_the_outbox_stays_capped_while_publishing_fails() -> None:
    outbox = Outbox(topic=_DownTopic(), dlq=None, max_pending=5)  # type: ignore[arg-type]
    store = MemoryStore(max_pending=5)
    first = store.register("ws-chatty", actor="test", events=(("registered", "by test"),))
    assert first is not None
    outbox.written(first)
    for _ in range(10):  # 20 transitions, each with its event, none published
        outbox.written(store.edit("ws-chatty", lambda r: (S.CANCELLED, {}), actor="op",
                                  reason="stop", events=(("cancelled", "cancelled by op"),)))
        outbox.written(store.edit("ws-chatty", lambda r: (S.READY, {}), actor="op",
                                  reason="again", events=(("retrying", "retried by op"),)))
    rec = store.require("ws-chatty")
    seqs = sorted(e["seq"] for e in (rec.outbox or {}).values())
    assert len(seqs) == 5 and seqs == list(range(rec.event_seq - 4, rec.event_seq + 1))
    assert rec.events_dropped == rec.event_seq - 5
