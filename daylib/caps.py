"""Concurrency caps (global, per cluster, per customer) that hold exactly across monitors.

Each cap is a counting semaphore on one item (``holders`` map, conditional on its size), so
two monitors can never both take the last slot. A slot is keyed by workset id and held under
a claim token of the monitor that took it: only that token releases it, so the loser of a
claim race cannot free the winner's slot. A workset takes its slots before its claim (or, on
a takeover, re-keys them after winning it) and gives them back when it stops running here;
slots left by a crash are reclaimed once the workset is no longer owned by anyone.
"""

from __future__ import annotations

import logging
import time
import uuid

from daylib import states as S
from daylib.config import CapSettings
from daylib.store.contract import Store

log = logging.getLogger(__name__)


class Caps:
    def __init__(self, cfg: CapSettings, store: Store, cluster: str, holder: str) -> None:
        self.cfg = cfg
        self.store = store
        self.cluster = cluster
        self.holder = holder
        self._scopes_seen: set[str] = set()
        self._tokens: dict[str, str] = {}  # workset id -> the token its slots are held under

    def _token(self, workset_id: str) -> str:
        return self._tokens.setdefault(workset_id, f"{self.holder}:{uuid.uuid4().hex}")

    def acquire(self, workset_id: str, customer: str | None) -> str | None:
        """Take every slot this workset needs; None on success, else why it must wait."""
        token = self._token(workset_id)
        taken: list[str] = []
        for scope, limit in self.cfg.limits(self.cluster, customer).items():
            self._scopes_seen.add(scope)
            if not self.store.acquire_slot(scope, workset_id, limit, self.holder, token):
                for done in taken:
                    self.store.release_slot(done, workset_id, token)
                self._tokens.pop(workset_id, None)
                kind, _, name = scope.partition("#")
                return f"waiting: {kind} cap reached ({name + ': ' if name else ''}{limit} " \
                       f"running)"
            taken.append(scope)
        return None

    def adopt(self, workset_id: str, customer: str | None) -> str | None:
        """After winning a takeover: hold the workset's slots under this monitor's token
        (the dead owner's entries are re-keyed); None on success, else the cap reached."""
        token = self._token(workset_id)
        for scope, limit in self.cfg.limits(self.cluster, customer).items():
            self._scopes_seen.add(scope)
            if not self.store.adopt_slot(scope, workset_id, limit, self.holder, token):
                self.release(workset_id, customer)
                kind, _, name = scope.partition("#")
                return f"waiting: {kind} cap reached ({name + ': ' if name else ''}{limit} " \
                       f"running)"
        return None

    def release(self, workset_id: str, customer: str | None) -> None:
        """Give back the slots this monitor holds for the workset (no-op for the others)."""
        token = self._tokens.pop(workset_id, None)
        if token is None:
            return
        for scope in self.cfg.limits(self.cluster, customer):
            self.store.release_slot(scope, workset_id, token)

    def forget(self, workset_id: str) -> None:
        """The workset went on elsewhere (taken over): its new owner re-keys the slots."""
        self._tokens.pop(workset_id, None)

    def reconcile(self) -> int:
        """Free slots whose holder is no longer owned by any monitor (a crash between taking
        the slot and finishing), once older than ``stale_holder_seconds`` (by the holder's
        clock: a skewed clock frees a crash's slot early or late, never a running one's)."""
        freed = 0
        cutoff = time.time() - self.cfg.stale_holder_seconds
        for scope in sorted(self._scopes_seen):
            holders = self.store.slot_holders(scope)
            old = {w: h for w, h in holders.items() if float(h.get("at", 0)) < cutoff
                   and w not in self._tokens}
            if not old:
                continue
            records = self.store.many(list(old))
            for wid, held in old.items():
                rec = records.get(wid)
                if (rec is None or rec.state not in S.OWNED) and self.store.release_slot(
                        scope, wid, str(held.get("token", ""))):
                    freed += 1
                    log.warning("freed %s slot held by %s (no longer running)", scope, wid)
        return freed
