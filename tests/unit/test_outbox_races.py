"""Issue 8: races the moto server's slowness hid, replayed on the in-memory store in the
interleavings the monitor's threads produce (a runner thread still publishing its last
write while the monitor thread promotes and claims the workset's next attempt)."""

from __future__ import annotations

import itertools
import threading
import time
from typing import Any

from daylib import states as S
from daylib import wiring
from daylib.aws import AwsClients
from daylib.config import Settings
from daylib.executors.local import LocalExecutor
from daylib.ordering import epoch
from daylib.outbox import Outbox
from daylib.policy import Failure, backoff_ceiling
from daylib.running import Running
from daylib.store.memory import MemoryStore
from daylib.store.records import Lease, WorksetRecord

WID = "ws-race"


class _Topic:
    def __init__(self) -> None:
        self.sent: list[tuple[int, str]] = []

    def publish(self, body: dict[str, Any]) -> None:
        self.sent.append((body["seq"], body["event"]))


def _box(topic: _Topic, ack_delay: float = 5.0) -> Outbox:
    return Outbox(topic=topic, dlq=None, ack_delay_seconds=ack_delay)  # type: ignore[arg-type]


def _attempt(store: MemoryStore, box: Outbox) -> tuple[WorksetRecord, Lease]:
    """A claim as the claimer makes it, published before its run starts."""
    rec, lease = store.claim(WID, "m1", 30, events=box.recorded((("started", "m1"),)),
                             drop=box.delivered(WID))
    box.written(rec)
    return rec, lease


def _write(store: MemoryStore, box: Outbox, rec: WorksetRecord, to: str, lease: Lease | None,
           events: tuple[tuple[str, str], ...] = (), **fields: Any) -> WorksetRecord:
    """A write as the runner and claimer make it, its record not yet handed to the outbox."""
    return store.transition(rec, to, actor="m1", reason=to, lease=lease, fields=fields,
                            events=box.recorded(events), drop=box.delivered(WID))


def _late_retry(store: MemoryStore, box: Outbox) -> tuple[WorksetRecord, WorksetRecord, Lease]:
    """Attempt 1 fails; before its runner hands the ``retrying`` record to the outbox, the
    monitor thread promotes the retry and claims attempt 2 (a retry may be due at once)."""
    reg = store.register(WID, actor="m1", events=box.recorded((("registered", "m1"),)))
    assert reg is not None
    box.written(reg)
    rec, lease = _attempt(store, box)
    rec = _write(store, box, rec, S.IN_PROGRESS, lease, (("step", "stage done"),), step="run")
    box.written(rec)
    retrying = _write(store, box, rec, S.RETRYING, lease, (("retrying", "throttled"),),
                      retry_at=0.0)
    ready = _write(store, box, retrying, S.READY, None, attempt=2, retry_at=None)
    box.written(ready)
    claimed, lease2 = _attempt(store, box)
    return retrying, claimed, lease2


def test_events_are_published_in_the_order_of_their_writes() -> None:
    topic, store = _Topic(), MemoryStore()
    box = _box(topic)
    retrying, _, _ = _late_retry(store, box)
    box.written(retrying)  # the runner thread gets there last
    assert topic.sent == [(1, "registered"), (2, "started"), (3, "step"), (4, "retrying"),
                          (5, "started")]


def test_nothing_published_stays_on_the_item_once_the_workset_ends() -> None:
    """The late ``retrying`` record must not make the outbox forget the ``started`` it
    published since, nor ack it while the next attempt still owns the workset."""
    topic, clock = _Topic(), [1000.0]
    store = MemoryStore(clock=lambda: clock[0])
    box = _box(topic, ack_delay=5.0)
    box.clock = lambda: clock[0]
    retrying, claimed, lease = _late_retry(store, box)
    box.written(retrying)
    clock[0] += 10  # the next step outlasts the ack delay; housekeeping runs meanwhile
    box.tick(store)
    done = _write(store, box, claimed, S.COMPLETE, lease, (("completed", "done"),), step=None)
    box.written(done)
    clock[0] += 10  # past the ack delay, long before anything is stale
    box.tick(store)
    assert store.require(WID).outbox == {}
    assert [s for s, _ in topic.sent] == [1, 2, 3, 4, 5, 6]


