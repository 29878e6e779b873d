"""Routing: which cluster runs a workset, and why. One pure function of the workset's routing
facts and the cluster registry, so every rule and tie-break is unit-tested.

Order of rules: hard affinity (never elsewhere) > soft affinity (falls back after a wait) >
fits the resources > data locality (same region as the inputs) > cheapest > most free
capacity > name (a stable last tie-break).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from daylib.clusters import ClusterInfo


@dataclass(frozen=True)
class RouteInput:
    workset_id: str
    preferred_cluster: str | None = None
    affinity: str = "hard"
    regions: tuple[str, ...] = ()
    vcpus: int | None = None
    memory_gb: float | None = None
    waited_seconds: float = 0.0

    @classmethod
    def from_routing(cls, workset_id: str, preferred: str | None, routing: dict[str, Any],
                     waited_seconds: float) -> RouteInput:
        return cls(workset_id=workset_id, preferred_cluster=preferred,
                   affinity=str(routing.get("affinity") or "hard"),
                   regions=tuple(routing.get("regions") or ()),
                   vcpus=routing.get("vcpus"), memory_gb=routing.get("memory_gb"),
                   waited_seconds=waited_seconds)


@dataclass(frozen=True)
class Route:
    cluster: str | None
    reason: str
    considered: tuple[str, ...] = field(default=())


def _fits(c: ClusterInfo, w: RouteInput) -> bool:
    if w.vcpus is not None and c.max_node_cpus and w.vcpus > c.max_node_cpus:
        return False
    return not (w.memory_gb is not None and c.max_node_memory_mb
                and w.memory_gb * 1024 > c.max_node_memory_mb)


def route(w: RouteInput, clusters: list[ClusterInfo], now: float, *,
          soft_wait_seconds: float) -> Route:
    """The cluster for ``w``, or None with the reason it waits."""
    by_name = {c.name: c for c in clusters}
    usable = {c.name: c for c in clusters if c.status(now) == "active"}
    prefix = ""
    if w.preferred_cluster:
        pref = w.preferred_cluster
        if pref in usable and _fits(usable[pref], w):
            return Route(pref, f"{w.affinity} affinity to {pref}")
        if pref in usable and w.affinity == "hard":
            return Route(None, f"waiting: hard affinity to {pref}, which cannot fit "
                               f"{w.vcpus or '-'} vCPUs / {w.memory_gb or '-'} GB")
        why = by_name[pref].status(now) if pref in by_name else "absent"
        if w.affinity == "hard":
            return Route(None, f"waiting: hard affinity to {pref}, which is {why}")
        if w.waited_seconds < soft_wait_seconds:
            return Route(None, f"waiting: soft affinity to {pref} ({why}); falls back to other "
                               f"clusters after {soft_wait_seconds:.0f} s")
        prefix = f"soft affinity to {pref} ({why}) expired; "
    fitting = [c for c in usable.values() if _fits(c, w)]
    reasons = []
    if not fitting:
        if not usable:
            return Route(None, prefix + "waiting: no active cluster")
        if any(_fits(c, w) for c in clusters):  # a stale or paused one could take it
            return Route(None, prefix + f"waiting: no active cluster fits {w.vcpus or '-'} "
                                        f"vCPUs / {w.memory_gb or '-'} GB")
        # Fits no cluster at all: fail fast where the scheduler's refusal names the limit.
        fitting = list(usable.values())
        reasons.append("fits no known cluster (the scheduler will refuse it)")
    local = [c for c in fitting if w.regions and c.region in w.regions]
    if local and len(local) < len(fitting):
        reasons.append(f"data locality ({', '.join(sorted(set(w.regions)))})")
        fitting = local
    cheapest = min(c.cost_per_vcpu_hour for c in fitting)
    cheap = [c for c in fitting if c.cost_per_vcpu_hour == cheapest]
    if len(cheap) < len(fitting):
        reasons.append(f"cheapest (${cheapest:g}/vCPU-h)")
    best = min(cheap, key=lambda c: (-c.cpus_free, -c.memory_mb_free, c.name))
    if len(cheap) > 1:
        reasons.append(f"most free capacity ({best.cpus_free} vCPUs free)")
    if not reasons:
        reasons.append("only active cluster" if len(usable) == 1 else
                       "only cluster that fits" if len(fitting) == 1 else "first by name")
    return Route(best.name, prefix + "; ".join(reasons),
                 considered=tuple(sorted(c.name for c in fitting)))
