"""Claiming: which ready worksets this monitor takes, in what order, and when.

Candidates come from the ready index (routed to this cluster, dependencies met, the
customer's cap not full), in claim order; under contention they are spread so monitors do
not race for the same head of the queue. Expired leases (a dead monitor's work) are taken
over before new work, and retries that are due become ready again. The claim itself is a
conditional write on the item, so a stale candidate only costs a lost race."""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from itertools import islice

from daylib import dependencies
from daylib import states as S
from daylib.caps import Caps
from daylib.config import MonitorSettings
from daylib.errors import ConflictError
from daylib.metrics import Metrics
from daylib.ordering import claim_order, spread
from daylib.outbox import Outbox
from daylib.registry import Registry
from daylib.running import Stats
from daylib.store.contract import Store
from daylib.store.records import Lease, WorksetRecord

log = logging.getLogger(__name__)
CONTENTION_MEMORY_SECONDS = 10.0
CONTENDED_WINDOW_FACTOR = 4
MIN_CONTENDED_WINDOW = 16
MAX_CANDIDATE_PAGES = 10


@dataclass(frozen=True)
class _Ahead:
    """The first page of the ready index, read before the first fill needed it."""

    page: list[WorksetRecord]
    size: int  # the page size asked for
    expires: float


class Claimer:
    """Claims up to ``free()`` worksets and hands each to ``start``; claims nothing while
    ``active()`` is false (paused or stopping)."""

    def __init__(self, cfg: MonitorSettings, store: Store, *, monitor_id: str, cluster: str,
                 registry: Registry, caps: Caps, metrics: Metrics, stats: Stats,
                 outbox: Outbox, rng: random.Random, free: Callable[[], int],
                 active: Callable[[], bool], owns: Callable[[str], bool],
                 start: Callable[[WorksetRecord, Lease], None]) -> None:
        self.cfg = cfg
        self.store = store
        self.monitor_id = monitor_id
        self.cluster = cluster
        self.registry = registry
        self.caps = caps
        self.metrics = metrics
        self.stats = stats
        self.outbox = outbox
        self._rng = rng
        self._free = free
        self._active = active
        self._owns = owns
        self._start = start
        self.orphans: list[WorksetRecord] = []  # dead leases seen, awaiting a free slot
        self.aged: list[WorksetRecord] = []
        self.saw_ready = False
        self.ready_any = False  # the last look at the ready index found anything, ours or not
        self.next_retry_at: float | None = None  # earliest retry not yet due (the last look)
        self._cands: list[WorksetRecord] = []
        self._cands_expire = 0.0
        self._ahead: _Ahead | None = None
        self._contended_until = 0.0
        self._routes: dict[str, str] = {}
        self.peers: list[str] = [monitor_id]  # monitors of this cluster seen lately
        self._peer_seen: dict[str, float] = {}  # each peer: when it was last seen at work

    def saw_owned(self, owned: list[WorksetRecord]) -> None:
        """Learn the monitors claiming on this cluster from the owners of its running work
        (a read the lease check makes anyway), to share contended candidates with them."""
        self._saw_peers([r.owner for r in owned if r.owner and r.cluster == self.cluster])

    def _saw_peers(self, owners: list[str]) -> None:
        """A peer is remembered for a lease after it was last seen at work: one whose
        worksets are short may own none at the moment of a lease check, and shares that
        change with each check would collide again. One gone for a lease is forgotten (its
        share of the queue is taken by the others meanwhile, as from a busy peer)."""
        now = time.monotonic()
        for owner in owners:
            if owner != self.monitor_id:
                self._peer_seen[owner] = now
        horizon = now - self.cfg.lease_seconds
        self._peer_seen = {p: t for p, t in self._peer_seen.items() if t >= horizon}
        self.peers = sorted([self.monitor_id, *self._peer_seen])

    def forget(self, workset_id: str) -> None:
        """The run ended: its routing reason is no longer needed."""
        self._routes.pop(workset_id, None)

    def promote_retries(self, now: float) -> int:
        """Due retries become ready; not one whose failed run here is still ending (its
        slots, outbox and heartbeat entry are given back after its last write)."""
        promoted = 0
        waiting = self.store.active(S.RETRYING)
        ending = [r for r in waiting if self._owns(r.workset_id)]
        self.next_retry_at = min([*(r.retry_at for r in waiting
                                    if r.retry_at is not None and r.retry_at > now),
                                  *(now + self.cfg.poll_seconds for _ in ending[:1])],
                                 default=None)
        for rec in (r for r in waiting if (r.retry_at or 0) <= now and r not in ending):
            full = self.store.get(rec.workset_id)
            if full is None or full.state != S.RETRYING or (full.retry_at or 0) > now:
                continue
            try:
                new = self.store.transition(full, S.READY, actor=self.monitor_id,
                                            reason=f"retry {full.attempt + 1} due",
                                            fields={"attempt": full.attempt + 1,
                                                    "retry_at": None},
                                            drop=self.outbox.delivered(full.workset_id))
            except ConflictError:
                continue
            self.outbox.written(new)
            promoted += 1
            log.info("workset %s ready again for attempt %d", new.workset_id, new.attempt)
        return promoted

    def take_over_expired(self) -> None:
        """Adopt worksets whose lease version stood still for a lease on this monitor's
        monotonic clock (daylib/leases.py); the claim is conditioned on that version, so one
        kept until a slot frees is still safe to try."""
        while self.orphans and self._active():
            if self._free() <= 0:
                return
            rec = self.orphans.pop(0)
            # only this cluster can adopt its jobs; a workset not yet placed may go anywhere
            if self._owns(rec.workset_id) or rec.cluster not in (None, self.cluster):
                continue
            try:
                full, lease = self.store.claim(rec.workset_id, self.monitor_id,
                                               self.cfg.lease_seconds, expired=rec,
                                               fields={"cluster": self.cluster},
                                               drop=self.outbox.delivered(rec.workset_id))
            except ConflictError:
                continue
            self.outbox.adopt(full)  # the dead owner's pending events are ours to publish
            capped = self.caps.adopt(full.workset_id, full.customer_id)
            if capped:  # it held no slot and the cap is full: queue it again
                self.outbox.written(self.store.transition(
                    full, S.READY, actor=self.monitor_id, reason=capped, lease=lease,
                    drop=self.outbox.delivered(full.workset_id)))
                continue
            self.stats.taken_over += 1
            self.metrics.emit("LeaseTakeovers", 1, workset_id=full.workset_id)
            log.warning("took over workset %s from %s (lease expired); resuming at %s",
                        full.workset_id, rec.owner, full.step)
            self._start(full, lease)

    def fill(self, now: float) -> None:
        """Claim up to the free slots. Candidates come from one index Query, kept for up to
        a poll interval so a refill usually costs just the claim."""
        free = self._free()
        if free <= 0:
            return
        refreshed = False
        if not self._cands or now >= self._cands_expire:
            self._refresh_candidates(now, free)
            refreshed = not self._cands  # nothing ready just now: not asked again below
        while free > 0 and self._active():
            if not self._cands:
                if refreshed:
                    return
                self._refresh_candidates(now, free)
                refreshed = True
                continue
            cand = self._cands.pop(0)
            self.aged = [r for r in self.aged if r.workset_id != cand.workset_id]
            if self._owns(cand.workset_id):  # handed back or requeued here, still ending
                continue
            capped = self.caps.acquire(cand.workset_id, cand.customer_id)
            if capped:
                self._note(cand, capped)
                continue
            try:
                rec, lease = self.store.claim(
                    cand.workset_id, self.monitor_id, self.cfg.lease_seconds,
                    fields={"cluster": self.cluster,
                            "route": self._routes.get(cand.workset_id)},
                    events=self.outbox.recorded(
                        (("started", f"claimed by {self.monitor_id}"),)),
                    drop=self.outbox.delivered(cand.workset_id))
            except ConflictError as exc:
                self.caps.release(cand.workset_id, cand.customer_id)
                self._saw_peers([exc.owner] if exc.owner else [])  # a peer, known at once
                self.stats.conflicts += 1
                self.metrics.emit("ClaimConflicts", 1, workset_id=cand.workset_id)
                self._contended_until = time.time() + CONTENTION_MEMORY_SECONDS
                self._cands = []  # stale: the rest is read again, shared
                continue
            self.outbox.written(rec)
            self.stats.claimed += 1
            self.metrics.transition(rec.state, rec.customer_id, workset_id=rec.workset_id)
            free -= 1
            log.info("claimed workset %s (priority %s, attempt %d)", rec.workset_id,
                     rec.priority, rec.attempt)
            self._start(rec, lease)

    def read_ahead(self, now: float) -> None:
        """Read the page of the ready index that the next fill starts from, so that the
        read can run alongside others (the monitor's start-up); kept for a poll interval,
        as candidates are. Only as many as there are free slots: no run here can end and
        want more before then, as a rule, and claims are spread only once contended; a page
        short of worksets this monitor may claim reads on."""
        want = self._free()
        page = next(iter(self.store.ready_pages(want)), [])
        self._ahead = _Ahead(page, want, now + self.cfg.poll_seconds)

    def _refresh_candidates(self, now: float, free: int) -> None:
        contended = now < self._contended_until
        window = free * self.cfg.claim_spread
        if contended:  # each peer's share holds candidates for its free slots, and the
            # window is seldom without one's own share (at 4 peers, 16 hold none 1% of the
            # time): a share found empty means taking the others', which collides
            window = max(window * (len(self.peers) if len(self.peers) > 1
                                   else CONTENDED_WINDOW_FACTOR),
                         self.cfg.max_concurrent * self.cfg.claim_spread, MIN_CONTENDED_WINDOW)
        head = self._routable(window + 4, now)
        merged = {r.workset_id: r for r in [*head, *self.aged]
                  if r.workset_id in self._routes}
        ordered = claim_order(merged.values(), now, self.cfg.promote_after_seconds)
        blocked = dependencies.blocked(ordered, self.store.many)
        cands = [r for r in ordered if r.workset_id not in blocked]
        self.saw_ready = bool(cands)
        if contended:
            cands = spread(cands, window, now, self.cfg.promote_after_seconds, self._rng,
                           (self.peers.index(self.monitor_id), len(self.peers)))
        self._cands = cands
        self._cands_expire = now + self.cfg.poll_seconds

    def _routable(self, want: int, now: float) -> list[WorksetRecord]:
        """The first ``want`` ready worksets routed to this cluster, in queue order (as many
        as were read ahead, if they still may be used). Those routed nowhere get the reason
        noted on them; those routed elsewhere are skipped."""
        mine: list[WorksetRecord] = []
        self.ready_any = False
        ahead, self._ahead = self._ahead, None  # once: later reads must see newer states
        if ahead is not None and now < ahead.expires:
            want, pages_read = ahead.size, self._after(ahead)
        else:
            pages_read = self.store.ready_pages(want)
        for pages, page in enumerate(pages_read, start=1):
            self.ready_any = self.ready_any or bool(page)
            for rec in page:
                decision = self.registry.route(rec, now)
                if decision.cluster == self.cluster:
                    self._routes[rec.workset_id] = decision.reason
                    mine.append(rec)
                elif decision.cluster is None:
                    self._note(rec, decision.reason)
            if len(mine) >= want or pages >= MAX_CANDIDATE_PAGES:
                break
        for rec in self.aged:
            decision = self.registry.route(rec, now)
            if decision.cluster == self.cluster:
                self._routes[rec.workset_id] = decision.reason
        return mine

    def _after(self, ahead: _Ahead) -> Iterator[list[WorksetRecord]]:
        """The page read ahead, then (only if it was full and more are wanted) the pages
        that follow it, reading the index again from its start."""
        yield ahead.page
        if len(ahead.page) == ahead.size:
            yield from islice(self.store.ready_pages(ahead.size), 1, None)

    def _note(self, rec: WorksetRecord, reason: str) -> None:
        if rec.reason != reason:
            self.store.note_waiting(rec.workset_id, reason)
            log.info("workset %s %s", rec.workset_id, reason)
