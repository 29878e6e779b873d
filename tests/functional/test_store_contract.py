"""The store contract, run unchanged against the in-memory store, moto (server, HTTP) and
dynalite."""

from __future__ import annotations

import json
import threading
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from daylib import states as S
from daylib.errors import ConflictError, IllegalTransition, LeaseLost
from daylib.formatters import format_show
from daylib.leases import LeaseWatch, lease_version
from daylib.spec import priority_rank
from daylib.store.contract import Store
from daylib.store.dynamodb import DynamoStore
from daylib.store.memory import MemoryStore
from daylib.store.records import WorksetRecord, utc_iso
from daylib.store.rules import Earlier


def _clone(store: Store, clock: Any) -> Store:
    """Another monitor on the same table, with its own clock."""
    return store.twin(clock=clock)


def test_registration_is_idempotent(store: Store) -> None:
    assert store.register("ws-001", actor="m1", priority="high",
                          fields={"customer_id": "lab-a"}) is not None
    assert store.register("ws-001", actor="m2", priority="low") is None
    rec = store.require("ws-001")
    assert (rec.state, rec.priority, rec.customer_id, rec.version) == ("ready", "high",
                                                                       "lab-a", 1)
    assert [h["actor"] for h in rec.history] == ["m1"]


def test_claim_is_exclusive_and_fenced(store: Store) -> None:
    store.register("ws-claim", actor="t")
    rec, lease = store.claim("ws-claim", "m1", 30)
    assert (rec.state, rec.owner, rec.step, lease.token) == ("locked", "m1", "stage", 1)
    with pytest.raises(ConflictError):
        store.claim("ws-claim", "m2", 30)
    rec = store.transition(rec, S.IN_PROGRESS, actor="m1", reason="staged", lease=lease,
                           fields={"step": "run", "steps_done": ["stage"]})
    assert (rec.state, rec.step, rec.steps_done) == ("in_progress", "run", ["stage"])


def _owned(store: Store, wid: str) -> WorksetRecord:
    return next(r for r in store.owned() if r.workset_id == wid)


def test_expired_lease_is_taken_over_and_old_owner_fenced(store: Store) -> None:
    """B's clock is an hour ahead of A's: B still judges A's lease only by its version
    standing still for a lease on B's own monotonic clock."""
    now, mono = [1_000_000.0], [50.0]
    a = _clone(store, lambda: now[0])
    b = _clone(store, lambda: now[0] + 3600)
    watch = LeaseWatch(30, clock=lambda: mono[0])
    a.register("ws-take", actor="t")
    rec_a, lease_a = a.claim("ws-take", "A", 30)
    rec_a = a.transition(rec_a, S.IN_PROGRESS, actor="A", reason="staged", lease=lease_a,
                         fields={"step": "run", "steps_done": ["stage"]})
    assert watch.expired(b.owned()) == []
    seen = _owned(b, "ws-take")
    mono[0] += 20
    now[0] += 20
    lease_a = a.heartbeat(lease_a, 30)  # A is alive: a new version
    assert watch.expired(b.owned()) == []
    with pytest.raises(ConflictError):  # the version B saw is gone: takeover refused
        b.claim("ws-take", "B", 30, expired=seen)
    mono[0] += 29
    assert watch.expired(b.owned()) == []  # 29 s since the heartbeat was first seen
    mono[0] += 1
    stale = watch.expired(b.owned())
    assert [r.workset_id for r in stale] == ["ws-take"]
    rec_b, lease_b = b.claim("ws-take", "B", 30, expired=stale[0])
    assert (rec_b.owner, rec_b.state, rec_b.step, lease_b.token) == ("B", "in_progress",
                                                                     "run", 2)
    with pytest.raises(LeaseLost):
        a.heartbeat(lease_a, 30)
    with pytest.raises(LeaseLost):
        a.transition(rec_a, S.COMPLETE, actor="A", reason="late", lease=lease_a)
    final = b.transition(rec_b, S.IN_PROGRESS, actor="B", reason="run done", lease=lease_b,
                         fields={"step": "export", "steps_done": ["stage", "run"]})
    assert final.owner == "B" and final.lease_token == 2


