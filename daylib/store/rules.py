"""Domain rules above every store backend: which transitions are allowed, what history keeps,
how events ride on writes, and the owner's retry after an operator edit.

Events ride on writes one way: a caller names the events a write records and the entries
it already published (dropped in the same write); the write returns the new record, whose
``appended`` says which events it added, and the caller hands that to the publisher
(daylib/outbox.py). The store never calls the publisher.

A backend supplies only primitives (``_update``: one conditional write whose condition is a
set of expected attribute values; ``_put_new``; ``_claim_write``; reads). Everything that
decides *what* to write lives here, once, so the DynamoDB and in-memory stores cannot drift.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from dataclasses import fields as dataclass_fields
from typing import Any

from daylib import states as S
from daylib.errors import ConflictError, IllegalTransition, LeaseLost, NotFound, StoreError
from daylib.store.events import entry as event_entry
from daylib.store.items import (
    CLAIM_KEY,
    OUTBOX_PART,
    index_fields,
    outbox_key,
    queue_key,
    record_from_item,
)
from daylib.store.records import Lease, WorksetRecord, utc_iso

log = logging.getLogger(__name__)

OPERATOR_RETRIES = 8
_RECORD_FIELDS = {f.name for f in dataclass_fields(WorksetRecord)} - {"owner"}
_LIST_FIELDS = {"steps_done", "after", "history"}
_DICT_FIELDS = {"summary", "jobs", "routing", "resources"}
Events = Sequence[tuple[str, str]]  # (event, message) pairs a write records
Published = Mapping[int, str]  # {seq: key} of entries the caller published: dropped by the write


@dataclass(frozen=True)
class Earlier:
    """A transition made before a write and recorded by it (a finished step's checkpoint
    riding on the next write that happens anyway): its history entry and events carry its
    own time, state and step, ahead of the write's own."""

    to: str
    reason: str
    at: float
    step: str | None = None
    events: Events = ()


def _ended_attempt_jobs(rec: WorksetRecord, to: str) -> dict[str, Any]:
    """A workset queued again for a new attempt keeps only its finished steps' jobs: the
    others ended with the attempt, and ``show`` or ``cancel`` must not name them as running
    before the new attempt's first write records its own (a hand-back keeps its live job)."""
    if to != S.READY or rec.state not in (S.RETRYING, *S.TERMINAL):
        return {}
    kept = {step: job for step, job in rec.jobs.items() if step in rec.steps_done}
    return {"jobs": kept or None} if kept != rec.jobs else {}


@dataclass
class Changes:
    """What one write does: top-level attributes set (None removes) and entries of map
    attributes set or removed (``(map, key)``)."""

    attrs: dict[str, Any] = field(default_factory=dict)
    entry_sets: dict[tuple[str, str], Any] = field(default_factory=dict)
    entry_removes: list[tuple[str, str]] = field(default_factory=list)
    appends: dict[str, list[Any]] = field(default_factory=dict)  # list attributes grown


@dataclass
class ClaimPlan:
    """A claim (``expired`` None) or takeover, decided above the backend."""

    workset_id: str
    owner: str
    now: float
    lease_seconds: float
    expired: WorksetRecord | None
    entry: dict[str, Any]
    fields: dict[str, Any]
    drop_keys: list[str] | None = None  # None: leave the outbox alone
    started: dict[str, Any] | None = None  # the ``started`` entry, keyed CLAIM_KEY


def next_expiry(now: float, lease: Lease, lease_seconds: float) -> float:
    """A heartbeat's ``lease_expires``: now + lease on the owner's clock, and always a new
    value (claimants read it as a version; a clock that stepped back must not repeat one)."""
    return max(now + lease_seconds, lease.expires + 0.001)


def history_entry(at: float, src: str | None, dst: str, actor: str,
                  reason: str) -> dict[str, Any]:
    return {"at": utc_iso(at), "actor": actor, "from": src, "to": dst, "reason": reason[:500]}


def bounded(history: list[dict[str, Any]], entry: dict[str, Any], keep_first: int,
            keep_last: int) -> list[dict[str, Any]]:
    """Keep the first ``keep_first`` and the newest ``keep_last`` entries."""
    full = [*history, entry]
    if len(full) <= keep_first + keep_last:
        return full
    return full[:keep_first] + full[-keep_last:]


def conflict(workset_id: str, state: str | None) -> ConflictError:
    """A conditional write refused because the item moved on (``state``) or is gone (None)."""
    if state is None:
        return ConflictError(f"workset {workset_id} does not exist")
    return ConflictError(f"workset {workset_id} changed concurrently (now {state})")


