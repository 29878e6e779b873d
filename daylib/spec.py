"""The workset model: both upload formats (daylib YAML, Daylily folder) load into one ``Workset``.

Parsing is pure: it takes the text of the files and the settings, and either returns a
``Workset`` or raises ``SpecError`` listing *every* problem with its key path.
"""

from __future__ import annotations

import csv
import io
import re
import shlex
from collections.abc import Iterable
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from daylib import yamlstrict
from daylib.config import PRIORITIES, Settings
from daylib.errors import Issue, SpecError

WORKSET_ID_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{2,63}")
SAMPLE_ID_RE = re.compile(r"[A-Za-z0-9_.-]+")
MAX_ISSUES = 20
SHELL_OPERATORS = (";", "|", "&&", "`", "$(", ">", "<", "\n")
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
COMMAND_KEYS = ("args", "cmd", "command", "suffix")

Priority = Literal["urgent", "high", "normal", "low"]


def is_safe_name(name: str) -> bool:
    """A sample or lane id used as a path component: no '/', and never '.' or '..'."""
    return bool(SAMPLE_ID_RE.fullmatch(name)) and name not in (".", "..")


def is_valid_id(workset_id: str) -> bool:
    return bool(WORKSET_ID_RE.fullmatch(workset_id))


def priority_rank(priority: str) -> int:
    return PRIORITIES.index(priority)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Lane(_Strict):
    r1: str
    r2: str | None = None


class Sample(_Strict):
    sample_id: str
    lanes: list[Lane]
    coverage: float | None = None

    @property
    def paired(self) -> bool:
        return all(lane.r2 for lane in self.lanes)


class Resources(_Strict):
    vcpus: int | None = Field(None, ge=1, le=4096)
    memory_gb: float | None = Field(None, gt=0, le=24576)
    storage_gb: float | None = Field(None, gt=0)
    walltime_minutes: int | None = Field(None, ge=1, le=60 * 24 * 30)


class Workset(_Strict):
    """One unit of work, whatever format it was uploaded in."""

    workset_id: str
    format: Literal["daylib", "daylily"]
    samples: list[Sample]
    reference_genome: str | None = None
    pipeline: str | None = None
    priority: Priority = "normal"
    max_retries: int = 3
    preferred_cluster: str | None = None
    affinity: Literal["hard", "soft"] = "hard"
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


# ---------------------------------------------------------------- daylib format (input model)

class _SampleIn(_Strict):
    sample_id: str
    fastq_r1: str
    fastq_r2: str | None = None
    coverage: float | None = Field(None, ge=0)


class _DaylibIn(_Strict):
    samples: list[_SampleIn] = Field(min_length=1)
    reference_genome: str
    pipeline: str | None = None
    priority: Priority | None = None
    max_retries: int | None = Field(None, ge=0, le=10)
    preferred_cluster: str | None = None
    affinity: Literal["hard", "soft"] = "hard"
    customer_id: str | None = None
    after: list[str] = Field(default_factory=list)
    export_uri: str | None = None
    resources: Resources = Field(default_factory=Resources)
    estimated_coverage: float | None = Field(None, ge=0)

    @field_validator("preferred_cluster", "customer_id")
    @classmethod
    def _no_blank(cls, v: str | None) -> str | None:
        if v is not None and not v.strip():
            raise ValueError("must not be empty")
        return v


# ---------------------------------------------------------------- strict YAML with limits

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


# ---------------------------------------------------------------- helpers

