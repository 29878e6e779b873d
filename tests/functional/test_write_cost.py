"""What a transition sends to DynamoDB (moto and dynalite): the new history entry, not the
whole history again; index keys only when they change. Each transition's request is read at
the botocore layer; the records the store returns are checked too."""

from __future__ import annotations

import json
from typing import Any

from daylib import states as S
from daylib.store.dynamodb import DynamoStore


class Sent:
    """The UpdateItem requests made through the store's client."""

    def __init__(self, store: DynamoStore) -> None:
        self.updates: list[dict[str, Any]] = []
        store.client.meta.events.register("before-parameter-build.dynamodb.UpdateItem",
                                          self._seen)

    def _seen(self, params: dict[str, Any], **_: Any) -> None:
        self.updates.append(dict(params))


def _names(update: dict[str, Any]) -> set[str]:
    return set(update.get("ExpressionAttributeNames", {}).values())


def test_step_checkpoints_append_history_and_leave_index_keys(
        dynamo_store: DynamoStore) -> None:
    store = DynamoStore(dynamo_store.client, dynamo_store.table, keep_first=5, keep_last=50)
    store.register("ws-lean", actor="t", fields={"customer_id": "lab-a"})
    rec, lease = store.claim("ws-lean", "m1", 30)
    rec = store.transition(rec, S.IN_PROGRESS, actor="m1", reason="stage done", lease=lease,
                           fields={"step": "run", "steps_done": ["stage"]})
    for i in range(30):  # a long history, below the trimming limit
        rec = store.transition(rec, S.IN_PROGRESS, actor="m1", reason=f"note {i}", lease=lease)
    sent = Sent(store)
    rec = store.transition(rec, S.IN_PROGRESS, actor="m1", reason="run done", lease=lease,
                           fields={"step": "export", "steps_done": ["stage", "run"]})
    (update,) = sent.updates
    size = len(json.dumps(update.get("ExpressionAttributeValues", {})))
    assert size < 1500, f"the checkpoint resent {size} bytes of values"
    assert "list_append" in update["UpdateExpression"]
    assert not _names(update) & {"queue_key", "done_state", "created_key", "active_state"}
    got = store.require("ws-lean")
    assert [h["reason"] for h in got.history][-2:] == ["note 29", "run done"]
    assert got.history == rec.history and got.history_total == rec.history_total == 34
    assert [r.workset_id for r in store.active(S.IN_PROGRESS)] == ["ws-lean"]
    done = store.transition(rec, S.COMPLETE, actor="m1", reason="all steps done", lease=lease)
    assert done.state == S.COMPLETE
    assert "ws-lean" in next(store.done_ids(S.COMPLETE))
    assert store.active(S.IN_PROGRESS) == []


def test_trimmed_history_is_rewritten_bounded(dynamo_store: DynamoStore) -> None:
    store = DynamoStore(dynamo_store.client, dynamo_store.table, keep_first=2, keep_last=3)
    store.create_table()
    store.register("ws-trim", actor="t")
    rec, lease = store.claim("ws-trim", "m1", 30)
    for i in range(6):
        rec = store.transition(rec, S.IN_PROGRESS, actor="m1", reason=f"n{i}", lease=lease)
    got = store.require("ws-trim")
    assert [h["reason"] for h in got.history] == ["registered", "claimed", "n3", "n4", "n5"]
    assert got.history == rec.history and got.history_total == 8
