"""The one place that builds AWS clients: endpoint, region, profile, retries, timeouts.

Everything else receives clients from here, so tests and the demo can point the whole
program at an emulator by setting ``aws.endpoint_url`` (or ``AWS_ENDPOINT_URL``). Clients
are handed out guarded (daylib/aws/guard.py): their failures are daylib errors.
"""

from __future__ import annotations

import threading
from typing import Any

import boto3
from botocore.config import Config

from daylib.aws.errors import AwsFailure, translate
from daylib.aws.guard import guard
from daylib.config import AwsSettings

DEFAULT_REGION = "us-west-2"


class AwsClients:
    """Builds and caches one client per service; boto3 clients are thread-safe once built."""

    def __init__(self, settings: AwsSettings, *, max_pool_connections: int = 32) -> None:
        self.settings = settings
        self._lock = threading.Lock()
        self._clients: dict[str, Any] = {}
        try:
            self._session = boto3.session.Session(
                profile_name=settings.profile, region_name=settings.region
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
                self._clients[service] = guard(self._session.client(service, **kwargs))
            return self._clients[service]

    def subprocess_env(self) -> dict[str, str]:
        """Variables a child process needs to reach the same AWS (or emulator) as we do."""
        env = {"AWS_REGION": self.region, "AWS_DEFAULT_REGION": self.region}
        if self.settings.endpoint_url:
            env["AWS_ENDPOINT_URL"] = self.settings.endpoint_url
        if self.settings.profile:
            env["AWS_PROFILE"] = self.settings.profile
        creds = self._session.get_credentials()
        if creds is not None and not self.settings.profile:
            frozen = creds.get_frozen_credentials()
            env["AWS_ACCESS_KEY_ID"] = frozen.access_key
            env["AWS_SECRET_ACCESS_KEY"] = frozen.secret_key
            if frozen.token:
                env["AWS_SESSION_TOKEN"] = frozen.token
        return env


def raw_client(service: str, *, endpoint_url: str | None = None,
               region: str = DEFAULT_REGION) -> Any:
    """A guarded client built without settings (benchmarks, quick tools)."""
    return guard(boto3.client(service, endpoint_url=endpoint_url, region_name=region))
