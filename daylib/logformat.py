"""Log output: readable text on a terminal, one JSON object per line under systemd.

Why JSON: CloudWatch Logs Insights and journald filters work on fields, not prose. Each line
carries the workset id, attempt, step, actor, monitor id and reason of the work it is about,
taken from a context bound around that work (``bind``/``update``), so the many existing log
calls need no change. A traceback is printed only for unexpected errors (``log.exception``);
expected failures (bad input, a failed step) are one line.
"""

from __future__ import annotations

import contextlib
import contextvars
import json
import logging
import os
import sys
from collections.abc import Iterator, Mapping
from types import MappingProxyType
from typing import Any, TextIO

FORMATS = ("json", "text")
FIELDS = ("workset_id", "attempt", "step", "actor", "monitor_id", "reason")
_context: contextvars.ContextVar[Mapping[str, Any]] = contextvars.ContextVar(
    "daylib_log", default=MappingProxyType({}))
_process: dict[str, Any] = {}
NOISY = ("botocore", "boto3", "urllib3", "s3transfer", "werkzeug")


def set_process_fields(**fields: Any) -> None:
    """Fields true for the whole process (the monitor id)."""
    _process.update({k: v for k, v in fields.items() if v is not None})


@contextlib.contextmanager
def bind(**fields: Any) -> Iterator[None]:
    """Add fields to every log line written by this thread inside the block."""
    token = _context.set({**_context.get(), **fields})
    try:
        yield
    finally:
        _context.reset(token)


def update(**fields: Any) -> None:
    """Change fields of the innermost ``bind`` (e.g. the step, as a workset moves on)."""
    _context.set({**_context.get(), **fields})


class JsonFormatter(logging.Formatter):
    """One JSON object per record: time (ISO 8601 UTC), level, logger, message, context."""

    def format(self, record: logging.LogRecord) -> str:
        doc: dict[str, Any] = {
            "time": self.formatTime(record), "level": record.levelname,
            "logger": record.name, "message": record.getMessage(),
        }
        ctx = {**_process, **_context.get()}
        for key in FIELDS:
            value = getattr(record, key, None)
            if value is None:
                value = ctx.get(key)
            if value is not None:
                doc[key] = value
        if record.exc_info:
            doc["traceback"] = self.formatException(record.exc_info)
        return json.dumps(doc, default=str, separators=(",", ":"))

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        from daylib.store.records import utc_iso

        return utc_iso(record.created)


class TextFormatter(logging.Formatter):
    """The classic line, with the workset id (and step) in brackets when known."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)-7s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        ctx = _context.get()
        if ctx.get("workset_id"):
            where = ctx["workset_id"] + (f"/{ctx['step']}" if ctx.get("step") else "")
            line = line.replace(": ", f": [{where}] ", 1)
        return line


def default_format(stream: TextIO = sys.stderr) -> str:
    """Text on a terminal; JSON when journald reads the stream (systemd sets JOURNAL_STREAM)
    or anywhere else that is not a terminal and asks for it via DAYLILY_LOG_FORMAT."""
    chosen = os.environ.get("DAYLILY_LOG_FORMAT")
    if chosen in FORMATS:
        return chosen
    if stream.isatty():
        return "text"
    return "json" if os.environ.get("JOURNAL_STREAM") else "text"


def setup(fmt: str | None, verbose: bool, stream: TextIO | None = None) -> None:
    """Configure the root logger once: level, format, quiet AWS libraries. The stream is
    the current ``sys.stderr`` unless given (so a redirected stderr receives the log)."""
    stream = sys.stderr if stream is None else stream
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter() if (fmt or default_format(stream)) == "json"
                         else TextFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.DEBUG if verbose else logging.INFO)
    for noisy in NOISY:
        logging.getLogger(noisy).setLevel(logging.WARNING)
