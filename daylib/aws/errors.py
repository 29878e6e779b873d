"""botocore's exceptions translated into daylib's AWS error families, in one place."""

from __future__ import annotations

from typing import Any

from boto3.exceptions import Boto3Error
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectionError,
    HTTPClientError,
    NoCredentialsError,
    ParamValidationError,
    ProfileNotFound,
)

from daylib.errors import (
    AwsAccessDenied,
    AwsConditionFailed,
    AwsError,
    AwsInvalidRequest,
    AwsNotFound,
    AwsThrottled,
    AwsUnavailable,
)

THROTTLED = frozenset({
    "Throttling", "ThrottlingException", "ThrottledException", "RequestLimitExceeded",
    "ProvisionedThroughputExceededException", "TooManyRequestsException", "SlowDown",
    "RequestThrottled", "RequestThrottledException", "TransactionInProgressException"})
UNAVAILABLE = frozenset({
    "InternalError", "InternalFailure", "InternalServerError", "ServiceUnavailable",
    "ServiceUnavailableException", "RequestTimeout", "RequestTimeoutException"})
NOT_FOUND = frozenset({
    "404", "NotFound", "NoSuchKey", "NoSuchBucket", "ResourceNotFoundException",
    "QueueDoesNotExist", "AWS.SimpleQueueService.NonExistentQueue", "NotFoundException",
    "NoSuchEntity"})
DENIED = frozenset({
    "403", "AccessDenied", "AccessDeniedException", "UnauthorizedOperation",
    "InvalidClientTokenId", "ExpiredToken", "ExpiredTokenException",
    "UnrecognizedClientException", "AuthorizationError", "SignatureDoesNotMatch",
    "InvalidAccessKeyId", "AllAccessDisabled"})
CONDITION_FAILED = "ConditionalCheckFailedException"
# What names the resource a call was about, in the order it is looked for.
_RESOURCE_PARAMS = ("QueueUrl", "QueueName", "TopicArn", "StackName", "TableName")

AwsFailure = (ClientError, BotoCoreError, Boto3Error)


def error_code(exc: BaseException) -> str:
    """The service's error code, or the exception's class name when there is none."""
    if isinstance(exc, AwsError):
        return exc.code
    if isinstance(exc, ClientError):
        return str(exc.response.get("Error", {}).get("Code", ""))
    return exc.__class__.__name__


def resource_of(params: dict[str, Any]) -> str:
    """The resource a call names (``s3://bucket/key``, a queue, topic, stack or table)."""
    if "Bucket" in params:
        return f"s3://{params['Bucket']}/{params.get('Key', '')}"
    for name in _RESOURCE_PARAMS:
        if name in params:
            return str(params[name])
    return ""


def translate(exc: BaseException, op: str = "", params: dict[str, Any] | None = None
              ) -> AwsError:
    """The daylib error for a botocore/boto3 failure of ``op`` called with ``params`` (an
    error already translated is returned as it is)."""
    if isinstance(exc, AwsError):
        return exc
    code = error_code(exc)
    resource = resource_of(params or {})
    if isinstance(exc, ClientError):
        err = exc.response.get("Error", {})
        op = getattr(exc, "operation_name", op) or op or "call"
        text = f"{op}: {code}: {err.get('Message', '')}".strip()
        status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)
        if code == CONDITION_FAILED:
            return AwsConditionFailed(text, code, item=exc.response.get("Item"))
        if code in THROTTLED:
            return AwsThrottled(text, code)
        if code in NOT_FOUND:
            return AwsNotFound(f"{text} ({resource})" if resource else text, code,
                               resource=resource)
        if code in DENIED:
            return AwsAccessDenied(text, code)
        if code in UNAVAILABLE or status >= 500:
            return AwsUnavailable(text, code)
        return AwsInvalidRequest(text, code)
    text = f"{op}: {exc}" if op else str(exc)
    if isinstance(exc, ConnectionError | HTTPClientError):
        return AwsUnavailable(text, code)
    if isinstance(exc, NoCredentialsError):
        return AwsAccessDenied(text, code)
    if isinstance(exc, ParamValidationError | ProfileNotFound):
        return AwsInvalidRequest(text, code)
    if isinstance(exc, BotoCoreError | Boto3Error):
        return AwsUnavailable(text, code)
    return AwsError(text, code)


def describe(exc: BaseException) -> AwsError:
    """Kept for callers of the old name: a botocore exception as a one-line domain error."""
    return translate(exc)
