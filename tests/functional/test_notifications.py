"""Notifications through the outbox.

Part 1 runs the store's outbox contract on moto and dynalite (events ride on the conditional
write, are published after it, cleared by the next write or an ack, found again when stale).
Part 2 runs monitors against a moto server with an SNS topic whose messages reach SQS queues
(raw delivery; one queue with a filter policy), and asserts exactly what arrived.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

import pytest
from botocore.awsrequest import AWSResponse

from daylib import control
from daylib import states as S
from daylib.aws import AwsClients
from daylib.dlq import DeadLetterQueue
from daylib.errors import AwsError
from daylib.outbox import Outbox
from daylib.store.contract import Store
from daylib.store.dynamodb import DynamoStore
from daylib.store.items import CLAIM_KEY, outbox_key
from daylib.store.records import Lease, WorksetRecord
from tests.conftest import client
from tests.support.deployment import Env
from tests.support.executors import NoOpStaging

# The env fixture's store is in memory: these tests are about the monitor, not DynamoDB.
pytestmark = pytest.mark.memory_store


class Recorder:
    """Stands in for the SNS topic and the dead-letter queue; can be made to fail."""

    def __init__(self) -> None:
        self.bodies: list[dict[str, Any]] = []
        self.failing = False

    def publish(self, body: dict[str, Any]) -> None:
        if self.failing:
            raise AwsError("Publish: InternalError: boom", "InternalError")
        self.bodies.append(body)

    send = publish

    def events(self) -> list[tuple[str, int]]:
        return [(b.get("event", "dlq"), b["seq"]) for b in self.bodies]


def _outbox(topic: Recorder, dlq: Recorder | None = None, *, stale: float = 60.0,
            ack_delay: float = 0.0, clock: Callable[[], float] = time.time) -> Outbox:
    return Outbox(topic=topic, dlq=dlq, stale_seconds=stale,  # type: ignore[arg-type]
                  ack_delay_seconds=ack_delay, clock=clock)


class Proc:
    """One process's writes, as the monitor makes them: the events it wants ride on each
    write, with the entries it published dropped, and the record goes to its outbox."""

    def __init__(self, store: Store, box: Outbox) -> None:
        self.store, self.box = store, box

    def register(self, wid: str, actor: str) -> WorksetRecord | None:
        rec = self.store.register(wid, actor=actor, events=self.box.recorded(
            (("registered", f"registered by {actor}"),)))
        if rec is not None:
            self.box.written(rec)
        return rec

    def claim(self, wid: str, owner: str, lease_seconds: float,
              expired: WorksetRecord | None = None) -> tuple[WorksetRecord, Lease]:
        events = () if expired else self.box.recorded((("started", f"claimed by {owner}"),))
        rec, lease = self.store.claim(wid, owner, lease_seconds, expired=expired,
                                      events=events, drop=self.box.delivered(wid))
        (self.box.adopt if expired else self.box.written)(rec)
        return rec, lease

    def transition(self, rec: WorksetRecord, to: str, *, actor: str, reason: str,
                   lease: Lease, events: tuple[tuple[str, str], ...] = ()) -> WorksetRecord:
        new = self.store.transition(rec, to, actor=actor, reason=reason, lease=lease,
                                    events=self.box.recorded(events),
                                    drop=self.box.delivered(rec.workset_id))
        self.box.written(new)
        return new


def _raw(store: DynamoStore, wid: str) -> dict[str, Any]:
    return store.client.get_item(TableName=store.table, Key={"pk": {"S": wid}},
                                 ConsistentRead=True)["Item"]  # type: ignore[no-any-return]


FAR = 10**10


# ====================================================================== the store's outbox


def test_events_ride_on_writes_and_the_next_write_clears_them(dynamo_store: DynamoStore) -> None:
    store = dynamo_store
    topic = Recorder()
    p = Proc(store, box := _outbox(topic))
    writes: list[str] = []
    store.client.meta.events.register(
        "before-call.dynamodb.*",
        lambda model, **_: writes.append(model.name) if model.name in (
            "PutItem", "UpdateItem") else None)
    assert p.register("ws-a", "m1")
    assert topic.events() == [("registered", 1)]
    assert store.outbox_due(FAR) == ["ws-a"]  # ready: nobody owns it, so it is findable

    rec, lease = p.claim("ws-a", "m1", 30)
    assert set(rec.outbox or {}) == {CLAIM_KEY}  # registered removed by the claim itself
    assert rec.outbox[CLAIM_KEY]["seq"] == 2 and rec.event_seq == 2
    assert rec.appended == (2,)  # the write says what it added
    assert topic.events()[-1] == ("started", 2)
    assert store.outbox_due(FAR) == []  # owned: its owner publishes

    rec = p.transition(rec, S.IN_PROGRESS, actor="m1", reason="stage done", lease=lease,
                       events=(("step", "stage done"),))
    assert list(rec.outbox or {}) == [outbox_key(3)] and rec.appended == (3,)
    rec = p.transition(rec, S.COMPLETE, actor="m1", reason="done", lease=lease,
                       events=(("completed", "results"),))
    assert list(rec.outbox or {}) == [outbox_key(4)]
    assert store.outbox_due(FAR) == ["ws-a"]
    assert topic.events() == [("registered", 1), ("started", 2), ("step", 3), ("completed", 4)]
    assert store.require("ws-a").outbox == rec.outbox  # the computed record is the item

    box.tick(store)  # ack of the last event: the only write beyond the lifecycle's own
    final = store.require("ws-a")
    assert final.outbox == {} and store.outbox_due(FAR) == [] and box.pending_work() == 0
    assert writes == ["PutItem", "UpdateItem", "UpdateItem", "UpdateItem", "UpdateItem"]
    assert final.version == rec.version  # the ack never bumps the version
    body = topic.bodies[-1]
    assert body["schema_version"] == 1 and body["workset_id"] == "ws-a"
    assert (body["state"], body["attempt"], body["message"]) == ("complete", 1, "results")


def test_publish_failure_keeps_events_and_they_follow_in_order(store: Store) -> None:
    topic = Recorder()
    topic.failing = True
    p = Proc(store, box := _outbox(topic))
    p.register("ws-b", "m1")
    rec, lease = p.claim("ws-b", "m1", 30)
    rec = p.transition(rec, S.IN_PROGRESS, actor="m1", reason="stage done", lease=lease,
                       events=(("step", "stage done"),))
    assert topic.bodies == [] and rec.state == S.IN_PROGRESS  # never blocked nor reverted
    stored = store.require("ws-b")
    assert sorted(e["seq"] for e in (stored.outbox or {}).values()) == [1, 2, 3]
    assert CLAIM_KEY not in (stored.outbox or {})  # renamed to its seq by the next write
    box.tick(store, force=True)  # still failing: nothing lost, nothing out of order
    assert topic.bodies == []
    topic.failing = False
    box.tick(store)  # publishing failed a moment ago: writers and housekeeping hold off
    assert topic.bodies == []
    box.tick(store, now=time.time() + 60)
    assert topic.events() == [("registered", 1), ("started", 2), ("step", 3)]
    rec = p.transition(store.require("ws-b"), S.IN_PROGRESS, actor="m1",
                       reason="run done", lease=lease, events=(("step", "run done"),))
    assert list(rec.outbox or {}) == [outbox_key(4)]  # 1-3 cleared by this write


def test_stale_events_are_published_by_any_process(store: Store) -> None:
    now = [1_000_000.0]  # one clock for both processes: staleness never depends on load

    def clock() -> float:
        return now[0]

    dead = Recorder()
    dead.failing = True
    # the writer sets when its events go stale
    writer = Proc(store.twin(clock=clock, stale_seconds=0.2),
                  _outbox(dead, stale=0.2, clock=clock))
    writer.register("ws-c", "m-dead")
    rec, lease = writer.claim("ws-c", "m-dead", 30)
    writer.transition(rec, S.FAILED, actor="m-dead", reason="data", lease=lease,
                      events=(("failed", "bad"), ("dead_lettered", "bad")))
    # The writer died with four events unpublished. Another process finds them once stale.
    topic, dlq = Recorder(), Recorder()
    other = _outbox(topic, dlq, stale=0.2, clock=clock)
    twin = store.twin(clock=clock, stale_seconds=0.2)
    other.tick(twin)
    assert topic.bodies == []  # not stale yet: the writer might still publish them
    now[0] += 0.3
    other.tick(twin, force=True)
    assert topic.events() == [("registered", 1), ("started", 2), ("failed", 3),
                              ("dead_lettered", 4)]
    assert [(b["workset_id"], b["category"], b["attempts"]) for b in dlq.bodies] == [
        ("ws-c", None, 1)]
    assert store.require("ws-c").outbox == {} and store.outbox_due(FAR) == []


def test_an_ack_never_conflicts_with_the_new_owner(store: Store) -> None:
    """m1 registers (and publishes) but m2 claims first: m1's ack removes only its own entry,
    and m2's fenced writes go on without a lost race."""
    t1, t2 = Recorder(), Recorder()
    p1 = Proc(store, b1 := _outbox(t1, ack_delay=0.0))
    p1.register("ws-d", "m1")
    p2 = Proc(store.twin(), b2 := _outbox(t2))
    rec, lease = p2.claim("ws-d", "m2", 30)
    assert set(rec.outbox or {}) == {outbox_key(1), CLAIM_KEY}  # m2 cannot know 1 went out
    b1.tick(store, now=time.time() + b1.stale_seconds / 2)  # m1's ack, due (see next test)
    rec = p2.transition(rec, S.IN_PROGRESS, actor="m2", reason="stage done", lease=lease,
                        events=(("step", "stage done"),))
    assert set(store.require("ws-d").outbox or {}) == {outbox_key(3)}
    assert t1.events() == [("registered", 1)]
    assert t2.events() == [("started", 2), ("step", 3)]  # no duplicate of registered
    assert b2.pending_work() == 0


