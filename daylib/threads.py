"""Threads started without waiting for them to run.

``threading.Thread.start`` returns only once the new thread has been scheduled and said so,
which needs the interpreter lock: while the main thread is claiming, a step's path (a
workset's runner starting its step's reaper or a log copy) lost milliseconds to each start.
A thread started here begins whenever the lock comes free, and the caller goes on at once.
"""

from __future__ import annotations

import _thread
from collections.abc import Callable
from typing import Any


def start_soon(target: Callable[..., Any], *args: Any) -> None:
    """Run ``target(*args)`` on a new daemon thread; return without waiting for it."""
    _thread.start_new_thread(target, args)
