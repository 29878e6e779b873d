"""``list``: worksets newest first, filtered, one page at a time with an opaque token.

Why a cursor and not an offset: the done index is sorted by ``created_at#id``, so "older than
the last row shown" is one key condition and a page costs the same at row 10 or 100,000.
Active worksets (a small set by design) are read whole from the active index and filtered.
"""

from __future__ import annotations

import base64
import binascii
import re
import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime

from daylib import states as S
from daylib.errors import UserError
from daylib.progress import Tally
from daylib.store.dynamodb import DynamoStore
from daylib.store.records import WorksetRecord, utc_iso

_RELATIVE = re.compile(r"^([0-9]+(?:\.[0-9]+)?)\s*([smhdw])$")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_TOKEN_PREFIX = "v1:"


def parse_time(text: str, now: float | None = None) -> str:
    """An ISO time (``2026-01-31``, ``2026-01-31T12:00``, with or without ``Z``) or an age
    (``90m``, ``2h``, ``7d``) as a record timestamp (ISO 8601 UTC)."""
    now = time.time() if now is None else now
    value = text.strip()
    m = _RELATIVE.match(value)
    if m:
        return utc_iso(now - float(m.group(1)) * _UNIT_SECONDS[m.group(2)])
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise UserError(f"cannot read time {text!r}: give an ISO date/time (2026-01-31, "
                        "2026-01-31T12:00Z) or an age (90m, 2h, 7d)") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return utc_iso(moment.timestamp())


@dataclass(frozen=True)
class Filters:
    state: str | None = None
    cluster: str | None = None
    customer: str | None = None
    priority: str | None = None
    since: str | None = None  # ISO, inclusive
    until: str | None = None  # ISO, inclusive

    def matches(self, rec: WorksetRecord) -> bool:
        return ((self.cluster is None or self.cluster in (rec.cluster, rec.preferred_cluster))
                and (self.customer is None or rec.customer_id == self.customer)
                and (self.priority is None or rec.priority == self.priority)
                and (self.since is None or rec.created_at >= self.since)
                and (self.until is None or rec.created_at <= self.until))


def _key(rec: WorksetRecord) -> str:
    return f"{rec.created_at}#{rec.workset_id}"


def encode_token(key: str) -> str:
    return base64.urlsafe_b64encode((_TOKEN_PREFIX + key).encode()).decode().rstrip("=")


def decode_token(token: str) -> str:
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raw = ""
    if not raw.startswith(_TOKEN_PREFIX):
        raise UserError("invalid --next-token: use the token a previous `list` printed")
    return raw[len(_TOKEN_PREFIX):]


@dataclass(frozen=True)
class Page:
    rows: list[WorksetRecord]
    next_token: str | None


def page(store: DynamoStore, filters: Filters, limit: int, token: str | None = None,
         tally: Tally | None = None) -> Page:
    """Up to ``limit`` worksets older than the token's row, newest first; ``next_token`` is
    set only when more exist. ``tally`` counts the rows read, page by page."""
    cursor = decode_token(token) if token else None
    upper = f"{filters.until}$" if filters.until else None  # '$' sorts after '#'
    before = min(k for k in (cursor, upper) if k) if (cursor or upper) else None
    found: list[WorksetRecord] = []
    for st in [filters.state] if filters.state else list(S.ALL):
        if st in S.ACTIVE:
            active = store.active(st)
            if tally:
                tally.page(len(active))
            found.extend(r for r in active
                         if filters.matches(r) and (before is None or _key(r) < before))
        else:
            found.extend(_terminal(store, st, filters, before, limit + 1, tally))
    found.sort(key=_key, reverse=True)
    rows = found[:limit]
    more = len(found) > limit
    return Page(rows, encode_token(_key(rows[-1])) if more and rows else None)


def _terminal(store: DynamoStore, state: str, filters: Filters, before: str | None,
              want: int, tally: Tally | None) -> Iterable[WorksetRecord]:
    out: list[WorksetRecord] = []
    for ids in store.done_ids(state, before=before, since=filters.since,
                              page_size=max(10, min(want, 100))):
        recs = store.many(ids)
        if tally:
            tally.page(len(ids))
        out.extend(r for i in ids if (r := recs.get(i)) is not None and filters.matches(r))
        if len(out) >= want:
            break
    return out
