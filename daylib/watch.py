"""The live queue: what is waiting (and why, since when), what runs (which step, for how
long), and ``--watch`` refreshing it in place like ``squeue -i``.

On a terminal each refresh clears the screen and redraws; without one (a pipe, a log file)
each refresh is printed in full after a time stamp line, so the output stays readable.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TextIO

from daylib import states as S
from daylib.config import PRIORITIES
from daylib.metrics import iso_epoch
from daylib.spec import priority_rank
from daylib.store.dynamodb import DynamoStore
from daylib.store.records import utc_iso
from daylib.textable import table

CLEAR = "\x1b[H\x1b[2J"


@dataclass(frozen=True)
class Details:
    """What ``queue`` adds to the counts: the oldest waiting workset and the running ones."""

    ready_by_priority: dict[str, int]
    oldest_ready: dict[str, Any] | None
    running: list[dict[str, Any]]

    def public(self) -> dict[str, Any]:
        return {"ready_by_priority": self.ready_by_priority, "oldest_ready": self.oldest_ready,
                "running": self.running}


def _age(stamp: str | None, now: float) -> float | None:
    return round(max(0.0, now - iso_epoch(stamp)), 1) if stamp else None


def details(store: DynamoStore, now: float | None = None) -> Details:
    now = time.time() if now is None else now
    by_priority: dict[str, int] = {}
    oldest: tuple[str, str] | None = None  # (created_at, priority)
    for name in PRIORITIES:
        count, first = store.ready_summary(priority_rank(name))
        by_priority[name] = count
        if first and (oldest is None or first < oldest[0]):
            oldest = (first, name)
    oldest_ready = None
    if oldest is not None:
        head = store.active(S.READY, prefix=f"{priority_rank(oldest[1])}#", limit=1)
        if head:
            rec = head[0]
            oldest_ready = {"workset_id": rec.workset_id, "priority": rec.priority,
                            "created_at": rec.created_at,
                            "waiting_seconds": _age(rec.created_at, now),
                            "reason": rec.reason}
    ids = [r.workset_id for st in S.OWNED for r in store.active(st)]
    running = []
    for rec in sorted(store.many(ids).values(), key=lambda r: r.workset_id) if ids else ():
        claimed = next((h.get("at") for h in reversed(rec.history)
                        if (h.get("reason") or "") == "claimed"
                        or (h.get("reason") or "").endswith("taken over")), None)
        running.append({"workset_id": rec.workset_id, "state": rec.state, "step": rec.step,
                        "cluster": rec.cluster, "customer_id": rec.customer_id,
                        "attempt": rec.attempt, "owner": rec.owner,
                        "running_seconds": _age(claimed, now),
                        "step_seconds": _age(rec.updated_at, now)})
    return Details(by_priority, oldest_ready, running)


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    s = int(seconds)
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s // 3600}h{s % 3600 // 60:02d}m"


def format_details(d: Details) -> str:
    lines = ["waiting by priority: " + ", ".join(f"{k} {v}" for k, v in
                                               d.ready_by_priority.items())]
    o = d.oldest_ready
    if o:
        lines.append(f"oldest waiting: {o['workset_id']} ({o['priority']}) for "
                     f"{_duration(o['waiting_seconds'])} since {o['created_at']}"
                     + (f" - {o['reason']}" if o.get("reason") else ""))
    if d.running:
        lines.append("")
        lines.append(table(["running", "state", "step", "cluster", "customer", "attempt",
                            "for", "in step"],
                           [[r["workset_id"], r["state"], r["step"], r["cluster"],
                             r["customer_id"], r["attempt"], _duration(r["running_seconds"]),
                             _duration(r["step_seconds"])] for r in d.running]))
    return "\n".join(lines)


def loop(render: Callable[[], str], out: TextIO, *, interval_seconds: float,
         count: int | None = None, tty: bool | None = None,
         sleep: Callable[[float], None] = time.sleep) -> None:
    """Print ``render()`` every ``interval_seconds`` (``count`` times, or until Ctrl-C)."""
    redraw = out.isatty() if tty is None else tty
    shown = 0
    while True:
        header = f"every {interval_seconds:g}s   {utc_iso()}   (Ctrl-C to stop)\n\n"
        body = render()
        out.write((CLEAR + header + body + "\n") if redraw else (header + body + "\n\n"))
        out.flush()
        shown += 1
        if count is not None and shown >= count:
            return
        sleep(interval_seconds)