def test_concurrent_writers_of_one_workset_publish_in_write_order() -> None:
    """Two threads, the later write's publisher first: the order still holds and nothing is
    published twice."""
    topic, store = _Topic(), MemoryStore()
    box = _box(topic)
    reg = store.register(WID, actor="m1", events=box.recorded((("registered", "m1"),)))
    assert reg is not None
    claimed, lease = store.claim(WID, "m1", 30, events=box.recorded((("started", "m1"),)))
    first_wrote, second_published = threading.Event(), threading.Event()

    def earlier() -> None:
        first_wrote.wait()
        assert second_published.wait(30)
        box.written(reg)

    def later() -> None:
        first_wrote.set()
        box.written(claimed)
        second_published.set()

    threads = [threading.Thread(target=earlier), threading.Thread(target=later)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert topic.sent == [(1, "registered"), (2, "started")]
    assert lease.token == claimed.lease_token


def test_a_retry_delay_is_measured_from_the_failure_written() -> None:
    """``retry_at`` minus the ``retrying`` history time is the decided delay, inside the
    full-jitter bounds, however long the failure took to record."""
    ticks = itertools.count(1_000_000, 7)  # every clock reading is 7 s after the last
    store = MemoryStore(clock=lambda: float(next(ticks)))
    settings = Settings()
    mon = wiring.monitor_for(settings, AwsClients(settings.aws), store=store,
                             executor=LocalExecutor(), step_env={})
    assert store.register(WID, actor="t") is not None
    rec, lease = store.claim(WID, mon.monitor_id, 30)
    run = Running(rec, lease)
    mon.runner._fail(run, Failure(message="throttled", aws_code="ThrottlingException"))
    after = store.require(WID)
    assert after.state == S.RETRYING and after.retry_at is not None
    written = epoch(after.history[-1]["at"])
    r = settings.retry
    ceiling = backoff_ceiling(1, base=r.base_seconds, factor=r.factor, cap=r.cap_seconds)
    assert 0 <= after.retry_at - written <= ceiling
    assert after.failed_at == written


def test_a_retry_is_not_claimed_again_while_its_failed_run_is_still_ending() -> None:
    """A retry due at once must wait for the failed run's end: that run gives back its cap
    slots and its place among the monitor's runs by workset id, so a new attempt started
    before it would lose its own (no heartbeat, a freed slot)."""
    settings = Settings()
    settings.retry.base_seconds = settings.retry.cap_seconds = 0.0
    store = MemoryStore()
    mon = wiring.monitor_for(settings, AwsClients(settings.aws), store=store,
                             executor=LocalExecutor(), step_env={})
    assert store.register(WID, actor="t", fields={"intake_error": "listing failed",
                                                  "error_category": "transient"})
    ending, go_on = threading.Event(), threading.Event()
    release = mon.caps.release

    def slow_release(workset_id: str, customer: str | None) -> None:
        ending.set()  # the run's last write is done; it is giving back what it held
        assert go_on.wait(30)
        release(workset_id, customer)

    mon.caps.release = slow_release  # type: ignore[method-assign]
    mon.registry.beat(0, False, idle=False)  # this cluster is up: work may be routed to it
    mon.claimer.fill(time.time())
    assert ending.wait(30) and store.require(WID).state == S.RETRYING
    first = mon._running[WID]
    mon.claimer.promote_retries(time.time())
    mon.claimer.fill(time.time())
    assert store.require(WID).state == S.RETRYING and mon._running[WID] is first
    mon.caps.release = release  # type: ignore[method-assign]
    mon._wake.clear()
    go_on.set()
    assert mon._wake.wait(30)  # the run ended
    assert mon.claimer.promote_retries(time.time()) == 1


class _SlowFirst(_Topic):
    """The first publish waits until the claim's record was handed over (or for a second,
    when the outbox makes the claim wait for it: the order this test wants)."""

    def __init__(self) -> None:
        super().__init__()
        self.publishing, self.claim_handled = threading.Event(), threading.Event()

    def publish(self, body: dict[str, Any]) -> None:
        if body["seq"] == 1:
            self.publishing.set()
            self.claim_handled.wait(1.0)
        super().publish(body)


def test_a_claim_during_a_slow_publish_of_its_registration_keeps_its_started_event() -> None:
    """Intake is still publishing ``registered`` when the monitor thread claims the workset:
    the registration's ack must not fire while the claim's run owns it (it removed the
    ``started`` entry, and the run's next write, from the claim's record, put it back for
    good)."""
    topic, clock = _SlowFirst(), [1000.0]
    store = MemoryStore(clock=lambda: clock[0])
    box = _box(topic, ack_delay=5.0)
    box.clock = lambda: clock[0]
    reg = store.register(WID, actor="m1", events=box.recorded((("registered", "m1"),)))
    assert reg is not None
    intake = threading.Thread(target=box.written, args=(reg,))
    intake.start()
    assert topic.publishing.wait(30)
    claimed, lease = store.claim(WID, "m1", 30, events=box.recorded((("started", "m1"),)),
                                 drop=box.delivered(WID))

    def claimer() -> None:
        box.written(claimed)
        topic.claim_handled.set()

    claiming = threading.Thread(target=claimer)
    claiming.start()
    intake.join(30)
    claiming.join(30)
    clock[0] += 10  # the stage step outlasts the ack delay
    box.tick(store)
    rec = _write(store, box, claimed, S.FAILED, lease, (("failed", "x"),), step=None)
    box.written(rec)
    clock[0] += 10
    box.tick(store)
    assert store.require(WID).outbox == {}
    assert topic.sent == [(1, "registered"), (2, "started"), (3, "failed")]
