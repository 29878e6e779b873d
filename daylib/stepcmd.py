"""How a workset's steps become commands: stage and export run daylib's own steps, the run
step the configured pipeline. Pure: testable without a monitor, store or executor."""

from __future__ import annotations

import json
import shlex
import sys
from pathlib import Path

from daylib import workdir as workdirs
from daylib.argv import fill_template, pipeline_template
from daylib.config import Settings
from daylib.executors.base import StepRequest
from daylib.spec import Workset
from daylib.store.records import WorksetRecord


def step_request(settings: Settings, ws: Workset, rec: WorksetRecord, step: str,
                 workdir: Path, env: dict[str, str], monitor_id: str = "") -> StepRequest:
    """The request for one step of the record's current attempt (effective resources).
    A template or pipeline that cannot be filled raises a one-line SpecError."""
    py = sys.executable
    inputs, results = workdir / "inputs", workdir / "results"
    if step == "stage":
        manifest = workdir / "manifest.json"
        workdirs.write_private(Path(settings.monitor.workdir), manifest,
                               json.dumps({"samples": [s.model_dump() for s in ws.samples]}))
        argv = [py, "-m", "daylib.steps", "stage", "--manifest", str(manifest),
                "--dest", str(inputs)]
    elif step == "export":
        argv = [py, "-m", "daylib.steps", "export", "--src", str(results),
                "--dest", ws.export_uri]
    else:
        argv = run_argv(settings, ws, workdir, monitor_id)
    return StepRequest(
        workset_id=ws.workset_id, attempt=rec.attempt, step=step, argv=argv,
        workdir=workdir, env=env, vcpus=ws.resources.vcpus,
        memory_gb=rec.resources.get("memory_gb", ws.resources.memory_gb),
        walltime_minutes=rec.resources.get("walltime_minutes", ws.resources.walltime_minutes),
        timeout_seconds=settings.monitor.step_timeout_seconds,
        log_max_bytes=settings.step_logs.max_bytes, log_head_bytes=settings.step_logs.head_bytes)


def run_argv(settings: Settings, ws: Workset, workdir: Path,
             monitor_id: str = "") -> list[str]:
    """The pipeline command as argv: template tokens are split first, then filled, so a
    value can never add arguments. The deployment's templates are ``configuration``,
    Daylily's ``day-clone`` is the user's ``data``."""
    values = {"python": sys.executable, "samples_tsv": str(workdir / "inputs/samples.tsv"),
              "results_dir": str(workdir / "results"), "workdir": str(workdir),
              "workset": ws.workset_id, "workset_id": ws.workset_id,
              "workdir_name": ws.workdir_name or ws.workset_id,
              "reference": ws.reference_genome or "", "pipeline": ws.pipeline or ""}

    def fill(template: str, where: str, category: str) -> list[str]:
        return fill_template(template, values, where, category)

    if ws.format == "daylily":
        run = fill(settings.daylily.run_prefix, "daylily.run_prefix",
                   "configuration") + shlex.split(ws.dy_r or "")
        if ws.day_clone and settings.daylily.clone_prefix:
            clone = fill(settings.daylily.clone_prefix, "daylily.clone_prefix",
                         "configuration") + fill(ws.day_clone, "day-clone", "data")
            return [sys.executable, "-m", "daylib.steps", "chain", "--json",
                    json.dumps([clone, run])]
        return run
    name = ws.pipeline or "germline"
    template = pipeline_template(settings.workset.pipelines, name, monitor_id)
    return fill(template, f"workset.pipelines.{name}", "configuration")
