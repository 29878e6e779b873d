"""An idle monitor on a simulated clock (issue 11): what it asks of the store per minute,
counted through the store's public surface on the in-memory store, flat however many worksets
have finished; a retry falling due while idle is promoted at its time; the idle cluster is
never shown stale. The monitor's own loop turns (``Monitor.step``) are driven by the clock."""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable
from itertools import pairwise
from pathlib import Path
from typing import Any

import pytest

from daylib import states as S
from daylib import wiring
from daylib.aws import AwsClients
from daylib.clusters import ClusterInfo
from daylib.config import Settings
from daylib.executors.local import LocalExecutor
from daylib.intake import ScanReport
from daylib.intake_service import IntakeService
from daylib.monitor import Monitor
from daylib.s3 import S3Objects
from daylib.store.memory import MemoryStore

START = 1_800_000_000.0
IDLE_STORE_CALLS_PER_MINUTE = 2.2  # the idle read and the cluster heartbeat, once a minute


class Counted:
    """A store whose public calls are counted (each is one AWS request on DynamoDB, or a
    few for the per-state reads an idle monitor must no longer make)."""

    def __init__(self, store: MemoryStore) -> None:
        self._store = store
        self.calls: Counter[str] = Counter()

    def __getattr__(self, name: str) -> Any:
        value = getattr(self._store, name)
        if name.startswith("_") or not callable(value):
            return value

        def counted(*args: Any, **kwargs: Any) -> Any:
            self.calls[name] += 1
            return value(*args, **kwargs)
        return counted


class Clock:
    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> float:
        return self.now


def _monitor(tmp_path: Path, clock: Clock, store: Any) -> Monitor:
    s = Settings()  # the product's timers: poll 2 s, idle up to 60 s, cluster beat 10 s
    s.monitor.workdir = str(tmp_path / "work")
    s.monitor.monitor_id = "idle-monitor"
    s.monitor.cluster = "alpha"
    return wiring.monitor_for(s, AwsClients(s.aws), store=store, s3=S3Objects(object()),
                              executor=LocalExecutor(), step_env={}, clock=clock)


def _serve(mon: Monitor, clock: Clock, seconds: float,
           after: Callable[[float], None] = lambda due: None) -> None:
    """Turns of the monitor's loop as its clock says they are due (no event wakes it)."""
    end = clock.now + seconds
    while clock.now < end:
        due = mon.step(clock.now)
        after(due)
        clock.now = max(due, clock.now + 0.01)


def _finished(store: MemoryStore, n: int) -> None:
    for i in range(n):
        store.register(f"ws-old{i:05d}", actor="t", created=START - 86400 + i)
        store.edit(f"ws-old{i:05d}", lambda r: (S.CANCELLED, {}), actor="op", reason="x")


@pytest.mark.parametrize("history", [0, 1000])
def test_an_idle_monitor_asks_the_store_twice_a_minute_flat_in_history(
        tmp_path: Path, history: int) -> None:
    clock, memory = Clock(), MemoryStore()
    _finished(memory, history)
    store = Counted(memory)
    mon = _monitor(tmp_path, clock, store)
    _serve(mon, clock, 300)  # settle: the passes slow down to the idle pace
    store.calls.clear()
    _serve(mon, clock, 600)
    per_minute = sum(store.calls.values()) / 10
    assert per_minute <= IDLE_STORE_CALLS_PER_MINUTE, store.calls
    assert set(store.calls) == {"active_items", "put_cluster"}, store.calls


def test_a_retry_falling_due_while_idle_is_promoted_at_its_time(tmp_path: Path) -> None:
    clock, memory = Clock(), MemoryStore()
    mon = _monitor(tmp_path, clock, Counted(memory))
    _serve(mon, clock, 300)
    assert mon.pacer.idle
    memory.set_paused(True, actor="op")  # promoted, not claimed: the test ends at ready
    due_at = clock.now + 1000.0
    memory.register("ws-retry", actor="t")
    rec, lease = memory.claim("ws-retry", "gone", 30)
    memory.transition(rec, S.RETRYING, actor="gone", reason="transient", lease=lease,
                      fields={"retry_at": due_at}, release=True)
    promoted_at: list[float] = []

    def watch(_: float) -> None:
        if not promoted_at and memory.require("ws-retry").state == S.READY:
            promoted_at.append(clock.now)
    _serve(mon, clock, 1200, watch)
    assert promoted_at and due_at <= promoted_at[0] <= due_at + 5.0, (due_at, promoted_at)


