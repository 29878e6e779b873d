"""``route()``: every rule and tie-break of PRODUCT.md "Clusters and routing", in order: hard
affinity (never elsewhere) > soft affinity (falls back after a wait) > fits the resources >
data locality > cheapest > most free vCPUs > most free memory > name."""

from __future__ import annotations

from typing import Any

import pytest

from daylib.clusters import ClusterInfo
from daylib.router import Route, RouteInput, route

NOW = 1_700_000_000.0
SOFT_WAIT = 600.0


def cluster(name: str, **kw: Any) -> ClusterInfo:
    base: dict[str, Any] = {"heartbeat_at": NOW, "lease_seconds": 30, "region": "us-west-2",
                            "cpus_total": 64, "cpus_free": 32, "memory_mb_total": 256_000,
                            "memory_mb_free": 128_000, "cost_per_vcpu_hour": 0.05}
    return ClusterInfo(name=name, **{**base, **kw})


def stale(name: str, **kw: Any) -> ClusterInfo:
    return cluster(name, heartbeat_at=NOW - 31, **kw)


def go(clusters: list[ClusterInfo], now: float = NOW, **kw: Any) -> Route:
    return route(RouteInput(workset_id="ws-1", **kw), clusters, now,
                 soft_wait_seconds=SOFT_WAIT)


# ---------------------------------------------------------------------- hard affinity

def test_hard_affinity_to_an_active_cluster_runs_there() -> None:
    r = go([cluster("alpha", cost_per_vcpu_hour=0.01), cluster("beta", cost_per_vcpu_hour=9)],
           preferred_cluster="beta")
    assert r.cluster == "beta"
    assert "affinity" in r.reason and "beta" in r.reason


@pytest.mark.parametrize(("pref", "why"), [("gone", "absent"), ("old", "stale"),
                                           ("held", "paused")])
def test_hard_affinity_never_runs_elsewhere(pref: str, why: str) -> None:
    others = [cluster("alpha", cost_per_vcpu_hour=0.0, cpus_free=64),
              cluster("beta", cost_per_vcpu_hour=0.01)]
    present = {"old": [stale("old")], "held": [cluster("held", paused=True)]}.get(pref, [])
    for waited in (0.0, SOFT_WAIT * 100):  # however long it has waited
        r = go(others + present, preferred_cluster=pref, affinity="hard",
               waited_seconds=waited)
        assert r.cluster is None, r
        assert pref in r.reason and why in r.reason and "hard" in r.reason, r.reason


def test_affinity_defaults_to_hard() -> None:
    r = go([cluster("alpha")], preferred_cluster="gone", waited_seconds=SOFT_WAIT * 10)
    assert r.cluster is None and "gone" in r.reason


# ---------------------------------------------------------------------- soft affinity

def test_soft_affinity_to_an_active_cluster_runs_there() -> None:
    r = go([cluster("alpha", cost_per_vcpu_hour=0.0), cluster("beta", cost_per_vcpu_hour=1)],
           preferred_cluster="beta", affinity="soft")
    assert r.cluster == "beta"
    assert "soft" in r.reason and "beta" in r.reason


@pytest.mark.parametrize(("present", "why"), [([], "absent"), ([stale("beta")], "stale")])
def test_soft_affinity_waits_before_the_deadline(present: list[ClusterInfo], why: str) -> None:
    r = go([cluster("alpha"), *present], preferred_cluster="beta", affinity="soft",
           waited_seconds=SOFT_WAIT - 1)
    assert r.cluster is None
    assert "beta" in r.reason and "soft" in r.reason and why in r.reason, r.reason


@pytest.mark.parametrize("waited", [SOFT_WAIT, SOFT_WAIT * 5])
def test_soft_affinity_falls_back_after_the_wait(waited: float) -> None:
    r = go([cluster("alpha"), stale("beta")], preferred_cluster="beta", affinity="soft",
           waited_seconds=waited)
    assert r.cluster == "alpha"
    assert "soft affinity" in r.reason and "beta" in r.reason and "expired" in r.reason


def test_soft_affinity_fallback_still_applies_the_other_rules() -> None:
    r = go([cluster("alpha", cost_per_vcpu_hour=0.2), cluster("gamma", cost_per_vcpu_hour=0.1)],
           preferred_cluster="beta", affinity="soft", waited_seconds=SOFT_WAIT)
    assert r.cluster == "gamma"
    assert "expired" in r.reason and "cheapest" in r.reason


def test_soft_affinity_fallback_with_nothing_active_waits() -> None:
    r = go([stale("alpha")], preferred_cluster="beta", affinity="soft",
           waited_seconds=SOFT_WAIT)
    assert r.cluster is None
    assert "no active cluster" in r.reason


# ---------------------------------------------------------------------- resources

def test_vcpus_beyond_the_largest_node_exclude_a_cluster() -> None:
    small = cluster("small", max_node_cpus=8, cost_per_vcpu_hour=0.01)
    big = cluster("big", max_node_cpus=16, cost_per_vcpu_hour=0.5)
    assert go([small, big], vcpus=16).cluster == "big"
    assert go([small, big], vcpus=8).cluster == "small"  # exactly the node size fits
    # fits no cluster at all: sent on to fail fast with the scheduler's refusal
    r = go([small, big], vcpus=17)
    assert r.cluster is not None and "fits no known cluster" in r.reason


def test_memory_beyond_the_largest_node_excludes_a_cluster() -> None:
    small = cluster("small", max_node_memory_mb=16 * 1024, cost_per_vcpu_hour=0.01)
    big = cluster("big", max_node_memory_mb=64 * 1024, cost_per_vcpu_hour=0.5)
    assert go([small, big], memory_gb=16).cluster == "small"
    assert go([small, big], memory_gb=16.5).cluster == "big"
    assert "fits no known cluster" in go([small, big], memory_gb=65).reason
    # while a cluster that could fit it is only stale, it waits for that one instead
    assert go([small, big, stale("huge")], memory_gb=65).cluster is None