def test_a_queued_registration_and_retry_need_no_ack_of_their_own(store: Store) -> None:
    """A workset waits in ready (slots full) longer than the ack delay: its claim, not a
    separate ack, drops ``registered``; likewise the promotion drops ``retrying``. Only the
    terminal event is acked on its own."""
    now = [1_000_000.0]
    topic = Recorder()
    store = store.twin(clock=lambda: now[0])
    p = Proc(store, box := _outbox(topic, ack_delay=5.0, clock=lambda: now[0]))
    p.register("ws-q", "m1")
    now[0] += 20  # queued behind running work, past the ack delay
    box.tick(store)
    rec, lease = p.claim("ws-q", "m1", 30)
    assert set(rec.outbox or {}) == {CLAIM_KEY}  # registered dropped by the claim
    rec = p.transition(rec, S.RETRYING, actor="m1", reason="transient", lease=lease,
                       events=(("retrying", "boom"),))
    now[0] += 20  # the retry's backoff
    box.tick(store)
    rec = store.transition(store.require("ws-q"), S.READY, actor="m1", reason="retry due",
                           drop=box.delivered("ws-q"))
    box.written(rec)
    assert rec.outbox == {} and box.stats.acks == 0
    rec, lease = p.claim("ws-q", "m1", 30)
    rec = p.transition(rec, S.COMPLETE, actor="m1", reason="done", lease=lease,
                       events=(("completed", "results"),))
    now[0] += 20
    box.tick(store)
    assert store.require("ws-q").outbox == {} and box.stats.acks == 1
    assert [e for e, _ in topic.events()] == ["registered", "started", "retrying", "started",
                                              "completed"]


