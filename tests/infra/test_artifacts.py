"""The deploy artefacts pass their own tools: cfn-lint, systemd-analyze, bash -n, shellcheck."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.conftest import ROOT
from tests.support.stack import template

INFRA = ROOT / "infra"
TEMPLATES = sorted(p for p in INFRA.rglob("*.yaml")
                   if "AWSTemplateFormatVersion" in p.read_text())
UNIT = INFRA / "systemd" / "daylily-workset-monitor.service"
ACTION = INFRA / "parallelcluster" / "on-node-configured.sh"


def _tool(name: str, package: str) -> str:
    """A linter from Debian, installed if missing (fails, not skips, if it cannot be)."""
    found = shutil.which(name)
    if found is None and shutil.which("apt-get") and os.geteuid() == 0:
        subprocess.run(["apt-get", "install", "-y", "-q", package], capture_output=True,
                       timeout=600, check=False)
        found = shutil.which(name)
    if found is None:
        pytest.fail(f"{name} (Debian package {package}) is not installed and cannot be")
    return found


def test_there_are_templates() -> None:
    assert INFRA / "daylib.yaml" in TEMPLATES


@pytest.mark.parametrize("template", TEMPLATES, ids=lambda p: p.name)
def test_cfn_lint(template: Path) -> None:
    res = subprocess.run([str(Path(sys.executable).parent / "cfn-lint"), str(template)],
                         capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stdout + res.stderr


def test_policies_grant_no_wildcard_actions() -> None:
    doc = template()
    for name, res in doc["Resources"].items():
        if res["Type"] != "AWS::IAM::ManagedPolicy":
            continue
        for st in res["Properties"]["PolicyDocument"]["Statement"]:
            actions = st["Action"] if isinstance(st["Action"], list) else [st["Action"]]
            assert st["Effect"] == "Allow" and "Resource" in st, (name, st)
            assert all("*" not in a for a in actions), (name, st)
            assert st["Resource"] != "*", (name, st)


def test_unit_verifies() -> None:
    """`systemd-analyze verify` on the unit (the user and binary it names need not exist on
    the test machine; only those complaints are tolerated)."""
    analyze = _tool("systemd-analyze", "systemd")
    res = subprocess.run([analyze, "verify", str(UNIT)], capture_output=True, text=True,
                         timeout=120)
    problems = [line for line in (res.stdout + res.stderr).splitlines()
                if line.strip() and not _tolerated(line)]
    assert not problems, res.stdout + res.stderr
    text = UNIT.read_text()
    for needed in ("Type=notify", "Restart=on-failure", "RestartPreventExitStatus=78",
                   "User=daylily", "StandardOutput=journal"):
        assert needed in text


def _tolerated(line: str) -> bool:
    return any(s in line for s in (
        "Command /opt/daylib/venv/bin/daylily-workset-monitor is not executable",
        "System has not been booted", "Failed to connect to bus"))


def test_unit_stop_timeout_exceeds_shutdown_grace() -> None:
    from daylib.config import MonitorSettings

    fields = dict(line.split("=", 1) for line in UNIT.read_text().splitlines()
                  if "=" in line and not line.startswith("#"))
    assert float(fields["TimeoutStopSec"]) > MonitorSettings().shutdown_grace_seconds


def test_custom_action_parses_and_is_shellcheck_clean() -> None:
    res = subprocess.run(["bash", "-n", str(ACTION)], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    shellcheck = _tool("shellcheck", "shellcheck")
    res = subprocess.run([shellcheck, "-S", "style", str(ACTION)], capture_output=True,
                         text=True, timeout=120)
    assert res.returncode == 0, res.stdout + res.stderr


def test_cluster_config_snippet_uses_the_action_and_the_unit() -> None:
    snippet = yaml.safe_load((INFRA / "parallelcluster" / "cluster-config-snippet.yaml")
                             .read_text())
    action = snippet["HeadNode"]["CustomActions"]["OnNodeConfigured"]
    assert action["Script"].endswith("/" + ACTION.name)
    assert action["Args"][2].endswith("/" + UNIT.name)
    policies = [p["Policy"] for p in snippet["HeadNode"]["Iam"]["AdditionalIamPolicies"]]
    assert "<MonitorPolicyArn>" in policies
    for queue in snippet["Scheduling"]["SlurmQueues"]:
        assert queue["CustomActions"]["OnNodeConfigured"]["Script"] == action["Script"]
    doc = json.loads((INFRA / "parallelcluster" / "custom-action-policy.json").read_text())
    assert [a for st in doc["Statement"] for a in st["Action"]] == [
        "cloudformation:DescribeStacks"]