def test_heartbeat_always_writes_a_new_version(store: Store) -> None:
    """Even with the owner's clock stepped back, each heartbeat changes the version, so a
    claimant that saw the old one cannot take the lease over."""
    now = [9_000.0]
    st = _clone(store, lambda: now[0])
    st.register("ws-ver", actor="t")
    _rec, lease = st.claim("ws-ver", "m1", 30)
    seen = _owned(st, "ws-ver")
    now[0] -= 120
    lease = st.heartbeat(lease, 30)
    assert lease_version(_owned(st, "ws-ver")) != lease_version(seen)
    with pytest.raises(ConflictError):
        st.twin().claim("ws-ver", "m2", 30, expired=seen)


def test_heartbeat_extends_and_stops_after_cancel(store: Store) -> None:
    now = [5_000.0]
    st = _clone(store, lambda: now[0])
    st.register("ws-beat", actor="t")
    _rec, lease = st.claim("ws-beat", "m1", 30)
    now[0] += 20
    lease = st.heartbeat(lease, 30)
    assert lease.expires == pytest.approx(now[0] + 30)
    assert _owned(st, "ws-beat").lease_expires == pytest.approx(now[0] + 30)
    st.edit("ws-beat", lambda r: (S.CANCELLED, {}), actor="user:op", reason="cancel")
    with pytest.raises(LeaseLost):
        st.heartbeat(lease, 30)
    assert st.require("ws-beat").owner is None
    assert [r for r in st.owned() if r.workset_id == "ws-beat"] == []


def test_a_heartbeat_records_the_steps_jobs_without_racing_the_owner(store: Store) -> None:
    """Issue 11: a step's job reference rides on the lease heartbeat (no write of its own);
    the version stays, so the owner's next checkpoint, planned before the beat, still lands
    (and a beat after a cancel records nothing)."""
    store.register("ws-jobbeat", actor="t")
    rec, lease = store.claim("ws-jobbeat", "m1", 30)
    lease = store.heartbeat(lease, 30, jobs={"stage": "41"})
    got = store.require("ws-jobbeat")
    assert got.jobs == {"stage": "41"} and got.version == rec.version
    rec = store.transition(rec, S.IN_PROGRESS, actor="m1", reason="stage done", lease=lease,
                           fields={"step": "run", "steps_done": ["stage"],
                                   "jobs": {"stage": "41"}})
    store.heartbeat(lease, 30, jobs={"stage": "41", "run": "42"})
    assert store.require("ws-jobbeat").jobs == {"stage": "41", "run": "42"}
    store.edit("ws-jobbeat", lambda r: (S.CANCELLED, {}), actor="user:op", reason="cancel")
    with pytest.raises(LeaseLost):
        store.heartbeat(lease, 30, jobs={"stage": "41", "run": "42", "export": "43"})
    assert store.require("ws-jobbeat").jobs == {"stage": "41", "run": "42"}


def test_a_new_attempt_keeps_only_its_finished_steps_jobs(store: Store) -> None:
    """Issue 11: job references ride on later writes, so the record must not name a failed
    attempt's job as the step's job once the workset is queued again (``show``, ``cancel``);
    the failed workset itself still shows it."""
    store.register("ws-jobretry", actor="t")
    rec, lease = store.claim("ws-jobretry", "m1", 30)
    rec = store.transition(rec, S.IN_PROGRESS, actor="m1", reason="stage done", lease=lease,
                           fields={"step": "run", "steps_done": ["stage"],
                                   "jobs": {"stage": "41"}})
    rec = store.transition(rec, S.RETRYING, actor="m1", reason="run failed", lease=lease,
                           fields={"jobs": {"stage": "41", "run": "42"}, "retry_at": 0})
    assert store.require("ws-jobretry").jobs == {"stage": "41", "run": "42"}
    rec = store.transition(rec, S.READY, actor="m2", reason="retry due")
    assert rec.jobs == {"stage": "41"} == store.require("ws-jobretry").jobs
    rec, lease = store.claim("ws-jobretry", "m2", 30)
    rec = store.transition(rec, S.READY, actor="m2", reason="handed back", lease=lease,
                           fields={"jobs": {"stage": "41", "run": "43"}})
    assert store.require("ws-jobretry").jobs == {"stage": "41", "run": "43"}  # live job kept


