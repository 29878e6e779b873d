"""Claim order: urgent > high > normal > low, oldest first within a level, with ageing so a
low-priority workset that waited long enough is promoted (nothing starves). Pure."""

from __future__ import annotations

import random
import zlib
from collections.abc import Iterable
from datetime import datetime

from daylib.spec import priority_rank
from daylib.store.records import WorksetRecord


def epoch(iso: str) -> float:
    return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()


def effective_rank(rec: WorksetRecord, now: float, promote_after_seconds: float) -> int:
    """Priority rank lowered by one level per ``promote_after_seconds`` waited."""
    waited = max(0.0, now - epoch(rec.created_at)) if rec.created_at else 0.0
    return max(0, priority_rank(rec.priority) - int(waited // promote_after_seconds))


def claim_order(candidates: Iterable[WorksetRecord], now: float,
                promote_after_seconds: float) -> list[WorksetRecord]:
    """Priority (after ageing) first; within a level, customers take turns (each one's
    oldest, then each one's second oldest, ...), oldest first within a turn."""
    ranked = sorted(((effective_rank(r, now, promote_after_seconds), r.created_at,
                      r.workset_id, r) for r in candidates), key=lambda t: t[:3])
    turns: dict[tuple[int, str], int] = {}
    keyed = []
    for rank, created, wid, rec in ranked:
        who = (rank, rec.customer_id or "")
        turn = turns.get(who, 0)
        turns[who] = turn + 1
        keyed.append(((rank, turn, created, wid), rec))
    return [rec for _, rec in sorted(keyed, key=lambda t: t[0])]


def share_of(workset_id: str, monitors: int) -> int:
    """Which of ``monitors`` monitors a workset falls to when they collide (a stable hash,
    the same on every monitor)."""
    return zlib.crc32(workset_id.encode()) % monitors if monitors > 1 else 0


def spread(ordered: list[WorksetRecord], window: int, now: float,
           promote_after_seconds: float, rng: random.Random,
           share: tuple[int, int] = (0, 1)) -> list[WorksetRecord]:
    """Under contention (several monitors claiming from the same front of the queue), the
    candidates to try from the first ``window``, so monitors stop colliding on the same items.
    Knowing of others (``share`` = this monitor's index among the ``monitors`` it knows of;
    see ``share_of``), it takes only its own share of the highest priority level where it
    has one, oldest first, after the others' shares of any level above that (shuffled:
    priority comes before sharing). Nothing after its share: the others are taking theirs,
    so a fresh read serves better than a stale list. With no share of its own in the window
    (a peer busy or gone), it takes the others' (shuffled). Knowing of no other monitor, it
    shuffles each level of the window. Priority levels are never mixed; FIFO within a level
    becomes FIFO within a window. A lone monitor never sees contention and stays strict."""
    index, monitors = share
    head, tail = ordered[:window], ordered[window:]
    groups: dict[int, list[WorksetRecord]] = {}
    for rec in head:
        groups.setdefault(effective_rank(rec, now, promote_after_seconds), []).append(rec)
    out: list[WorksetRecord] = []
    for rank in sorted(groups):
        mine: list[WorksetRecord] = []
        rest: list[WorksetRecord] = []
        for rec in groups[rank]:
            ours = monitors > 1 and share_of(rec.workset_id, monitors) == index
            (mine if ours else rest).append(rec)
        if mine:
            return out + mine
        rng.shuffle(rest)
        out.extend(rest)
    return out + tail
