"""Steps resolve their own credentials (issue 9 item 8): a monitor running on refreshable
credentials (here a ``credential_process``; on AWS an instance role or SSO) must not copy its
current keys into a step's environment, where they would expire while the step waits or
runs. Static keys from the monitor's own environment are passed through as they are."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from daylib.aws import AwsClients
from daylib.config import AwsSettings

ISSUER = """\
import json, sys, time
from pathlib import Path
counter = Path(sys.argv[1])
n = int(counter.read_text()) + 1 if counter.exists() else 1
counter.write_text(str(n))
print(json.dumps({"Version": 1, "AccessKeyId": f"AKIAFRESH{n}", "SecretAccessKey": "s",
                  "SessionToken": f"token{n}",
                  "Expiration": time.strftime("%Y-%m-%dT%H:%M:%SZ",
                                              time.gmtime(time.time() + 900))}))
"""

CHILD = ("import boto3; c = boto3.session.Session().get_credentials(); "
         "print(c.get_frozen_credentials().access_key)")


@pytest.fixture
def refreshable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The default profile gets its keys from a process that issues new ones each call."""
    issuer = tmp_path / "issuer.py"
    issuer.write_text(ISSUER)
    config = tmp_path / "config"
    config.write_text(f"[default]\ncredential_process = {sys.executable} {issuer} "
                      f"{tmp_path / 'counter'}\n")
    (tmp_path / "credentials").write_text("")
    for var in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN",
                "AWS_PROFILE", "AWS_DEFAULT_PROFILE"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(config))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "credentials"))
    return tmp_path


def test_refreshable_credentials_are_not_frozen_into_steps(refreshable: Path) -> None:
    env = AwsClients(AwsSettings(region="us-west-2")).subprocess_env()
    issued = int((refreshable / "counter").read_text())  # keys the monitor has seen so far
    assert not {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"} & set(env)
    assert env["AWS_REGION"] == "us-west-2"
    step = subprocess.run([sys.executable, "-c", CHILD], env={**os.environ, **env},
                          capture_output=True, text=True, check=True)
    key = step.stdout.strip()
    assert key.startswith("AKIAFRESH") and int(key[9:]) > issued, "the step ran on old keys"


def test_static_keys_from_the_environment_pass_through(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIASTATIC")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "secret")
    monkeypatch.delenv("AWS_SESSION_TOKEN", raising=False)
    env = AwsClients(AwsSettings(region="eu-west-1",
                                 endpoint_url="http://127.0.0.1:9")).subprocess_env()
    assert json.dumps(env, sort_keys=True) == json.dumps({
        "AWS_ACCESS_KEY_ID": "AKIASTATIC", "AWS_DEFAULT_REGION": "eu-west-1",
        "AWS_ENDPOINT_URL": "http://127.0.0.1:9", "AWS_REGION": "eu-west-1",
        "AWS_SECRET_ACCESS_KEY": "secret"}, sort_keys=True)
