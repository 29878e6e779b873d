"""infra/daylib.yaml in a moto server: every resource described, the pieces moto skips
wired as declared, `config from-stack`, then a workset end to end against those names."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from daylib.config import load_settings
from daylib.emulator import MotoServer
from daylib.store.dynamodb import DynamoStore
from tests.cli.conftest import FASTQ_DIR, PAIRED_FASTQS, daylib_yaml, paired_sample
from tests.conftest import REGION, client, run_cli
from tests.support.stack import Stack, resource

MOTO_SKIPS = {"IntakeQueuePolicy", "WorksetBucket.NotificationConfiguration",
              "StateTable.TimeToLiveSpecification",
              "StateTable.PointInTimeRecoverySpecification", "DeadLetterDepthAlarm",
              "IntakeAgeAlarm", "OldestReadyAlarm", "StaleMonitorAlarm",
              "WorksetBucket.PublicAccessBlockConfiguration",
              "WorksetBucket.BucketEncryption", "WorksetBucket.VersioningConfiguration"}


@pytest.fixture(scope="module")
def stack(moto_server: MotoServer) -> Iterator[Stack]:
    name = f"dl-{uuid.uuid4().hex[:8]}"
    st = Stack(moto_server.endpoint_url, REGION, name, f"ws-{name}")
    st.deploy()
    gaps = st.missing()
    # only what TESTBED.md says moto skips may be missing; each is then wired as declared
    assert set(gaps) <= MOTO_SKIPS, gaps
    st.wire(gaps)
    yield st


def test_every_resource_exists_as_declared(stack: Stack) -> None:
    assert stack.missing() == []
    out = stack.outputs
    ddb, sqs, s3, sns = (stack.client(s) for s in ("dynamodb", "sqs", "s3", "sns"))
    table = ddb.describe_table(TableName=out["TableName"])["Table"]
    assert table["BillingModeSummary"]["BillingMode"] == "PAY_PER_REQUEST"
    ttl = ddb.describe_time_to_live(TableName=out["TableName"])["TimeToLiveDescription"]
    assert ttl["AttributeName"] == resource("StateTable")["TimeToLiveSpecification"][
        "AttributeName"]
    topic = sns.get_topic_attributes(TopicArn=out["TopicArn"])["Attributes"]
    assert topic["KmsMasterKeyId"] == "alias/aws/sns"
    for url in (out["DeadLetterQueueUrl"], out["IntakeQueueUrl"]):
        attrs = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
        assert attrs["SqsManagedSseEnabled"] == "true"
    policy = json.loads(sqs.get_queue_attributes(
        QueueUrl=out["IntakeQueueUrl"], AttributeNames=["Policy"])["Attributes"]["Policy"])
    assert policy["Statement"][0]["Principal"] == {"Service": "s3.amazonaws.com"}
    enc = s3.get_bucket_encryption(Bucket=stack.bucket)["ServerSideEncryptionConfiguration"]
    assert enc["Rules"][0]["ApplyServerSideEncryptionByDefault"]["SSEAlgorithm"] == "AES256"
    block = s3.get_public_access_block(Bucket=stack.bucket)["PublicAccessBlockConfiguration"]
    assert all(block.values())
    for output in ("MonitorPolicyArn", "SubmitterPolicyArn", "OperatorPolicyArn"):
        assert stack.policy(output)["Statement"]


def test_table_is_exactly_what_the_store_uses(stack: Stack) -> None:
    ddb = stack.client("dynamodb")
    reference = f"ref-{uuid.uuid4().hex[:8]}"
    DynamoStore(ddb, reference).create_table()

    def shape(name: str) -> dict[str, Any]:
        t = ddb.describe_table(TableName=name)["Table"]
        return {"keys": t["KeySchema"],
                "attrs": sorted(t["AttributeDefinitions"], key=lambda a: a["AttributeName"]),
                "indexes": sorted(({"name": g["IndexName"], "keys": g["KeySchema"],
                                    "projection": {**g["Projection"], "NonKeyAttributes":
                                                   sorted(g["Projection"].get(
                                                       "NonKeyAttributes", []))}}
                                   for g in t.get("GlobalSecondaryIndexes", [])),
                                  key=lambda g: str(g["name"]))}

    assert shape(stack.outputs["TableName"]) == shape(reference)


def test_upload_under_the_prefix_reaches_the_intake_queue(stack: Stack) -> None:
    s3, sqs = stack.client("s3"), stack.client("sqs")
    s3.put_object(Bucket=stack.bucket, Key="elsewhere/x.txt", Body=b"x")
    s3.put_object(Bucket=stack.bucket, Key="worksets/probe/daylily_work.yaml", Body=b"x")
    keys = []
    for _ in range(5):
        msgs = sqs.receive_message(QueueUrl=stack.outputs["IntakeQueueUrl"],
                                   MaxNumberOfMessages=10, WaitTimeSeconds=1)
        for m in msgs.get("Messages", []):
            keys += [r["s3"]["object"]["key"] for r in json.loads(m["Body"]).get("Records", [])]
            sqs.delete_message(QueueUrl=stack.outputs["IntakeQueueUrl"],
                               ReceiptHandle=m["ReceiptHandle"])
        if keys:
            break
    assert [k.replace("%2F", "/") for k in keys] == ["worksets/probe/daylily_work.yaml"]


def _cli_env(stack: Stack, tmp: Path) -> dict[str, str]:
    return {"AWS_ENDPOINT_URL": stack.url, "AWS_REGION": REGION,
            "DAYLILY_MONITOR__WORKDIR": str(tmp / "work"),
            "DAYLILY_MONITOR__POLL_SECONDS": "0.1",
            "DAYLILY_MONITOR__DISCOVERY_SECONDS": "0.2",
            "DAYLILY_MONITOR__REAP_SECONDS": "0.2"}


def test_config_from_stack_then_a_workset_end_to_end(stack: Stack, tmp_path: Path) -> None:
    env = _cli_env(stack, tmp_path)
    cfg = tmp_path / "daylily-workset.yaml"
    res = run_cli("config", "from-stack", stack.name, "--output", str(cfg), env=env)
    assert res.returncode == 0, res.stderr
    written = yaml.safe_load(cfg.read_text())
    out = stack.outputs
    assert written == {"aws": {"region": REGION}, "state": {"table": out["TableName"]},
                       "storage": {"bucket": stack.bucket, "prefix": "worksets/"},
                       "notify": {"topic_arn": out["TopicArn"]},
                       "dlq": {"queue_url": out["DeadLetterQueueUrl"]}} | (
        {"intake": {"queue_url": out["IntakeQueueUrl"]}} if "intake" in written else {})
    assert load_settings(cfg, environ={}).state.table == out["TableName"]
    # an integrator's subscription, to see the completed event
    sqs, sns = client("sqs", stack.url), client("sns", stack.url)
    inbox = sqs.create_queue(QueueName=f"inbox-{stack.name}")["QueueUrl"]
    inbox_arn = stack.queue_arn(inbox)
    sns.subscribe(TopicArn=out["TopicArn"], Protocol="sqs", Endpoint=inbox_arn,
                  Attributes={"RawMessageDelivery": "true"})
    # the submitter uploads FASTQs, then submits; the monitor runs it
    wid = "stack-e2e"
    s3 = client("s3", stack.url)
    for name in PAIRED_FASTQS:
        s3.upload_file(str(FASTQ_DIR / name), stack.bucket,
                       f"worksets/{wid}/sample_data/{name}")
    spec = daylib_yaml(tmp_path / wid / "daylily_work.yaml", [paired_sample()])
    for args in (("submit", str(spec), "--id", wid), ("monitor", "--once")):
        res = run_cli("--config", str(cfg), *args, env=env)
        assert res.returncode == 0, (args, res.stderr)
    res = run_cli("--config", str(cfg), "show", wid, "--json", env=env)
    shown = json.loads(res.stdout)
    assert shown["state"] == "complete", shown
    assert s3.list_objects_v2(Bucket=stack.bucket, Prefix=f"worksets/{wid}/results/")[
        "KeyCount"] > 0
    events = []
    for _ in range(5):
        for m in sqs.receive_message(QueueUrl=inbox, MaxNumberOfMessages=10,
                                     WaitTimeSeconds=1).get("Messages", []):
            events.append(json.loads(m["Body"])["event"])
        if "completed" in events:
            break
    assert "completed" in events, events


def test_config_from_missing_stack_is_one_clear_line(stack: Stack, tmp_path: Path) -> None:
    res = run_cli("config", "from-stack", "no-such-stack", env=_cli_env(stack, tmp_path))
    assert res.returncode == 1
    assert res.stderr.strip().splitlines() == [
        f"daylily-workset: CloudFormation stack 'no-such-stack' not found in region {REGION}; "
        "deploy infra/daylib.yaml first"]


def test_metric_alarms_watch_what_the_monitor_writes(stack: Stack) -> None:
    """The stale-monitor and oldest-ready alarms name a metric, namespace and dimension set
    that the monitor's EMF lines really carry (docs/metrics.md)."""
    from daylib.config import Settings
    from daylib.metrics import SCHEMA

    alarms = {a["AlarmName"]: a for a in
              stack.client("cloudwatch").describe_alarms()["MetricAlarms"]}
    for logical, metric in (("OldestReadyAlarm", "OldestReadyAge"),
                            ("StaleMonitorAlarm", "RunningWorksets")):
        alarm = alarms[stack.alarm_name(logical)]
        assert alarm["MetricName"] == metric
        assert alarm["Namespace"] == Settings().metrics.namespace
        dims = tuple(sorted(d["Name"] for d in alarm.get("Dimensions", [])))
        assert dims in {tuple(sorted(s)) for s in SCHEMA[metric].dimensions}
