"""Plain records the store hands out; no AWS types leak past the store."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any


def utc_iso(epoch: float | None = None) -> str:
    """ISO-8601 with milliseconds and Z; sorts lexically in time order."""
    moment = datetime.fromtimestamp(time.time() if epoch is None else epoch, UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


@dataclass(frozen=True)
class Lease:
    workset_id: str
    owner: str
    token: int
    expires: float


@dataclass(frozen=True)
class WorksetRecord:
    workset_id: str
    state: str
    version: int
    priority: str = "normal"
    step: str | None = None
    steps_done: list[str] = field(default_factory=list)
    attempt: int = 1
    max_retries: int = 3
    customer_id: str | None = None
    preferred_cluster: str | None = None
    cluster: str | None = None
    format: str | None = None
    s3_uri: str | None = None
    results_uri: str | None = None
    created_at: str = ""
    updated_at: str = ""
    owner: str | None = None
    lease_expires: float | None = None
    lease_token: int = 0
    error: str | None = None
    error_category: str | None = None
    error_rule: str | None = None
    retry_at: float | None = None
    after: list[str] = field(default_factory=list)
    spec_json: str | None = None
    intake_error: str | None = None
    summary: dict[str, Any] = field(default_factory=dict)
    jobs: dict[str, str] = field(default_factory=dict)
    reason: str | None = None
    routing: dict[str, Any] = field(default_factory=dict)
    route: str | None = None
    history: list[dict[str, Any]] = field(default_factory=list)
    history_total: int = 0
    # Failure policy: retries are counted from ``attempt_base`` (a redrive restarts the
    # budget), resources raised by resource retries, and the last decision in words.
    attempt_base: int = 1
    resource_retries: int = 0
    resources: dict[str, Any] = field(default_factory=dict)
    decision: str | None = None
    failed_at: float | None = None
    # Transactional outbox: events written with the transition that produced them, kept
    # until published (key -> entry, see daylib/outbox.py); None = attribute absent.
    outbox: dict[str, dict[str, Any]] | None = None
    event_seq: int = 0
    events_dropped: int = 0  # pending events dropped to keep the item bounded (oldest first)
    # Seqs of the events added by the write that returned this record (empty on reads): what
    # the caller hands to the publisher.
    appended: tuple[int, ...] = field(default=(), compare=False, repr=False)

    @property
    def retries_used(self) -> int:
        """Automatic retries spent from the current budget."""
        return max(0, self.attempt - self.attempt_base)

    def lease(self) -> Lease | None:
        if self.owner is None or self.lease_expires is None:
            return None
        return Lease(self.workset_id, self.owner, self.lease_token, self.lease_expires)

    def public(self) -> dict[str, Any]:
        """The record as ``show --json`` prints it."""
        return {
            "workset_id": self.workset_id, "state": self.state, "step": self.step,
            "steps_done": self.steps_done, "priority": self.priority, "cluster": self.cluster,
            "preferred_cluster": self.preferred_cluster, "customer_id": self.customer_id,
            "format": self.format, "attempts": self.attempt, "max_retries": self.max_retries,
            "owner": self.owner, "lease_expires": self.lease_expires,
            "error_category": self.error_category, "error": self.error,
            "error_rule": self.error_rule, "retry_at": self.retry_at, "reason": self.reason,
            "decision": self.decision, "failed_at": self.failed_at,
            "retries_used": self.retries_used, "resources": self.resources,
            "resource_retries": self.resource_retries,
            "events_pending": len(self.outbox or {}),
            "jobs": self.jobs, "route": self.route, "after": self.after, "summary": self.summary,
            "s3_uri": self.s3_uri, "results_uri": self.results_uri,
            "created_at": self.created_at, "updated_at": self.updated_at,
            "history": self.history,
            "history_omitted": max(0, self.history_total - len(self.history)),
        }


@dataclass(frozen=True)
class QueueDepth:
    states: dict[str, int]
    by_cluster: dict[str, dict[str, int]]
    by_customer: dict[str, dict[str, int]]
    requests: int = 0
    terminal_requests: int = 0

    @property
    def total(self) -> int:
        return sum(self.states.values())

    def public(self) -> dict[str, Any]:
        return {"states": self.states, "by_cluster": self.by_cluster,
                "by_customer": self.by_customer, "total": self.total}


@dataclass(frozen=True)
class ControlRecord:
    paused: bool = False
    reason: str | None = None
    changed_by: str | None = None
    changed_at: str | None = None


@dataclass(frozen=True)
class ActiveItems:
    """Everything the active index holds, read at once: what an idle monitor looks at."""

    worksets: list[WorksetRecord]
    clusters: list[dict[str, Any]]
    requests: int = 0
