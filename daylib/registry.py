"""This monitor's view of the cluster registry: it describes its own cluster (capacity from
the executor, cost from config) on a heartbeat, reads the others, and routes worksets."""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from daylib.clusters import ClusterInfo
from daylib.config import Settings
from daylib.ordering import epoch
from daylib.router import Route, RouteInput, route
from daylib.store.contract import Store
from daylib.store.records import WorksetRecord

log = logging.getLogger(__name__)


def local_capacity() -> dict[str, Any]:
    """This machine as a one-node cluster (the local executor)."""
    cpus = os.cpu_count() or 1
    mem_mb = 0
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemTotal:"):
                    mem_mb = int(line.split()[1]) // 1024
    except OSError:
        pass
    return {"partitions": {"local": {}}, "cpus_total": cpus, "cpus_free": cpus,
            "memory_mb_total": mem_mb, "memory_mb_free": mem_mb, "max_node_cpus": cpus,
            "max_node_memory_mb": mem_mb}


class Registry:
    def __init__(self, settings: Settings, store: Store, name: str, monitor_id: str,
                 region: str, capacity: Callable[[], dict[str, Any]]) -> None:
        self.settings = settings
        self.store = store
        self.name = name
        self.monitor_id = monitor_id
        self.region = settings.routing.region or region
        self.capacity = capacity
        self.clusters: list[ClusterInfo] = []
        self._next_beat = 0.0
        self._last_capacity: dict[str, Any] = {}

    def me(self, running: int, paused: bool) -> ClusterInfo:
        try:
            cap = self.capacity()
            self._last_capacity = cap
        except Exception as exc:
            log.warning("cannot read cluster capacity (%s); using the last known", exc)
            cap = self._last_capacity
        r = self.settings.routing
        return ClusterInfo(
            name=self.name, region=self.region, az=r.availability_zone,
            partitions=sorted(cap.get("partitions", {})),
            cpus_total=int(cap.get("cpus_total", 0)), cpus_free=int(cap.get("cpus_free", 0)),
            memory_mb_total=int(cap.get("memory_mb_total", 0)),
            memory_mb_free=int(cap.get("memory_mb_free", 0)),
            max_node_cpus=int(cap.get("max_node_cpus", 0)),
            max_node_memory_mb=int(cap.get("max_node_memory_mb", 0)),
            cost_per_vcpu_hour=r.cost_per_vcpu_hour,
            max_concurrent=self.settings.monitor.max_concurrent, running=running,
            monitor_id=self.monitor_id, heartbeat_at=time.time(),
            lease_seconds=r.cluster_stale_seconds, paused=paused)

    def beat(self, running: int, paused: bool, *, force: bool = False,
             idle: bool = False) -> None:
        """Publish this cluster and refresh the view of the others (one put, one query).
        ``idle``: nothing to route, so no query, and a put only as often as staying fresh
        needs (half of ``cluster_stale_seconds``)."""
        now = time.time()
        if not force and now < self._next_beat:
            return
        r = self.settings.routing
        self._next_beat = now + (max(r.cluster_heartbeat_seconds, r.cluster_stale_seconds / 2)
                                 if idle and not force else r.cluster_heartbeat_seconds)
        mine = self.me(running, paused)
        self.store.put_cluster(mine.to_item())
        if idle and not force and self.clusters:
            self.clusters = [c for c in self.clusters if c.name != self.name] + [mine]
            return
        others = [ClusterInfo.from_item(c) for c in self.store.clusters()]
        self.clusters = [c for c in others if c.name != self.name] + [mine]

    @property
    def next_beat_at(self) -> float:
        return self._next_beat

    def route(self, rec: WorksetRecord, now: float) -> Route:
        since = rec.routing.get("since") or (epoch(rec.created_at) if rec.created_at else now)
        waited = now - float(since)
        return route(RouteInput.from_routing(rec.workset_id, rec.preferred_cluster,
                                             rec.routing, waited),
                     self.clusters, now,
                     soft_wait_seconds=self.settings.routing.soft_affinity_wait_seconds)

    def mark_stopped(self) -> None:
        """On shutdown: publish a heartbeat in the past so routing stops sending work here."""
        if self.clusters:
            mine = next(c for c in self.clusters if c.name == self.name)
            self.store.put_cluster(replace(mine, heartbeat_at=0.0, running=0).to_item())
