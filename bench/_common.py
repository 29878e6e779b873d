"""Shared set-up for benchmarks: an emulator, a fresh table/bucket, a run-only executor."""

from __future__ import annotations

import json
import sys
import threading
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from daylib import wiring  # noqa: E402
from daylib.aws import AwsClients  # noqa: E402
from daylib.config import Settings  # noqa: E402
from daylib.executors.base import StepOutcome, StepRequest  # noqa: E402
from daylib.executors.local import LocalExecutor  # noqa: E402
from daylib.s3 import S3Objects  # noqa: E402
from daylib.spec import parse_workset  # noqa: E402
from daylib.store.dynamodb import DynamoStore  # noqa: E402

FASTQ = b"@r1\nACGT\n+\nFFFF\n"


class RunOnlyExecutor(LocalExecutor):
    """Stage and export succeed at once; ``run`` is a real subprocess (e.g. ``sleep 3``)."""

    def submit(self, req: StepRequest) -> str:
        return super().submit(req) if req.step == "run" else "instant"

    def wait(self, job_ref: str, req: StepRequest, stop: threading.Event) -> StepOutcome:
        if job_ref == "instant":
            return StepOutcome("COMPLETED", 0, job_ref=job_ref)
        return super().wait(job_ref, req, stop)


def bench_settings(endpoint_url: str, workdir: str, **monitor: Any) -> Settings:
    s = Settings()
    s.aws.endpoint_url = endpoint_url
    s.aws.region = "us-west-2"
    s.state.table = f"bench-{uuid.uuid4().hex[:8]}"
    s.storage.bucket = f"bench-{uuid.uuid4().hex[:8]}"
    s.monitor.workdir = workdir
    for key, value in monitor.items():
        setattr(s.monitor, key, value)
    return s


def deploy(settings: Settings) -> tuple[AwsClients, DynamoStore, S3Objects]:
    clients = AwsClients(settings.aws, max_pool_connections=64)
    store = wiring.store_for(settings, clients)
    s3 = wiring.s3_for(clients)
    store.create_table()
    s3.ensure_bucket(settings.storage.bucket, clients.region)
    s3.put_bytes(settings.storage.bucket, "fastq/S1.fq", FASTQ)
    return clients, store, s3


def register(store: DynamoStore, settings: Settings, workset_id: str, *, pipeline: str,
             priority: str = "normal", created: float | None = None) -> None:
    """Register as intake would, with a parsed spec (skips the S3 listing)."""
    doc = (f"samples: [{{sample_id: S1, fastq_r1: 's3://{settings.storage.bucket}/fastq/S1.fq'}}]"
           f"\nreference_genome: hg38\npipeline: {pipeline}\npriority: {priority}\n")
    ws = parse_workset(workset_id, doc, settings)
    store.register(workset_id, actor="bench", priority=ws.priority, created=created, fields={
        "format": "daylib", "spec_json": ws.model_dump_json(), "summary": ws.summary(),
        "results_uri": ws.export_uri})


class CallCounter:
    """Counts AWS API calls made through the given clients (botocore parameter-build hook)."""

    def __init__(self, *clients: Any) -> None:
        self.calls: Counter[str] = Counter()
        self._lock = threading.Lock()
        for c in clients:
            c.meta.events.register("before-parameter-build.*.*", self._count)

    def _count(self, model: Any, params: Any = None, **_: Any) -> None:
        """Calls on the cluster registry, cap and control items (keys starting with '#')
        are counted apart from calls on workset items."""
        key = (params or {}).get("Key") or (params or {}).get("Item") or {}
        pk = key.get("pk", {}).get("S", "") if isinstance(key, dict) else ""
        suffix = " (registry/control)" if pk.startswith("#") else ""
        with self._lock:
            self.calls[f"{model.service_model.service_name}.{model.name}{suffix}"] += 1

    def snapshot(self) -> Counter[str]:
        with self._lock:
            return Counter(self.calls)


def process_cpu(pid: int | None) -> float:
    """CPU seconds (user + system) used so far by another process of this machine (Linux's
    /proc); 0.0 where that cannot be read."""
    import os

    try:
        with open(f"/proc/{pid}/stat") as fh:
            fields = fh.read().rsplit(")", 1)[1].split()
    except (OSError, IndexError, TypeError):
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def print_json(data: Any) -> None:
    print(json.dumps(data, indent=2, sort_keys=True))
