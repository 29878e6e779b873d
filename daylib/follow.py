"""``submit --wait``: follow one workset to a terminal state, reporting each change."""

from __future__ import annotations

import time
from collections.abc import Callable

from daylib import states as S
from daylib.store.dynamodb import DynamoStore
from daylib.store.records import WorksetRecord


def progress_line(rec: WorksetRecord | None, workset_id: str) -> str:
    if rec is None:
        return f"{workset_id}: uploaded, not registered yet"
    step = f" ({rec.step})" if rec.step and rec.state == S.IN_PROGRESS else ""
    where = f" on {rec.cluster}" if rec.cluster else ""
    why = f": {rec.error}" if rec.error and rec.state in (S.FAILED, S.RETRYING) else ""
    return f"{workset_id}: {rec.state}{step}{where}{why}"


def follow(store: DynamoStore, workset_id: str, report: Callable[[str], None], *,
           poll_seconds: float = 2.0, timeout_seconds: float | None = None,
           clock: Callable[[], float] = time.monotonic,
           sleep: Callable[[float], None] = time.sleep) -> WorksetRecord | None:
    """Poll until the workset is terminal (or ``timeout_seconds`` pass); ``report`` gets a
    line whenever state, step or error changes. Returns the last record seen."""
    deadline = None if timeout_seconds is None else clock() + timeout_seconds
    last = ""
    while True:
        rec = store.get(workset_id)
        line = progress_line(rec, workset_id)
        if line != last:
            report(line)
            last = line
        if rec is not None and rec.state in S.TERMINAL:
            return rec
        if deadline is not None and clock() >= deadline:
            return rec
        sleep(poll_seconds)
