"""Validation against S3: every FASTQ must exist, be non-empty and within the size limit.

HEAD requests run in parallel; a workset with 200 lanes validates in the time of a few.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from daylib.config import Settings
from daylib.errors import AwsError, Issue, SpecError
from daylib.policy import transient_aws_code
from daylib.s3 import Head, S3Objects
from daylib.spec import Lane, Workset, bounded

_DENIED = ("AccessDenied", "403", "Forbidden", "AllAccessDisabled")


def check_inputs(ws: Workset, s3: S3Objects, settings: Settings,
                 local: dict[str, Path] | None = None) -> None:
    """Raise SpecError listing every missing, empty, oversized or unreadable FASTQ.
    ``local`` maps URIs to files about to be uploaded with the workset (``submit DIR``)."""
    places: list[tuple[str, str]] = []
    for sample in ws.samples:
        for n, lane in enumerate(ws_lanes(sample.lanes), start=1):
            for read, uri in lane:
                places.append((f"sample {sample.sample_id} lane {n} {read}", uri))
    if not places:
        return
    workers = min(settings.monitor.validate_threads, len(places))
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="head") as pool:
        heads: list[Head] = list(pool.map(lambda p: _head(s3, p[1], local or {}), places))
    busy = next((h for h in heads if transient_aws_code(h.error_code)), None)
    if busy is not None:  # S3 throttled or failed past the client's retries: try again later
        raise AwsError(f"{busy.uri}: S3 answered {busy.error_code}", busy.error_code)
    issues = []
    limit = settings.limits.max_fastq_bytes
    for (where, uri), head in zip(places, heads, strict=True):
        if head.error_code in _DENIED:
            issues.append(Issue(where, f"{uri}: access denied; grant the monitor's role "
                                       "s3:GetObject on it", "configuration"))
        elif head.error_code:
            issues.append(Issue(where, f"{uri}: cannot be read ({head.error_code})"))
        elif not head.exists:
            issues.append(Issue(where, f"{uri} does not exist; upload it or fix the path"))
        elif head.size == 0:
            issues.append(Issue(where, f"{uri} is empty"))
        elif head.size > limit:
            issues.append(Issue(where, f"{uri} is {head.size} bytes, over the limit of {limit}"))
    if issues:
        raise SpecError(bounded(issues))


def _head(s3: S3Objects, uri: str, local: dict[str, Path]) -> Head:
    path = local.get(uri)
    if path is not None:
        return Head(uri, True, path.stat().st_size)
    return s3.head(uri)


def ws_lanes(lanes: list[Lane]) -> list[list[tuple[str, str]]]:
    return [[("R1", lane.r1)] + ([("R2", lane.r2)] if lane.r2 else []) for lane in lanes]