def test_unknown_node_size_means_no_limit() -> None:
    unknown = cluster("unknown", max_node_cpus=0, max_node_memory_mb=0)
    r = go([unknown], vcpus=512, memory_gb=4096)
    assert r.cluster == "unknown"


# ---------------------------------------------------------------------- no cluster / stale

def test_no_cluster_at_all_waits() -> None:
    r = go([])
    assert r.cluster is None and "no active cluster" in r.reason


def test_stale_and_paused_clusters_get_no_new_work() -> None:
    r = go([stale("cheap", cost_per_vcpu_hour=0.0), cluster("held", paused=True)])
    assert r.cluster is None and "no active cluster" in r.reason
    r = go([stale("cheap", cost_per_vcpu_hour=0.0), cluster("dear", cost_per_vcpu_hour=5)])
    assert r.cluster == "dear"
    assert r.considered == ("dear",)


def test_heartbeat_exactly_at_the_lease_is_still_active() -> None:
    c = cluster("edge", heartbeat_at=NOW - 30)
    assert go([c]).cluster == "edge"
    assert go([c], now=NOW + 0.5).cluster is None


# ---------------------------------------------------------------------- preferences

def test_data_locality_beats_cost() -> None:
    west = cluster("west", region="us-west-2", cost_per_vcpu_hour=0.01)
    east = cluster("east", region="us-east-1", cost_per_vcpu_hour=0.50)
    r = go([west, east], regions=("us-east-1",))
    assert r.cluster == "east"
    assert "locality" in r.reason and "us-east-1" in r.reason


def test_data_locality_with_no_local_cluster_falls_to_cost() -> None:
    west = cluster("west", region="us-west-2", cost_per_vcpu_hour=0.01)
    east = cluster("east", region="us-east-2", cost_per_vcpu_hour=0.50)
    r = go([west, east], regions=("eu-west-1",))
    assert r.cluster == "west" and "cheapest" in r.reason


def test_data_locality_does_not_override_resource_fit() -> None:
    east = cluster("east", region="us-east-1", max_node_cpus=4)
    west = cluster("west", region="us-west-2", max_node_cpus=64, cost_per_vcpu_hour=1)
    assert go([east, west], regions=("us-east-1",), vcpus=32).cluster == "west"


def test_cheapest_wins() -> None:
    r = go([cluster("a", cost_per_vcpu_hour=0.3), cluster("b", cost_per_vcpu_hour=0.1),
            cluster("c", cost_per_vcpu_hour=0.2)])
    assert r.cluster == "b" and "cheapest" in r.reason


def test_equal_cost_most_free_vcpus_wins() -> None:
    r = go([cluster("a", cpus_free=4), cluster("b", cpus_free=40), cluster("c", cpus_free=8),
            cluster("d", cpus_free=400, cost_per_vcpu_hour=0.06)])
    assert r.cluster == "b" and "free" in r.reason


def test_equal_vcpus_most_free_memory_wins() -> None:
    r = go([cluster("a", memory_mb_free=1000), cluster("b", memory_mb_free=9000),
            cluster("c", memory_mb_free=5000)])
    assert r.cluster == "b"


@pytest.mark.parametrize("names", [("charlie", "alpha", "bravo"), ("b", "ab", "abc"),
                                   ("alpha2", "alpha", "alpha10")])
def test_complete_tie_takes_the_alphabetically_first_name(names: tuple[str, ...]) -> None:
    expected = sorted(names)[0]
    for order in (names, tuple(reversed(names))):
        assert go([cluster(n) for n in order]).cluster == expected, order


def test_single_active_cluster_reason() -> None:
    r = go([cluster("solo")])
    assert r.cluster == "solo" and r.reason


# ---------------------------------------------------------------------- reason stability

def _twice(clusters: list[ClusterInfo], **kw: Any) -> tuple[Route, Route]:
    """The same decision a monitor makes on two passes, ``dt`` seconds apart."""
    dt = 37.0
    first = route(RouteInput(workset_id="ws-1", waited_seconds=10.0, **kw), clusters, NOW,
                  soft_wait_seconds=SOFT_WAIT)
    moved = [ClusterInfo(**{**c.to_item(), "heartbeat_at": c.heartbeat_at + dt})
             for c in clusters]
    second = route(RouteInput(workset_id="ws-1", waited_seconds=10.0 + dt, **kw), moved,
                   NOW + dt, soft_wait_seconds=SOFT_WAIT)
    return first, second


@pytest.mark.parametrize("kw", [
    {"preferred_cluster": "gone"},
    {"preferred_cluster": "old"},
    {"preferred_cluster": "gone", "affinity": "soft"},
    {"preferred_cluster": "old", "affinity": "soft"},
    {"vcpus": 1000},
], ids=["hard-absent", "hard-stale", "soft-absent", "soft-stale", "no-fit"])
def test_waiting_reasons_are_stable_across_passes(kw: dict[str, Any]) -> None:
    """The monitor rewrites the reason on the workset whenever its text changes, so a text
    with a countdown in it would cost a write per workset per pass."""
    first, second = _twice([cluster("alpha", max_node_cpus=8), stale("old")], **kw)
    assert first.cluster is None and second.cluster is None
    assert first.reason == second.reason


def test_routed_reason_is_stable_across_passes() -> None:
    first, second = _twice([cluster("a", cost_per_vcpu_hour=0.1), cluster("b")])
    assert first == second