def test_earlier_transitions_ride_on_one_write_with_their_own_times(store: Store) -> None:
    """Issue 11: a finished step's checkpoint rides on the next write that happens anyway;
    that write records it first, with the time, state, step and event it had, then its
    own; each transition must be allowed in turn."""
    store.register("ws-earlier", actor="t")
    rec, lease = store.claim("ws-earlier", "m1", 30)
    t0 = store.clock()
    rec = store.transition(
        rec, S.COMPLETE, actor="m1", reason="all steps done", lease=lease,
        fields={"step": None, "steps_done": ["stage", "run", "export"]},
        events=(("completed", "results"),),
        earlier=(Earlier(S.IN_PROGRESS, "stage done", t0 - 2, "run", (("step", "stage"),)),
                 Earlier(S.IN_PROGRESS, "run done", t0 - 1, "export", (("step", "run"),))))
    stored = store.require("ws-earlier")
    assert (stored.version, stored.state, stored.steps_done) == (
        rec.version, S.COMPLETE, ["stage", "run", "export"])
    assert [(h["from"], h["to"], h["reason"]) for h in stored.history[-3:]] == [
        (S.LOCKED, S.IN_PROGRESS, "stage done"), (S.IN_PROGRESS, S.IN_PROGRESS, "run done"),
        (S.IN_PROGRESS, S.COMPLETE, "all steps done")]
    assert [h["at"] for h in stored.history[-3:-1]] == [utc_iso(t0 - 2), utc_iso(t0 - 1)]
    assert stored.history_total == len(stored.history) == 5
    events = sorted((stored.outbox or {}).values(), key=lambda e: e["seq"])
    assert [(e["event"], e["state"], e.get("step"), e["at"]) for e in events] == [
        ("step", S.IN_PROGRESS, "run", t0 - 2), ("step", S.IN_PROGRESS, "export", t0 - 1),
        ("completed", S.COMPLETE, None, events[-1]["at"])]
    assert rec.appended == (1, 2, 3)
    store.register("ws-skip", actor="t")
    ready = store.require("ws-skip")
    with pytest.raises(IllegalTransition):  # ready -> complete is not allowed, even first
        store.transition(ready, S.CANCELLED, actor="x", reason="after",
                         earlier=(Earlier(S.COMPLETE, "skip ahead", t0),))
    assert store.require("ws-skip").history_total == 1


def test_illegal_and_stale_transitions_are_refused(store: Store) -> None:
    store.register("ws-ill", actor="t")
    ready = store.require("ws-ill")
    with pytest.raises(IllegalTransition):
        store.transition(ready, S.COMPLETE, actor="x", reason="skip ahead")
    rec, lease = store.claim("ws-ill", "m1", 30)
    with pytest.raises(ConflictError):  # stale view (version 1, state ready) loses
        store.transition(ready, S.CANCELLED, actor="x", reason="stale")
    done = store.transition(rec, S.COMPLETE, actor="m1", reason="done", lease=lease)
    with pytest.raises(IllegalTransition):
        store.transition(done, S.READY, actor="x", reason="again")
    assert store.require("ws-ill").state == S.COMPLETE


def test_owner_write_survives_operator_edit_but_not_cancel(store: Store) -> None:
    store.register("ws-edit", actor="t")
    rec, lease = store.claim("ws-edit", "m1", 30)
    store.edit("ws-edit", lambda r: (r.state, {"priority": "urgent"}), actor="op",
               reason="priority")
    rec = store.transition(rec, S.IN_PROGRESS, actor="m1", reason="staged", lease=lease,
                           fields={"step": "run"})
    assert (rec.state, rec.priority) == ("in_progress", "urgent")
    store.edit("ws-edit", lambda r: (S.CANCELLED, {}), actor="op", reason="cancel")
    with pytest.raises(LeaseLost):
        store.transition(rec, S.COMPLETE, actor="m1", reason="done", lease=lease)
    assert store.require("ws-edit").state == S.CANCELLED


def test_history_is_bounded_first_and_newest_kept(store: Store) -> None:
    store.register("ws-hist", actor="t")
    rec, lease = store.claim("ws-hist", "m1", 30)
    for i in range(30):
        rec = store.transition(rec, S.LOCKED, actor="m1", reason=f"tick {i}", lease=lease)
    rec = store.require("ws-hist")
    reasons = [h["reason"] for h in rec.history]
    assert len(rec.history) == store.keep_first + store.keep_last == 7
    assert reasons[:2] == ["registered", "claimed"]
    assert reasons[2:] == [f"tick {i}" for i in range(25, 30)]
    assert rec.history_total == 32
    assert rec.public()["history_omitted"] == 25
    assert {"at", "actor", "from", "to", "reason"} <= set(rec.history[-1])


