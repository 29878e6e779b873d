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
                 region: str, capacity: Callable[[], dict[str, Any]], *,
                 clock: Callable[[], float] = time.time) -> None:
        self.settings = settings
        self.store = store
        self.name = name
        self.monitor_id = monitor_id
        self.region = settings.routing.region or region
        self.capacity = capacity
        self.clock = clock
        self.clusters: list[ClusterInfo] = []
        self._next_beat = 0.0
        self._last_put = 0.0
        self._view_fresh = False  # the others were just read: the next beat only puts
        self._last_capacity: dict[str, Any] = {}

    def me(self, running: int, paused: bool, lease_seconds: float | None = None
           ) -> ClusterInfo:
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
            monitor_id=self.monitor_id, heartbeat_at=self.clock(),
            lease_seconds=lease_seconds or r.cluster_stale_seconds, paused=paused)

    def beat(self, running: int, paused: bool, *, force: bool = False,
             idle: bool = False) -> None:
        """Publish this cluster and refresh the view of the others (one put, one query).
        ``idle``: one put per ``monitor.idle_max_seconds`` and no query (the idle pass reads
        the others: ``seen``); the item then carries a lease that outlasts two idle beats, so
        an idle cluster is never shown stale and a dead one is within a few minutes."""
        if not force and self.clock() < self._next_beat:
            return
        quiet = idle and not force
        had_view, fresh = bool(self.clusters), self._view_fresh
        self._view_fresh = False
        self.publish(running, paused, quiet=quiet)
        if not (quiet and had_view) and not fresh:
            self.seen(self.store.clusters())

    def enter(self, others: list[dict[str, Any]], paused: bool) -> None:
        """At start, once every check passed: the others as just read and this cluster in
        the view (routing may send work here), its put due at once but left to the first
        beat, which the monitor makes after its first claims (they need only the view)."""
        self.seen(others)
        mine = self.me(0, paused)
        self.clusters = [c for c in self.clusters if c.name != self.name] + [mine]
        self._next_beat = self.clock()
        self._view_fresh = True

    def publish(self, running: int, paused: bool, *, quiet: bool = False) -> None:
        """Put this cluster's item, the next beat due a heartbeat later (``quiet``: at the
        idle rate); ``beat`` without the read of the others."""
        now = self.clock()
        r = self.settings.routing
        every = self.idle_seconds if quiet else r.cluster_heartbeat_seconds
        self._next_beat = now + every
        self._last_put = now
        mine = self.me(running, paused, 2 * every + r.cluster_stale_seconds if quiet else None)
        self.store.put_cluster(mine.to_item())
        self.clusters = [c for c in self.clusters if c.name != self.name] + [mine]

    @property
    def idle_seconds(self) -> float:
        return max(self.settings.routing.cluster_heartbeat_seconds,
                   self.settings.monitor.idle_max_seconds)

    def seen(self, items: list[dict[str, Any]]) -> None:
        """The others as just read (this cluster as it last published itself)."""
        mine = [c for c in self.clusters if c.name == self.name]
        others = [ClusterInfo.from_item(c) for c in items]
        self.clusters = [c for c in others if c.name != self.name] + (
            mine or [c for c in others if c.name == self.name])

    def busy(self) -> None:
        """Work arrived: heartbeats at the busy rate again (the next one as soon as due)."""
        self._next_beat = min(self._next_beat,
                              self._last_put + self.settings.routing.cluster_heartbeat_seconds)

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
