"""Issue 8: events flow one way (a write returns what it appended; the caller hands it to the
publisher; the store never calls the outbox and is never wired by mutation), and the stack is
built in one place (daylib/wiring.py), so no builder forgets a setting."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from daylib import states as S
from daylib import wiring
from daylib.aws import AwsClients
from daylib.config import Settings
from daylib.errors import AwsUnavailable
from daylib.executors.local import LocalExecutor
from daylib.monitor import Monitor
from daylib.outbox import Outbox
from daylib.store.items import CLAIM_KEY, outbox_key
from daylib.store.memory import MemoryStore

ROOT = Path(__file__).resolve().parents[2]


class _Topic:
    def __init__(self) -> None:
        self.seqs: list[int] = []
        self.down = False

    def publish(self, body: dict[str, Any]) -> None:
        if self.down:
            raise AwsUnavailable("Publish: connection refused")
        self.seqs.append(body["seq"])


def _sources(*folders: str) -> dict[str, str]:
    return {str(p.relative_to(ROOT)): p.read_text() for folder in folders
            for p in sorted((ROOT / folder).rglob("*.py"))}


def test_each_write_returns_the_events_it_appended() -> None:
    store = MemoryStore()
    rec = store.register("ws-1", actor="t", events=(("registered", "by t"),))
    assert rec is not None and rec.appended == (1,) and set(rec.outbox or {}) == {outbox_key(1)}
    claimed, lease = store.claim("ws-1", "m1", 30, events=(("started", "by m1"),))
    assert claimed.appended == (2,) and claimed.outbox[CLAIM_KEY]["seq"] == 2
    moved = store.transition(claimed, S.IN_PROGRESS, actor="m1", reason="stage done",
                             lease=lease, events=(("step", "stage done"),))
    assert moved.appended == (3,)
    assert store.require("ws-1").appended == ()  # a read appended nothing
    quiet = store.transition(moved, S.IN_PROGRESS, actor="m1", reason="", lease=lease)
    assert quiet.appended == ()


def test_the_publisher_gets_the_record_and_the_next_write_carries_the_ack() -> None:
    """Published entries are dropped by the workset's next write, not a separate ack."""
    topic, store = _Topic(), MemoryStore()
    box = Outbox(topic=topic, dlq=None, ack_delay_seconds=0.0)  # type: ignore[arg-type]
    rec = store.register("ws-2", actor="t", events=box.recorded((("registered", "t"),)))
    assert rec is not None
    box.written(rec)
    claimed, lease = store.claim("ws-2", "m1", 30, events=box.recorded((("started", "m1"),)),
                                 drop=box.delivered("ws-2"))
    box.written(claimed)
    assert topic.seqs == [1, 2] and set(claimed.outbox or {}) == {CLAIM_KEY}
    moved = store.transition(claimed, S.IN_PROGRESS, actor="m1", reason="stage done",
                             lease=lease, events=box.recorded((("step", "stage"),)),
                             drop=box.delivered("ws-2"))
    box.written(moved)
    assert topic.seqs == [1, 2, 3] and list(moved.outbox or {}) == [outbox_key(3)]
    assert box.delivered("ws-2") == {3: outbox_key(3)} and box.pending_work() == 0


def test_the_store_never_calls_the_outbox_and_is_not_wired_by_mutation() -> None:
    store = MemoryStore()
    box = Outbox(topic=_Topic(), dlq=None)  # type: ignore[arg-type]
    mon = Monitor(Settings(), store, None, LocalExecutor(), notifier=box)  # type: ignore[arg-type]
    assert mon.outbox is box and not hasattr(store, "outbox")
    store_code = _sources("daylib/store")
    assert [p for p, text in store_code.items() if "daylib.outbox" in text] == []
    offenders = [p for p, text in _sources("daylib", "bench", "tests").items()
                 if re.search(r"store\.outbox\s*=[^=]", text)]
    assert offenders == []


def test_stacks_are_built_in_one_place() -> None:
    """The demo's store once omitted the history limits: every builder goes through
    daylib/wiring.py, which passes them (and the outbox limits) from the settings."""
    settings = Settings()
    settings.state.history_keep_first, settings.state.history_keep_last = 3, 7
    settings.notify.stale_seconds, settings.notify.max_pending = 9.0, 4
    store = wiring.store_for(settings, AwsClients(settings.aws))
    assert (store.keep_first, store.keep_last) == (3, 7)
    assert (store.stale_seconds, store.max_pending) == (9.0, 4)
    builders = {p for p, text in _sources("daylib", "bench", "tests").items()
                if re.search(r"\bMonitor\(", text)} - {"tests/unit/test_one_way.py"}
    assert builders == {"daylib/wiring.py"}
    stores = {p for p, text in _sources("daylib").items() if "DynamoStore(" in text}
    assert stores == {"daylib/wiring.py", "daylib/store/dynamodb.py"}
