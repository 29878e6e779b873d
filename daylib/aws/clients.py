"""The one place that builds AWS clients: endpoint, region, profile, retries, timeouts.

Everything else receives clients from here, so tests and the demo can point the whole
program at an emulator by setting ``aws.endpoint_url`` (or ``AWS_ENDPOINT_URL``). Clients
are handed out guarded (daylib/aws/guard.py): their failures are daylib errors.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Mapping
from functools import partial
from typing import Any

import boto3
from botocore.config import Config

from daylib.aws.errors import AwsFailure, translate
from daylib.aws.guard import guard
from daylib.config import AwsSettings
from daylib.errors import AwsError

DEFAULT_REGION = "us-west-2"
STATIC_KEY_VARS = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN")


class AwsClients:
    """Builds and caches one client per service; boto3 clients are thread-safe once built."""

    def __init__(self, settings: AwsSettings, *, max_pool_connections: int = 32) -> None:
        self.settings = settings
        self._lock = threading.Lock()
        self._clients: dict[str, Any] = {}
        try:
            self._session = boto3.session.Session(
                profile_name=settings.profile, region_name=resolve_region(settings.region)
            )
        except AwsFailure as exc:  # e.g. an unknown profile
            raise translate(exc, "Session") from exc
        self.region = self._session.region_name or DEFAULT_REGION
        self._config = Config(
            region_name=self.region,
            retries={"mode": "standard", "max_attempts": settings.max_attempts},
            connect_timeout=settings.connect_timeout_seconds,
            read_timeout=settings.read_timeout_seconds,
            max_pool_connections=max_pool_connections,
        )

    def client(self, service: str) -> Any:
        with self._lock:
            if service not in self._clients:
                kwargs: dict[str, Any] = {"config": self._config}
                if self.settings.endpoint_url:
                    kwargs["endpoint_url"] = self.settings.endpoint_url
                made = self._session.client(service, **kwargs)
                events = made.meta.events
                events.register("before-parameter-build", _remember_params)
                events.register("after-call", partial(_name_missing, self.region))
                self._clients[service] = guard(made)
            return self._clients[service]

    def session_credentials(self) -> Any:
        """The credentials the clients sign with (None if there are none)."""
        return self._session.get_credentials()

    def subprocess_env(self) -> dict[str, str]:
        """Variables a child process needs to reach the same AWS (or emulator) as we do.

        Only what stays valid is passed: region, endpoint, profile, and keys that came from
        our own environment (static by nature). Credentials that expire (instance role, SSO,
        assumed roles, ``credential_process``) are never copied: a step started hours later
        resolves them itself through the default chain, so they are fresh when it runs."""
        env = {"AWS_REGION": self.region, "AWS_DEFAULT_REGION": self.region}
        if self.settings.endpoint_url:
            env["AWS_ENDPOINT_URL"] = self.settings.endpoint_url
        if self.settings.profile:
            env["AWS_PROFILE"] = self.settings.profile
        creds = self._session.get_credentials()
        if creds is not None and creds.method == "env":
            env.update({k: v for k in STATIC_KEY_VARS if (v := os.environ.get(k))})
        return env


def resolve_region(configured: str | None,
                   environ: Mapping[str, str] | None = None) -> str | None:
    """``--region``/``aws.region``, then ``AWS_REGION`` (which botocore ignores), then None
    so botocore goes on to ``AWS_DEFAULT_REGION`` and the profile."""
    env = os.environ if environ is None else environ
    return configured or env.get("AWS_REGION") or None


# Error codes that mean "the resource the config names does not exist", with the request
# parameter that names it and what it is called in a message.
_MISSING = {
    "ResourceNotFoundException": ("TableName", "DynamoDB table"),
    "NoSuchBucket": ("Bucket", "S3 bucket"),
    "NotFound": ("TopicArn", "SNS topic"),
    "QueueDoesNotExist": ("QueueUrl", "SQS queue"),
    "AWS.SimpleQueueService.NonExistentQueue": ("QueueUrl", "SQS queue"),
}
_CREATE_HINT = "create it with `daylily-workset init` or deploy infra/daylib.yaml"


def _remember_params(params: dict[str, Any], context: dict[str, Any], **_: Any) -> None:
    context["daylib_params"] = dict(params)


def _name_missing(region: str, parsed: dict[str, Any], context: dict[str, Any],
                  **_: Any) -> None:
    """Rewrite a missing-resource error so it names the resource, its region and the fix."""
    err = parsed.get("Error") or {}
    spec = _MISSING.get(str(err.get("Code", "")))
    if spec is None:
        return
    param, kind = spec
    params = context.get("daylib_params") or {}
    name = params.get(param) or params.get("QueueName") or err.get("BucketName")
    if not name:
        return
    err["Message"] = f"{kind} {name!r} not found in region {region}; {_CREATE_HINT}"
    parsed["Error"] = err


def is_missing_resource(exc: BaseException) -> bool:
    """True for errors that mean the deployment lacks a table, bucket, topic or queue."""
    return isinstance(exc, AwsError) and exc.code in _MISSING


def raw_client(service: str, *, endpoint_url: str | None = None,
               region: str = DEFAULT_REGION) -> Any:
    """A guarded client built without settings (benchmarks, quick tools)."""
    return guard(boto3.client(service, endpoint_url=endpoint_url, region_name=region))
