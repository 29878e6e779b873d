"""Daylily's sentinel files, mirrored into a Daylily-format workset's S3 folder so existing
Daylily tooling keeps reading state the way it always has."""

from __future__ import annotations

import logging

from daylib import states as S
from daylib.config import Settings
from daylib.errors import DaylibError
from daylib.s3 import S3Objects

log = logging.getLogger(__name__)
SENTINELS = {S.LOCKED: "daylily.lock", S.IN_PROGRESS: "daylily.in_progress",
             S.COMPLETE: "daylily.complete", S.FAILED: "daylily.error"}


def mirror(s3: S3Objects, settings: Settings, workset_id: str, state: str,
           message: str = "") -> None:
    """Leave exactly the sentinel for ``state`` (none for ready/retrying/cancelled)."""
    bucket = settings.storage.bucket
    prefix = f"{settings.storage.prefix}{workset_id}/"
    keep = SENTINELS.get(state)
    try:
        if keep:
            s3.put_text(bucket, prefix + keep, message)
        for name in SENTINELS.values():
            if name != keep:
                s3.delete(bucket, prefix + name)
    except DaylibError as exc:
        log.warning("could not mirror Daylily sentinel for %s (%s): %s", workset_id, state, exc)
