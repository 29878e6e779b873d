"""Queue depth and listing, computed the same way on every backend from per-state reads of
the sparse indexes (cost grows with active worksets only; terminal states are counted)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from typing import Any

from daylib import states as S
from daylib.store.items import matches
from daylib.store.records import QueueDepth, WorksetRecord
from daylib.store.rules import WorksetRules


class QueueReads(WorksetRules):
    def _active_pages(self, state: str) -> Iterator[list[dict[str, Any]]]:
        """Pages of ``cluster``/``customer_id``/``preferred_cluster`` of one active state."""
        raise NotImplementedError

    def _terminal_counts(self, state: str) -> Iterator[int]:
        """Counts of one terminal state, a page at a time."""
        raise NotImplementedError

    def _newest_done(self, state: str, cluster: str | None, customer: str | None,
                     limit: int) -> list[WorksetRecord]:
        """At least ``limit`` matching worksets of a terminal state, newest first, if any."""
        raise NotImplementedError

    def queue_depth(self, *, terminal: bool = True) -> QueueDepth:
        """Exact counts per state, and per cluster and customer for active states."""
        requests = terminal_requests = 0
        states = dict.fromkeys(S.ALL, 0)
        by_cluster: dict[str, Counter[str]] = {}
        by_customer: dict[str, Counter[str]] = {}
        for st in S.ACTIVE:
            for page in self._active_pages(st):
                requests += 1
                for item in page:
                    states[st] += 1
                    cluster = item.get("cluster") or item.get("preferred_cluster") or "-"
                    by_cluster.setdefault(cluster, Counter())[st] += 1
                    by_customer.setdefault(item.get("customer_id") or "-", Counter())[st] += 1
        for st in S.TERMINAL if terminal else ():
            for count in self._terminal_counts(st):
                terminal_requests += 1
                states[st] += count
        return QueueDepth(states=states,
                          by_cluster={k: dict(v) for k, v in sorted(by_cluster.items())},
                          by_customer={k: dict(v) for k, v in sorted(by_customer.items())},
                          requests=requests, terminal_requests=terminal_requests)

    def newest(self, *, state: str | None = None, cluster: str | None = None,
               customer: str | None = None, limit: int = 50) -> list[WorksetRecord]:
        """Newest first, from the indexes (never a scan)."""
        out: list[WorksetRecord] = []
        for st in [state] if state else list(S.ALL):
            if st in S.ACTIVE:
                out.extend(r for r in self.active(st) if matches(r, cluster, customer))
            else:
                out.extend(self._newest_done(st, cluster, customer, limit))
        out.sort(key=lambda r: (r.created_at, r.workset_id), reverse=True)
        return out[:limit]
