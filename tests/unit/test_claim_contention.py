"""Claiming under contention: what a monitor does after losing a race (in memory: this is the
claimer's logic; the race itself is a conditional write every backend refuses alike)."""

from __future__ import annotations

import time

from daylib import states as S
from daylib import wiring
from daylib.aws import AwsClients
from daylib.config import Settings
from daylib.executors.local import LocalExecutor
from daylib.store.memory import MemoryStore
from daylib.store.records import Lease, WorksetRecord


def test_a_lost_race_looks_at_the_queue_again_instead_of_racing_down_a_stale_list() -> None:
    """Seen (issue 11): four monitors lost 130 races for 300 claims. One that lost a race
    went on down candidates read as long ago as the one it lost, which the other monitors
    had taken too: a failed conditional write for each."""
    settings = Settings()
    store = MemoryStore()
    mon = wiring.monitor_for(settings, AwsClients(settings.aws), store=store,
                             executor=LocalExecutor(), step_env={})
    for i in range(12):
        assert store.register(f"ws-{i:02d}", actor="t", created=1000.0 + i)
    started: list[str] = []

    def start(rec: WorksetRecord, lease: Lease) -> None:
        started.append(rec.workset_id)

    mon.claimer._start = start
    mon.claimer._free = lambda: 2
    mon.registry.beat(0, False, idle=False)  # this cluster is up: work may be routed to it
    now = time.time()
    mon.claimer.fill(now)
    assert started == ["ws-00", "ws-01"]
    other = store.twin()
    for i in range(2, 8):  # another monitor takes what this one read after them
        other.claim(f"ws-{i:02d}", "m-other", 30)
    mon.claimer.fill(now)  # within the poll interval: the candidates read above are kept
    assert mon.stats.conflicts == 1
    assert len(started) == 4 and set(started[2:]) <= {f"ws-{i:02d}" for i in range(8, 12)}
    mine = [r for r in store.active(S.LOCKED) if r.owner == mon.monitor_id]
    assert sorted(r.workset_id for r in mine) == sorted(started)
