"""Every missing-resource error names the resource, its region and the command that creates
it, whichever service says so (clients built by daylib, over HTTP to moto)."""

from __future__ import annotations

import pytest

from daylib.aws import AwsClients, is_missing_resource
from daylib.config import AwsSettings
from daylib.emulator import MotoServer
from daylib.errors import AwsNotFound
from tests.conftest import REGION

HINT = "create it with `daylily-workset init` or deploy infra/daylib.yaml"


@pytest.fixture
def clients(moto_server: MotoServer) -> AwsClients:
    return AwsClients(AwsSettings(endpoint_url=moto_server.endpoint_url, region=REGION))


def _error(call: object) -> str:
    """The guarded client's error: daylib's not-found family, never a botocore exception."""
    with pytest.raises(AwsNotFound) as info:
        call()  # type: ignore[operator]
    assert is_missing_resource(info.value)
    return str(info.value)


def test_table(clients: AwsClients) -> None:
    ddb = clients.client("dynamodb")
    msg = _error(lambda: ddb.get_item(TableName="absent-table", Key={"pk": {"S": "x"}}))
    assert f"DynamoDB table 'absent-table' not found in region {REGION}; {HINT}" in msg


def test_bucket(clients: AwsClients) -> None:
    s3 = clients.client("s3")
    msg = _error(lambda: s3.put_object(Bucket="absent-bucket-daylib", Key="k", Body=b""))
    assert f"S3 bucket 'absent-bucket-daylib' not found in region {REGION}; {HINT}" in msg


def test_topic(clients: AwsClients) -> None:
    sns = clients.client("sns")
    arn = f"arn:aws:sns:{REGION}:123456789012:absent-topic"
    msg = _error(lambda: sns.publish(TopicArn=arn, Message="x"))
    assert f"SNS topic '{arn}' not found in region {REGION}; {HINT}" in msg


def test_queue(clients: AwsClients, moto_server: MotoServer) -> None:
    sqs = clients.client("sqs")
    url = f"{moto_server.endpoint_url}/123456789012/absent-queue"
    msg = _error(lambda: sqs.send_message(QueueUrl=url, MessageBody="x"))
    assert f"SQS queue '{url}' not found in region {REGION}; {HINT}" in msg
    msg = _error(lambda: sqs.get_queue_url(QueueName="absent-queue"))
    assert f"SQS queue 'absent-queue' not found in region {REGION}" in msg