def test_numbers_read_back_as_dynamodb_keeps_them(store: Store) -> None:
    """DynamoDB numbers have no int/float type: a whole float reads back as an int, so
    ``show`` prints a raised memory of 4.0 GB as ``memory_gb=4`` on every backend."""
    store.register("ws-num", actor="t", fields={"resources": {"memory_gb": 2.0}})
    rec, lease = store.claim("ws-num", "m1", 30)
    store.transition(rec, S.RETRYING, actor="m1", reason="oom", lease=lease,
                     fields={"resources": {"memory_gb": 4.0, "walltime_minutes": 12.5},
                             "resource_retries": 1, "retry_at": 7.0,
                             "summary": {"sizes": [1.0, 2.5]}})
    shown = store.require("ws-num").public()
    assert json.dumps([shown["resources"], shown["retry_at"], shown["summary"]]) == (
        '[{"memory_gb": 4, "walltime_minutes": 12.5}, 7, {"sizes": [1, 2.5]}]')
    assert format_show(store.require("ws-num"), {"step_seconds": {}, "logs_uri": "-",
                                                 "attempt_of": "attempt 1"}).count(
        "resources   memory_gb=4, walltime_minutes=12.5  (raised by 1 resource retry)") == 1


def _ground_truth(store: Store) -> Counter[str]:
    """States of every workset, read around the indexes (a full scan)."""
    counts: Counter[str] = Counter()
    if isinstance(store, MemoryStore):
        counts.update(i["state"] for i in store.memory.items.values())
        return counts
    assert isinstance(store, DynamoStore)
    for page in store.client.get_paginator("scan").paginate(TableName=store.table):
        for item in page["Items"]:
            if "workset_id" in item:
                counts[item["state"]["S"]] += 1
    return counts


def test_queue_depth_is_exact_per_state_cluster_and_customer(store: Store) -> None:
    plan = {S.READY: 7, S.LOCKED: 3, S.IN_PROGRESS: 4, S.RETRYING: 2, S.COMPLETE: 6,
            S.FAILED: 2, S.CANCELLED: 1}
    n = 0
    for state, count in plan.items():
        for _ in range(count):
            wid = f"ws-q{n:03d}"
            n += 1
            store.register(wid, actor="t", fields={"customer_id": f"c{n % 2}",
                                                   "preferred_cluster": "east"})
            if state == S.READY:
                continue
            if state == S.CANCELLED:
                store.edit(wid, lambda r: (S.CANCELLED, {}), actor="op", reason="x")
                continue
            rec, lease = store.claim(wid, "m1", 30)
            if state == S.IN_PROGRESS:
                store.transition(rec, S.IN_PROGRESS, actor="m1", reason="s", lease=lease,
                                 fields={"cluster": "west"})
            elif state in (S.RETRYING, S.COMPLETE, S.FAILED):
                store.transition(rec, state, actor="m1", reason="s", lease=lease,
                                 fields={"retry_at": 1.0} if state == S.RETRYING else {})
    depth = store.queue_depth()
    assert depth.states == {**dict.fromkeys(S.ALL, 0), **plan}
    assert dict(_ground_truth(store)) == plan
    assert depth.total == sum(plan.values())
    assert depth.by_cluster["west"] == {S.IN_PROGRESS: 4}
    assert depth.by_cluster["east"] == {S.READY: 7, S.LOCKED: 3, S.RETRYING: 2}
    assert sum(sum(v.values()) for v in depth.by_customer.values()) == 16
    assert set(depth.public()) == {"states", "by_cluster", "by_customer", "total"}


def test_active_items_read_every_active_workset_and_cluster_at_once(store: Store) -> None:
    """What an idle monitor's pass reads (issue 11): active worksets with what pacing needs
    (state, owner, lease version, retry time) and every cluster, none of the finished ones,
    in one request however many worksets have finished."""
    for n in range(30):
        store.register(f"ws-done{n:02d}", actor="t")
        store.edit(f"ws-done{n:02d}", lambda r: (S.CANCELLED, {}), actor="op", reason="x")
    assert store.active_items().worksets == []
    store.register("ws-a-ready", actor="t", priority="high")
    store.register("ws-a-owned", actor="t")
    store.register("ws-a-retry", actor="t")
    _, lease = store.claim("ws-a-owned", "m1", 30)
    rec, retry_lease = store.claim("ws-a-retry", "m1", 30)
    store.transition(rec, S.RETRYING, actor="m1", reason="s", lease=retry_lease,
                     fields={"retry_at": 1_000_123.5}, release=True)
    store.put_cluster({"name": "east", "heartbeat_at": 5.0, "lease_seconds": 90.0})
    seen = store.active_items()
    by_id = {r.workset_id: r for r in seen.worksets}
    assert sorted(by_id) == ["ws-a-owned", "ws-a-ready", "ws-a-retry"]
    assert (by_id["ws-a-ready"].state, by_id["ws-a-ready"].priority) == (S.READY, "high")
    owned = by_id["ws-a-owned"]
    assert (owned.state, owned.owner, owned.lease_token, owned.lease_expires) == (
        S.LOCKED, "m1", lease.token, lease.expires)
    assert (by_id["ws-a-retry"].state, by_id["ws-a-retry"].retry_at) == (S.RETRYING,
                                                                         1_000_123.5)
    assert seen.clusters == [{"name": "east", "heartbeat_at": 5.0, "lease_seconds": 90.0}]
    assert seen.requests == 1


