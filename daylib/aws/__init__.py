"""AWS at one boundary: the only package that imports boto3 or botocore.

``AwsClients`` builds every client (endpoint, region, profile, retries) and hands them out
wrapped (``guard``), so a failed call raises one of daylib's AWS error families
(daylib/errors.py: throttled, unavailable, not found naming the resource, access denied,
invalid request, condition failed), never a botocore exception."""

from daylib.aws.clients import (
    DEFAULT_REGION,
    AwsClients,
    is_missing_resource,
    raw_client,
    resolve_region,
)
from daylib.aws.dynamodb_types import from_ddb, to_ddb
from daylib.aws.errors import describe, error_code, translate
from daylib.aws.guard import Guarded, guard
from daylib.aws.sqs import find_queue

__all__ = ["DEFAULT_REGION", "AwsClients", "Guarded", "describe", "error_code", "find_queue",
           "from_ddb", "guard", "is_missing_resource", "raw_client", "resolve_region", "to_ddb",
           "translate"]
