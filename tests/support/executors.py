"""Executors for monitor tests and benchmarks about scheduling, not data movement."""

from __future__ import annotations

import threading
from dataclasses import replace

from daylib.executors.base import StepOutcome, StepRequest
from daylib.executors.local import LocalExecutor


class NoOpStaging(LocalExecutor):
    """Stage and export run ``true`` under the same wrapper: the same step processes are
    started, waited for and reaped, without two interpreters importing boto3 per workset
    (about 0.7 s of CPU each, most of a short workset's cost). The run step is unchanged."""

    def submit(self, req: StepRequest) -> str:
        return super().submit(req if req.step == "run" else replace(req, argv=["true"]))


class InstantSteps:
    """Every step succeeds at once, with no process: for tests and benchmarks of claiming,
    where what the steps do does not matter and many worksets must pass through quickly."""

    name = "instant"
    records_jobs = False

    def cluster_capacity(self) -> None:
        return None

    def submit(self, req: StepRequest) -> str:
        return "instant"

    def find(self, req: StepRequest) -> str | None:
        return None

    def wait(self, job_ref: str, req: StepRequest, stop: threading.Event) -> StepOutcome:
        return StepOutcome("COMPLETED", 0, job_ref=job_ref)

    def cancel(self, job_ref: str) -> None:
        return None
