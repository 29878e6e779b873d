"""Operator and submitter actions (submit, cancel, retry, priority, pause), independent of
how they are invoked (CLI today; an API later)."""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from daylib import spec as sp
from daylib import states as S
from daylib.config import PRIORITIES, Settings
from daylib.dlq import DeadLetterQueue
from daylib.errors import DaylibError, IllegalTransition, SpecError, UserError
from daylib.intake import Intake, load_folder
from daylib.outbox import Outbox
from daylib.progress import Progress, human_bytes, quiet
from daylib.s3 import S3Objects
from daylib.store.dynamodb import DynamoStore
from daylib.store.records import WorksetRecord
from daylib.validate import check_inputs


def new_id() -> str:
    return time.strftime("ws-%Y%m%d-%H%M%S-", time.gmtime()) + secrets.token_hex(2)


@dataclass
class Submitted:
    workset_id: str
    uri: str
    format: str
    samples: int
    registered: bool = False
    warnings: list[str] = field(default_factory=list)
    not_registered_why: str = ""


def submit(path: Path, settings: Settings, s3: S3Objects, *, workset_id: str | None = None,
           priority: str | None = None, cluster: str | None = None,
           store: DynamoStore | None = None, actor: str = "submit",
           progress: Progress = quiet, outbox: Outbox | None = None) -> Submitted:
    """Validate locally (spec and FASTQs in S3), upload, then register it in ``store`` with
    the monitor's own idempotent conditional write, so it is visible at once (and its
    ``registered`` event goes to ``outbox``)."""
    if not path.exists():
        raise UserError(f"{path}: no such file or directory")
    folder = path if path.is_dir() else None
    work_file = folder / sp.WORK_FILE if folder else path
    if not work_file.is_file():
        raise UserError(f"{folder}: has no {sp.WORK_FILE}")
    wid = workset_id or (folder.name if folder else new_id())
    if not sp.is_valid_id(wid):
        raise UserError(f"{wid!r} is not a valid workset id (3-64 letters, digits, '_' or '-')")
    text: str | bytes = work_file.read_bytes()
    if priority or cluster:
        doc, problems = sp.load_yaml_limited(text, settings, sp.WORK_FILE)
        if problems:
            raise UserError(f"{work_file}: {SpecError(problems)}")
        if not isinstance(doc, dict):
            raise UserError(f"{work_file}: must be a YAML mapping")
        if priority:
            if priority not in PRIORITIES:
                raise UserError(f"--priority must be one of {', '.join(PRIORITIES)}")
            doc["priority"] = priority
        if cluster:
            doc["cluster_name" if sp.detect_format(doc, []) == "daylily" and "samples" not in
                doc else "preferred_cluster"] = cluster
        text = yaml.safe_dump(doc, sort_keys=False)
    tsv_path = folder / sp.STAGE_FILE if folder else None
    tsv = tsv_path.read_bytes() if tsv_path and tsv_path.is_file() else None
    try:
        ws = sp.parse_workset(wid, text, settings, stage_tsv=tsv)
        check_inputs(ws, s3, settings, local=_local_files(folder, settings, wid))
    except SpecError as exc:
        raise UserError(f"{work_file}: {exc}") from None
    bucket, prefix = settings.storage.bucket, f"{settings.storage.prefix}{wid}/"
    if s3.files(bucket, prefix) & {sp.WORK_FILE}:
        raise UserError(f"workset {wid} already exists at s3://{bucket}/{prefix}; "
                        "choose another --id")
    if folder:
        files = [(f, f.relative_to(folder).as_posix()) for f in sorted(folder.rglob("*"))
                 if f.is_file()]
        files = [(f, rel) for f, rel in files if rel not in (sp.WORK_FILE, sp.READY_FILE)]
        for n, (item, rel) in enumerate(files, start=1):
            progress(n - 1, len(files), f"uploading {rel} ({human_bytes(item.stat().st_size)})")
            s3.upload(item, f"s3://{bucket}/{prefix}{rel}")
            progress(n, len(files), f"uploaded {rel}")
    s3.put_bytes(bucket, prefix + sp.WORK_FILE, text if isinstance(text, bytes) else
                 text.encode())
    if ws.format == "daylily":
        s3.put_text(bucket, prefix + sp.READY_FILE, "")
    done = Submitted(wid, f"s3://{bucket}/{prefix}", ws.format, len(ws.samples),
                     warnings=list(ws.warnings))
    if store is not None:
        try:
            outcome = Intake(s3, store, settings, actor, outbox=outbox).consider(wid)
        except DaylibError as exc:
            outcome = str(exc)
        done.registered = outcome in ("registered", "known")
        if not done.registered:
            done.not_registered_why = outcome
    return done


