"""The CLI's lazily built context looks each AWS resource up once per process."""

from __future__ import annotations

from typing import Any

import pytest

from daylib import wiring
from daylib.cli import Context
from daylib.config import Settings


class _Queue:
    """Stands in for a found dead-letter queue: only its identity matters here."""


@pytest.mark.parametrize("first", ["notifier", "dlq"])
def test_dead_letter_queue_is_looked_up_once(monkeypatch: pytest.MonkeyPatch, first: str) -> None:
    lookups: list[_Queue] = []

    def dlq_for(settings: Settings, clients: Any) -> Any:
        lookups.append(_Queue())
        return lookups[-1]

    monkeypatch.setattr(wiring, "dlq_for", dlq_for)
    s = Settings()
    s.notify.enabled, s.dlq.enabled = False, True
    ctx = Context(settings=s, as_json=False)
    if first == "notifier":
        outbox = ctx.notifier
        dlq = ctx.dlq
    else:
        dlq = ctx.dlq
        outbox = ctx.notifier
    assert outbox is not None and outbox.dlq is dlq
    assert len(lookups) == 1, "the outbox and the DLQ looked the queue up separately"
