"""The cluster registry and the concurrency-cap semaphores in the state table (on both moto and
dynalite), and ParallelCluster stack discovery against moto's CloudFormation."""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from daylib.clusters import PCLUSTER_VERSION_TAG, ClusterInfo, discover_stacks
from daylib.emulator import MotoServer
from daylib.store.contract import Store
from tests.conftest import client

NOW = time.time()


def _info(name: str, **kw: Any) -> ClusterInfo:
    base: dict[str, Any] = {"region": "us-west-2", "az": "us-west-2a",
                            "partitions": ["i8", "i192"], "cpus_total": 192, "cpus_free": 64,
                            "memory_mb_total": 786_432, "memory_mb_free": 262_144,
                            "max_node_cpus": 192, "max_node_memory_mb": 786_432,
                            "cost_per_vcpu_hour": 0.0425, "max_concurrent": 4, "running": 1,
                            "monitor_id": f"mon-{name}", "heartbeat_at": NOW,
                            "lease_seconds": 30.0}
    return ClusterInfo(name=name, **{**base, **kw})


# ---------------------------------------------------------------------- registry

def test_put_cluster_round_trip(store: Store) -> None:
    assert store.clusters() == []
    alpha, beta = _info("alpha"), _info("beta", paused=True, cost_per_vcpu_hour=0.0)
    store.put_cluster(alpha.to_item())
    store.put_cluster(beta.to_item())
    got = sorted((ClusterInfo.from_item(c) for c in store.clusters()), key=lambda c: c.name)
    assert got == [alpha, beta]

    beat = _info("alpha", cpus_free=8, running=3, heartbeat_at=NOW + 10.5)
    store.put_cluster(beat.to_item())  # a heartbeat overwrites, never duplicates
    got = sorted((ClusterInfo.from_item(c) for c in store.clusters()), key=lambda c: c.name)
    assert got == [beat, beta]


def test_clusters_are_not_worksets(store: Store) -> None:
    store.put_cluster(_info("alpha").to_item())
    store.register("ws-1", actor="test")
    depth = store.queue_depth()
    assert depth.total == 1
    assert depth.states["ready"] == 1
    assert "alpha" not in depth.by_cluster
    assert [r.workset_id for r in store.newest()] == ["ws-1"]


# ---------------------------------------------------------------------- caps semaphore

def test_slot_semaphore(store: Store) -> None:
    scope = "cluster#alpha"
    assert store.slot_holders(scope) == {}
    assert store.acquire_slot(scope, "w1", 2, "mon-a", "t1")
    assert store.acquire_slot(scope, "w2", 2, "mon-b", "t2")
    assert not store.acquire_slot(scope, "w3", 2, "mon-a", "t3")  # full
    assert store.acquire_slot(scope, "w1", 2, "mon-a", "t1")  # same token: idempotent
    holders = store.slot_holders(scope)
    assert set(holders) == {"w1", "w2"}
    assert holders["w2"]["by"] == "mon-b" and float(holders["w2"]["at"]) > 0

    assert store.release_slot(scope, "w1", "t1")
    assert not store.release_slot(scope, "w1", "t1")  # twice is harmless
    assert not store.release_slot("never-used", "w1", "t1")  # so is a scope never made
    assert set(store.slot_holders(scope)) == {"w2"}
    assert store.acquire_slot(scope, "w3", 2, "mon-a", "t3")
    assert not store.acquire_slot(scope, "w4", 2, "mon-a", "t4")
    # scopes are independent
    assert store.acquire_slot("global", "w4", 1, "mon-a", "t4")
    assert set(store.slot_holders(scope)) == {"w2", "w3"}


def test_only_the_token_that_took_a_slot_releases_it(store: Store) -> None:
    """Issue 9 item 2: the loser of a claim race (another token for the same workset) can
    neither take the workset's slot again nor free it."""
    scope = "global"
    assert store.acquire_slot(scope, "w1", 2, "mon-a", "won")
    assert not store.acquire_slot(scope, "w1", 2, "mon-b", "lost")  # held: no second entry
    assert not store.release_slot(scope, "w1", "lost")
    assert store.slot_holders(scope)["w1"]["token"] == "won"
    assert store.release_slot(scope, "w1", "won")
    assert store.slot_holders(scope) == {}


def test_adopt_rekeys_a_dead_holders_slot_within_the_limit(store: Store) -> None:
    """A takeover's winner re-keys the dead owner's slot (no second slot, no count change);
    the dead owner's token then releases nothing. With no slot and the cap full, refused."""
    scope = "customer#acme"
    assert store.acquire_slot(scope, "w1", 1, "dead", "old")
    assert store.adopt_slot(scope, "w1", 1, "heir", "new")
    holders = store.slot_holders(scope)
    assert set(holders) == {"w1"} and (holders["w1"]["by"], holders["w1"]["token"]) == \
        ("heir", "new")
    assert not store.release_slot(scope, "w1", "old")
    assert not store.adopt_slot(scope, "w2", 1, "heir", "x")  # no slot held, cap full
    assert store.release_slot(scope, "w1", "new")
    assert store.adopt_slot(scope, "w2", 1, "heir", "x")  # no slot held, room: a new one
    assert set(store.slot_holders(scope)) == {"w2"}


