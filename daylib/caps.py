"""Concurrency caps (global, per cluster, per customer) that hold exactly across monitors.

Each cap is a counting semaphore on one item (``holders`` map, conditional on its size), so
two monitors can never both take the last slot. A workset takes its slots before its claim
and gives them back when it stops running here; slots left by a crash are reclaimed once the
workset is no longer owned by anyone.
"""

from __future__ import annotations

import logging
import time

from daylib import states as S
from daylib.config import CapSettings
from daylib.store.dynamodb import DynamoStore

log = logging.getLogger(__name__)


class Caps:
    def __init__(self, cfg: CapSettings, store: DynamoStore, cluster: str, holder: str) -> None:
        self.cfg = cfg
        self.store = store
        self.cluster = cluster
        self.holder = holder
        self._scopes_seen: set[str] = set()

    def acquire(self, workset_id: str, customer: str | None) -> str | None:
        """Take every slot this workset needs; None on success, else why it must wait."""
        taken: list[str] = []
        for scope, limit in self.cfg.limits(self.cluster, customer).items():
            self._scopes_seen.add(scope)
            if not self.store.acquire_slot(scope, workset_id, limit, self.holder):
                for done in taken:
                    self.store.release_slot(done, workset_id)
                kind, _, name = scope.partition("#")
                return f"waiting: {kind} cap reached ({name + ': ' if name else ''}{limit} " \
                       f"running)"
            taken.append(scope)
        return None

    def release(self, workset_id: str, customer: str | None) -> None:
        for scope in self.cfg.limits(self.cluster, customer):
            self.store.release_slot(scope, workset_id)

    def reconcile(self) -> int:
        """Free slots whose holder is no longer owned by any monitor (a crash between taking
        the slot and finishing), once older than ``stale_holder_seconds``."""
        freed = 0
        cutoff = time.time() - self.cfg.stale_holder_seconds
        for scope in sorted(self._scopes_seen):
            holders = self.store.slot_holders(scope)
            old = {w: h for w, h in holders.items() if float(h.get("at", 0)) < cutoff}
            if not old:
                continue
            records = self.store.many(list(old))
            for wid, held in old.items():
                rec = records.get(wid)
                if (rec is None or rec.state not in S.OWNED) and self.store.release_stale_slot(
                        scope, wid, held["at"]):
                    freed += 1
                    log.warning("freed %s slot held by %s (no longer running)", scope, wid)
        return freed
