"""CLI fixtures: a per-test (or per-module) deployment on the shared moto server, reached only
through the CLI (``main(argv)`` in this process, or the ``daylily-workset`` entry point as a
subprocess for the process contract) and through boto3."""

from __future__ import annotations

import json
import shutil
import subprocess
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from daylib.emulator import MotoServer
from tests.conftest import REGION, client, run_cli

EXAMPLES = Path(__file__).resolve().parents[2] / "daylib" / "data" / "examples"
FASTQ_DIR = EXAMPLES / "fastq"
WORKSETS_DIR = EXAMPLES / "worksets"
PREFIX = "worksets/"


@dataclass
class CliEnv:
    """One isolated deployment: its own table, bucket and monitor work directory."""

    url: str
    table: str
    bucket: str
    workdir: Path
    env: dict[str, str]

    def run(self, *args: str, timeout: float = 120, extra_env: dict[str, str] | None = None,
            process: bool = False) -> subprocess.CompletedProcess[str]:
        """In this process unless ``process`` (see ``tests.conftest.run_cli``)."""
        return run_cli(*args, env={**self.env, **(extra_env or {})}, timeout=timeout,
                       process=process)

    def run_many(self, *calls: tuple[str, ...]) -> list[subprocess.CompletedProcess[str]]:
        """Independent read-only calls, one after the other (in-process calls never overlap)."""
        return [self.run(*args) for args in calls]

    def ok(self, *args: str, timeout: float = 120,
           process: bool = False) -> subprocess.CompletedProcess[str]:
        """Run and require exit 0 (showing stderr when it is not)."""
        res = self.run(*args, timeout=timeout, process=process)
        assert res.returncode == 0, (args, res.returncode, res.stdout, res.stderr)
        return res

    def json(self, *args: str, timeout: float = 120) -> Any:
        """Run with ``--json``, require exit 0 and that stdout is one JSON document."""
        res = self.ok(*args, "--json", timeout=timeout)
        return json.loads(res.stdout)

    def show(self, workset_id: str) -> dict[str, Any]:
        data: dict[str, Any] = self.json("show", workset_id)
        return data

    @property
    def s3(self) -> Any:
        return client("s3", self.url)

    def key(self, workset_id: str, rel: str) -> str:
        return f"{PREFIX}{workset_id}/{rel}"

    def put(self, key: str, body: bytes | str) -> None:
        self.s3.put_object(Bucket=self.bucket, Key=key,
                           Body=body.encode() if isinstance(body, str) else body)

    def get_text(self, key: str) -> str:
        body: bytes = self.s3.get_object(Bucket=self.bucket, Key=key)["Body"].read()
        return body.decode()

    def keys(self, prefix: str) -> list[str]:
        pages = self.s3.get_paginator("list_objects_v2").paginate(Bucket=self.bucket,
                                                                 Prefix=prefix)
        return sorted(o["Key"] for p in pages for o in p.get("Contents", []))

    def upload_fastq(self, name: str, key: str) -> str:
        self.s3.upload_file(str(FASTQ_DIR / name), self.bucket, key)
        return f"s3://{self.bucket}/{key}"

    def upload_sample_data(self, workset_id: str, *names: str) -> None:
        """FASTQs into the workset folder's ``sample_data/`` (as a submitter does first)."""
        for name in names:
            self.upload_fastq(name, self.key(workset_id, f"sample_data/{name}"))


def daylib_yaml(path: Path, samples: list[dict[str, Any]], **extra: Any) -> Path:
    doc = {"samples": samples, "reference_genome": "hg38", **extra}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


def paired_sample(sample_id: str = "NA12878") -> dict[str, Any]:
    return {"sample_id": sample_id, "fastq_r1": "sample_data/NA12878_R1.fastq.gz",
            "fastq_r2": "sample_data/NA12878_R2.fastq.gz"}


PAIRED_FASTQS = ("NA12878_R1.fastq.gz", "NA12878_R2.fastq.gz")


def one_line_error(res: subprocess.CompletedProcess[str], code: int = 1) -> str:
    """The contract for user errors: exit ``code``, one line on stderr, no traceback."""
    assert res.returncode == code, (res.returncode, res.stdout, res.stderr)
    assert "Traceback" not in res.stderr, res.stderr
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1, res.stderr
    return lines[0]


def _build(server: MotoServer, workdir: Path, **overrides: str) -> CliEnv:
    table = f"daylib-cli-{uuid.uuid4().hex[:10]}"
    bucket = f"ws-cli-{uuid.uuid4().hex[:12]}"
    env = {
        "AWS_ENDPOINT_URL": server.endpoint_url,
        "AWS_REGION": REGION,
        "AWS_DEFAULT_REGION": REGION,
        "DAYLILY_STATE__TABLE": table,
        "DAYLILY_STORAGE__BUCKET": bucket,
        "DAYLILY_MONITOR__WORKDIR": str(workdir),
        "DAYLILY_MONITOR__POLL_SECONDS": "0.1",
        "DAYLILY_MONITOR__DISCOVERY_SECONDS": "0.2",
        "DAYLILY_MONITOR__REAP_SECONDS": "0.2",
        # topics and queues are account-wide: each deployment gets its own
        "DAYLILY_NOTIFY__TOPIC_NAME": f"events-{table}",
        "DAYLILY_DLQ__QUEUE_NAME": f"dlq-{table}",
        "DAYLILY_INTAKE__QUEUE_NAME": f"intake-{table}",
        **overrides,
    }
    return CliEnv(server.endpoint_url, table, bucket, workdir, env)


EnvFactory = Callable[..., CliEnv]


@pytest.fixture
def make_env(moto_server: MotoServer, tmp_path: Path) -> EnvFactory:
    """``make_env(init=True, **DAYLILY_VARS)``: a fresh deployment (``init`` already run)."""
    count = 0

    def make(init: bool = True, **overrides: str) -> CliEnv:
        nonlocal count
        count += 1
        env = _build(moto_server, tmp_path / f"work{count}", **overrides)
        if init:
            env.ok("init")
        return env
    return make


@pytest.fixture
def cli_env(make_env: EnvFactory) -> CliEnv:
    return make_env()


@pytest.fixture(scope="module")
def module_env(moto_server: MotoServer, tmp_path_factory: pytest.TempPathFactory
               ) -> Iterator[CliEnv]:
    """One initialised deployment shared by a module's tests (they use distinct ids)."""
    workdir = tmp_path_factory.mktemp("cli-work")
    env = _build(moto_server, workdir)
    env.ok("init")
    yield env
    shutil.rmtree(workdir, ignore_errors=True)