def test_takeover_publishes_what_the_dead_owner_left(store: Store) -> None:
    dead = Recorder()
    p1 = Proc(store, _outbox(dead))
    p1.register("ws-e", "m1")
    dead.failing = True
    p1.claim("ws-e", "m1", 0.2)  # started: never published
    time.sleep(0.3)
    topic = Recorder()
    p2 = Proc(store.twin(), _outbox(topic))
    expired = next(r for r in p2.store.owned() if r.workset_id == "ws-e")
    rec, _ = p2.claim("ws-e", "m2", 30, expired=expired)
    assert topic.events() == [("started", 2)]
    assert rec.lease_token == 2


def test_items_written_before_outboxes_still_work(dynamo_store: DynamoStore) -> None:
    store = dynamo_store
    store.client.put_item(TableName=store.table, Item={
        "pk": {"S": "ws-old"}, "workset_id": {"S": "ws-old"}, "state": {"S": "ready"},
        "version": {"N": "1"}, "attempt": {"N": "1"}, "lease_token": {"N": "0"},
        "history": {"L": []}, "history_total": {"N": "0"}, "created_at": {"S": "2024"},
        "active_state": {"S": "ready"}, "queue_key": {"S": "2#2024#ws-old"}})
    topic = Recorder()
    p = Proc(store, _outbox(topic))
    rec, lease = p.claim("ws-old", "m1", 30)
    assert rec.state == S.LOCKED and rec.outbox is None  # no map to add "started" to
    rec = p.transition(rec, S.COMPLETE, actor="m1", reason="done", lease=lease,
                       events=(("completed", "ok"),))
    assert topic.events() == [("completed", 1)]
    assert store.require("ws-old").outbox == {outbox_key(1): rec.outbox[outbox_key(1)]}