def _local_files(folder: Path | None, settings: Settings, wid: str) -> dict[str, Path]:
    """FASTQs a submitted folder brings with it, by the S3 URI they will have."""
    if folder is None:
        return {}
    base = sp.folder_uri(settings, wid)
    return {base + p.relative_to(folder).as_posix(): p for p in folder.rglob("*") if p.is_file()}


def cancel(store: DynamoStore, workset_id: str, actor: str, *,
           outbox: Outbox | None = None) -> WorksetRecord:
    """Cancel; the ``cancelled`` event goes to ``outbox`` (published before the CLI exits)."""
    def change(rec: WorksetRecord) -> tuple[str, dict[str, Any]]:
        if rec.state in S.TERMINAL:
            raise IllegalTransition(f"workset {workset_id} is already {rec.state}")
        return S.CANCELLED, {"retry_at": None}
    box = outbox or Outbox.off()
    rec = store.edit(workset_id, change, actor=actor, reason="cancelled by operator",
                     events=box.recorded((("cancelled", f"cancelled by {actor}"),)))
    box.written(rec)
    return rec


RETRYABLE_FROM = (S.FAILED, S.RETRYING, S.CANCELLED)


def retry(store: DynamoStore, s3: S3Objects, settings: Settings, workset_id: str,
          actor: str, *, only_from: tuple[str, ...] = RETRYABLE_FROM,
          fresh_budget: bool = False, reason: str = "retry requested by operator",
          keep_overrides: bool = True) -> WorksetRecord:
    """Back to ``ready`` from failed/retrying/cancelled, resuming from the failed step. The
    spec is read again from S3, so a fixed ``daylily_work.yaml`` takes effect, except for
    what an operator set since (priority, affinity) unless ``keep_overrides`` is False.
    ``fresh_budget``: automatic retries are counted again from this attempt (redrive)."""
    store.require(workset_id)
    loaded = load_folder(s3, settings, workset_id, ignore_gates=True)
    fresh: dict[str, Any] = {}
    if loaded is not None:
        priority, fresh = loaded.register_fields(settings)
        fresh.setdefault("intake_error", None)
        fresh.setdefault("spec_json", None)
        fresh["priority"] = priority

    def change(rec: WorksetRecord) -> tuple[str, dict[str, Any]]:
        if rec.state not in only_from:
            allowed = " or ".join(filter(None, (", ".join(only_from[:-1]), only_from[-1])))
            raise IllegalTransition(f"workset {workset_id} is {rec.state}; only {allowed} "
                                    "worksets can be " + ("redriven" if fresh_budget
                                                          else "retried"))
        budget = {"attempt_base": rec.attempt + 1} if fresh_budget else {}
        kept = _operator_overrides(rec) if keep_overrides else {}
        return S.READY, {"attempt": rec.attempt + 1, "retry_at": None, "error": None,
                         "error_category": None, "error_rule": None, **budget, **fresh,
                         **kept}
    return store.edit(workset_id, change, actor=actor, reason=reason)


