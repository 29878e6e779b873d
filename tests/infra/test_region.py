"""Region precedence: --region, aws.region, AWS_REGION, AWS_DEFAULT_REGION, profile."""

from __future__ import annotations

import json
from pathlib import Path

import boto3
import pytest

from daylib.aws import AwsClients
from daylib.config import AwsSettings
from tests.cli.conftest import EnvFactory

# Every client daylib builds (store, objects, events, queues, stacks, doctor's identity).
SERVICES = ("dynamodb", "s3", "sns", "sqs", "cloudformation", "sts")


@pytest.fixture
def only_aws_region(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("AWS_DEFAULT_REGION", raising=False)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))
    monkeypatch.setenv("AWS_REGION", "eu-central-1")


@pytest.mark.parametrize("service", SERVICES)
def test_aws_region_alone_sets_the_client_region(only_aws_region: None, service: str) -> None:
    clients = AwsClients(AwsSettings())
    assert clients.region == "eu-central-1"
    assert clients.client(service).meta.region_name == "eu-central-1"
    assert clients.subprocess_env()["AWS_REGION"] == "eu-central-1"


def test_precedence(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    cfg = tmp_path / "config"
    cfg.write_text("[profile p]\nregion = ap-south-1\n")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(cfg))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.delenv("AWS_REGION", raising=False)
    monkeypatch.delenv("AWS_DEFAULT_REGION", raising=False)
    assert AwsClients(AwsSettings(profile="p")).region == "ap-south-1"
    monkeypatch.setenv("AWS_DEFAULT_REGION", "eu-west-1")
    assert AwsClients(AwsSettings(profile="p")).region == "eu-west-1"
    monkeypatch.setenv("AWS_REGION", "eu-central-1")
    assert AwsClients(AwsSettings(profile="p")).region == "eu-central-1"
    assert AwsClients(AwsSettings(profile="p", region="us-east-2")).region == "us-east-2"


def test_init_then_region_flag_agree(make_env: EnvFactory, monkeypatch: pytest.MonkeyPatch
                                     ) -> None:
    """Seen: with AWS_REGION=us-east-1 `init` made the topic in us-west-2, then
    `--region us-east-1 queue` failed."""
    monkeypatch.delenv("AWS_DEFAULT_REGION", raising=False)
    env = make_env(init=False)
    del env.env["AWS_DEFAULT_REGION"]
    env.env["AWS_REGION"] = "us-east-1"
    made = env.json("init")
    assert made["topic_arn"].split(":")[3] == "us-east-1"
    sqs = boto3.client("sqs", endpoint_url=env.url, region_name="us-east-1")
    arn = sqs.get_queue_attributes(QueueUrl=made["queue_url"],
                                   AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    assert arn.split(":")[3] == "us-east-1"
    ddb = boto3.client("dynamodb", endpoint_url=env.url, region_name="us-east-1")
    assert ddb.describe_table(TableName=env.table)["Table"]["TableStatus"] == "ACTIVE"
    depth = json.loads(env.ok("--region", "us-east-1", "queue", "--json").stdout)
    assert depth["total"] == 0
    # the other region really is another place: nothing there
    res = env.run("--region", "us-west-2", "queue")
    assert res.returncode == 1 and "us-west-2" in res.stderr