def test_no_outbox_means_no_events_and_no_extra_attributes(dynamo_store: DynamoStore) -> None:
    store = dynamo_store
    p = Proc(store, Outbox.off())
    p.register("ws-f", "m1")
    rec, lease = p.claim("ws-f", "m1", 30)
    rec = p.transition(rec, S.COMPLETE, actor="m1", reason="done", lease=lease,
                       events=(("completed", "ok"),))
    item = _raw(store, "ws-f")
    assert item["outbox"] == {"M": {}} and "outbox_due" not in item and rec.event_seq == 0


# ====================================================================== monitors over SNS


def _events(msgs: list[dict[str, Any]], wid: str) -> list[str]:
    return [m["event"] for m in msgs if m["workset_id"] == wid]


def test_happy_path_sends_one_message_per_event(env: Env) -> None:
    wiring = env.wire()
    env.upload("ws-happy", customer_id="lab-a")
    env.monitor(executor=NoOpStaging()).run(once=True)
    msgs = wiring.inbox.take()
    assert [(m["event"], m["seq"]) for m in msgs] == [
        ("registered", 1), ("started", 2), ("step", 3), ("step", 4), ("completed", 5)]
    assert [m["step"] for m in msgs] == [None, "stage", "run", "export", None]
    for m in msgs:
        assert m["schema_version"] == 1 and m["workset_id"] == "ws-happy"
        assert m["customer_id"] == "lab-a" and m["attempt"] == 1
        assert set(m) >= {"event", "state", "cluster", "error_category", "message", "timestamp"}
        assert m["_attributes"] == {"event": m["event"], "workset_id": "ws-happy",
                                    "customer_id": "lab-a", "state": m["state"],
                                    "error_category": "-"}
    assert [m["state"] for m in msgs] == ["ready", "locked", "in_progress", "in_progress",
                                          "complete"]
    assert [m["event"] for m in wiring.filtered.take()] == ["completed"]
    rec = env.store.require("ws-happy")
    assert rec.state == S.COMPLETE and rec.outbox == {}  # all published and cleared
    assert wiring.dlq.letters() == []


def test_failure_sends_failed_and_dead_lettered_and_a_dlq_message(env: Env) -> None:
    wiring = env.wire()
    env.upload("ws-bad", pipeline="bad-fastq")
    env.monitor(executor=NoOpStaging()).run(once=True)
    msgs = wiring.inbox.take()
    assert _events(msgs, "ws-bad") == ["registered", "started", "step", "failed",
                                       "dead_lettered"]
    failed = msgs[3]
    assert (failed["state"], failed["error_category"], failed["error_rule"]) == (
        "failed", "data", "bad-fastq")
    assert failed["_attributes"]["error_category"] == "data"
    assert [m["event"] for m in wiring.filtered.take()] == ["failed", "dead_lettered"]
    (letter,) = wiring.dlq.letters()
    assert (letter.workset_id, letter.category, letter.rule, letter.attempts) == (
        "ws-bad", "data", "bad-fastq", 1)
    assert "exit code 65" in (letter.error or "") and letter.seq == 5
    assert "not retryable" in (letter.decision or "")


def _failing_sns(clients: AwsClients) -> list[int]:
    """Make every SNS call of these clients fail with a 500 (not retried: max_attempts 1)."""
    calls: list[int] = []

    def fail(request: Any, **_: Any) -> AWSResponse | None:
        calls.append(1)
        body = (b"<ErrorResponse><Error><Type>Receiver</Type><Code>InternalError</Code>"
                b"<Message>down</Message></Error></ErrorResponse>")
        return AWSResponse(request.url, 500, {}, _Raw(body))
    clients.client("sns").meta.events.register("before-send.sns.*", fail, unique_id="down")
    return calls


class _Raw:
    def __init__(self, data: bytes) -> None:
        self.data = data

    def stream(self, **_: Any) -> Any:
        yield self.data


