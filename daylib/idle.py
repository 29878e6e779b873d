"""How long the monitor sleeps between passes: ``poll_seconds`` while there is work, growing
fourfold up to ``idle_max_seconds`` while passes find none. Events do not wait for a pass: a
registration (intake), a finished step and a stop request wake the monitor at once, and a
retry known to fall due is waited for exactly. So an idle monitor costs a few reads a minute
without reacting later to anything it can be told about."""

from __future__ import annotations


class IdlePacer:
    """``quiet()`` after a pass that found nothing, ``busy()`` after one that did (or on an
    event); ``interval`` is the current pause between passes."""

    def __init__(self, poll_seconds: float, idle_max_seconds: float) -> None:
        self.poll_seconds = poll_seconds
        self.max_seconds = max(poll_seconds, idle_max_seconds)
        self.interval = poll_seconds

    @property
    def idle(self) -> bool:
        return self.interval > self.poll_seconds

    def busy(self) -> None:
        self.interval = self.poll_seconds

    def quiet(self) -> None:
        self.interval = min(self.max_seconds, self.interval * 4)

    def due(self, now: float, due_at: float | None) -> float:
        """When the next pass is due: after the interval, or sooner when something is."""
        return min(now + self.interval, due_at if due_at is not None else float("inf"))
