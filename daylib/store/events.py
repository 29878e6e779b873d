"""Outbox entries as the store writes them: the event plus what the record said then.

The store only records the events its caller hands it; which events are wanted and how they
are published is the publisher's business (daylib/outbox.py)."""

from __future__ import annotations

from typing import Any

from daylib.store.records import WorksetRecord

# Fields an entry captures from the record at write time (the rest is read from the record
# when the event is published).
CAPTURED = ("state", "step", "cluster", "attempt", "error_category", "error_rule")


def entry(event: str, message: str, *, by: str, at: float, seq: int | None,
          rec: WorksetRecord | None = None, **fields: Any) -> dict[str, Any]:
    """An outbox entry: the event plus what the record said when it was written."""
    out: dict[str, Any] = {"event": event, "message": message[:1000], "by": by, "at": at}
    if seq is not None:
        out["seq"] = seq
    if rec is not None:
        out.update({k: getattr(rec, k) for k in CAPTURED if getattr(rec, k) is not None})
        if event == "dead_lettered":
            out.update({k: v for k, v in (("error", (rec.error or "")[:1000]),
                                          ("decision", rec.decision)) if v})
    out.update({k: v for k, v in fields.items() if v is not None})
    return out
