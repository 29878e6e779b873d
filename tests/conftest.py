"""Shared fixtures: real emulators over HTTP (moto server in its own process, dynalite from
npm), fresh tables per test, and the CLI as a subprocess.

A backend that cannot be started fails the run loudly; a test skips only when the component
truly cannot be installed on this machine (and says why)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest

from daylib.config import Settings
from daylib.emulator import FAKE_CREDENTIALS, MotoServer, start_moto
from daylib.store.contract import Store
from daylib.store.dynamodb import DynamoStore
from daylib.store.memory import MemoryStore
from tests.support.deployment import Env, fake
from tests.support.inproc import call_main

ROOT = Path(__file__).resolve().parent.parent
CACHE = ROOT / ".cache"
REGION = "us-west-2"

for _k, _v in FAKE_CREDENTIALS.items():
    os.environ.setdefault(_k, _v)
os.environ.setdefault("AWS_DEFAULT_REGION", REGION)


@pytest.fixture(scope="session")
def moto_server() -> Iterator[MotoServer]:
    server = start_moto(in_process=False)
    yield server
    server.stop()


@pytest.fixture(scope="session")
def dynalite_url() -> Iterator[str]:
    from tests.support.dynalite import dynalite_unavailable_reason, start_dynalite

    reason = dynalite_unavailable_reason()
    if reason:
        pytest.skip(f"dynalite cannot be installed here: {reason}")
    server = start_dynalite(CACHE)
    yield server.endpoint_url
    server.stop()


def client(service: str, endpoint_url: str) -> Any:
    return boto3.client(service, endpoint_url=endpoint_url, region_name=REGION)


@pytest.fixture(params=["moto", "dynalite"])
def ddb_endpoint(request: pytest.FixtureRequest) -> str:
    """The same store tests run against both DynamoDB implementations."""
    if request.param == "moto":
        server: MotoServer = request.getfixturevalue("moto_server")
        return server.endpoint_url
    url: str = request.getfixturevalue("dynalite_url")
    return url


@pytest.fixture
def table_name() -> str:
    return f"daylib-test-{uuid.uuid4().hex[:10]}"


@pytest.fixture
def dynamo_store(ddb_endpoint: str, table_name: str) -> DynamoStore:
    """A DynamoDB store, for tests of what DynamoDB itself does (items, expressions)."""
    st = DynamoStore(client("dynamodb", ddb_endpoint), table_name, keep_first=2, keep_last=5)
    st.create_table()
    return st


@pytest.fixture(params=["memory", "moto", "dynalite"])
def store(request: pytest.FixtureRequest, table_name: str) -> Store:
    """The store contract suite runs unchanged on every backend."""
    st: Store
    if request.param == "memory":
        st = MemoryStore(keep_first=2, keep_last=5)
    else:
        url = (request.getfixturevalue("moto_server").endpoint_url if request.param == "moto"
               else request.getfixturevalue("dynalite_url"))
        st = DynamoStore(client("dynamodb", url), table_name, keep_first=2, keep_last=5)
    st.create_table()
    return st


@pytest.fixture
def settings(moto_server: MotoServer, tmp_path: Path, table_name: str) -> Settings:
    """Settings pointing at the moto server with a fresh table and bucket."""
    return make_settings(moto_server, tmp_path, table_name)


def make_settings(moto_server: MotoServer, tmp_path: Path, table_name: str) -> Settings:
    s = Settings()
    s.aws.endpoint_url = moto_server.endpoint_url
    s.aws.region = REGION
    s.state.table = table_name
    s.storage.bucket = f"ws-{uuid.uuid4().hex[:12]}"
    s.monitor.workdir = str(tmp_path / "work")
    s.monitor.poll_seconds = 0.1
    s.monitor.discovery_seconds = 0.2
    s.monitor.reap_seconds = 0.2
    s.monitor.idle_max_seconds = 5.0  # what tests learn only from the table, within 5 s
    s.monitor.heartbeat_seconds = 1.0  # finished steps reach the item with the next beat
    s.monitor.monitor_id = "test-monitor"
    s.retry.base_seconds = 0.2
    s.retry.cap_seconds = 1.0
    return s


def cli_command() -> list[str]:
    """The installed console script when there is one, else the module entry point."""
    script = Path(sys.executable).parent / "daylily-workset"
    return [str(script)] if script.exists() else [sys.executable, "-m", "daylib.cli"]


def run_cli(*args: str, env: dict[str, str] | None = None, timeout: float = 120,
            cwd: Path | None = None, process: bool = False) -> subprocess.CompletedProcess[str]:
    """``daylily-workset ARGS``: in this process by default (``main(argv)``, see
    tests/support/inproc.py); ``process=True`` for the process contract, with ``timeout``."""
    full_env = {**os.environ, "PYTHONPATH": str(ROOT), **(env or {})}
    if not process:
        return call_main(args, full_env, cwd or ROOT)
    return subprocess.run([*cli_command(), *args], capture_output=True, text=True,
                          env=full_env, timeout=timeout, cwd=cwd or ROOT)


def which(name: str) -> str | None:
    return shutil.which(name)


@pytest.fixture
def env(settings: Settings, tmp_path: Path, request: pytest.FixtureRequest) -> Env:
    """A fresh deployment on the moto server with fake pipelines of known behaviour; its store
    is in memory for tests marked ``memory_store`` (monitor logic, not DynamoDB)."""
    settings.workset.pipelines = {
        "germline": fake(0.0), "short": fake(0.2), "long": fake(5.0),
        "sleepy": fake(30.0), "exit3": fake(0.0, 3), "bad-fastq": fake(0.0, 65),
        "counted": fake(1.5, 0, f"--marker {tmp_path / 'runs.txt'}"),
    }
    return Env(settings, memory=request.node.get_closest_marker("memory_store") is not None)
