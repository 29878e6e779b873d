"""Cap slots held under claim tokens (issue 9 item 2), on the in-memory store: a late or
losing monitor never frees a slot it does not hold; a takeover keeps the count exact; a
crashed holder's slot is still reclaimed."""

from __future__ import annotations

import time

from daylib import states as S
from daylib.caps import Caps
from daylib.config import CapSettings
from daylib.leases import LeaseWatch
from daylib.store.memory import MemoryStore

CAP_OF_ONE = CapSettings(global_max=1, stale_holder_seconds=60)


def test_takeover_rekeys_the_slot_and_the_dead_owner_cannot_free_it() -> None:
    store = MemoryStore()
    for wid in ("ws-1", "ws-2"):
        store.register(wid, actor="t")
    dead, heir, other = (Caps(CAP_OF_ONE, store.twin(), "local", m) for m in ("a", "b", "c"))
    assert dead.acquire("ws-1", None) is None
    store.claim("ws-1", "a", 30)
    mono = [0.0]
    watch = LeaseWatch(30, clock=lambda: mono[0])
    assert watch.expired(store.owned()) == []
    mono[0] += 30
    [stale] = watch.expired(store.owned())
    store.claim("ws-1", "b", 30, expired=stale)
    assert heir.adopt("ws-1", None) is None
    assert store.slot_holders("global")["ws-1"]["by"] == "b"
    dead.release("ws-1", None)  # the old owner wakes up and gives back what it took
    assert other.acquire("ws-2", None) is not None, "the cap of 1 was exceeded"
    heir.release("ws-1", None)
    assert other.acquire("ws-2", None) is None


def test_adopt_without_a_slot_and_the_cap_full_is_refused() -> None:
    store = MemoryStore()
    holder, heir = Caps(CAP_OF_ONE, store, "local", "a"), Caps(CAP_OF_ONE, store, "local", "b")
    assert holder.acquire("ws-1", None) is None
    assert heir.adopt("ws-2", None) is not None
    assert set(store.slot_holders("global")) == {"ws-1"}


def test_a_crashed_holders_slot_is_reclaimed_but_a_running_ones_is_not() -> None:
    past = MemoryStore(clock=lambda: time.time() - 600)  # slots taken 10 minutes ago
    for wid in ("ws-crash", "ws-run", "ws-new"):
        past.register(wid, actor="t")
    cfg = CapSettings(global_max=2, stale_holder_seconds=60)
    crashed, running = Caps(cfg, past.twin(), "local", "a"), Caps(cfg, past.twin(), "local", "b")
    assert crashed.acquire("ws-crash", None) is None  # then died before claiming
    assert running.acquire("ws-run", None) is None
    past.claim("ws-run", "b", 30)
    survivor = Caps(cfg, past.twin(), "local", "c")
    assert survivor.acquire("ws-new", None) is not None  # both slots held
    assert survivor.reconcile() == 1
    assert set(past.slot_holders("global")) == {"ws-run"}
    assert past.require("ws-run").state == S.LOCKED
    assert survivor.acquire("ws-new", None) is None
