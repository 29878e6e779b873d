"""Validation against S3: every FASTQ must exist, be non-empty and within the size limit.

HEAD requests run in parallel; a workset with 200 lanes validates in the time of a few.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from daylib import spec as sp
from daylib.config import Settings
from daylib.errors import AwsError, Issue, SpecError
from daylib.policy import transient_aws_code
from daylib.s3 import Head, S3Objects, split_uri
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
    heads = _heads(s3, [uri for _, uri in places], local or {},
                   settings.monitor.validate_threads)
    busy = next((h for h in heads if transient_aws_code(h.error_code)), None)
    if busy is not None:  # S3 throttled or failed past the client's retries: try again later
        raise AwsError(f"{busy.uri}: S3 answered {busy.error_code}", busy.error_code)
    issues = []
    limit = settings.limits.max_fastq_bytes
    gone = _missing_buckets(s3, [h for h in heads if not h.exists and not h.error_code])
    for (where, uri), head in zip(places, heads, strict=True):
        bucket = split_uri(uri)[0] if uri.startswith("s3://") else ""
        if bucket in gone:
            issues.append(Issue(where, f"{uri}: S3 bucket {bucket!r} not found in region "
                                       f"{s3.client.meta.region_name}; fix the bucket name "
                                       "or upload the FASTQ to a bucket that exists"))
        elif head.error_code in _DENIED:
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


def _missing_buckets(s3: S3Objects, absent: list[Head]) -> set[str]:
    """Buckets of the absent FASTQs that do not exist themselves (checked once each)."""
    first: dict[str, str] = {}
    for head in absent:
        bucket, key = split_uri(head.uri)
        first.setdefault(bucket, key)
    return {b for b, key in first.items() if s3.bucket_missing(b, key)}


def _heads(s3: S3Objects, uris: list[str], local: dict[str, Path], threads: int
           ) -> list[Head]:
    """One HEAD per URI, in parallel when there are several; a lone one on this thread
    (it is on the claimed workset's path, and a pool's thread start would only delay it)."""
    if len(uris) == 1:
        return [_head(s3, uris[0], local)]
    with ThreadPoolExecutor(max_workers=min(threads, len(uris)),
                            thread_name_prefix="head") as pool:
        return list(pool.map(lambda uri: _head(s3, uri, local), uris))


def _head(s3: S3Objects, uri: str, local: dict[str, Path]) -> Head:
    path = local.get(uri)
    if path is not None:
        return Head(uri, True, path.stat().st_size)
    return s3.head(uri)


def ws_lanes(lanes: list[Lane]) -> list[list[tuple[str, str]]]:
    return [[("R1", lane.r1)] + ([("R2", lane.r2)] if lane.r2 else []) for lane in lanes]


def check_local(path: Path, settings: Settings, workset_id: str = "ws-validate"
                ) -> tuple[Workset | None, list[Issue]]:
    """``validate PATH``: every check that needs no AWS, all problems at once. A folder's
    FASTQs given as keys relative to it must exist there and not be empty."""
    folder = path if path.is_dir() else None
    work_file = folder / sp.WORK_FILE if folder else path
    if not work_file.is_file():
        return None, [Issue(str(work_file), "does not exist")]
    wid = folder.name if folder and sp.is_valid_id(folder.name) else workset_id
    tsv_path = folder / sp.STAGE_FILE if folder else None
    tsv = tsv_path.read_bytes() if tsv_path and tsv_path.is_file() else None
    try:
        ws = sp.parse_workset(wid, work_file.read_bytes(), settings, stage_tsv=tsv)
    except SpecError as exc:
        return None, exc.issues
    if folder is None:
        return ws, []
    base = sp.folder_uri(settings, wid)
    issues = []
    for sample in ws.samples:
        for n, lane in enumerate(ws_lanes(sample.lanes), start=1):
            for read, uri in lane:
                if not uri.startswith(base):
                    continue
                local = folder / uri[len(base):]
                where = f"sample {sample.sample_id} lane {n} {read}"
                if not local.is_file():
                    issues.append(Issue(where, f"{local} does not exist"))
                elif local.stat().st_size == 0:
                    issues.append(Issue(where, f"{local} is empty"))
    return ws, bounded(issues)
