"""Workset states and the transitions between them (the store refuses any other)."""

from __future__ import annotations

import typing
from typing import Literal

READY = "ready"
LOCKED = "locked"
IN_PROGRESS = "in_progress"
RETRYING = "retrying"
COMPLETE = "complete"
FAILED = "failed"
CANCELLED = "cancelled"

ACTIVE = (READY, LOCKED, IN_PROGRESS, RETRYING)
TERMINAL = (COMPLETE, FAILED, CANCELLED)
ALL = ACTIVE + TERMINAL
OWNED = (LOCKED, IN_PROGRESS)

TRANSITIONS: dict[str, frozenset[str]] = {
    READY: frozenset({LOCKED, CANCELLED}),
    LOCKED: frozenset({LOCKED, IN_PROGRESS, READY, RETRYING, FAILED, CANCELLED, COMPLETE}),
    IN_PROGRESS: frozenset({IN_PROGRESS, READY, RETRYING, FAILED, CANCELLED, COMPLETE}),
    RETRYING: frozenset({READY, CANCELLED, FAILED}),
    FAILED: frozenset({READY}),
    CANCELLED: frozenset({READY}),
    COMPLETE: frozenset(),
}

ErrorCategory = Literal["transient", "resource", "configuration", "data", "permanent"]
ERROR_CATEGORIES: tuple[ErrorCategory, ...] = typing.get_args(ErrorCategory)


def allowed(src: str, dst: str) -> bool:
    return dst in TRANSITIONS.get(src, frozenset())
