"""Transactional outbox: workset events ride on the workset item and are published after the
write that produced them, at least once and in order per workset.

Why on the item: a transition and its event must not part ways. With single-item
conditional writes only (no transactions on the emulators), the one write that changes the
state also appends the event to the item's ``outbox`` map; publishing happens after that
write succeeds, and a publish failure never reverts it.

One way: W's caller names the events a write records (``recorded``) and the entries it
already published (``delivered``, dropped by the same write); the write returns the new
record and the caller hands it to ``written``, which publishes. The store never calls the
outbox; the outbox writes to the store only for a separate ack when no write follows.

Timeline of one event (entry with sequence number n, written by W):
  t0  W's conditional write: the transition, plus outbox entry n (by W, at t0). If the new
      state is not owned (ready, retrying, terminal), also the sparse marker
      ``outbox_due = t0 + stale_seconds`` that lets any monitor find it later.
  t1  W publishes n (SNS; and the dead-letter queue for ``dead_lettered``) and remembers it.
  t2  a) W still owns the workset: W's next write REMOVEs n (piggy-backed, no extra write).
      b) W does not: after ``ack_delay_seconds`` W REMOVEs n ("ack", one small write), unless
         its own next write got there first (e.g. the claim of a workset it registered).
         A ready or retrying workset waits up to half of ``stale_seconds`` instead: its
         claim or promotion, often W's own, usually comes first and drops n for free, and
         the ack still lands long before n is stale (anyone's to publish again).
  failure: publishing n fails -> W retries on each housekeeping pass; W publishes nothing of
      that workset past n meanwhile (order). If W dies, after ``stale_seconds`` any monitor
      finds the marker, publishes what is pending and REMOVEs it; so may a new owner that
      takes the workset over. Either may publish n a second time: consumers dedupe on
      ``(workset_id, seq)``.
  order: threads of one process write a workset in turn but publish after their write, so
      a later write's record can reach the outbox first (a runner still publishing
      ``retrying`` while the monitor thread promotes and claims the next attempt). One
      thread publishes a workset at a time, and entries the same actor wrote before are
      published ahead of the new ones: the late thread then finds them published. A record
      older than one already handed over (a lower version) only publishes what is still
      unpublished: it neither judges the outbox nor schedules an ack (the entries moved on).
      A record the process owns again (a claim, a takeover) cancels an ack not yet run: its
      next write drops them (t2 a), and an ack in between would let that write, planned
      from the record, rename a removed claim entry back onto the item.

Entries are identified by ``seq``; the map key is the zero-padded seq, except the entry a
claim writes (the claimer cannot know the item's next seq, so the claim computes it in the
write into ``claim_seq`` and keys the entry ``claim``; the owner's next write renames it).
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from daylib import states as S
from daylib.config import OUTBOX_ACK_DELAY_SECONDS, OUTBOX_MAX_PENDING, OUTBOX_STALE_SECONDS
from daylib.dlq import DeadLetterQueue, letter_body
from daylib.errors import DaylibError
from daylib.notify import EVENTS, SnsTopic, event_body
from daylib.outage import Outage, is_transient
from daylib.store.records import WorksetRecord

log = logging.getLogger(__name__)
TURNS = 64  # locks that serialise publishing per workset (striped by id)
MARKS_KEPT = 10_000  # worksets whose last version and highest published seq are remembered


def ordered(outbox: dict[str, dict[str, Any]] | None) -> list[tuple[str, dict[str, Any]]]:
    """Entries in sequence order (an entry without a seq sorts last)."""
    return sorted((outbox or {}).items(), key=lambda kv: (kv[1].get("seq") is None,
                                                          kv[1].get("seq") or 0, kv[0]))


class StoreLike(Protocol):
    """What the outbox needs from the store."""

    def get(self, workset_id: str) -> WorksetRecord | None: ...

    def many(self, ids: list[str]) -> dict[str, WorksetRecord]: ...

    def ack_outbox(self, workset_id: str, keys: list[str]) -> None: ...

    def outbox_due(self, now: float) -> list[str]: ...


@dataclass
class _Mark:
    version: int = 0  # newest record handed to ``written``
    high: int = 0  # highest seq published: every earlier entry of ours is published or owed


@dataclass
class OutboxStats:
    published: int = 0
    publish_failures: int = 0
    acks: int = 0
    flushed: int = 0


class Outbox:
    """Publishes outbox entries; one per process (writers hand it each record they wrote;
    the monitor calls ``tick`` on its housekeeping passes; the CLI ``drain`` on exit)."""

    def __init__(self, *, topic: SnsTopic | None, dlq: DeadLetterQueue | None,
                 stale_seconds: float = OUTBOX_STALE_SECONDS,
                 ack_delay_seconds: float = OUTBOX_ACK_DELAY_SECONDS,
                 max_pending: int = OUTBOX_MAX_PENDING,
                 clock: Callable[[], float] = time.time) -> None:
        self.topic = topic
        self.dlq = dlq
        self.stale_seconds = stale_seconds
        self.max_pending = max_pending
        self.ack_delay_seconds = ack_delay_seconds
        self.clock = clock
        self.stats = OutboxStats()
        self._outage = Outage("outbox housekeeping", log)
        self._lock = threading.Lock()
        self._delivered: dict[str, dict[int, str]] = {}  # workset -> {seq: key} published
        self._owed: dict[str, set[int]] = {}  # workset -> seqs whose publish failed
        self._acks: dict[str, float] = {}  # workset -> when to REMOVE what we published
        self._marks: OrderedDict[str, _Mark] = OrderedDict()
        self._turns = [threading.RLock() for _ in range(TURNS)]
        self._next_flush = 0.0
        # After a publish fails, writers stop trying for a while (doubling, up to 30 s) so an
        # SNS outage costs each transition nothing; housekeeping retries meanwhile.
        self._down_until = 0.0
        self._down_for = 0.0

    @classmethod
    def off(cls) -> Outbox:
        """Publishes nothing and wants no event: for writers when nothing is configured."""
        return cls(topic=None, dlq=None)

    # ------------------------------------------------------------------ what writers ask

    @property
    def enabled(self) -> bool:
        return self.topic is not None or self.dlq is not None

    def wants(self, event: str) -> bool:
        """Record this event at all? (Only events some sink will take.)"""
        if event not in EVENTS:
            raise ValueError(f"unknown event {event!r}")
        return self.topic is not None or (self.dlq is not None and event == "dead_lettered")

    def recorded(self, events: Sequence[tuple[str, str]]) -> tuple[tuple[str, str], ...]:
        """The (event, message) pairs a write should record: those some sink will take."""
        return tuple(e for e in events if self.wants(e[0]))

    def delivered(self, workset_id: str) -> dict[int, str]:
        """{seq: key} of this workset's entries this process published and has not removed:
        what the next write of the workset drops (the piggy-backed acknowledgement)."""
        with self._lock:
            return dict(self._delivered.get(workset_id, {}))

    def removed(self, workset_id: str, seqs: Iterable[int]) -> None:
        """These entries are gone from the item (dropped by a write, or acked)."""
        with self._lock:
            done = self._delivered.get(workset_id, {})
            owed = self._owed.get(workset_id, set())
            for seq in seqs:
                done.pop(seq, None)
                owed.discard(seq)
            if not done:
                self._delivered.pop(workset_id, None)
                self._acks.pop(workset_id, None)
            if not owed:
                self._owed.pop(workset_id, None)

    def written(self, rec: WorksetRecord, new_seqs: Iterable[int] | None = None) -> None:
        """A write returned ``rec``: forget what it dropped, then publish what it added
        (``rec.appended`` unless ``new_seqs``) and anything owed or stale before it, in
        order. Never raises: a failure is logged and retried by ``tick``."""
        if not self.enabled:
            return
        wid = rec.workset_id
        with self._turn(wid):  # the record's fate is decided whole, not amid another's
            latest = self._handed(rec)
            if latest:
                self._settle(rec)
                if rec.state in S.OWNED:  # ours again: our next write drops what we published
                    with self._lock:
                        self._acks.pop(wid, None)
            if not rec.outbox:
                return
            try:
                self._publish_in_turn(rec, set(rec.appended if new_seqs is None else new_seqs),
                                      force=False)
                if latest and rec.state not in S.OWNED:
                    self._schedule_ack(wid, rec.state)
            except Exception:  # the transition is done; publishing must never undo or block it
                log.exception("outbox of %s: unexpected error while publishing", wid)

    def adopt(self, rec: WorksetRecord) -> None:
        """A takeover: the previous owner is presumed dead, so publish all it left pending."""
        self.written(rec, [e["seq"] for _, e in ordered(rec.outbox) if "seq" in e])

    def release(self, workset_id: str) -> None:
        """This process stops writing the workset (lease lost): ack what it published."""
        self._schedule_ack(workset_id)

    # ------------------------------------------------------------------ housekeeping

    def tick(self, store: StoreLike, *, now: float | None = None, force: bool = False,
             idle: bool = False) -> None:
        """Acks that are due, publishes that failed before, and stale outboxes of anyone
        (the index query: every ``stale_seconds / 4``, every ``stale_seconds`` while idle)."""
        now = self.clock() if now is None else now
        if not self.enabled:
            return
        try:
            if force or now >= self._down_until:
                self._retry_owed(store)
            self._run_acks(store, now, force)
            if force or (now >= self._next_flush and now >= self._down_until):
                self._next_flush = now + max(1.0, self.stale_seconds / (1 if idle else 4))
                self._flush_stale(store, now)
            self._outage.ok()
        except DaylibError as exc:
            if is_transient(exc):
                self._outage.failed(exc)
            else:
                log.warning("outbox housekeeping failed, will retry: %s", exc)

    def drain(self, store: StoreLike) -> None:
        """Before the process exits: ack everything it published, retry what it owes."""
        if not self.enabled:
            return
        try:
            self._retry_owed(store)
            self._run_acks(store, self.clock(), force=True)
        except DaylibError as exc:
            log.warning("outbox: could not clear published events before exit: %s", exc)

    def pending_work(self) -> int:
        with self._lock:
            return len(self._acks) + len(self._owed)

    # ------------------------------------------------------------------ internals

    def _handed(self, rec: WorksetRecord) -> bool:
        """Note ``rec``'s version; False if a newer record of the workset came first."""
        with self._lock:
            mark = self._marks.setdefault(rec.workset_id, _Mark())
            self._marks.move_to_end(rec.workset_id)
            while len(self._marks) > MARKS_KEPT:
                self._marks.popitem(last=False)
            if rec.version < mark.version:
                return False
            mark.version = rec.version
            return True

    def _settle(self, rec: WorksetRecord) -> None:
        """Published entries missing from the written item were dropped (by this write, or
        an ack); those still there may have been renamed (a claim's entry). An entry newer
        than the record is not judged by it."""
        with self._lock:
            done = self._delivered.get(rec.workset_id)
            if not done:
                return
            keys = {e.get("seq"): k for k, e in (rec.outbox or {}).items()}
            gone = [seq for seq in done if seq not in keys and seq <= rec.event_seq]
            done.update({seq: keys[seq] for seq in done if seq in keys})
        self.removed(rec.workset_id, gone)

    def _turn(self, workset_id: str) -> threading.RLock:
        """The lock one workset's publishing and acks take in turn."""
        return self._turns[hash(workset_id) % TURNS]

    def _publish_pending(self, rec: WorksetRecord, new: set[int], *, force: bool) -> None:
        with self._turn(rec.workset_id):
            self._publish_in_turn(rec, new, force=force)

    def _publish_in_turn(self, rec: WorksetRecord, new: set[int], *, force: bool) -> None:
        wid = rec.workset_id
        now = self.clock()
        entries = ordered(rec.outbox)
        with self._lock:
            done = set(self._delivered.get(wid, {}))
            owed = set(self._owed.get(wid, set()))
            high = self._marks[wid].high if wid in self._marks else 0
        top = max(new, default=0)
        ours = {e.get("by") for _, e in entries if e.get("seq") in new}
        todo = []
        for key, e in entries:
            seq = e.get("seq")
            if seq is None or seq in done:
                continue
            mine = seq > high and (seq in new or (seq < top and e.get("by") in ours))
            if mine or seq in owed or now - float(e.get("at", 0)) >= self.stale_seconds:
                todo.append((key, e))
        if todo and not force and now < self._down_until:
            with self._lock:  # publishing is failing: leave it to housekeeping
                self._owed.setdefault(wid, set()).update(x["seq"] for _, x in todo)
            return
        for n, (key, e) in enumerate(todo):
            try:
                self._send(e, rec)
            except DaylibError as exc:
                self.stats.publish_failures += 1
                self._down_for = min(30.0, max(1.0, self._down_for * 2))
                self._down_until = self.clock() + self._down_for
                log.warning("could not publish %s #%s of %s (will retry in %.0f s): %s",
                            e["event"], e["seq"], wid, self._down_for, exc)
                with self._lock:
                    self._owed.setdefault(wid, set()).update(x["seq"] for _, x in todo[n:])
                return
            self._down_for = 0.0
            self.stats.published += 1
            with self._lock:
                self._delivered.setdefault(wid, {})[e["seq"]] = key
                mark = self._marks.setdefault(wid, _Mark())
                mark.high = max(mark.high, e["seq"])
                owed_now = self._owed.get(wid)
                if owed_now is not None:
                    owed_now.discard(e["seq"])
                    if not owed_now:
                        self._owed.pop(wid, None)

    def _send(self, e: dict[str, Any], rec: WorksetRecord) -> None:
        if e["event"] == "dead_lettered" and self.dlq is not None:
            self.dlq.send(letter_body(e, rec))
        if self.topic is not None:
            self.topic.publish(event_body(e, rec))

    def _schedule_ack(self, workset_id: str, state: str | None = None) -> None:
        """Ack later; later still for a workset whose next write (a claim of a ready one, the
        promotion of a retry) usually follows soon and drops the entries with no ack."""
        delay = self.ack_delay_seconds
        if state in S.ACTIVE:
            delay = max(delay, self.stale_seconds / 2)
        with self._lock:
            if self._delivered.get(workset_id):
                due = self.clock() + delay
                self._acks[workset_id] = min(self._acks.get(workset_id, due), due)

    def _run_acks(self, store: StoreLike, now: float, force: bool) -> None:
        with self._lock:
            due = [w for w, t in self._acks.items() if force or t <= now]
        for wid in due:
            with self._turn(wid):
                self._ack(store, wid, now)

    def _ack(self, store: StoreLike, wid: str, now: float) -> None:
        with self._lock:
            if wid not in self._acks:
                return  # cancelled meanwhile: the workset is ours again
        done = self.delivered(wid)
        if not done:
            self.removed(wid, [])
            return
        try:
            store.ack_outbox(wid, sorted(done.values()))
        except DaylibError as exc:
            log.warning("could not clear published events of %s (will retry): %s", wid, exc)
            with self._lock:
                self._acks[wid] = now + max(self.ack_delay_seconds, 1.0)
            return
        self.stats.acks += 1
        self.removed(wid, done)

    def _retry_owed(self, store: StoreLike) -> None:
        with self._lock:
            owed = list(self._owed)
        for wid in owed:
            rec = store.get(wid)
            present = {e.get("seq") for e in (rec.outbox or {}).values()} if rec else set()
            with self._lock:
                mine = self._owed.get(wid, set())
                mine &= present  # anything gone was published and removed by someone else
                if not mine:
                    self._owed.pop(wid, None)
                    continue
            assert rec is not None
            self._publish_pending(rec, set(), force=True)  # tick decided it is time
            if rec.state not in S.OWNED:
                self._schedule_ack(wid, rec.state)

    def _flush_stale(self, store: StoreLike, now: float) -> None:
        ids = store.outbox_due(now)
        if not ids:
            return
        for rec in store.many(ids).values():
            if rec.state in S.OWNED and (rec.lease_expires or 0) > now:
                continue  # its live owner publishes and clears them
            pending = [e["seq"] for _, e in ordered(rec.outbox) if "seq" in e]
            log.info("publishing %d stale event(s) of %s", len(pending), rec.workset_id)
            self.stats.flushed += len(pending)
            self._publish_pending(rec, set(pending), force=True)
            with self._lock:
                if self._owed.get(rec.workset_id):
                    continue
            done = self.delivered(rec.workset_id)
            store.ack_outbox(rec.workset_id, sorted(done.values()))
            self.removed(rec.workset_id, done)