def test_sns_outage_never_blocks_a_workset_and_events_follow_in_order(env: Env) -> None:
    wiring = env.wire()
    s = env.settings.model_copy(deep=True)
    s.aws.max_attempts = 1
    clients = AwsClients(s.aws)
    calls = _failing_sns(clients)
    store, outbox = env.events(clients)
    env.upload("ws-outage")
    mon = env.monitor(executor=NoOpStaging(), store=store, outbox=outbox)
    mon.run(once=True)
    rec = env.store.require("ws-outage")
    assert rec.state == S.COMPLETE and calls  # complete although nothing could be published
    assert wiring.inbox.take() == []
    assert sorted(e["seq"] for e in (rec.outbox or {}).values()) == [1, 2, 3, 4, 5]
    assert rec.public()["events_pending"] == 5
    clients.client("sns").meta.events.unregister("before-send.sns.*", unique_id="down")
    assert mon.outbox is not None
    mon.outbox.tick(store, force=True)  # the next housekeeping pass
    assert [(m["event"], m["seq"]) for m in wiring.inbox.take()] == [
        ("registered", 1), ("started", 2), ("step", 3), ("step", 4), ("completed", 5)]
    assert env.store.require("ws-outage").outbox == {}


def test_a_dead_monitors_events_are_published_by_another(env: Env) -> None:
    wiring = env.wire()
    s = env.settings.model_copy(deep=True)
    s.aws.max_attempts = 1
    broken = AwsClients(s.aws)
    _failing_sns(broken)
    env.upload("ws-orphan")
    store, outbox = env.events(broken, stale_seconds=0.3)
    env.monitor(executor=NoOpStaging(), store=store, outbox=outbox).run(once=True)
    assert wiring.inbox.take() == []
    healthy, outbox = env.events(stale_seconds=0.3)
    time.sleep(0.4)
    # the healthy monitor finds the stale outbox
    env.monitor(executor=NoOpStaging(), store=healthy, outbox=outbox).run(once=True)
    assert [(m["event"], m["seq"]) for m in wiring.inbox.take()] == [
        ("registered", 1), ("started", 2), ("step", 3), ("step", 4), ("completed", 5)]
    assert env.store.require("ws-orphan").outbox == {}


def test_operator_cancel_is_announced(env: Env) -> None:
    wiring = env.wire()
    env.upload("ws-stop")
    env.monitor().intake.scan()
    operator, outbox = env.events()
    control.cancel(operator, "ws-stop", "user:op", outbox=outbox)
    outbox.drain(operator)  # what the CLI does before it exits
    msgs = wiring.inbox.take()
    assert [(m["event"], m["state"]) for m in msgs] == [("registered", "ready"),
                                                         ("cancelled", "cancelled")]
    assert "user:op" in msgs[1]["message"]
    assert env.store.require("ws-stop").outbox is not None


def test_disabled_notifications_record_nothing(env: Env) -> None:
    env.upload("ws-quiet")
    env.monitor(executor=NoOpStaging()).run(once=True)  # no wiring: no outbox
    rec = env.store.require("ws-quiet")
    assert rec.state == S.COMPLETE and rec.outbox == {} and rec.event_seq == 0


def test_dead_letter_body_is_json_with_the_contract_fields(env: Env) -> None:
    wiring = env.wire()
    env.upload("ws-dl", pipeline="bad-fastq")
    env.monitor(executor=NoOpStaging()).run(once=True)
    sqs = env.clients.client("sqs")
    msg = sqs.receive_message(QueueUrl=wiring.dlq.queue_url, MessageAttributeNames=["All"],
                              VisibilityTimeout=0)["Messages"][0]
    body = json.loads(msg["Body"])
    assert set(body) >= {"workset_id", "category", "error", "attempts", "rule"}
    assert msg["MessageAttributes"]["workset_id"]["StringValue"] == "ws-dl"
    assert isinstance(wiring.dlq, DeadLetterQueue)


def test_init_adds_the_outbox_index_to_an_older_table(moto_server: Any,
                                                      table_name: str) -> None:
    """moto only: dynalite accepts UpdateTable's GlobalSecondaryIndexUpdates and ignores it."""
    ddb = client("dynamodb", moto_server.endpoint_url)
    ddb.create_table(  # the 0.1 layout: no outbox index
        TableName=table_name, BillingMode="PAY_PER_REQUEST",
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}])
    ddb.get_waiter("table_exists").wait(TableName=table_name)
    store = DynamoStore(ddb, table_name)
    assert store.create_table() is False
    store.create_table()  # and again: idempotent
    indexes = ddb.describe_table(TableName=table_name)["Table"]["GlobalSecondaryIndexes"]
    assert [i["IndexName"] for i in indexes] == ["outbox-index"]
