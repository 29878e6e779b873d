"""Least privilege, measured: a moto server records every request of a full run (submitter,
monitor with the local and the Slurm executor, the intake queue fed by S3 events, step logs,
notifications, dead-lettering, operator commands); each role signs with its own access key, and
each role's policy from the deployed stack must allow every call its commands made and grant no
action they did not use."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
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
from tests.conftest import REGION, ROOT, cli_command, run_cli
from tests.support.iamrecord import Call, actions, allows, by_key, read
from tests.support.slurm import SlurmCluster
from tests.support.stack import Stack

ROLES = ("submitter", "monitor", "operator")


@dataclass
class Run:
    stack: Stack
    recording: Path
    config: Path
    env: dict[str, str]
    by_role: dict[str, list[Call]] = field(default_factory=dict)

    def role_env(self, role: str) -> dict[str, str]:
        """The role's own access key: the recording tells its requests apart by it."""
        return {**self.env, "AWS_ACCESS_KEY_ID": f"AKIA{role.upper()}",
                "AWS_SECRET_ACCESS_KEY": f"{role}-secret"}

    def cli(self, role: str, *args: str) -> str:
        res = run_cli("--config", str(self.config), *args, env=self.role_env(role),
                      timeout=300)
        assert res.returncode == 0, (args, res.stdout, res.stderr)
        return res.stdout

    def s3(self, role: str) -> Any:
        env = self.role_env(role)
        return boto3.client("s3", endpoint_url=self.stack.url, region_name=REGION,
                            aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
                            aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"])

    def collect(self) -> None:
        grouped = by_key(read(self.recording))
        self.by_role = {role: grouped.get(f"AKIA{role.upper()}", []) for role in ROLES}


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
        _play(run, tmp)
        run.collect()
        yield run
    finally:
        server.stop()


def _submit(run: Run, tmp: Path, wid: str, *args: str, **extra: object) -> None:
    s3 = run.s3("submitter")
    for fq in PAIRED_FASTQS:  # what a submitter uploads first (aws s3 cp)
        s3.upload_file(str(FASTQ_DIR / fq), run.stack.bucket, f"worksets/{wid}/sample_data/{fq}")
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
                  env=run.role_env("operator"))
    assert res.returncode == 0, res.stderr
    written = yaml.safe_load(run.config.read_text())
    assert written["intake"]["queue_url"] == run.stack.outputs["IntakeQueueUrl"], written
    # submitter: two worksets submitted, one uploaded as files only (aws s3 cp) that names a
    # reference nobody configured: the monitor registers it, fails it, dead-letters it
    _submit(run, tmp, "iam-good")
    _submit_daylily_folder(run, tmp, "iam-daylily")
    s3 = run.s3("submitter")
    for fq in PAIRED_FASTQS:
        s3.upload_file(str(FASTQ_DIR / fq), run.stack.bucket, f"worksets/iam-bad/sample_data/{fq}")
    bad = daylib_yaml(tmp / "iam-bad" / "daylily_work.yaml", [paired_sample()],
                      reference_genome="hg99")
    s3.upload_file(str(bad), run.stack.bucket, "worksets/iam-bad/daylily_work.yaml")
    run.cli("submitter", "validate", str(tmp / "iam-good" / "daylily_work.yaml"))
    # monitor, local executor: one completes, one fails and is dead-lettered
    run.cli("monitor", "monitor", "--once", "--cluster", "local-c")
    bad_state = json.loads(run.cli("submitter", "--json", "show", "iam-bad"))["state"]
    assert bad_state == "failed", bad_state
    for args in (("queue",), ("list",), ("show", "iam-good"), ("logs", "iam-good"),
                 ("logs", "iam-good", "--step", "run")):
        run.cli("submitter", *args)
    _list_every_page(run)
    # operator: every control command
    _submit(run, tmp, "iam-ctl", "--cluster", "nowhere")
    run.cli("monitor", "monitor", "--once", "--cluster", "local-c")  # registers it; waits
    for args in (("priority", "iam-ctl", "urgent"), ("cancel", "iam-ctl"),
                 ("retry", "iam-ctl"), ("affinity", "iam-ctl", "local-c"), ("pause",),
                 ("resume",),
                 ("dlq", "list"), ("dlq", "redrive", "iam-bad"), ("clusters",), ("doctor",),
                 ("report",)):
        run.cli("operator", *args)
    # monitor, Slurm executor: the retried and the redriven workset
    run.cli("monitor", "monitor", "--once", "--cluster", "local-c", "--executor", "slurm")
    _submit(run, tmp, "iam-slurm", "--cluster", "slurm-c")
    run.cli("monitor", "monitor", "--once", "--cluster", "slurm-c", "--executor", "slurm")
    for args in (("show", "iam-slurm", "--json"), ("show", "iam-ctl", "--json"),
                 ("show", "iam-daylily", "--json")):
        out = run.cli("submitter", *args)
        assert "\"state\": \"complete\"" in out, out
    _intake_by_events(run, tmp)


