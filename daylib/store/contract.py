"""The store contract: what every backend (DynamoDB, in-memory) offers and what must be
atomic. Callers type against ``Store``; tests run one suite against every backend.

Atomicity: each write below is one conditional write on one item (or one cap item); it
either applies whole or, when its condition does not hold, changes nothing. There are no
multi-item transactions, so a reader may see one item's write before another's."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Any, Protocol

from daylib.store.records import ActiveItems, ControlRecord, Lease, QueueDepth, WorksetRecord
from daylib.store.rules import Earlier, Events, Published


class Store(Protocol):
    keep_first: int
    keep_last: int
    clock: Callable[[], float]
    stale_seconds: float
    max_pending: int

    def twin(self, *, clock: Callable[[], float] | None = None,
             stale_seconds: float | None = None) -> Store:
        """Another handle on the same data, as a second monitor would have."""

    def create_table(self) -> bool:
        """Create what the backend needs if missing (idempotent); True if created."""

    # -- reads (consistent; the index reads may lag by design on DynamoDB)
    def get(self, workset_id: str) -> WorksetRecord | None: ...

    def require(self, workset_id: str) -> WorksetRecord: ...

    def many(self, ids: list[str]) -> dict[str, WorksetRecord]: ...

    def existing(self, ids: list[str]) -> set[str]: ...

    def active(self, state: str, *, prefix: str | None = None, limit: int | None = None,
               descending: bool = False, before: str | None = None) -> list[WorksetRecord]:
        """Projected records (version 0) of one active state in claim order."""

    def ready_pages(self, page_size: int) -> Iterator[list[WorksetRecord]]: ...

    def ready_summary(self, rank: int) -> tuple[int, str | None]:
        """Ready worksets of one priority rank and the oldest one's ``created_at`` (metrics)."""

    def aged(self, limit: int, older_than: float) -> list[WorksetRecord]: ...

    def owned(self) -> list[WorksetRecord]:
        """Projected records of every owned workset (lease versions for daylib/leases.py)."""

    def due_retries(self, now: float) -> list[WorksetRecord]: ...

    def active_items(self) -> ActiveItems:
        """Every active workset (projected, version 0) and every cluster item in one read
        (a Scan of the sparse active index): its cost grows with active work, not history."""

    def queue_depth(self, *, terminal: bool = True) -> QueueDepth:
        """Exact counts, without scanning terminal worksets' items."""

    def newest(self, *, state: str | None = None, cluster: str | None = None,
               customer: str | None = None, limit: int = 50) -> list[WorksetRecord]: ...

    def outbox_due(self, now: float, limit: int = 100) -> list[str]: ...

    # -- writes, each atomic on one item
    def register(self, workset_id: str, *, actor: str, priority: str = "normal",
                 fields: dict[str, Any] | None = None, created: float | None = None,
                 events: Events = ()) -> WorksetRecord | None:
        """Put-if-absent: None (and nothing changes) if the id exists."""

    def claim(self, workset_id: str, owner: str, lease_seconds: float,
              *, expired: WorksetRecord | None = None,
              fields: dict[str, Any] | None = None, events: Events = (),
              drop: Published | None = None) -> tuple[WorksetRecord, Lease]:
        """Compare-and-set on state (ready) or on the lease version the caller saw expire
        (state, owner, token, ``lease_expires``; no clock compared); bumps the fencing
        token. ConflictError when lost."""

    def heartbeat(self, lease: Lease, lease_seconds: float, *,
                  jobs: dict[str, str] | None = None) -> Lease:
        """Conditional on owner, token and an owned state; LeaseLost otherwise. Always
        writes a new ``lease_expires`` (the version claimants watch); ``jobs`` (the whole
        map) rides on it, so a step's job reference costs no write of its own."""

    def transition(self, rec: WorksetRecord, to: str, *, actor: str, reason: str,
                   lease: Lease | None = None, fields: dict[str, Any] | None = None,
                   release: bool = False, events: Events = (),
                   drop: Published | None = None, at: float | None = None,
                   earlier: Sequence[Earlier] = ()) -> WorksetRecord:
        """Conditional on state and version (and the lease); ``events`` ride on it and
        ``drop`` (entries the caller published) goes with it; the record's ``appended``
        names the events added, for the caller to hand to the publisher. ``at`` stamps
        the write (history, ``updated_at``, events) instead of the store's clock. ``earlier``
        transitions, made before and not yet written, are recorded first by the same write
        (their history entries and events with their own times)."""

    def edit(self, workset_id: str,
             change: Callable[[WorksetRecord], tuple[str, dict[str, Any]]],
             *, actor: str, reason: str, events: Events = (),
             drop: Published | None = None) -> WorksetRecord: ...

    def note_waiting(self, workset_id: str, reason: str) -> None:
        """Conditional on the workset still being ready; silently lost otherwise."""

    def ack_outbox(self, workset_id: str, keys: list[str]) -> None:
        """Removes only the named entries; never conflicts with the owner's writes."""

    def put_cluster(self, info: dict[str, Any]) -> None: ...

    def clusters(self) -> list[dict[str, Any]]: ...

    def acquire_slot(self, scope: str, workset_id: str, limit: int, holder: str,
                     token: str) -> bool:
        """Counting semaphore: conditional on the workset holding no slot (or one under
        ``token``) and the holder count being below ``limit``."""

    def adopt_slot(self, scope: str, workset_id: str, limit: int, holder: str,
                   token: str) -> bool:
        """Re-key the workset's slot to ``token`` (after winning its takeover), or take a
        new one below ``limit``."""

    def release_slot(self, scope: str, workset_id: str, token: str) -> bool:
        """Conditional on the slot still being held under ``token``."""

    def slot_holders(self, scope: str) -> dict[str, dict[str, Any]]: ...

    def control(self) -> ControlRecord: ...

    def set_paused(self, paused: bool, *, actor: str, reason: str = "") -> ControlRecord: ...
