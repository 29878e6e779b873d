"""The in-memory store: the same contract as DynamoDB's, for tests and tools that do not test
AWS itself. One lock per table makes every conditional write atomic under threads, as
DynamoDB does for a single item; items keep the same layout (index attributes included), so
ordering and projections match the DynamoDB store's. Values are stored as DynamoDB keeps
them (see ``_stored``), so what a read returns does not depend on the backend."""

from __future__ import annotations

import copy
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

from daylib import states as S
from daylib.config import (
    HISTORY_KEEP_FIRST,
    HISTORY_KEEP_LAST,
    OUTBOX_MAX_PENDING,
    OUTBOX_STALE_SECONDS,
)
from daylib.errors import ConflictError, LeaseLost
from daylib.store.items import (
    CLAIM_KEY,
    OUTBOX_PART,
    matches,
    projected,
    record_from_item,
)
from daylib.store.queries import QueueReads
from daylib.store.records import ActiveItems, ControlRecord, Lease, WorksetRecord, utc_iso
from daylib.store.rules import Changes, ClaimPlan, conflict, next_expiry


class MemoryTable:
    """What a DynamoDB table is to the DynamoDB store: shared by every handle (monitor)."""

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.items: dict[str, dict[str, Any]] = {}
        self.clusters: dict[str, dict[str, Any]] = {}
        self.slots: dict[str, dict[str, dict[str, Any]]] = {}
        self.control: dict[str, Any] = {}
        self.created = False


