"""The cluster registry: each monitor describes its ParallelCluster cluster in the state
table and heartbeats it; routing and ``daylily-workset clusters`` read it back.

Also: finding this head node's cluster name (ParallelCluster's own files) and listing the
clusters of an account from their CloudFormation stacks.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from daylib.aws import guard

PCLUSTER_VERSION_TAG = "parallelcluster:version"
CFNCONFIG = Path("/etc/parallelcluster/cfnconfig")
CLUSTER_CONFIG = Path("/opt/parallelcluster/shared/cluster-config.yaml")


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


def local_cluster_name(configured: str | None) -> str | None:
    """The configured name, else ParallelCluster's stack name from the head node's files."""
    if configured:
        return configured
    try:
        text = CFNCONFIG.read_text()
    except OSError:
        text = ""
    match = re.search(r"^stack_name=(\S+)", text, re.MULTILINE)
    if match:
        return match.group(1)
    try:
        cfg = CLUSTER_CONFIG.read_text()
    except OSError:
        return None
    match = re.search(r"^\s*ClusterName:\s*(\S+)", cfg, re.MULTILINE)
    return match.group(1) if match else None


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
