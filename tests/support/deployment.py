"""A test deployment on the emulator: settings, store, S3, worksets uploaded like users do."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import yaml

from daylib.aws import AwsClients
from daylib.config import Settings
from daylib.executors.local import LocalExecutor
from daylib.monitor import Monitor
from daylib.s3 import S3Objects
from daylib.store.dynamodb import DynamoStore

FASTQ = b"@r1\nACGTACGTAC\n+\nFFFFFFFFFF\n@r2\nGGGCCCAAAT\n+\nFFFFF:::::\n"


def fake(sleep: float = 0.0, code: int = 0, extra: str = "") -> str:
    return (f"{{python}} -m tests.support.fakepipe --out {{results_dir}} --sleep {sleep} "
            f"--exit {code} {extra}").strip()


class Env:
    """One test's emulated deployment: settings, store, S3, and ways to upload worksets."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.clients = AwsClients(settings.aws)
        self.store = DynamoStore(self.clients.client("dynamodb"), settings.state.table)
        self.s3 = S3Objects(self.clients.client("s3"))
        self.store.create_table()
        self.s3.ensure_bucket(settings.storage.bucket, self.clients.region)
        self.bucket = settings.storage.bucket
        self.prefix = settings.storage.prefix

    def put(self, workset_id: str, name: str, body: str | bytes) -> None:
        data = body.encode() if isinstance(body, str) else body
        self.s3.put_bytes(self.bucket, f"{self.prefix}{workset_id}/{name}", data)

    def upload(self, workset_id: str, *, pipeline: str = "germline", priority: str = "normal",
               **extra: Any) -> None:
        self.put(workset_id, "sample_data/S1_R1.fastq", FASTQ)
        doc = {"samples": [{"sample_id": "S1", "fastq_r1": "sample_data/S1_R1.fastq"}],
               "reference_genome": "hg38", "pipeline": pipeline, "priority": priority, **extra}
        self.put(workset_id, "daylily_work.yaml", yaml.safe_dump(doc))

    def monitor(self, **overrides: Any) -> Monitor:
        s = self.settings.model_copy(deep=True)
        for key, value in overrides.items():
            setattr(s.monitor, key, value)
        return Monitor(s, self.store, self.s3, LocalExecutor(),
                       step_env=self.clients.subprocess_env())

    @contextmanager
    def running(self, **overrides: Any) -> Iterator[Monitor]:
        mon = self.monitor(**overrides)
        thread = threading.Thread(target=mon.run, daemon=True)
        thread.start()
        try:
            yield mon
        finally:
            mon.request_stop()
            thread.join(30)

    def wait_for(self, pred: Callable[[], bool], timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if pred():
                return
            time.sleep(0.05)
        raise AssertionError("condition not met within timeout")

    def at(self, workset_id: str, state: str, step: str | None = None) -> bool:
        rec = self.store.get(workset_id)
        return rec is not None and rec.state == state and (step is None or rec.step == step)

    def state(self, workset_id: str) -> str | None:
        rec = self.store.get(workset_id)
        return rec.state if rec else None
