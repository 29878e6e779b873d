"""The daylib upload format: ``daylily_work.yaml`` listing its samples with their FASTQs."""

from __future__ import annotations

from typing import Any

from pydantic import Field, ValidationError, field_validator

from daylib.config import Priority, Settings
from daylib.errors import Issue, SpecError
from daylib.spec import (
    Affinity,
    Lane,
    Resources,
    Sample,
    Strict,
    Workset,
    default_export_uri,
    folder_uri,
    is_safe_name,
)
from daylib.spec_checks import (
    check_after,
    check_length,
    check_names,
    check_shell,
    export_uri,
    pydantic_issues,
    resolve_uri,
)


class _SampleIn(Strict):
    sample_id: str
    fastq_r1: str
    fastq_r2: str | None = None
    coverage: float | None = Field(None, ge=0)


class _DaylibIn(Strict):
    samples: list[_SampleIn] = Field(min_length=1)
    reference_genome: str
    pipeline: str | None = None
    priority: Priority | None = None
    max_retries: int | None = Field(None, ge=0, le=10)
    preferred_cluster: str | None = None
    affinity: Affinity = "hard"
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
            check_length(f"{path}.sample_id", sid, settings, issues)
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


def parse_daylib(workset_id: str, doc: dict[str, Any], settings: Settings,
                  issues: list[Issue]) -> Workset:
    folder = folder_uri(settings, workset_id)
    spec: _DaylibIn | None = None
    try:
        spec = _DaylibIn.model_validate(doc)
    except ValidationError as exc:
        issues.extend(pydantic_issues(exc))
    samples = _check_samples(doc.get("samples"), folder, settings, issues)
    check_names(doc, settings, issues)
    after = doc.get("after")
    if isinstance(after, list):
        check_after(workset_id, after, issues)
    for key in ("preferred_cluster", "customer_id"):
        value = doc.get(key)
        if isinstance(value, str):
            check_shell(key, value, issues)
            check_length(key, value, settings, issues)
    export_raw = doc.get("export_uri")
    export = (export_uri(export_raw, workset_id, "export_uri", settings, issues)
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
