"""The workset model: both upload formats (daylib YAML, Daylily folder) load into one ``Workset``.

Parsing is pure: it takes the text of the files and the settings, and either returns a
``Workset`` or raises ``SpecError`` listing *every* problem with its key path.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from daylib import yamlstrict
from daylib.config import PRIORITIES, Priority, Settings
from daylib.errors import Issue, SpecError

Affinity = Literal["hard", "soft"]
WORKSET_ID_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{2,63}")
SAMPLE_ID_RE = re.compile(r"[A-Za-z0-9_.-]+")
MAX_ISSUES = 20
WORK_FILE = "daylily_work.yaml"
STAGE_FILE = "stage_samples.tsv"
INFO_FILE = "daylily_info.yaml"
READY_FILE = "daylily.ready"
IGNORE_FILE = "daylily.ignore"
DYR_ALIASES = ("dy-r", "dy_r", "dy", "run", "run_suffix", "run-suffix", "run_cmd", "run-command")
EXPORT_ALIASES = ("export_uri", "export-uri", "export")
DAYLILY_ONLY_KEYS = {*DYR_ALIASES, "day-clone", "day_clone", "workdir_name", "budget",
                     "cluster_name", "export-uri", "export"}
DAYLILY_KEYS = {*DAYLILY_ONLY_KEYS, *EXPORT_ALIASES, "notes", "priority", "customer_id",
                "max_retries", "reference_genome", "pipeline"}

def is_safe_name(name: str) -> bool:
    """A sample or lane id used as a path component: no '/', and never '.' or '..'."""
    return bool(SAMPLE_ID_RE.fullmatch(name)) and name not in (".", "..")


def is_valid_id(workset_id: str) -> bool:
    return bool(WORKSET_ID_RE.fullmatch(workset_id))


def priority_rank(priority: str) -> int:
    return PRIORITIES.index(priority)


class Strict(BaseModel):
    """Unknown keys are an error and a parsed value never changes."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class Lane(Strict):
    r1: str
    r2: str | None = None


class Sample(Strict):
    sample_id: str
    lanes: list[Lane]
    coverage: float | None = None

    @property
    def paired(self) -> bool:
        return all(lane.r2 for lane in self.lanes)


class Resources(Strict):
    vcpus: int | None = Field(None, ge=1, le=4096)
    memory_gb: float | None = Field(None, gt=0, le=24576)
    storage_gb: float | None = Field(None, gt=0)
    walltime_minutes: int | None = Field(None, ge=1, le=60 * 24 * 30)


class Workset(Strict):
    """One unit of work, whatever format it was uploaded in."""

    workset_id: str
    format: Literal["daylib", "daylily"]
    samples: list[Sample]
    reference_genome: str | None = None
    pipeline: str | None = None
    priority: Priority = "normal"
    max_retries: int = 3
    preferred_cluster: str | None = None
    affinity: Affinity = "hard"
    customer_id: str | None = None
    after: list[str] = Field(default_factory=list)
    export_uri: str
    resources: Resources = Field(default_factory=Resources)
    estimated_coverage: float | None = None
    dy_r: str | None = None
    day_clone: str | None = None
    workdir_name: str | None = None
    budget: str | None = None
    notes: str | None = None
    warnings: list[str] = Field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        return {
            "format": self.format,
            "samples": len(self.samples),
            "paired": sum(1 for s in self.samples if s.paired),
            "reference_genome": self.reference_genome,
            "pipeline": self.pipeline,
        }

    def fastq_uris(self) -> list[str]:
        return [u for s in self.samples for lane in s.lanes for u in (lane.r1, lane.r2) if u]


def load_yaml_limited(text: str | bytes, settings: Settings,
                      filename: str) -> tuple[Any, list[Issue]]:
    """Strict safe_load bounded in size, alias expansion and nesting (see ``yamlstrict``)."""
    limits = settings.limits
    return yamlstrict.load(text, filename, max_bytes=limits.max_yaml_bytes,
                           max_aliases=limits.max_yaml_aliases, max_depth=limits.max_yaml_depth)


def bounded(issues: list[Issue], keep: int = MAX_ISSUES) -> list[Issue]:
    """At most ``keep`` issues, then one saying how many more, so messages stay short."""
    if len(issues) <= keep:
        return issues
    rest = issues[keep:]
    cats = {i.category for i in issues}
    return [*issues[:keep], Issue("", f"... and {len(rest)} more problem(s) like these",
                                  "configuration" if cats == {"configuration"} else "data")]


def folder_uri(settings: Settings, workset_id: str) -> str:
    """Where a workset's uploaded folder lies; everything about it is found from here."""
    return f"s3://{settings.storage.bucket}/{settings.storage.prefix}{workset_id}/"


def default_export_uri(settings: Settings, workset_id: str) -> str:
    return folder_uri(settings, workset_id) + "results/"


def detect_format(doc: Any, files: Iterable[str]) -> Literal["daylib", "daylily"]:
    """Daylily format whenever the YAML holds Daylily's own keys, even if its TSV is missing."""
    if isinstance(doc, dict) and "samples" in doc:
        return "daylib"
    if isinstance(doc, dict) and any(k in doc for k in DAYLILY_ONLY_KEYS):
        return "daylily"
    return "daylily" if STAGE_FILE in set(files) else "daylib"


def sniff_format(work_yaml: str | bytes, settings: Settings,
                 *, has_tsv: bool) -> Literal["daylib", "daylily"]:
    """The format a folder is in, even when its YAML is broken (never raises)."""
    doc, _ = load_yaml_limited(work_yaml, settings, WORK_FILE)
    return detect_format(doc, [STAGE_FILE] if has_tsv else [])


def parse_workset(workset_id: str, work_yaml: str | bytes, settings: Settings,
                  stage_tsv: str | bytes | None = None) -> Workset:
    """Parse either format; raises SpecError with every problem found (bounded in number)."""
    try:
        return _parse_workset(workset_id, work_yaml, settings, stage_tsv)
    except SpecError as exc:
        raise SpecError(bounded(exc.issues)) from None


def _parse_workset(workset_id: str, work_yaml: str | bytes, settings: Settings,
                   stage_tsv: str | bytes | None) -> Workset:
    issues: list[Issue] = []
    if not is_valid_id(workset_id):
        raise SpecError([Issue("workset_id", f"{workset_id!r} is not a valid id (3-64 "
                               "letters, digits, '_' or '-', starting with a letter or digit)")])
    doc, yaml_issues = load_yaml_limited(work_yaml, settings, WORK_FILE)
    if yaml_issues:
        raise SpecError(yaml_issues)
    if not isinstance(doc, dict):
        raise SpecError([Issue(WORK_FILE, "must be a YAML mapping of keys to values")])
    files = [STAGE_FILE] if stage_tsv is not None else []
    from daylib.spec_daylib import parse_daylib
    from daylib.spec_daylily import parse_daylily

    if detect_format(doc, files) == "daylily":
        return parse_daylily(workset_id, doc, stage_tsv, settings, issues)
    return parse_daylib(workset_id, doc, settings, issues)


def peek_priority(work_yaml: str) -> str:
    """Best-effort priority for ordering before full validation; never raises."""
    try:
        doc, _ = load_yaml_limited(work_yaml, Settings(), WORK_FILE)
    except Exception:
        return "normal"
    value = doc.get("priority") if isinstance(doc, dict) else None
    return value if value in PRIORITIES else "normal"