def _list_every_page(run: Run) -> None:
    """``list`` a page at a time: the cursor goes to stderr with --json."""
    token: str | None = None
    for _ in range(10):
        args = ["--json", "list", "--limit", "1", *(["--next-token", token] if token else [])]
        res = run_cli("--config", str(run.config), *args, env=run.role_env("submitter"))
        assert res.returncode == 0, res.stderr
        token = next((line.split(": ", 1)[1] for line in res.stderr.splitlines()
                      if line.startswith("next_token: ")), None)
        if token is None:
            return
    raise AssertionError("list --limit 1 kept paging")


def _intake_by_events(run: Run, tmp: Path) -> None:
    """The daemon: it long-polls the intake queue (emptying the events of every earlier
    upload) and registers a folder uploaded while it runs; then it stops on SIGTERM."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), **run.role_env("monitor")}
    daemon = subprocess.Popen([*cli_command(), "--config", str(run.config), "monitor",
                               "--cluster", "local-c"], env=env, stdout=subprocess.DEVNULL,
                              stderr=subprocess.PIPE, text=True)
    try:
        time.sleep(2)  # past its first reconciliation listing: only the event can bring it
        s3 = run.s3("submitter")
        for fq in PAIRED_FASTQS:
            s3.upload_file(str(FASTQ_DIR / fq), run.stack.bucket,
                           f"worksets/iam-event/sample_data/{fq}")
        spec = daylib_yaml(tmp / "iam-event" / "daylily_work.yaml", [paired_sample()])
        s3.upload_file(str(spec), run.stack.bucket, "worksets/iam-event/daylily_work.yaml")
        deadline = time.monotonic() + 120
        state = None
        while time.monotonic() < deadline and state != "complete":
            time.sleep(0.5)
            res = run_cli("--config", str(run.config), "--json", "show", "iam-event",
                          env=run.env)  # the harness's own key: not attributed to a role
            state = json.loads(res.stdout)["state"] if res.returncode == 0 else None
        assert state == "complete", state
    finally:
        daemon.send_signal(signal.SIGTERM)
        _, err = daemon.communicate(timeout=60)
    assert daemon.returncode == 0, err[-2000:]


def test_the_run_covered_every_path(recorded: Run) -> None:
    seen = {c.action for c in recorded.by_role["monitor"]}
    assert {"sns:Publish", "sqs:SendMessage", "s3:PutObject", "s3:GetObject",
            "dynamodb:UpdateItem"} <= seen, seen


def test_the_monitor_consumed_the_intake_queue(recorded: Run) -> None:
    intake = recorded.stack.queue_arn(recorded.stack.outputs["IntakeQueueUrl"])
    on_intake = {c.action for c in recorded.by_role["monitor"] if c.resource == intake}
    assert {"sqs:ReceiveMessage", "sqs:DeleteMessage"} <= on_intake, on_intake


def test_step_logs_were_uploaded_and_read(recorded: Run) -> None:
    logs = "/worksets/iam-good/logs/"
    put = [c for c in recorded.by_role["monitor"] if c.action == "s3:PutObject"
           and logs in c.resource]
    got = [c for c in recorded.by_role["submitter"] if c.action == "s3:GetObject"
           and logs in c.resource]
    assert put and got, (put, got)


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