def test_slot_race_never_exceeds_the_limit(store: Store) -> None:
    """Eight monitors (own clients) race for 3 slots over 50 worksets."""
    scope, limit, threads = "global", 3, 8
    stores = [store.twin() for _ in range(threads)]
    ids = [f"ws_{i:02d}" for i in range(50)]  # hyphenated ids: see the test below

    def grab(n: int) -> list[str]:
        return [w for w in ids[n::threads]
                if stores[n].acquire_slot(scope, w, limit, f"m{n}", w)]

    with ThreadPoolExecutor(threads) as pool:
        won = [w for got in pool.map(grab, range(threads)) for w in got]
    assert len(won) == limit, won
    assert set(store.slot_holders(scope)) == set(won)
    for w in won:
        assert store.release_slot(scope, w, w)

    # with releases: count holders from the acquirers' side (incremented after a successful
    # acquire, decremented before the release), so it can only under-count the table
    lock, held, peak, total = threading.Lock(), [0], [0], [0]

    def churn(n: int) -> None:
        for w in ids[n::threads]:
            if not stores[n].acquire_slot(scope, w, limit, f"m{n}", w):
                continue
            with lock:
                held[0] += 1
                total[0] += 1
                peak[0] = max(peak[0], held[0])
            assert len(stores[n].slot_holders(scope)) <= limit
            with lock:
                held[0] -= 1
            assert stores[n].release_slot(scope, w, w)

    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(churn, range(threads)))
    assert 1 <= peak[0] <= limit
    assert total[0] >= limit
    assert store.slot_holders(scope) == {}


@pytest.mark.parametrize("wid", ["demo-hg003-daylily", "a1-b2"])
def test_slots_work_for_any_valid_workset_id(store: Store, wid: str) -> None:
    """Workset ids are folder names with hyphens (``demo-hg003-daylily``); they are map keys
    in the cap item and must be passed to DynamoDB as values of attribute-name placeholders,
    never as the placeholder itself (``#demo-hg003-daylily`` is a syntax error)."""
    assert store.acquire_slot("global", wid, 1, "mon-a", "t")
    assert not store.acquire_slot("global", "other", 1, "mon-a", "u")
    assert set(store.slot_holders("global")) == {wid}
    assert store.release_slot("global", wid, "t")
    assert store.slot_holders("global") == {}
    assert store.adopt_slot("global", wid, 1, "mon-a", "t")
    assert store.adopt_slot("global", wid, 1, "mon-b", "u")
    assert not store.release_slot("global", wid, "t")
    assert store.release_slot("global", wid, "u")
    assert store.slot_holders("global") == {}


# ---------------------------------------------------------------------- stack discovery

TEMPLATE = json.dumps({"AWSTemplateFormatVersion": "2010-09-09",
                       "Resources": {"Q": {"Type": "AWS::SQS::Queue"}}})


class Stacks:
    """Stacks made by one test on the shared moto server (names carry a unique tag)."""

    def __init__(self, cfn: Any) -> None:
        self.cfn = cfn
        self.tag = uuid.uuid4().hex[:8]
        self.made: list[str] = []

    def create(self, name: str, tags: dict[str, str]) -> str:
        full = f"{name}-{self.tag}"
        self.cfn.create_stack(StackName=full, TemplateBody=TEMPLATE,
                              Tags=[{"Key": k, "Value": v} for k, v in tags.items()])
        self.made.append(full)
        return full

    def delete(self, full: str) -> None:
        self.cfn.delete_stack(StackName=full)
        self.made.remove(full)


@pytest.fixture
def stacks(moto_server: MotoServer) -> Iterator[Stacks]:
    s = Stacks(client("cloudformation", moto_server.endpoint_url))
    yield s
    for full in list(s.made):
        s.delete(full)


def test_discover_stacks_lists_only_parallelcluster_stacks(stacks: Stacks) -> None:
    pc = stacks.create("pc", {PCLUSTER_VERSION_TAG: "3.9.0", "team": "genomics"})
    stacks.create("other", {"team": "genomics"})
    stacks.delete(stacks.create("gone", {PCLUSTER_VERSION_TAG: "3.8.0"}))

    mine = [s for s in discover_stacks(stacks.cfn) if s["name"].endswith(stacks.tag)]
    assert mine == [{"name": pc, "status": "CREATE_COMPLETE", "version": "3.9.0"}]