class MemoryStore(QueueReads):
    """Worksets, leases, history, caps and the pause flag in a process's memory."""

    def __init__(self, table: MemoryTable | None = None, *,
                 keep_first: int = HISTORY_KEEP_FIRST, keep_last: int = HISTORY_KEEP_LAST,
                 clock: Callable[[], float] = time.time,
                 stale_seconds: float = OUTBOX_STALE_SECONDS,
                 max_pending: int = OUTBOX_MAX_PENDING) -> None:
        super().__init__(keep_first=keep_first, keep_last=keep_last, clock=clock,
                         stale_seconds=stale_seconds, max_pending=max_pending)
        self.memory = table or MemoryTable()

    def twin(self, *, clock: Callable[[], float] | None = None,
             stale_seconds: float | None = None) -> MemoryStore:
        """Another handle on the same table (another monitor), with its own clock."""
        return MemoryStore(self.memory, keep_first=self.keep_first, keep_last=self.keep_last,
                           clock=clock or self.clock,
                           stale_seconds=stale_seconds or self.stale_seconds,
                           max_pending=self.max_pending)

    def create_table(self) -> bool:
        with self.memory.lock:
            created, self.memory.created = not self.memory.created, True
            return created

    # ------------------------------------------------------------------ reads

    def _items(self, attr: str, value: str) -> list[dict[str, Any]]:
        with self.memory.lock:
            return [copy.deepcopy(i) for i in self.memory.items.values()
                    if i.get(attr) == value]

    def get(self, workset_id: str) -> WorksetRecord | None:
        with self.memory.lock:
            item = self.memory.items.get(workset_id)
            return record_from_item(copy.deepcopy(item)) if item else None

    def many(self, ids: list[str]) -> dict[str, WorksetRecord]:
        return {i: rec for i in dict.fromkeys(ids) if (rec := self.get(i)) is not None}

    def existing(self, ids: list[str]) -> set[str]:
        with self.memory.lock:
            return {i for i in ids if i in self.memory.items}

    def active(self, state: str, *, prefix: str | None = None, limit: int | None = None,
               descending: bool = False, before: str | None = None) -> list[WorksetRecord]:
        rows = sorted(self._items("active_state", state), key=lambda i: str(i["queue_key"]),
                      reverse=descending)
        if prefix is not None:
            rows = [i for i in rows if str(i["queue_key"]).startswith(prefix)
                    and (before is None or str(i["queue_key"]) <= f"{prefix}{before}")]
        return [projected(i) for i in rows[:limit]]

    def ready_pages(self, page_size: int) -> Iterator[list[WorksetRecord]]:
        rows = self.active(S.READY)
        for i in range(0, len(rows), page_size):
            yield rows[i:i + page_size]

    def active_items(self) -> ActiveItems:
        with self.memory.lock:
            rows = [copy.deepcopy(i) for i in self.memory.items.values()
                    if i.get("active_state") in S.ACTIVE]
        rows.sort(key=lambda i: (str(i["active_state"]), str(i["queue_key"])))
        return ActiveItems([projected(i) for i in rows], self.clusters(), 1)

    def ready_summary(self, rank: int) -> tuple[int, str | None]:
        ready = self.active(S.READY, prefix=f"{rank}#")
        return len(ready), ready[0].created_at if ready else None

    def _active_pages(self, state: str) -> Iterator[list[dict[str, Any]]]:
        yield self._items("active_state", state)

    def _terminal_counts(self, state: str) -> Iterator[int]:
        yield len(self._items("done_state", state))

    def _newest_done(self, state: str, cluster: str | None, customer: str | None,
                     limit: int) -> list[WorksetRecord]:
        rows = sorted(self._items("done_state", state), key=lambda i: str(i["created_key"]),
                      reverse=True)
        return [r for r in map(record_from_item, rows) if matches(r, cluster, customer)]

    def outbox_due(self, now: float, limit: int = 100) -> list[str]:
        rows = [i for i in self._items("outbox_part", OUTBOX_PART) if i["outbox_due"] <= now]
        return [i["pk"] for i in sorted(rows, key=lambda i: float(i["outbox_due"]))][:limit]

    # ------------------------------------------------------------------ write primitives

    def _conflict(self, workset_id: str) -> ConflictError:
        item = self.memory.items.get(workset_id)
        err = conflict(workset_id, item["state"] if item else None)
        err.owner = item.get("owner_id") if item else None
        return err

    def _update(self, workset_id: str, expect: dict[str, Any], changes: Changes) -> None:
        with self.memory.lock:
            item = self.memory.items.get(workset_id)
            if item is None or any(item.get(k) != v for k, v in expect.items()):
                raise self._conflict(workset_id)
            _apply(item, changes.attrs)
            for (attr, key), v in changes.entry_sets.items():
                item.setdefault(attr, {})[key] = _stored(v)
            for attr, key in changes.entry_removes:
                item.get(attr, {}).pop(key, None)
            for attr, items in changes.appends.items():
                item.setdefault(attr, []).extend(_stored(items))

    def _put_new(self, item: dict[str, Any]) -> bool:
        with self.memory.lock:
            if item["pk"] in self.memory.items:
                return False
            self.memory.items[item["pk"]] = _stored(item)
            return True

    def _claim_write(self, plan: ClaimPlan) -> tuple[WorksetRecord, bool]:
        with self.memory.lock:
            item = self.memory.items.get(plan.workset_id)
            if item is None or not _claimable(item, plan):
                raise self._conflict(plan.workset_id)
            if plan.expired is None:
                item.update(state=S.LOCKED, active_state=S.LOCKED)
            _apply(item, {"owner_id": plan.owner, "lease_expires": plan.now + plan.lease_seconds,
                          "updated_at": utc_iso(plan.now), "reason": None, **plan.fields})
            item.setdefault("step", "stage")
            item["history"] = [*item.get("history", []), _stored(plan.entry)]
            for attr in ("lease_token", "version", "history_total"):
                item[attr] = item.get(attr, 0) + 1
            if plan.drop_keys is not None:
                box = item.setdefault("outbox", {})
                for key in plan.drop_keys:
                    box.pop(key, None)
                if plan.started is not None:
                    box[CLAIM_KEY] = _stored(plan.started)
                    item["event_seq"] = item["claim_seq"] = item.get("event_seq", 0) + 1
                _apply(item, {"outbox_part": None, "outbox_due": None})
            return record_from_item(copy.deepcopy(item)), True

    def heartbeat(self, lease: Lease, lease_seconds: float, *,
                  jobs: dict[str, str] | None = None) -> Lease:
        expires = next_expiry(self.clock(), lease, lease_seconds)
        with self.memory.lock:
            item = self.memory.items.get(lease.workset_id) or {}
            if ((item.get("owner_id"), item.get("lease_token")) != (lease.owner, lease.token)
                    or item.get("state") not in S.OWNED):
                raise LeaseLost(f"lease on {lease.workset_id} lost")
            item["lease_expires"] = _stored(expires)
            if jobs is not None:
                item["jobs"] = _stored(jobs)
        return Lease(lease.workset_id, lease.owner, lease.token, expires)

    def note_waiting(self, workset_id: str, reason: str) -> None:
        with self.memory.lock:
            item = self.memory.items.get(workset_id)
            if item is not None and item.get("state") == S.READY:
                item["reason"] = reason[:300]

    def ack_outbox(self, workset_id: str, keys: list[str]) -> None:
        with self.memory.lock:
            item = self.memory.items.get(workset_id)
            if item is None:
                return
            box = item.get("outbox")
            if box is None:
                if not keys:
                    _apply(item, {"outbox_part": None, "outbox_due": None})
                return
            if set(box) == set(keys):  # nothing else pending: drop the marker too
                _apply(item, {"outbox_part": None, "outbox_due": None})
            for key in keys:
                box.pop(key, None)

    # ------------------------------------------------------------------ clusters, caps, control

    def put_cluster(self, info: dict[str, Any]) -> None:
        with self.memory.lock:
            self.memory.clusters[info["name"]] = _stored(info)

    def clusters(self) -> list[dict[str, Any]]:
        with self.memory.lock:
            return [copy.deepcopy(v) for _, v in sorted(self.memory.clusters.items())]

    def acquire_slot(self, scope: str, workset_id: str, limit: int, holder: str,
                     token: str) -> bool:
        with self.memory.lock:
            holders = self.memory.slots.setdefault(scope, {})
            held = holders.get(workset_id)
            if held is not None and held["token"] != token:
                return False
            if held is None and len(holders) >= limit:
                return False
            holders[workset_id] = _stored({"at": self.clock(), "by": holder, "token": token})
            return True

    def adopt_slot(self, scope: str, workset_id: str, limit: int, holder: str,
                   token: str) -> bool:
        with self.memory.lock:
            holders = self.memory.slots.setdefault(scope, {})
            if workset_id not in holders and len(holders) >= limit:
                return False
            holders[workset_id] = _stored({"at": self.clock(), "by": holder, "token": token})
            return True

    def release_slot(self, scope: str, workset_id: str, token: str) -> bool:
        with self.memory.lock:
            holders = self.memory.slots.get(scope, {})
            if holders.get(workset_id, {}).get("token") != token:
                return False
            del holders[workset_id]
            return True

    def slot_holders(self, scope: str) -> dict[str, dict[str, Any]]:
        with self.memory.lock:
            return copy.deepcopy(self.memory.slots.get(scope, {}))

    def control(self) -> ControlRecord:
        with self.memory.lock:
            return ControlRecord(**self.memory.control)

    def set_paused(self, paused: bool, *, actor: str, reason: str = "") -> ControlRecord:
        with self.memory.lock:
            self.memory.control = {"paused": paused, "changed_by": actor, "reason": reason or None,
                                   "changed_at": utc_iso(self.clock())}
            return ControlRecord(**self.memory.control)


def _claimable(item: dict[str, Any], plan: ClaimPlan) -> bool:
    """The claim's condition: ready, or still the lease version the claimer saw expire."""
    old = plan.expired
    if old is None:
        return bool(item.get("state") == S.READY)
    return ((item.get("state"), item.get("owner_id"), item.get("lease_token"),
             item.get("lease_expires")) == (old.state, old.owner, old.lease_token,
                                            old.lease_expires))


def _apply(item: dict[str, Any], attrs: dict[str, Any]) -> None:
    """SET each attribute, REMOVE those given as None."""
    for k, v in attrs.items():
        if v is None:
            item.pop(k, None)
        else:
            item[k] = _stored(v)


def _stored(value: Any) -> Any:
    """A copy of ``value`` as DynamoDB keeps it: a number has no int/float type (a whole one
    reads back as an int, so 4.0 shows as 4), a tuple is a list."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, dict):
        return {k: _stored(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_stored(v) for v in value]
    return value
