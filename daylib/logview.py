"""``logs``: pick the step log an operator means and print it, from S3 or live.

Which log: ``--step``/``--attempt`` when given; else, for a running workset, its current
step; else every log copied to S3, oldest first, each under a header. Where from: the copy
in S3 (readable anywhere) when it exists, else the live file on this head node. ``--follow``
tails the live file until the step's wrapper records its end; away from the head node it
waits for the step to end and prints the copy S3 then receives.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import TextIO

from daylib import states as S
from daylib import steplogs
from daylib.config import Settings
from daylib.errors import UserError
from daylib.executors.base import next_step
from daylib.s3 import S3Objects
from daylib.steplogs import LogRef
from daylib.store.dynamodb import DynamoStore
from daylib.store.records import WorksetRecord

STORE_CHECK_SECONDS = 2.0
UPLOAD_WAIT_SECONDS = 30.0


def _live(rec: WorksetRecord, settings: Settings) -> LogRef | None:
    """The step running now: the item's, or a later one where this host holds the exit
    status of the steps before it (a finished step reaches the item only with the next
    write that happens anyway)."""
    if rec.state not in S.OWNED or not rec.step:
        return None
    step = rec.step
    while (after := next_step(step)) and steplogs.status_path(
            settings, rec.workset_id, steplogs.ref(step, rec.attempt)).exists():
        step = after
    return steplogs.ref(step, rec.attempt)


def _pick(rec: WorksetRecord, settings: Settings, stored: list[LogRef], step: str | None,
          attempt: int | None) -> LogRef | None:
    live = _live(rec, settings)
    if step is None:
        return live
    if attempt is not None:
        return steplogs.ref(step, attempt)
    if live is not None and live.step == step:
        return live
    same = [r for r in stored if r.step == step]
    return same[-1] if same else steplogs.ref(step, rec.attempt)


class _StepEnd:
    """True once the step is over: its status file exists, or the store says the workset
    moved on (checked every few seconds, as that costs a read)."""

    def __init__(self, store: DynamoStore, settings: Settings, workset_id: str,
                 log: LogRef, clock: Callable[[], float] = time.monotonic) -> None:
        self.store, self.settings, self.workset_id, self.log = store, settings, workset_id, log
        self.clock = clock
        self.next_check = 0.0

    def __call__(self) -> bool:
        if steplogs.status_path(self.settings, self.workset_id, self.log).exists():
            return True
        if self.clock() < self.next_check:
            return False
        self.next_check = self.clock() + STORE_CHECK_SECONDS
        rec = self.store.get(self.workset_id)
        return rec is None or _live(rec, self.settings) != self.log


def show_logs(store: DynamoStore, s3: S3Objects, settings: Settings, workset_id: str, *,
              step: str | None, attempt: int | None, follow: bool, out: TextIO) -> int:
    rec = store.require(workset_id)
    stored = steplogs.stored(s3, settings, workset_id)
    target = _pick(rec, settings, stored, step, attempt)
    if target is None:
        if not stored:
            raise UserError(f"workset {workset_id} has no step logs yet ({rec.state}); they "
                            f"are copied to {steplogs.folder_uri(settings, workset_id)} as "
                            "each step ends")
        for log in stored:
            out.write(f"==> {log.name} <==\n")
            _write(out, steplogs.read_stored(s3, settings, workset_id, log) or "")
        return 0
    if target in stored and not (follow and target == _live(rec, settings)):
        _write(out, steplogs.read_stored(s3, settings, workset_id, target) or "")
        return 0
    path = steplogs.local_path(settings, workset_id, target)
    ended = _StepEnd(store, settings, workset_id, target)
    if follow and (path.exists() or target == _live(rec, settings)) and path.parent.exists():
        for chunk in steplogs.follow(path, ended):
            _write(out, chunk)
        return 0
    if path.exists() and not follow:
        _write(out, path.read_text(encoding="utf-8", errors="replace"))
        return 0
    if follow and target == _live(rec, settings):
        print(f"daylily-workset: step {target.step} runs on another host; waiting for it to "
              "end, then printing its log from S3", file=sys.stderr)
        while not ended():
            time.sleep(STORE_CHECK_SECONDS)
        deadline = time.monotonic() + UPLOAD_WAIT_SECONDS
        while time.monotonic() < deadline:
            text = steplogs.read_stored(s3, settings, workset_id, target)
            if text is not None:
                _write(out, text)
                return 0
            time.sleep(1.0)
    raise UserError(f"no log for step {target.step} attempt {target.attempt} of {workset_id} "
                    f"in {steplogs.folder_uri(settings, workset_id)} (logs reach S3 when a "
                    "step ends; on the head node running it, --follow shows it live)")


def _write(out: TextIO, text: str) -> None:
    out.write(text)
    out.flush()
