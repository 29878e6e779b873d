"""Bounded records: what the monitor stores about a failure must fit in one DynamoDB item
(400 KB) next to everything else, so messages are clipped to a few KB with a count of the
rest, and a write refused for its size is retried once with a short message instead of
looping (lease lapse, takeover, the same refused write)."""

from __future__ import annotations

from daylib.errors import AwsInvalidRequest

ERROR_CHARS = 4096


def clip(text: str, limit: int = ERROR_CHARS) -> str:
    """``text`` if short enough, else its start and how much was left out."""
    if len(text) <= limit:
        return text
    rest = len(text) - limit
    return f"{text[:limit]} ... ({rest} more characters not stored)"


def too_large(exc: BaseException) -> bool:
    """DynamoDB refused the write because the item would exceed its size limit."""
    return isinstance(exc, AwsInvalidRequest) and "size" in str(exc).lower()