def test_candidates_come_in_priority_then_age_order(store: Store) -> None:
    for i, p in enumerate(["low", "normal", "urgent", "high", "normal", "urgent"]):
        store.register(f"ws-p{i}", actor="t", priority=p, created=1_000_000.0 + i)
    pages = [[r.workset_id for r in page] for page in store.ready_pages(4)]
    assert [w for page in pages for w in page] == [
        "ws-p2", "ws-p5", "ws-p3", "ws-p1", "ws-p4", "ws-p0"]
    assert pages[0] == ["ws-p2", "ws-p5", "ws-p3", "ws-p1"]
    # ageing: only non-urgent worksets created before the cut-off
    assert [r.workset_id for r in store.aged(10, 1_000_003.5)] == ["ws-p3", "ws-p1", "ws-p0"]


def test_ready_summary_counts_one_priority_and_names_its_oldest(store: Store) -> None:
    """What the metrics sample reads each tick (a monitor on any backend samples it)."""
    for i, p in enumerate(["normal", "high", "normal", "low"]):
        store.register(f"ws-r{i}", actor="t", priority=p, created=1_000_000.0 + i)
    store.claim("ws-r0", "m1", 30.0)  # claimed: no longer ready
    oldest = store.require("ws-r2").created_at
    assert store.ready_summary(priority_rank("normal")) == (1, oldest)
    assert store.ready_summary(priority_rank("urgent")) == (0, None)


def test_pause_flag_round_trips(store: Store) -> None:
    assert store.control().paused is False
    assert store.set_paused(True, actor="op", reason="maintenance").paused is True
    rec = store.control()
    assert (rec.paused, rec.reason, rec.changed_by) == (True, "maintenance", "op")
    assert store.set_paused(False, actor="op").paused is False
    assert store.queue_depth().total == 0  # the control item is not a workset


def test_list_is_newest_first_and_filters(store: Store) -> None:
    for i in range(5):
        store.register(f"ws-l{i}", actor="t", created=2_000_000.0 + i,
                       fields={"customer_id": "a" if i % 2 else "b"})
    store.edit("ws-l1", lambda r: (S.CANCELLED, {}), actor="op", reason="x")
    assert [r.workset_id for r in store.newest()] == [f"ws-l{i}" for i in (4, 3, 2, 1, 0)]
    assert [r.workset_id for r in store.newest(state=S.CANCELLED)] == ["ws-l1"]
    assert [r.workset_id for r in store.newest(customer="a")] == ["ws-l3", "ws-l1"]
    assert len(store.newest(limit=2)) == 2


def test_race_eight_claimers_two_hundred_worksets(store: Store) -> None:
    ids = [f"ws-r{i:03d}" for i in range(200)]
    with ThreadPoolExecutor(8) as pool:  # setup, not the race: independent items
        list(pool.map(lambda wid: store.register(wid, actor="t"), ids))
    wins: dict[str, list[str]] = {}
    lock = threading.Lock()
    barrier = threading.Barrier(8)

    def claimer(name: str) -> None:
        mine = _clone(store, store.clock)
        barrier.wait()
        for wid in ids:  # everyone goes for the same front of the queue
            try:
                mine.claim(wid, name, 30)
            except ConflictError:
                continue
            with lock:
                wins.setdefault(wid, []).append(name)

    threads = [threading.Thread(target=claimer, args=(f"m{i}",)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(wins) == ids
    assert all(len(v) == 1 for v in wins.values()), {k: v for k, v in wins.items()
                                                     if len(v) > 1}
    owners = {r.workset_id: r.owner for r in store.many(ids).values()}
    assert all(owners[w] == wins[w][0] for w in ids)
