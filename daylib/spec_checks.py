"""The checks both workset formats share: values, URIs, names and dependencies.

Each check appends ``Issue``s instead of raising, so one pass reports every problem.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from pydantic import ValidationError

from daylib.config import Settings
from daylib.errors import Issue
from daylib.s3uri import split_uri
from daylib.spec import folder_uri, is_valid_id

SHELL_OPERATORS = (";", "|", "&&", "`", "$(", ">", "<", "\n")


def _loc(loc: Iterable[Any]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def pydantic_issues(exc: ValidationError, prefix: str = "") -> list[Issue]:
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


def check_shell(path: str, value: str | None, issues: list[Issue]) -> None:
    if value is None:
        return
    for op in SHELL_OPERATORS:
        if op in value:
            shown = "newline" if op == "\n" else repr(op)
            issues.append(Issue(path, f"contains the shell operator {shown}; commands are run as "
                                      "argv without a shell, remove it"))
            return


def check_length(path: str, value: str | None, settings: Settings, issues: list[Issue]) -> None:
    if value is not None and len(value) > settings.limits.max_string_length:
        issues.append(Issue(path, f"is longer than {settings.limits.max_string_length} characters"))


def resolve_uri(value: str, folder_uri: str, path: str, settings: Settings,
                issues: list[Issue], *, prefix: bool = False) -> str:
    """An S3 URI, or a key relative to the workset folder; must lie in an allowed bucket."""
    check_shell(path, value, issues)
    check_length(path, value, settings, issues)
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
    bucket, key = split_uri(uri)
    if not bucket or not key:
        issues.append(Issue(path, f"{value!r} is not a complete S3 URI (s3://bucket/key)"))
    elif bucket not in settings.allowed_buckets():
        issues.append(Issue(path, f"bucket {bucket!r} is not allowed; allowed buckets: "
                                  f"{', '.join(sorted(settings.allowed_buckets()))}"))
    return uri


def export_uri(value: str, workset_id: str, path: str, settings: Settings,
                issues: list[Issue]) -> str:
    """Where results go: an allowed bucket, and never inside another workset's folder."""
    uri = resolve_uri(value, folder_uri(settings, workset_id), path, settings, issues,
                      prefix=True)
    bucket, key = split_uri(uri) if uri.startswith("s3://") else ("", "")
    st = settings.storage
    if bucket == st.bucket and key.startswith(st.prefix):
        owner = key[len(st.prefix):].split("/", 1)[0]
        if owner != workset_id:
            issues.append(Issue(path, f"{value!r} lies inside workset {owner[:64]!r}'s folder; "
                                      "export to this workset's own folder or another prefix"))
    return uri


def check_names(spec: dict[str, Any], settings: Settings, issues: list[Issue]) -> None:
    """The reference and pipeline must be ones this deployment configured."""
    for key, noun, known in (("reference_genome", "reference", settings.workset.references),
                             ("pipeline", "pipeline", list(settings.workset.pipelines))):
        value = spec.get(key)
        if value is not None and value not in known:
            issues.append(Issue(key, f"unknown {noun} {value!r}; configured: "
                                f"{', '.join(known)}", "configuration"))


def check_after(workset_id: str, after: list[str], issues: list[Issue]) -> None:
    for i, dep in enumerate(after):
        if not isinstance(dep, str) or not is_valid_id(dep):
            issues.append(Issue(f"after[{i}]", f"{dep!r} is not a valid workset id"))
        elif dep == workset_id:
            issues.append(Issue(f"after[{i}]", "a workset cannot wait for itself"))


def str_field(doc: dict[str, Any], key: str, issues: list[Issue]) -> str | None:
    value = doc.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        issues.append(Issue(key, f"must be a string, not {type(value).__name__}"))
        return None
    return str(value)
