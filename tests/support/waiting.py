"""Waiting for a file a process writes, with a deadline that only guards against a hang."""

from __future__ import annotations

import time
from pathlib import Path

HANG_GUARD_SECONDS = 120.0


def wait_for(path: Path, timeout: float = HANG_GUARD_SECONDS) -> None:
    """Until ``path`` exists (the deadline only guards against a hang)."""
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.02)
