"""Intake: learn of worksets in S3 (both formats) and register them in the store.

Registration parses the workset so claim order and caps can use its priority, customer and
cluster; a workset that does not parse is still registered (with its error) so it ends
``failed`` with a message instead of being silently skipped.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any, Protocol

from daylib import spec as sp
from daylib.config import Settings
from daylib.errors import SpecError
from daylib.s3 import S3Objects

log = logging.getLogger(__name__)


class RegistryLike(Protocol):
    """What intake needs from the store (kept narrow so intake is testable alone)."""

    def existing(self, ids: list[str]) -> set[str]: ...

    def register(self, workset_id: str, *, actor: str, priority: str = "normal",
                 fields: dict[str, Any] | None = None, created: float | None = None) -> bool: ...


@dataclass
class Loaded:
    """A workset folder read from S3: the parsed spec, or why it could not be parsed."""

    workset_id: str
    format: str
    workset: sp.Workset | None = None
    error: SpecError | None = None

    def register_fields(self, settings: Settings) -> tuple[str, dict[str, Any]]:
        folder = sp.folder_uri(settings, self.workset_id)
        fields: dict[str, Any] = {"format": self.format, "s3_uri": folder}
        if self.workset is None:
            assert self.error is not None
            fields["intake_error"] = str(self.error)[:4000]
            fields["error_category"] = self.error.category
            return "normal", fields
        ws = self.workset
        fields["routing"] = routing_facts(ws, settings)
        fields.update({
            "spec_json": ws.model_dump_json(), "summary": ws.summary(),
            "customer_id": ws.customer_id, "preferred_cluster": ws.preferred_cluster,
            "after": ws.after, "max_retries": ws.max_retries, "results_uri": ws.export_uri,
        })
        return ws.priority, fields


def routing_facts(ws: sp.Workset, settings: Settings) -> dict[str, Any]:
    """What the router needs, stored on the item so candidates can be routed from the index."""
    default = settings.routing.region or settings.aws.region or ""
    regions = sorted({settings.routing.bucket_regions.get(sp.split_s3_uri(u)[0], default)
                      for u in ws.fastq_uris()} - {""})
    return {"affinity": ws.affinity, "regions": regions, "vcpus": ws.resources.vcpus,
            "memory_gb": ws.resources.memory_gb}


def load_folder(s3: S3Objects, settings: Settings, workset_id: str,
                files: set[str] | None = None, *, ignore_gates: bool = False) -> Loaded | None:
    """Read and parse a workset folder; None if it is not (yet) ready to be picked up.
    ``ignore_gates`` reads it regardless of Daylily's ready/ignore files (operator retry)."""
    bucket = settings.storage.bucket
    prefix = f"{settings.storage.prefix}{workset_id}/"
    if files is None:
        files = s3.files(bucket, prefix)
    if sp.WORK_FILE not in files or (sp.IGNORE_FILE in files and not ignore_gates):
        return None
    daylily = sp.STAGE_FILE in files
    if daylily and sp.READY_FILE not in files and not ignore_gates:
        return None
    limit = settings.limits.max_yaml_bytes
    text = s3.read_text(bucket, prefix + sp.WORK_FILE, limit)
    if text is None:
        return None
    tsv = (s3.read_text(bucket, prefix + sp.STAGE_FILE, settings.limits.max_tsv_bytes)
           if daylily else None)
    try:
        ws = sp.parse_workset(workset_id, text, settings, stage_tsv=tsv)
    except SpecError as exc:
        fmt = "daylily" if daylily else "daylib"
        return Loaded(workset_id, fmt, error=exc)
    if ws.format == "daylily" and sp.READY_FILE not in files and not ignore_gates:
        return None
    return Loaded(workset_id, ws.format, workset=ws)


@dataclass
class ScanReport:
    registered: list[str] = field(default_factory=list)
    skipped_invalid_names: list[str] = field(default_factory=list)
    waiting: list[str] = field(default_factory=list)


class Intake:
    """Polls the workset prefix. Keeps the ids it has seen registered so a steady-state poll
    costs one LIST plus one small read per *new* folder."""

    def __init__(self, s3: S3Objects, store: RegistryLike, settings: Settings,
                 actor: str) -> None:
        self.s3 = s3
        self.store = store
        self.settings = settings
        self.actor = actor
        self._known: set[str] = set()
        self._warned: set[str] = set()

    def scan(self) -> ScanReport:
        report = ScanReport()
        st = self.settings.storage
        fresh = [f for f in self.s3.folders(st.bucket, st.prefix) if f not in self._known]
        valid = []
        for name in fresh:
            if sp.is_valid_id(name):
                valid.append(name)
                continue
            report.skipped_invalid_names.append(name)
            if name not in self._warned:
                self._warned.add(name)
                log.warning("folder %r under s3://%s/%s is not a valid workset id (3-64 "
                            "letters, digits, '_' or '-'); not registered", name, st.bucket,
                            st.prefix)
        self._known.update(self.store.existing(valid))
        for workset_id in valid:
            if workset_id in self._known:
                continue
            loaded = load_folder(self.s3, self.settings, workset_id)
            if loaded is None:
                report.waiting.append(workset_id)
                continue
            priority, fields = loaded.register_fields(self.settings)
            if self.store.register(workset_id, actor=self.actor, priority=priority,
                                   fields=fields):
                report.registered.append(workset_id)
                if loaded.error:
                    log.warning("workset %s registered with errors: %s", workset_id,
                                loaded.error)
                else:
                    log.info("registered workset %s (%s format, priority %s)", workset_id,
                             loaded.format, priority)
            self._known.add(workset_id)
        return report