def _loc(loc: Iterable[Any]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _pydantic_issues(exc: ValidationError, prefix: str = "") -> list[Issue]:
    issues = []
    for err in exc.errors():
        path = _loc(err["loc"])
        path = f"{prefix}{path}" if not prefix or not path else f"{prefix}.{path}"
        kind = err["type"]
        if kind == "extra_forbidden":
            issues.append(Issue(path, "unknown key; remove it or check its spelling"))
        elif kind == "missing":
            issues.append(Issue(path, "required key is missing"))
        elif kind == "literal_error":
            issues.append(Issue(path, f"{err['input']!r} is not allowed; {err['msg'].lower()}"))
        else:
            issues.append(Issue(path, f"{err['msg']} (got {err.get('input')!r})"))
    return issues


def _check_shell(path: str, value: str | None, issues: list[Issue]) -> None:
    if value is None:
        return
    for op in SHELL_OPERATORS:
        if op in value:
            shown = "newline" if op == "\n" else repr(op)
            issues.append(Issue(path, f"contains the shell operator {shown}; commands are run as "
                                      "argv without a shell, remove it"))
            return


def _check_length(path: str, value: str | None, settings: Settings, issues: list[Issue]) -> None:
    if value is not None and len(value) > settings.limits.max_string_length:
        issues.append(Issue(path, f"is longer than {settings.limits.max_string_length} characters"))


def split_s3_uri(uri: str) -> tuple[str, str]:
    rest = uri[len("s3://"):]
    bucket, _, key = rest.partition("/")
    return bucket, key


def resolve_uri(value: str, folder_uri: str, path: str, settings: Settings,
                issues: list[Issue], *, prefix: bool = False) -> str:
    """An S3 URI, or a key relative to the workset folder; must lie in an allowed bucket."""
    _check_shell(path, value, issues)
    _check_length(path, value, settings, issues)
    if not value.strip() or (value.endswith("/") and not prefix):
        issues.append(Issue(path, f"{value!r} does not name a file"))
        return value
    if value.startswith("s3://"):
        uri = value
    elif "://" in value:
        issues.append(Issue(path, f"{value!r} is not an S3 URI or a key relative to the workset "
                                  "folder"))
        return value
    else:
        if value.startswith("/") or ".." in value.split("/"):
            issues.append(Issue(path, f"{value!r} must be relative to the workset folder, "
                                      "without '/' at the start or '..'"))
            return value
        uri = folder_uri.rstrip("/") + "/" + value
    bucket, key = split_s3_uri(uri)
    if not bucket or not key:
        issues.append(Issue(path, f"{value!r} is not a complete S3 URI (s3://bucket/key)"))
    elif bucket not in settings.allowed_buckets():
        issues.append(Issue(path, f"bucket {bucket!r} is not allowed; allowed buckets: "
                                  f"{', '.join(sorted(settings.allowed_buckets()))}"))
    return uri


def _export_uri(value: str, workset_id: str, path: str, settings: Settings,
                issues: list[Issue]) -> str:
    """Where results go: an allowed bucket, and never inside another workset's folder."""
    uri = resolve_uri(value, folder_uri(settings, workset_id), path, settings, issues,
                      prefix=True)
    bucket, key = split_s3_uri(uri) if uri.startswith("s3://") else ("", "")
    st = settings.storage
    if bucket == st.bucket and key.startswith(st.prefix):
        owner = key[len(st.prefix):].split("/", 1)[0]
        if owner != workset_id:
            issues.append(Issue(path, f"{value!r} lies inside workset {owner[:64]!r}'s folder; "
                                      "export to this workset's own folder or another prefix"))
    return uri


def _check_names(spec: dict[str, Any], settings: Settings, issues: list[Issue]) -> None:
    ref = spec.get("reference_genome")
    if ref is not None and ref not in settings.workset.references:
        issues.append(Issue("reference_genome", f"unknown reference {ref!r}; configured: "
                            f"{', '.join(settings.workset.references)}", "configuration"))
    pipe = spec.get("pipeline")
    if pipe is not None and pipe not in settings.workset.pipelines:
        issues.append(Issue("pipeline", f"unknown pipeline {pipe!r}; configured: "
                            f"{', '.join(settings.workset.pipelines)}", "configuration"))


def _check_after(workset_id: str, after: list[str], issues: list[Issue]) -> None:
    for i, dep in enumerate(after):
        if not isinstance(dep, str) or not is_valid_id(dep):
            issues.append(Issue(f"after[{i}]", f"{dep!r} is not a valid workset id"))
        elif dep == workset_id:
            issues.append(Issue(f"after[{i}]", "a workset cannot wait for itself"))


# ---------------------------------------------------------------- parsers

def default_export_uri(settings: Settings, workset_id: str) -> str:
    return f"s3://{settings.storage.bucket}/{settings.storage.prefix}{workset_id}/results/"


def folder_uri(settings: Settings, workset_id: str) -> str:
    return f"s3://{settings.storage.bucket}/{settings.storage.prefix}{workset_id}/"


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
    if detect_format(doc, files) == "daylily":
        return _parse_daylily(workset_id, doc, stage_tsv, settings, issues)
    return _parse_daylib(workset_id, doc, settings, issues)


def _check_samples(raw: Any, folder: str, settings: Settings,
                   issues: list[Issue]) -> list[Sample]:
    """Semantic checks on whatever sample entries are well-formed enough to read, so they
    are reported together with any structural problems."""
    samples: list[Sample] = []
    if not isinstance(raw, list):
        return samples
    if len(raw) > settings.limits.max_samples:
        issues.append(Issue("samples", f"has {len(raw)} samples; at most "
                                       f"{settings.limits.max_samples} allowed"))
    seen: set[str] = set()
    for i, entry in enumerate(raw):
        if not isinstance(entry, dict):
            continue
        path = f"samples[{i}]"
        sid = entry.get("sample_id")
        if isinstance(sid, str):
            _check_length(f"{path}.sample_id", sid, settings, issues)
            if not is_safe_name(sid):
                issues.append(Issue(f"{path}.sample_id", f"{sid!r} may hold only letters, "
                                                         "digits, '_', '-' and '.' (not '.' or "
                                                         "'..')"))
            elif sid in seen:
                issues.append(Issue(f"{path}.sample_id", f"duplicate sample id {sid!r}"))
            seen.add(sid)
        uris = {}
        for key in ("fastq_r1", "fastq_r2"):
            if isinstance(entry.get(key), str):
                uris[key] = resolve_uri(entry[key], folder, f"{path}.{key}", settings, issues)
        if isinstance(sid, str) and "fastq_r1" in uris:
            cov = entry.get("coverage")
            samples.append(Sample(sample_id=sid, lanes=[Lane(r1=uris["fastq_r1"],
                                                             r2=uris.get("fastq_r2"))],
                                  coverage=cov if isinstance(cov, int | float) else None))
    return samples


def _parse_daylib(workset_id: str, doc: dict[str, Any], settings: Settings,
                  issues: list[Issue]) -> Workset:
    folder = folder_uri(settings, workset_id)
    spec: _DaylibIn | None = None
    try:
        spec = _DaylibIn.model_validate(doc)
    except ValidationError as exc:
        issues.extend(_pydantic_issues(exc))
    samples = _check_samples(doc.get("samples"), folder, settings, issues)
    _check_names(doc, settings, issues)
    after = doc.get("after")
    if isinstance(after, list):
        _check_after(workset_id, after, issues)
    for key in ("preferred_cluster", "customer_id"):
        value = doc.get(key)
        if isinstance(value, str):
            _check_shell(key, value, issues)
            _check_length(key, value, settings, issues)
    export_raw = doc.get("export_uri")
    export = (_export_uri(export_raw, workset_id, "export_uri", settings, issues)
              if isinstance(export_raw, str) else default_export_uri(settings, workset_id))
    if issues or spec is None:
        raise SpecError(issues)
    return Workset(
        workset_id=workset_id, format="daylib", samples=samples,
        reference_genome=spec.reference_genome,
        pipeline=spec.pipeline or next(iter(settings.workset.pipelines)),
        priority=spec.priority or settings.workset.default_priority,
        max_retries=(spec.max_retries if spec.max_retries is not None
                     else settings.workset.default_max_retries),
        preferred_cluster=spec.preferred_cluster, affinity=spec.affinity,
        customer_id=spec.customer_id, after=spec.after, export_uri=export,
        resources=spec.resources, estimated_coverage=spec.estimated_coverage,
    )


def _str_field(doc: dict[str, Any], key: str, issues: list[Issue]) -> str | None:
    value = doc.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        issues.append(Issue(key, f"must be a string, not {type(value).__name__}"))
        return None
    return str(value)


def _parse_daylily(workset_id: str, doc: dict[str, Any], stage_tsv: str | bytes | None,
                   settings: Settings, issues: list[Issue]) -> Workset:
    unknown = [str(k)[:80] for k in doc if k not in DAYLILY_KEYS]
    warnings = [f"{k}: unknown key kept as-is (Daylily ignores it)" for k in unknown[:10]]
    if len(unknown) > 10:
        warnings.append(f"... and {len(unknown) - 10} more unknown keys")
    present = [k for k in DYR_ALIASES if k in doc]
    dy_r: str | None = None
    if not present:
        issues.append(Issue("dy-r", f"required key is missing (or one of its aliases: "
                                    f"{', '.join(DYR_ALIASES[1:])})"))
    elif len(present) > 1:
        issues.append(Issue(present[1], f"duplicates {present[0]!r}; give the run arguments once"))
    else:
        dy_r = _command(doc, present[0], settings, issues)
    day_clone = _command(doc, "day-clone", settings, issues) or _command(doc, "day_clone",
                                                                         settings, issues)
    workdir_name = _str_field(doc, "workdir_name", issues)
    if workdir_name and not is_safe_name(workdir_name):
        issues.append(Issue("workdir_name", f"{workdir_name[:80]!r} may hold only letters, "
                                            "digits, '_', '-' and '.' (not '.' or '..')"))
    folder = folder_uri(settings, workset_id)
    exports = [k for k in EXPORT_ALIASES if k in doc]
    if len(exports) > 1:
        issues.append(Issue(exports[1], f"duplicates {exports[0]!r}; give the export URI once"))
    export_raw = _str_field(doc, exports[0], issues) if exports else None
    export_raw = export_raw.strip() if export_raw else None
    export = (_export_uri(export_raw, workset_id, exports[0], settings, issues)
              if export_raw and exports else default_export_uri(settings, workset_id))
    priority = _str_field(doc, "priority", issues) or settings.workset.default_priority
    if priority not in PRIORITIES:
        issues.append(Issue("priority", f"{priority!r} is not one of {', '.join(PRIORITIES)}"))
    max_retries = doc.get("max_retries", settings.workset.default_max_retries)
    if not isinstance(max_retries, int) or isinstance(max_retries, bool) or not (
            0 <= max_retries <= 10):
        issues.append(Issue("max_retries",
                            f"must be an integer from 0 to 10 (got {max_retries!r})"))
        max_retries = settings.workset.default_max_retries
    cluster = _str_field(doc, "cluster_name", issues)
    customer = _str_field(doc, "customer_id", issues)
    text_fields = {key: _str_field(doc, key, issues)
                   for key in ("budget", "notes", "reference_genome", "pipeline")}
    for key, value in (("cluster_name", cluster), ("customer_id", customer),
                       ("workdir_name", workdir_name), ("budget", text_fields["budget"])):
        _check_shell(key, value, issues)
        _check_length(key, value, settings, issues)
    _check_length("notes", text_fields["notes"], settings, issues)
    _check_names(doc, settings, issues)
    samples = _parse_stage_tsv(stage_tsv, folder, settings, issues)
    if issues:
        raise SpecError(issues)
    return Workset(
        workset_id=workset_id, format="daylily", samples=samples,
        reference_genome=text_fields["reference_genome"], pipeline=text_fields["pipeline"],
        priority=priority,
        max_retries=max_retries, preferred_cluster=cluster, customer_id=customer,
        export_uri=export, dy_r=dy_r, day_clone=day_clone, workdir_name=workdir_name,
        budget=text_fields["budget"], notes=text_fields["notes"],
        warnings=warnings,
    )


def _command(doc: dict[str, Any], key: str, settings: Settings,
             issues: list[Issue]) -> str | None:
    """A command field in any form Daylily's monitor accepts: a string (surrounding whitespace
    and a block scalar's newline stripped), a list of arguments, or a mapping holding one of
    ``args``/``cmd``/``command``/``suffix``."""
    if key not in doc or doc[key] is None:
        return None
    text = _command_text(doc[key], key, issues)
    if text is None:
        return None
    _check_shell(key, text, issues)
    _check_length(key, text, settings, issues)
    try:
        shlex.split(text)
    except ValueError as exc:
        issues.append(Issue(key, f"cannot be split into arguments: {exc}"))
    return text


def _command_text(value: Any, path: str, issues: list[Issue]) -> str | None:
    if isinstance(value, dict):
        found = [k for k in COMMAND_KEYS if k in value]
        if not found:
            issues.append(Issue(path, f"as a mapping must hold one of {', '.join(COMMAND_KEYS)}"))
            return None
        return _command_text(value[found[0]], f"{path}.{found[0]}", issues)
    if isinstance(value, list):
        parts = []
        for i, item in enumerate(value):
            if isinstance(item, bool) or not isinstance(item, str | int | float):
                issues.append(Issue(f"{path}[{i}]", f"must be a string, not "
                                                    f"{type(item).__name__}"))
                return None
            parts.append(str(item).strip())
        return " ".join(p for p in parts if p)
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        issues.append(Issue(path, f"must be a string, a list or a mapping, not "
                                  f"{type(value).__name__}"))
        return None
    return str(value).strip()


_NUMBER_RE = re.compile(r"[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?")
_FORMULA_START = ("=", "+", "-", "@")
_READ_COLUMNS = ("SAMPLE_ID", "R1_FQ", "R2_FQ")


def _check_cells(row: dict[str, str], where: str, issues: list[Issue]) -> None:
    """Spreadsheet formulas and shell operators are refused in every column, read or not."""
    for column, cell in row.items():
        if cell.startswith(_FORMULA_START) and not _NUMBER_RE.fullmatch(cell):
            issues.append(Issue(f"{where} {column}", f"{cell[:40]!r} starts with "
                                f"{cell[0]!r} like a spreadsheet formula; remove it"))
        elif column not in _READ_COLUMNS:
            _check_shell(f"{where} {column}", cell, issues)


def _parse_stage_tsv(raw: str | bytes | None, folder: str, settings: Settings,
                     issues: list[Issue]) -> list[Sample]:
    if raw is None:
        issues.append(Issue(STAGE_FILE, "is missing from the workset folder; Daylily worksets "
                                        "list their samples there"))
        return []
    size = len(raw) if isinstance(raw, bytes) else len(raw.encode("utf-8", "replace"))
    if size > settings.limits.max_tsv_bytes:
        issues.append(Issue(STAGE_FILE, f"is larger than {settings.limits.max_tsv_bytes} bytes"))
        return []
    text, problems = yamlstrict.decode(raw, STAGE_FILE)
    if text is None:
        issues.extend(problems)
        return []
    reader = csv.DictReader(io.StringIO(text), delimiter="\t")
    header = [h.strip() for h in (reader.fieldnames or [])]
    missing = [c for c in ("SAMPLE_ID", "R1_FQ") if c not in header]
    if missing:
        issues.append(Issue(STAGE_FILE, f"missing column(s) {', '.join(missing)}; found: "
                                        f"{', '.join(header) or 'no header'}"))
        return []
    lanes: dict[str, list[Lane]] = {}
    for lineno, cells in enumerate(reader, start=2):
        row = {(k or "").strip(): (v or "").strip() for k, v in cells.items() if k}
        if not any(row.values()):
            continue
        where = f"{STAGE_FILE} line {lineno}"
        _check_cells(row, where, issues)
        sid = row.get("SAMPLE_ID", "")
        if len(sid) > settings.limits.max_string_length or not is_safe_name(sid):
            issues.append(Issue(f"{where} SAMPLE_ID", f"{sid[:80]!r} may hold only letters, "
                                                      "digits, '_', '-' and '.' (not '.' or "
                                                      "'..')"))
            continue
        if not row.get("R1_FQ"):
            issues.append(Issue(f"{where} R1_FQ", "is empty"))
            continue
        r1 = resolve_uri(row["R1_FQ"], folder, f"{where} R1_FQ", settings, issues)
        r2 = (resolve_uri(row["R2_FQ"], folder, f"{where} R2_FQ", settings, issues)
              if row.get("R2_FQ") else None)
        lanes.setdefault(sid, []).append(Lane(r1=r1, r2=r2))
    if not lanes and not issues:
        issues.append(Issue(STAGE_FILE, "lists no samples"))
    total = sum(len(ls) for ls in lanes.values())
    if total > settings.limits.max_samples:
        issues.append(Issue(STAGE_FILE, f"has {len(lanes)} samples in {total} lanes; at most "
                                        f"{settings.limits.max_samples} lanes allowed in one "
                                        "workset, split it into several worksets"))
    return [Sample(sample_id=sid, lanes=ls) for sid, ls in lanes.items()]


def peek_priority(work_yaml: str) -> str:
    """Best-effort priority for ordering before full validation; never raises."""
    try:
        doc, _ = load_yaml_limited(work_yaml, Settings(), WORK_FILE)
    except Exception:
        return "normal"
    value = doc.get("priority") if isinstance(doc, dict) else None
    return value if value in PRIORITIES else "normal"
