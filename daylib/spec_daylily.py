"""The Daylily upload format: ``daylily_work.yaml`` with Daylily's own keys, samples in
``stage_samples.tsv``."""

from __future__ import annotations

import csv
import io
import re
import shlex
from typing import Any

from daylib import yamlstrict
from daylib.config import PRIORITIES, Settings
from daylib.errors import Issue, SpecError
from daylib.spec import (
    DAYLILY_KEYS,
    DYR_ALIASES,
    EXPORT_ALIASES,
    STAGE_FILE,
    Lane,
    Sample,
    Workset,
    default_export_uri,
    folder_uri,
    is_safe_name,
)
from daylib.spec_checks import (
    check_length,
    check_names,
    check_shell,
    export_uri,
    resolve_uri,
    str_field,
)

COMMAND_KEYS = ("args", "cmd", "command", "suffix")


def parse_daylily(workset_id: str, doc: dict[str, Any], stage_tsv: str | bytes | None,
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
    workdir_name = str_field(doc, "workdir_name", issues)
    if workdir_name and not is_safe_name(workdir_name):
        issues.append(Issue("workdir_name", f"{workdir_name[:80]!r} may hold only letters, "
                                            "digits, '_', '-' and '.' (not '.' or '..')"))
    folder = folder_uri(settings, workset_id)
    exports = [k for k in EXPORT_ALIASES if k in doc]
    if len(exports) > 1:
        issues.append(Issue(exports[1], f"duplicates {exports[0]!r}; give the export URI once"))
    export_raw = str_field(doc, exports[0], issues) if exports else None
    export_raw = export_raw.strip() if export_raw else None
    export = (export_uri(export_raw, workset_id, exports[0], settings, issues)
              if export_raw and exports else default_export_uri(settings, workset_id))
    priority = str_field(doc, "priority", issues) or settings.workset.default_priority
    if priority not in PRIORITIES:
        issues.append(Issue("priority", f"{priority!r} is not one of {', '.join(PRIORITIES)}"))
    max_retries = doc.get("max_retries", settings.workset.default_max_retries)
    if not isinstance(max_retries, int) or isinstance(max_retries, bool) or not (
            0 <= max_retries <= 10):
        issues.append(Issue("max_retries",
                            f"must be an integer from 0 to 10 (got {max_retries!r})"))
        max_retries = settings.workset.default_max_retries
    cluster = str_field(doc, "cluster_name", issues)
    customer = str_field(doc, "customer_id", issues)
    text_fields = {key: str_field(doc, key, issues)
                   for key in ("budget", "notes", "reference_genome", "pipeline")}
    for key, value in (("cluster_name", cluster), ("customer_id", customer),
                       ("workdir_name", workdir_name), ("budget", text_fields["budget"])):
        check_shell(key, value, issues)
        check_length(key, value, settings, issues)
    check_length("notes", text_fields["notes"], settings, issues)
    check_names(doc, settings, issues)
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
    check_shell(key, text, issues)
    check_length(key, text, settings, issues)
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
            check_shell(f"{where} {column}", cell, issues)


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
