"""Intake: learn of worksets in S3 (both formats) and register them in the store.

Registration parses the workset so claim order and caps can use its priority, customer and
cluster; a workset that does not parse is still registered (with its error) so it ends
``failed`` with a message instead of being silently skipped.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from daylib import spec as sp
from daylib.config import Settings
from daylib.errors import Issue, SpecError
from daylib.outage import is_transient
from daylib.outbox import Outbox
from daylib.s3 import S3Objects
from daylib.s3uri import split_uri
from daylib.store.records import WorksetRecord

log = logging.getLogger(__name__)


class RegistryLike(Protocol):
    """What intake needs from the store (kept narrow so intake is testable alone)."""

    def existing(self, ids: list[str]) -> set[str]: ...

    def register(self, workset_id: str, *, actor: str, priority: str = "normal",
                 fields: dict[str, Any] | None = None, created: float | None = None,
                 events: Sequence[tuple[str, str]] = ()) -> WorksetRecord | None: ...


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
        error = self.error
        if self.workset is not None and error is None:
            error = _too_large(self.workset)
        if self.workset is None or error is not None:
            assert error is not None
            fields["intake_error"] = bounded_message(str(error))
            fields["error_category"] = error.category
            return "normal", fields
        ws = self.workset
        fields["routing"] = routing_facts(ws, settings)
        fields.update({
            "spec_json": ws.model_dump_json(), "summary": ws.summary(),
            "customer_id": ws.customer_id, "preferred_cluster": ws.preferred_cluster,
            "after": ws.after, "max_retries": ws.max_retries, "results_uri": ws.export_uri,
        })
        return ws.priority, fields


MAX_MESSAGE_CHARS = 2000
MAX_SPEC_BYTES = 250_000  # well below DynamoDB's 400 KB item limit, history included


def bounded_message(text: str) -> str:
    return text if len(text) <= MAX_MESSAGE_CHARS else text[:MAX_MESSAGE_CHARS - 3] + "..."


def _too_large(ws: sp.Workset) -> SpecError | None:
    size = len(ws.model_dump_json())
    if size <= MAX_SPEC_BYTES:
        return None
    lanes = sum(len(s.lanes) for s in ws.samples)
    fits = max(1, lanes * MAX_SPEC_BYTES // size)
    return SpecError([Issue("", f"the workset is too large to record ({size} bytes for "
                                f"{lanes} lanes; at most {MAX_SPEC_BYTES}); split it into "
                                f"worksets of at most {fits} lanes each")])


def routing_facts(ws: sp.Workset, settings: Settings) -> dict[str, Any]:
    """What the router needs, stored on the item so candidates can be routed from the index."""
    default = settings.routing.region or settings.aws.region or ""
    regions = sorted({settings.routing.bucket_regions.get(split_uri(u)[0], default)
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
    data = s3.read_bytes(bucket, prefix + sp.WORK_FILE, settings.limits.max_yaml_bytes)
    if data is None:
        return None
    fmt = sp.sniff_format(data, settings, has_tsv=sp.STAGE_FILE in files)
    if fmt == "daylily" and sp.READY_FILE not in files and not ignore_gates:
        return None
    tsv = (s3.read_bytes(bucket, prefix + sp.STAGE_FILE, settings.limits.max_tsv_bytes)
           if sp.STAGE_FILE in files else None)
    try:
        ws = sp.parse_workset(workset_id, data, settings, stage_tsv=tsv)
    except SpecError as exc:
        return Loaded(workset_id, fmt, error=exc)
    return Loaded(workset_id, ws.format, workset=ws)


def failed_load(workset_id: str, fmt: str, exc: BaseException) -> Loaded:
    """A folder that could not be read at all (any exception) becomes a ``data`` failure."""
    what = str(exc).strip().splitlines()[0][:300] if str(exc).strip() else type(exc).__name__
    return Loaded(workset_id, fmt, error=SpecError([Issue(
        "", f"intake could not read this workset ({type(exc).__name__}: {what})")]))


@dataclass
class ScanReport:
    registered: list[str] = field(default_factory=list)
    skipped_invalid_names: list[str] = field(default_factory=list)
    waiting: list[str] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)
    list_requests: int = 0  # ListObjectsV2 calls the reconciliation made (what paces it)


Files = frozenset[tuple[str, int]]  # a folder's top-level files, (name, size)


class Intake:
    """Registers workset folders, one at a time and each in isolation: whatever one folder
    holds, the others are registered. ``scan`` is the reconciliation: one delimited listing
    of the folder names, then one of each folder not known registered. ``consider`` is what
    an S3 event triggers. Remembers the folders it registered and the file list of those
    still waiting, so a quiet pass reads no spec. Each registration's record goes to
    ``outbox``, which publishes its ``registered`` event."""

    def __init__(self, s3: S3Objects, store: RegistryLike, settings: Settings,
                 actor: str, *, outbox: Outbox | None = None) -> None:
        self.s3 = s3
        self.store = store
        self.outbox = outbox or Outbox.off()
        self.settings = settings
        self.actor = actor
        self._lock = threading.Lock()
        self._known: set[str] = set()
        self._waiting: dict[str, Files] = {}
        self._warned: set[str] = set()

    def is_known(self, workset_id: str) -> bool:
        with self._lock:
            return workset_id in self._known

    def unregistered(self, report: ScanReport) -> list[str]:
        """The valid folder names under the prefix not registered yet: names from one
        delimited listing (a request per 1,000 folders, whatever they hold); those known
        registered skipped in memory, those waiting left to their files, the rest asked of
        the store in one batch."""
        st = self.settings.storage
        top = self.s3.level(st.bucket, st.prefix)
        report.list_requests += top.requests
        listed = set(top.folders)
        with self._lock:
            self._waiting = {n: f for n, f in self._waiting.items() if n in listed}
            unknown = [n for n in top.folders if n not in self._known]
            waiting = set(self._waiting)
        valid = [n for n in unknown if self._valid_name(n, report)]
        registered = self.store.existing([n for n in valid if n not in waiting])
        with self._lock:
            self._known.update(registered)
        return [n for n in valid if n not in registered]

    def scan(self) -> ScanReport:
        """Consider each unregistered folder from its top-level files (one delimited listing
        each); a waiting folder whose files are unchanged is not read again."""
        report = ScanReport()
        st = self.settings.storage
        for workset_id in self.unregistered(report):
            try:
                inside = self.s3.level(st.bucket, f"{st.prefix}{workset_id}/")
            except Exception as exc:  # S3 failing: the whole pass waits; else this folder
                if is_transient(exc):
                    raise
                log.warning("folder %s not listed, will try again: %s", workset_id,
                            str(exc)[:300])
                continue
            report.list_requests += inside.requests
            files = frozenset((n, size) for n, size in inside.files.items() if n)
            with self._lock:
                if self._waiting.get(workset_id) == files:
                    continue
            outcome = self.consider(workset_id, {name for name, _ in files})
            if outcome != "known":  # registered meanwhile (an event, another monitor)
                getattr(report, outcome).append(workset_id)
            if outcome == "waiting":
                with self._lock:
                    self._waiting[workset_id] = files
        return report

    def _valid_name(self, name: str, report: ScanReport | None = None) -> bool:
        if sp.is_valid_id(name):
            return True
        if report is not None:
            report.skipped_invalid_names.append(name)
        with self._lock:
            first = name not in self._warned
            self._warned.add(name)
        if first:
            st = self.settings.storage
            log.warning("folder %r under s3://%s/%s is not a valid workset id (3-64 letters, "
                        "digits, '_' or '-'); not registered", name[:100], st.bucket, st.prefix)
        return False

    def consider(self, workset_id: str, files: set[str] | None = None) -> str:
        """Register one folder if it is ready. Returns ``registered``, ``waiting``,
        ``refused`` (nothing could be written; retried later) or ``skipped_invalid_names``
        / ``known``. Never raises for anything the folder holds."""
        if not self._valid_name(workset_id):
            return "skipped_invalid_names"
        if self.is_known(workset_id):
            return "known"
        try:
            loaded = load_folder(self.s3, self.settings, workset_id, files)
        except Exception as exc:  # one folder must never stop intake
            loaded = failed_load(workset_id, "daylib", exc)
        if loaded is None:
            return "waiting"
        return self._register(loaded)

    def _register(self, loaded: Loaded) -> str:
        wid = loaded.workset_id
        events = self.outbox.recorded((("registered", f"registered by {self.actor}"),))
        try:
            priority, fields = loaded.register_fields(self.settings)
            new = self.store.register(wid, actor=self.actor, priority=priority, fields=fields,
                                      events=events)
        except Exception as exc:  # e.g. an item DynamoDB refuses
            try:
                priority, fields = failed_load(wid, loaded.format, exc).register_fields(
                    self.settings)
                new = self.store.register(wid, actor=self.actor, priority=priority,
                                          fields=fields, events=events)
            except Exception as again:  # the store itself is failing
                log.error("workset %s not registered, will try again: %s", wid,
                          str(again)[:300])
                return "refused"
        with self._lock:
            self._known.add(wid)
            self._waiting.pop(wid, None)
        if new is not None:
            self.outbox.written(new)
        if new and loaded.error:
            log.warning("workset %s registered with errors: %s", wid, str(loaded.error)[:500])
        elif new:
            log.info("registered workset %s (%s format)", wid, loaded.format)
        return "registered" if new else "known"
