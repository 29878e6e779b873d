"""AWS at one boundary: only daylib/aws imports boto3/botocore, and every failure comes out
as one of daylib's error families."""

from __future__ import annotations

import re
import socket
from pathlib import Path

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError, EndpointConnectionError, ParamValidationError

from daylib.aws import guard, raw_client, translate
from daylib.errors import (
    AwsAccessDenied,
    AwsConditionFailed,
    AwsError,
    AwsInvalidRequest,
    AwsNotFound,
    AwsThrottled,
    AwsUnavailable,
)
from daylib.s3 import S3Objects

ROOT = Path(__file__).resolve().parents[2]
_IMPORT = re.compile(r"^\s*(import|from)\s+(boto3|botocore|s3transfer)\b", re.MULTILINE)


def test_no_module_outside_the_boundary_imports_boto3_or_botocore() -> None:
    boundary = ROOT / "daylib" / "aws"
    assert boundary.is_dir()
    offenders = [str(p.relative_to(ROOT)) for folder in ("daylib", "bench")
                 for p in sorted((ROOT / folder).rglob("*.py"))
                 if boundary not in p.parents and _IMPORT.search(p.read_text())]
    assert offenders == []


def _client_error(code: str, status: int = 400) -> ClientError:
    return ClientError({"Error": {"Code": code, "Message": "m"},
                        "ResponseMetadata": {"HTTPStatusCode": status}}, "Op")


@pytest.mark.parametrize(("code", "status", "family"), [
    ("ThrottlingException", 400, AwsThrottled),
    ("SlowDown", 503, AwsThrottled),
    ("ProvisionedThroughputExceededException", 400, AwsThrottled),
    ("InternalError", 500, AwsUnavailable),
    ("SomethingNew", 502, AwsUnavailable),
    ("NoSuchKey", 404, AwsNotFound),
    ("ResourceNotFoundException", 400, AwsNotFound),
    ("AWS.SimpleQueueService.NonExistentQueue", 400, AwsNotFound),
    ("AccessDenied", 403, AwsAccessDenied),
    ("UnrecognizedClientException", 400, AwsAccessDenied),
    ("ValidationException", 400, AwsInvalidRequest),
    ("ConditionalCheckFailedException", 400, AwsConditionFailed),
])
def test_client_errors_map_to_families(code: str, status: int, family: type[AwsError]) -> None:
    err = translate(_client_error(code, status), "Op", {"Bucket": "b", "Key": "k"})
    assert type(err) is family
    assert err.code == code and code in str(err)


def test_not_found_names_the_resource() -> None:
    err = translate(_client_error("NoSuchKey", 404), "GetObject", {"Bucket": "b", "Key": "x/y"})
    assert isinstance(err, AwsNotFound)
    assert err.resource == "s3://b/x/y" and "s3://b/x/y" in str(err)


def test_botocore_errors_map_to_families() -> None:
    conn = translate(EndpointConnectionError(endpoint_url="http://127.0.0.1:1"), "PutItem")
    assert isinstance(conn, AwsUnavailable) and conn.code == "EndpointConnectionError"
    bad = translate(ParamValidationError(report="Missing Key"), "GetItem")
    assert isinstance(bad, AwsInvalidRequest)


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_a_refused_connection_is_unavailable_not_a_botocore_error() -> None:
    """Seen: a connection error escaped as botocore's EndpointConnectionError."""
    client = guard(boto3.client("sqs", endpoint_url=f"http://127.0.0.1:{_closed_port()}",
                                region_name="us-west-2",
                                config=Config(retries={"max_attempts": 1})))
    with pytest.raises(AwsUnavailable):
        client.list_queues()


def test_s3_errors_through_the_wrapper_name_the_resource(moto_server: object) -> None:
    url = moto_server.endpoint_url  # type: ignore[attr-defined]
    s3 = S3Objects(raw_client("s3", endpoint_url=url))
    with pytest.raises(AwsNotFound) as info:
        s3.put_text("no-such-bucket-h8", "a/b.txt", "x")
    assert "no-such-bucket-h8" in str(info.value)
