"""The cluster registry: each monitor describes its ParallelCluster cluster in the state
table and heartbeats it; routing and ``daylily-workset clusters`` read it back.

Also: finding this head node's cluster name (ParallelCluster's files, else the instance's
tag) and listing the clusters of an account from their CloudFormation stacks.
"""

from __future__ import annotations

import os
import re
import urllib.parse
import urllib.request
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from daylib.aws import guard

PCLUSTER_VERSION_TAG = "parallelcluster:version"
CFNCONFIG = Path("/etc/parallelcluster/cfnconfig")
CLUSTER_CONFIG = Path("/opt/parallelcluster/shared/cluster-config.yaml")
CLUSTER_NAME_TAG = "parallelcluster:cluster-name"
IMDS_ENDPOINT = "http://169.254.169.254"
IMDS_TIMEOUT_SECONDS = 1.0


@dataclass(frozen=True)
class ClusterInfo:
    name: str
    region: str = ""
    az: str = ""
    partitions: list[str] = field(default_factory=list)
    cpus_total: int = 0
    cpus_free: int = 0
    memory_mb_total: int = 0
    memory_mb_free: int = 0
    max_node_cpus: int = 0
    max_node_memory_mb: int = 0
    cost_per_vcpu_hour: float = 0.0
    max_concurrent: int = 0
    running: int = 0
    monitor_id: str = ""
    heartbeat_at: float = 0.0
    lease_seconds: float = 30.0
    paused: bool = False

    def status(self, now: float) -> str:
        if self.paused:
            return "paused"
        return "stale" if now - self.heartbeat_at > self.lease_seconds else "active"

    def to_item(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_item(cls, data: dict[str, Any]) -> ClusterInfo:
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        return cls(**known)


def local_cluster_name(configured: str | None, *, cfnconfig: Path | None = None,
                       cluster_config: Path | None = None,
                       environ: Mapping[str, str] | None = None) -> str | None:
    """The configured name, else ParallelCluster's files on the head node, else the
    instance's ``parallelcluster:cluster-name`` tag from IMDSv2."""
    return (configured
            or _first_match(cfnconfig or CFNCONFIG, r"^stack_name=(\S+)")
            or _first_match(cluster_config or CLUSTER_CONFIG, r"^\s*ClusterName:\s*(\S+)")
            or instance_tag(CLUSTER_NAME_TAG, os.environ if environ is None else environ))


def _first_match(path: Path, pattern: str) -> str | None:
    """The first group of ``pattern``'s first match in the file; None if none or unreadable."""
    try:
        match = re.search(pattern, path.read_text(), re.MULTILINE)
    except OSError:
        return None
    return match.group(1) if match else None


def instance_tag(key: str, environ: Mapping[str, str]) -> str | None:
    """An EC2 instance tag through IMDSv2 (needs instance metadata tags enabled). Asked only
    on EC2 or where ``AWS_EC2_METADATA_SERVICE_ENDPOINT`` names the service, never when
    ``AWS_EC2_METADATA_DISABLED`` is true."""
    if environ.get("AWS_EC2_METADATA_DISABLED", "").lower() == "true":
        return None
    endpoint = environ.get("AWS_EC2_METADATA_SERVICE_ENDPOINT")
    if not endpoint:
        if not _on_ec2():
            return None
        endpoint = IMDS_ENDPOINT
    base = endpoint.rstrip("/")
    try:
        token_req = urllib.request.Request(
            f"{base}/latest/api/token", method="PUT",
            headers={"X-aws-ec2-metadata-token-ttl-seconds": "60"})
        with urllib.request.urlopen(token_req, timeout=IMDS_TIMEOUT_SECONDS) as resp:
            token = resp.read().decode()
        tag_req = urllib.request.Request(
            f"{base}/latest/meta-data/tags/instance/{urllib.parse.quote(key)}",
            headers={"X-aws-ec2-metadata-token": token})
        with urllib.request.urlopen(tag_req, timeout=IMDS_TIMEOUT_SECONDS) as resp:
            value = resp.read().decode().strip()
    except (OSError, ValueError):
        return None
    return value or None


def _on_ec2() -> bool:
    """EC2 (Nitro and Xen) says so in DMI / the hypervisor uuid; elsewhere stay off the wire."""
    for path, test in ((Path("/sys/devices/virtual/dmi/id/board_asset_tag"), "i-"),
                       (Path("/sys/hypervisor/uuid"), "ec2")):
        try:
            if path.read_text().strip().lower().startswith(test):
                return True
        except OSError:
            continue
    return False


def discover_stacks(cfn: Any) -> list[dict[str, str]]:
    """ParallelCluster clusters of an account: stacks tagged ``parallelcluster:version``."""
    found = []
    for page in guard(cfn).get_paginator("describe_stacks").paginate():
        for stack in page.get("Stacks", []):
            tags = {t["Key"]: t["Value"] for t in stack.get("Tags", [])}
            if PCLUSTER_VERSION_TAG in tags and "DELETE" not in stack["StackStatus"]:
                found.append({"name": stack["StackName"], "status": stack["StackStatus"],
                              "version": tags[PCLUSTER_VERSION_TAG]})
    return sorted(found, key=lambda s: s["name"])