def check_allowed(workset_id: str, state: str, to: str) -> None:
    if to != state and not S.allowed(state, to):
        raise IllegalTransition(f"workset {workset_id} is {state}; cannot move it to {to}")


class WorksetRules:
    """The store's domain half; backends subclass it and implement the primitives."""

    def __init__(self, *, keep_first: int, keep_last: int, clock: Callable[[], float],
                 stale_seconds: float, max_pending: int) -> None:
        self.keep_first = keep_first
        self.keep_last = keep_last
        self.clock = clock
        # Pending events become anyone's to publish after ``stale_seconds``; at most
        # ``max_pending`` stay on an item while publishing fails (the oldest are dropped).
        self.stale_seconds = stale_seconds
        self.max_pending = max_pending

    # ------------------------------------------------------------------ primitives

    def get(self, workset_id: str) -> WorksetRecord | None:
        raise NotImplementedError

    def active(self, state: str, *, prefix: str | None = None, limit: int | None = None,
               descending: bool = False, before: str | None = None) -> list[WorksetRecord]:
        raise NotImplementedError

    def _update(self, workset_id: str, expect: dict[str, Any], changes: Changes) -> None:
        """One conditional write: every ``expect`` attribute equals its value, or
        ConflictError and nothing changes."""
        raise NotImplementedError

    def _put_new(self, item: dict[str, Any]) -> bool:
        """Write ``item`` only if its key is absent; False if it exists."""
        raise NotImplementedError

    def _claim_write(self, plan: ClaimPlan) -> tuple[WorksetRecord, bool]:
        """The claim as one conditional write; returns the new record and whether the outbox
        part of the plan was applied. ConflictError when someone else got there first."""
        raise NotImplementedError

    # ------------------------------------------------------------------ reads

    def require(self, workset_id: str) -> WorksetRecord:
        rec = self.get(workset_id)
        if rec is None:
            raise NotFound(f"no workset {workset_id!r}")
        return rec

    def aged(self, limit: int, older_than: float) -> list[WorksetRecord]:
        """Ready worksets below the top priority created before ``older_than``: those that
        ageing may promote past newer, higher-priority work (one query per level)."""
        from daylib.config import PRIORITIES

        cutoff = utc_iso(older_than)
        out: list[WorksetRecord] = []
        for rank in range(1, len(PRIORITIES)):
            out.extend(self.active(S.READY, prefix=f"{rank}#", limit=limit, before=cutoff))
        return out

    def owned(self) -> list[WorksetRecord]:
        """Owned worksets with their lease versions (daylib/leases.py judges which are
        dead: the store compares no clocks)."""
        return [r for st in S.OWNED for r in self.active(st)]

    def due_retries(self, now: float) -> list[WorksetRecord]:
        return [r for r in self.active(S.RETRYING) if (r.retry_at or 0) <= now]

    # ------------------------------------------------------------------ writes

    def register(self, workset_id: str, *, actor: str, priority: str = "normal",
                 fields: dict[str, Any] | None = None, created: float | None = None,
                 events: Events = ()) -> WorksetRecord | None:
        """Record a new workset as ``ready`` and return it; a second registration of the same
        id is a no-op (returns None). ``events`` (``registered``) ride on the same write."""
        now = self.clock() if created is None else created
        created_at = utc_iso(now)
        item: dict[str, Any] = {k: v for k, v in (fields or {}).items() if v not in (None, [], {})}
        item.update({
            "pk": workset_id, "workset_id": workset_id, "state": S.READY, "priority": priority,
            "created_at": created_at, "updated_at": created_at, "attempt": 1, "version": 1,
            "lease_token": 0, "active_state": S.READY,
            "queue_key": queue_key(priority, created_at, workset_id),
            "history": [history_entry(self.clock(), None, S.READY, actor, "registered")],
            "history_total": 1, "outbox": {}, "event_seq": 0,
        })
        if events:
            written = self.clock()
            item["outbox"] = {outbox_key(n): event_entry(
                event, message, by=actor, at=written, seq=n, state=S.READY, attempt=1)
                for n, (event, message) in enumerate(events, start=1)}
            item.update(event_seq=len(events), outbox_part=OUTBOX_PART,
                        outbox_due=written + self.stale_seconds)
        if not self._put_new(item):
            return None
        return replace(record_from_item(item), appended=tuple(range(1, len(events) + 1)))

    def claim(self, workset_id: str, owner: str, lease_seconds: float,
              *, expired: WorksetRecord | None = None,
              fields: dict[str, Any] | None = None, events: Events = (),
              drop: Published | None = None) -> tuple[WorksetRecord, Lease]:
        """Own a workset: ready -> locked, or take over ``expired`` (an owned workset whose
        lease version the caller saw stand still for a lease; state and step are kept so the
        new owner resumes). One conditional write, on that exact version for a takeover;
        raises ConflictError if someone else (or a heartbeat) got there first.

        A fresh claim may record one event (``started``; its seq is computed in the write, as
        the claimer does not know the item's) and removes ``drop``, the events the caller
        already published (e.g. ``registered``)."""
        now = self.clock()
        if len(events) > 1 or (events and expired is not None):
            raise ValueError("a claim records at most one event, and a takeover none")
        if expired is not None:
            entry = history_entry(now, expired.state, expired.state, owner,
                                  f"lease of {expired.owner} expired; taken over")
        else:
            entry = history_entry(now, S.READY, S.LOCKED, owner, "claimed")
        plan = ClaimPlan(workset_id, owner, now, lease_seconds, expired, entry, fields or {})
        if events or drop:
            plan.drop_keys = list((drop or {}).values())
            for event, message in events:
                plan.started = event_entry(event, message, by=owner, at=now, seq=None,
                                           state=S.LOCKED)
        rec, applied = self._claim_write(plan)
        if applied and plan.started is not None and rec.outbox and CLAIM_KEY in rec.outbox:
            rec = replace(rec, appended=(rec.outbox[CLAIM_KEY]["seq"],))
        return rec, Lease(workset_id, owner, rec.lease_token, now + lease_seconds)

    def transition(self, rec: WorksetRecord, to: str, *, actor: str, reason: str,
                   lease: Lease | None = None, fields: dict[str, Any] | None = None,
                   release: bool = False, events: Events = (),
                   drop: Published | None = None, at: float | None = None,
                   earlier: Sequence[Earlier] = ()) -> WorksetRecord:
        """Move ``rec`` to ``to`` with one conditional write naming the state and version it
        expects (and, for an owner, its fencing token). ``fields`` set (None removes).
        ``earlier`` transitions (each allowed in turn) are recorded first, in the same write.
        ``events`` ((event, message) pairs) are recorded in the same write (the returned
        record's ``appended`` names them); the same write drops ``drop``, the entries the
        caller already published (the piggy-backed acknowledgement). ``at`` (default: the
        store's clock now) stamps the write, for a caller whose fields are times measured
        from it (``retry_at``).

        An owner whose write loses only to an operator edit (same state, same token) retries
        on the fresh item; any other loss raises LeaseLost / ConflictError."""
        for _ in range(OPERATOR_RETRIES):
            state = rec.state
            for step_to in (*(e.to for e in earlier), to):
                check_allowed(rec.workset_id, state, step_to)
                state = step_to
            now = self.clock() if at is None else at
            new, changes = self._plan_transition(rec, to, actor, reason, fields, release, now,
                                                 earlier)
            new = self._plan_outbox(changes, rec, new, actor, now, [
                *((event, message, e.at, {"state": e.to, "step": e.step})
                  for e in earlier for event, message in e.events),
                *((event, message, now, {}) for event, message in events)], drop or {})
            expect: dict[str, Any] = {"state": rec.state, "version": rec.version}
            if lease is not None:
                expect.update(owner_id=lease.owner, lease_token=lease.token)
            try:
                self._update(rec.workset_id, expect, changes)
            except ConflictError:
                current = self.get(rec.workset_id)
                if lease is None or current is None:
                    raise
                if (current.owner != lease.owner or current.lease_token != lease.token
                        or current.state != rec.state):
                    raise LeaseLost(f"lease on {rec.workset_id} lost (now {current.state}, "
                                    f"owner {current.owner})") from None
                rec = current
                continue
            return new
        raise StoreError(f"workset {rec.workset_id}: too many concurrent edits")

    def edit(self, workset_id: str, change: Callable[[WorksetRecord], tuple[str, dict[str, Any]]],
             *, actor: str, reason: str, events: Events = (),
             drop: Published | None = None) -> WorksetRecord:
        """Operator read-modify-write, safe by version condition: ``change`` returns the
        target state and fields for the current record and is re-run on a lost race."""
        for _ in range(OPERATOR_RETRIES):
            rec = self.require(workset_id)
            to, fields = change(rec)
            try:
                return self.transition(rec, to, actor=actor, reason=reason, fields=fields,
                                       events=events, drop=drop)
            except ConflictError:
                continue
        raise StoreError(f"workset {workset_id}: too many concurrent edits; try again")

    # ------------------------------------------------------------------ planning

    def _plan_transition(self, rec: WorksetRecord, to: str, actor: str, reason: str,
                         fields: dict[str, Any] | None, release: bool, now: float,
                         earlier: Sequence[Earlier] = ()) -> tuple[WorksetRecord, Changes]:
        """The attributes a transition writes and the record it leaves. The version condition
        means the item is known exactly, so the new record is computed, not read back."""
        priority = (fields or {}).get("priority", rec.priority)
        updated_at = utc_iso(now)
        attrs: dict[str, Any] = {"state": to, "updated_at": updated_at,
                                 "version": rec.version + 1}
        attrs.update(index_fields(rec, to, priority))
        fields = {**_ended_attempt_jobs(rec, to), **(fields or {})}
        attrs.update(fields)
        changes: dict[str, Any] = {k: v for k, v in fields.items() if k in _RECORD_FIELDS}
        if release or to not in S.OWNED:
            attrs.update(owner_id=None, lease_expires=None)
            changes.update(owner=None, lease_expires=None)
        appends: dict[str, list[Any]] = {}
        entries: list[dict[str, Any]] = []
        state = rec.state
        for e in earlier:
            entries.append(history_entry(e.at, state, e.to, actor, e.reason))
            state = e.to
        if to != state or reason:
            entries.append(history_entry(now, state, to, actor, reason))
        if entries:
            hist = rec.history
            for entry in entries:
                hist = bounded(hist, entry, self.keep_first, self.keep_last)
            if len(hist) == len(rec.history) + len(entries):  # nothing trimmed: append
                appends["history"] = entries
            else:
                attrs["history"] = hist
            attrs["history_total"] = rec.history_total + len(entries)
            changes.update(history=hist, history_total=rec.history_total + len(entries))
        new = replace(rec, state=to, version=rec.version + 1, updated_at=updated_at, appended=(),
                      **{k: ([] if v is None and k in _LIST_FIELDS else
                             {} if v is None and k in _DICT_FIELDS else v)
                         for k, v in changes.items()})
        return new, Changes(attrs=attrs, appends=appends)

    def _plan_outbox(self, changes: Changes, rec: WorksetRecord, new: WorksetRecord,
                     actor: str, now: float,
                     events: Sequence[tuple[str, str, float, dict[str, Any]]],
                     drop: Published) -> WorksetRecord:
        """Add this write's events, drop the ones the caller published, rename a claim's
        entry to its seq, and keep the due marker right. Returns the new record, its
        ``appended`` naming the seqs added."""
        if not events and not rec.outbox:
            return new
        box = dict(rec.outbox or {})
        sets: dict[str, dict[str, Any]] = {}
        removes: list[str] = []
        for key, e in list(box.items()):
            seq = e.get("seq")
            if seq in drop:
                removes.append(key)
                del box[key]
            elif key == CLAIM_KEY and seq is not None:
                removes.append(key)
                del box[key]
                box[outbox_key(seq)] = sets[outbox_key(seq)] = e
        seq = rec.event_seq
        added: list[int] = []
        for event, message, at, captured in events:  # (captured: what an earlier one saw)
            seq += 1
            box[outbox_key(seq)] = sets[outbox_key(seq)] = event_entry(
                event, message, by=actor, at=at, seq=seq, rec=new, **captured)
            added.append(seq)
        oldest_first = sorted(box, key=lambda k: (box[k].get("seq") is None,
                                                  box[k].get("seq") or 0, k))
        over = oldest_first[:max(0, len(box) - self.max_pending)]
        for key in over:  # publishing is failing: the item must stay bounded
            del box[key]
            sets.pop(key, None)
            if rec.outbox is not None and key in rec.outbox:
                removes.append(key)
        if over:
            added = [seq for seq in added if outbox_key(seq) in box]
            changes.attrs["events_dropped"] = rec.events_dropped + len(over)
            new = replace(new, events_dropped=rec.events_dropped + len(over))
            log.warning("workset %s: %d pending event(s) dropped (outbox full while publishing "
                        "fails)", rec.workset_id, len(over))
        if rec.outbox is None:
            if sets:
                changes.attrs["outbox"] = box
        else:
            changes.entry_sets.update({("outbox", k): e for k, e in sets.items()})
            changes.entry_removes.extend(("outbox", k) for k in removes)
        if seq != rec.event_seq:
            changes.attrs["event_seq"] = seq
        if box and new.state not in S.OWNED:
            oldest = min(float(e.get("at", now)) for e in box.values())
            changes.attrs.update(outbox_part=OUTBOX_PART, outbox_due=oldest + self.stale_seconds)
        else:
            changes.attrs.update(outbox_part=None, outbox_due=None)
        outbox = box if (rec.outbox is not None or box) else None
        return replace(new, outbox=outbox, event_seq=seq, appended=tuple(added))
