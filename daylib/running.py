"""What a monitor owns right now: one ``Running`` per claimed workset, and the counts."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

from daylib.store.records import Lease, WorksetRecord


@dataclass
class Running:
    """A workset this monitor owns right now."""

    rec: WorksetRecord
    lease: Lease
    stop: threading.Event = field(default_factory=threading.Event)
    lost: bool = False
    handing_back: bool = False
    finished: bool = False  # its last write is done or under way: no more heartbeats
    handed_over: bool = False  # AWS unreachable until the lease would lapse: left as it is
    beat_ok: float = field(default_factory=time.monotonic)  # last lease extension (monotonic)


@dataclass
class Stats:
    claimed: int = 0
    completed: int = 0
    failed: int = 0
    retrying: int = 0
    handed_back: int = 0
    conflicts: int = 0
    taken_over: int = 0