def test_an_idle_cluster_is_never_shown_stale(tmp_path: Path) -> None:
    """``clusters`` judges each cluster by the lease its item carries; an idle monitor beats
    once a minute, so its item must outlast that."""
    clock, memory = Clock(), MemoryStore()
    mon = _monitor(tmp_path, clock, memory)
    seen: Counter[str] = Counter()

    def status_until(due: float) -> None:
        (item,) = memory.clusters()
        info = ClusterInfo.from_item(item)
        for t in (clock.now, (clock.now + due) / 2, due - 0.01):
            seen[info.status(max(t, clock.now))] += 1
    _serve(mon, clock, 1800, status_until)
    assert mon.pacer.idle and set(seen) == {"active"}, seen


def test_work_brings_the_busy_heartbeat_back(tmp_path: Path) -> None:
    """Idle, the cluster beats once a minute with a long lease; from the idle pass that sees
    work on, it beats every ``routing.cluster_heartbeat_seconds`` with the busy lease."""
    clock, memory = Clock(), MemoryStore()
    mon = _monitor(tmp_path, clock, memory)
    _serve(mon, clock, 300)
    (idle,) = memory.clusters()
    assert idle["lease_seconds"] > 2 * mon.cfg.idle_max_seconds
    memory.register("ws-new", actor="t", fields={  # seen, not claimed here: it stays
        "preferred_cluster": "beta", "routing": {"affinity": "hard"}})
    busy_at: list[float] = []
    beats: list[dict[str, Any]] = []

    def watch(_: float) -> None:
        if not busy_at and not mon.pacer.idle:
            busy_at.append(clock.now)
        (item,) = memory.clusters()
        if busy_at and item["heartbeat_at"] >= busy_at[0] and item not in beats:
            beats.append(item)
    _serve(mon, clock, 2 * mon.cfg.idle_max_seconds, watch)
    r = mon.settings.routing
    assert busy_at and beats, (busy_at, beats)
    assert beats[0]["heartbeat_at"] - busy_at[0] <= r.cluster_heartbeat_seconds
    assert {b["lease_seconds"] for b in beats} == {r.cluster_stale_seconds}
    gaps = [b["heartbeat_at"] - a["heartbeat_at"] for a, b in pairwise(beats)]
    assert gaps and max(gaps) <= r.cluster_heartbeat_seconds + 0.1, gaps


class _Listed:
    """An intake whose reconciliation made ``list_requests`` list requests."""

    def __init__(self, list_requests: int) -> None:
        self.list_requests = list_requests
        self.scanned = threading.Event()

    def scan(self) -> ScanReport:
        self.scanned.set()
        return ScanReport(list_requests=self.list_requests)


class _QuietQueue:
    def poll_once(self, handle: Any, wait_seconds: int | None = None, *,
                  wake: Any = None) -> int:
        time.sleep(0.05)
        return 0


@pytest.mark.parametrize("list_requests", [0, 1, 10, 100])
def test_the_reconciliation_listing_costs_flat_in_history(list_requests: int) -> None:
    """With the event queue, the listing only reconciles: its list requests per minute stay
    within the idle budget however many folders the prefix holds or are waiting."""
    intake = _Listed(list_requests)
    service = IntakeService(intake, _QuietQueue(), 600.0,  # type: ignore[arg-type]
                            lambda: None)
    service.start()
    try:
        assert intake.scanned.wait(60)
    finally:
        service.stop()
    assert max(1, list_requests) / service.listing_pause * 60 <= 0.25
    assert service.listing_pause >= 600.0
