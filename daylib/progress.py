"""Progress lines for long operations (uploads, redrives, bulk reads), on a terminal only.

Why only there: scripts and ``--json`` consumers read stdout and expect stderr to hold errors,
so progress is drawn on stderr in place, and only when a person is watching it.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import TextIO

Progress = Callable[[int, int, str], None]


def quiet(done: int, total: int, what: str) -> None:
    """The reporter used when nobody watches."""


def reporter(stream: TextIO | None = None) -> Progress:
    """``report(done, total, what)`` redrawing one line on ``stream`` if it is a terminal."""
    out = stream or sys.stderr
    if not out.isatty():
        return quiet

    def report(done: int, total: int, what: str) -> None:
        out.write(f"\r\x1b[K[{done}/{total}] {what}" + ("\n" if done >= total else ""))
        out.flush()
    return report


class Tally:
    """A running count with no known total (pages of a listing), redrawn on a terminal once
    ``min_rows`` are read, so a short answer draws nothing; ``close`` wipes the line before
    the answer is printed."""

    def __init__(self, what: str, stream: TextIO | None = None, min_rows: int = 100) -> None:
        self.what = what
        self.out = stream or sys.stderr
        self.live = self.out.isatty()
        self.min_rows = min_rows
        self.count = 0
        self.drawn = False

    def page(self, rows: int) -> None:
        self.count += rows
        if self.live and self.count >= self.min_rows:
            self.out.write(f"\r\x1b[K{self.what}: {self.count} read")
            self.out.flush()
            self.drawn = True

    def close(self) -> None:
        if self.drawn:
            self.out.write("\r\x1b[K")
            self.out.flush()
            self.drawn = False


def human_bytes(size: float) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if size < 1024 or unit == "TB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} TB"
