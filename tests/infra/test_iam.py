"""Least privilege, measured: a moto server records every request of a full run (submitter,
monitor with the local and the Slurm executor, notifications, dead-lettering, operator
commands); each role's policy from the deployed stack must allow every call its commands made
and grant no action they did not use."""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yaml

from daylib.emulator import MotoServer, start_moto
from tests.cli.conftest import (
    FASTQ_DIR,
    PAIRED_FASTQS,
    WORKSETS_DIR,
    daylib_yaml,
    paired_sample,
)
from tests.conftest import REGION, run_cli
from tests.support.iamrecord import Call, actions, allows, calls, read
from tests.support.slurm import SlurmCluster
from tests.support.stack import Stack


@dataclass
class Run:
    stack: Stack
    recording: Path
    config: Path
    env: dict[str, str]
    by_role: dict[str, list[Call]] = field(default_factory=dict)
    _seen: int = 0

    def cli(self, role: str, *args: str, extra: dict[str, str] | None = None) -> str:
        res = run_cli("--config", str(self.config), *args, env={**self.env, **(extra or {})},
                      timeout=300)
        assert res.returncode == 0, (args, res.stdout, res.stderr)
        self.take(role)
        return res.stdout

    def take(self, role: str) -> None:
        """Attribute the requests recorded since the last call to ``role``."""
        entries = read(self.recording)
        self.by_role.setdefault(role, []).extend(calls(entries[self._seen:]))
        self._seen = len(entries)


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory, slurm_cluster: SlurmCluster
             ) -> Iterator[Run]:
    tmp = tmp_path_factory.mktemp("iam")
    recording = tmp / "requests.jsonl"
    saved = {k: os.environ.get(k) for k in ("MOTO_ENABLE_RECORDING", "MOTO_RECORDER_FILEPATH")}
    os.environ.update(MOTO_ENABLE_RECORDING="true", MOTO_RECORDER_FILEPATH=str(recording))
    server: MotoServer = start_moto(in_process=False)
    for k, v in saved.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v
    try:
        name = f"iam-{uuid.uuid4().hex[:8]}"
        stack = Stack(server.endpoint_url, REGION, name, f"ws-{name}")
        stack.deploy()
        stack.wire(stack.missing())
        env = {"AWS_ENDPOINT_URL": server.endpoint_url, "AWS_REGION": REGION,
               "DAYLILY_MONITOR__WORKDIR": str(tmp / "shared"),
               "DAYLILY_MONITOR__POLL_SECONDS": "0.1",
               "DAYLILY_MONITOR__DISCOVERY_SECONDS": "0.2",
               "DAYLILY_MONITOR__REAP_SECONDS": "0.2", **slurm_cluster.env}
        run = Run(stack, recording, tmp / "daylily-workset.yaml", env)
        run.take("setup")
        _play(run, tmp)
        yield run
    finally:
        server.stop()


def _submit(run: Run, tmp: Path, wid: str, *args: str, **extra: object) -> None:
    s3 = run.stack.client("s3")
    for fq in PAIRED_FASTQS:  # what a submitter uploads first (aws s3 cp)
        s3.upload_file(str(FASTQ_DIR / fq), run.stack.bucket, f"worksets/{wid}/sample_data/{fq}")
    run.take("submitter")
    spec = daylib_yaml(tmp / wid / "daylily_work.yaml", [paired_sample()], **extra)
    run.cli("submitter", "submit", str(spec), "--id", wid, *args)


def _submit_daylily_folder(run: Run, tmp: Path, wid: str) -> None:
    """Daylily's folder format: its sentinel files are mirrored (put and delete)."""
    folder = tmp / wid
    shutil.copytree(WORKSETS_DIR / "demo-hg003-daylily", folder)
    (folder / "sample_data").mkdir()
    for fq in sorted(FASTQ_DIR.glob("HG003_*.fastq.gz")):
        shutil.copy(fq, folder / "sample_data" / fq.name)
    run.cli("submitter", "submit", str(folder), "--id", wid)


def _play(run: Run, tmp: Path) -> None:
    res = run_cli("config", "from-stack", run.stack.name, "--output", str(run.config),
                  env=run.env)
    assert res.returncode == 0, res.stderr
    run.take("operator")
    # submitter: two worksets (one names a reference nobody configured: it fails, DLQ)
    _submit(run, tmp, "iam-good")
    _submit(run, tmp, "iam-bad")
    _submit_daylily_folder(run, tmp, "iam-daylily")
    bad = yaml.safe_load((tmp / "iam-bad" / "daylily_work.yaml").read_text())
    bad["reference_genome"] = "hg99"
    run.stack.client("s3").put_object(Bucket=run.stack.bucket,
                                      Key="worksets/iam-bad/daylily_work.yaml",
                                      Body=yaml.safe_dump(bad).encode())
    run.take("submitter")
    # monitor, local executor: one completes, one fails and is dead-lettered
    run.cli("monitor", "monitor", "--once", "--cluster", "local-c")
    for args in (("queue",), ("list",), ("show", "iam-good")):
        run.cli("submitter", *args)
    # operator: every control command
    _submit(run, tmp, "iam-ctl", "--cluster", "nowhere")
    run.cli("monitor", "monitor", "--once", "--cluster", "local-c")  # registers it; waits
    for args in (("priority", "iam-ctl", "urgent"), ("cancel", "iam-ctl"),
                 ("retry", "iam-ctl"), ("affinity", "iam-ctl", "local-c"), ("pause",),
                 ("resume",),
                 ("dlq", "list"), ("dlq", "redrive", "iam-bad"), ("clusters",), ("doctor",)):
        run.cli("operator", *args)
    # monitor, Slurm executor: the retried and the redriven workset
    run.cli("monitor", "monitor", "--once", "--cluster", "local-c", "--executor", "slurm")
    _submit(run, tmp, "iam-slurm", "--cluster", "slurm-c")
    run.cli("monitor", "monitor", "--once", "--cluster", "slurm-c", "--executor", "slurm")
    for args in (("show", "iam-slurm", "--json"), ("show", "iam-ctl", "--json"),
                 ("show", "iam-daylily", "--json")):
        out = run.cli("submitter", *args)
        assert "\"state\": \"complete\"" in out, out


def test_the_run_covered_every_path(recorded: Run) -> None:
    seen = {c.action for c in recorded.by_role["monitor"]}
    assert {"sns:Publish", "sqs:SendMessage", "s3:PutObject", "s3:GetObject",
            "dynamodb:UpdateItem"} <= seen, seen


@pytest.mark.parametrize(("role", "output"), [("monitor", "MonitorPolicyArn"),
                                              ("submitter", "SubmitterPolicyArn"),
                                              ("operator", "OperatorPolicyArn")])
def test_policy_allows_exactly_what_the_role_uses(recorded: Run, role: str, output: str
                                                  ) -> None:
    policy = recorded.stack.policy(output)
    used = recorded.by_role[role]
    denied = sorted({f"{c.action} {c.resource} prefix={c.prefix}" for c in used
                     if not allows(policy, c)})
    assert not denied, f"{role} policy denies calls the {role} makes:\n" + "\n".join(denied)
    unused = actions(policy) - {c.action for c in used}
    assert not unused, f"{role} policy grants actions never used: {sorted(unused)}"