def _operator_overrides(rec: WorksetRecord) -> dict[str, Any]:
    """The priority and affinity an operator set (as the history records), which a retry
    must not silently undo by re-reading the YAML."""
    reasons = [h.get("reason") or "" for h in rec.history]
    kept: dict[str, Any] = {}
    if any(r.startswith("priority set to ") for r in reasons):
        kept["priority"] = rec.priority
    if any(r.startswith("affinity set to ") for r in reasons):
        kept["preferred_cluster"] = rec.preferred_cluster
        kept["routing"] = rec.routing
    return kept


@dataclass
class Redriven:
    """What ``redrive`` did for one id: ``redriven``, ``unchanged`` (not failed: nothing to
    do, e.g. a repeated redrive) or ``unknown``."""

    workset_id: str
    outcome: str
    message: str
    state: str | None = None
    attempt: int | None = None


def redrive(store: DynamoStore, s3: S3Objects, settings: Settings, dlq: DeadLetterQueue | None,
            ids: list[str], actor: str, progress: Progress = quiet
            ) -> tuple[list[Redriven], int]:
    """Dead-lettered worksets back to ``ready`` with a fresh retry budget, then their DLQ
    messages deleted. Store first (conditional: only from ``failed``), queue second, so a
    repeat after any interruption finishes the job and changes nothing else. Returns the
    per-id results and how many messages were deleted."""
    results: list[Redriven] = []
    upto: dict[str, int] = {}  # delete messages of events up to this seq (not newer ones)
    unique = list(dict.fromkeys(ids))
    for n, wid in enumerate(unique, start=1):
        progress(n, len(unique), f"redriving {wid}")
        rec = store.get(wid)
        if rec is None:
            results.append(Redriven(wid, "unknown", f"no workset {wid!r}"))
            continue
        upto[wid] = rec.event_seq
        if rec.state != S.FAILED:
            results.append(Redriven(wid, "unchanged", f"{wid} is {rec.state}, not failed; "
                                    "nothing to redrive", rec.state, rec.attempt))
            continue
        try:
            new = retry(store, s3, settings, wid, actor, only_from=(S.FAILED,),
                        fresh_budget=True, reason="redriven from the dead-letter queue")
        except IllegalTransition as exc:
            results.append(Redriven(wid, "unchanged", str(exc)))
            continue
        results.append(Redriven(wid, "redriven", f"{wid} ready (attempt {new.attempt}, "
                                f"{new.max_retries} retries available)", new.state,
                                new.attempt))
    deleted = 0
    if dlq is not None and upto:
        deleted = len(dlq.delete(lambda d: d.workset_id in upto and (
            d.seq is None or d.seq <= upto[d.workset_id])))
    return results, deleted


def set_affinity(store: DynamoStore, workset_id: str, cluster: str, soft: bool,
                 actor: str) -> WorksetRecord:
    """Re-route a workset that has not started (ready or waiting to retry)."""
    def change(rec: WorksetRecord) -> tuple[str, dict[str, Any]]:
        if rec.state not in (S.READY, S.RETRYING) or rec.steps_done:
            raise IllegalTransition(f"workset {workset_id} is {rec.state}"
                                    f"{' with steps done' if rec.steps_done else ''}; only a "
                                    "workset that has not started can be re-routed")
        routing = {**rec.routing, "affinity": "soft" if soft else "hard", "since": time.time()}
        return rec.state, {"preferred_cluster": cluster, "routing": routing, "reason": None}
    return store.edit(workset_id, change, actor=actor,
                      reason=f"affinity set to {cluster} by operator")


def set_priority(store: DynamoStore, workset_id: str, priority: str,
                 actor: str) -> WorksetRecord:
    if priority not in PRIORITIES:
        raise UserError(f"priority must be one of {', '.join(PRIORITIES)}")

    def change(rec: WorksetRecord) -> tuple[str, dict[str, Any]]:
        if rec.state in S.TERMINAL:
            raise IllegalTransition(f"workset {workset_id} is {rec.state}; priority no "
                                    "longer matters")
        return rec.state, {"priority": priority}
    return store.edit(workset_id, change, actor=actor,
                      reason=f"priority set to {priority} by operator")
