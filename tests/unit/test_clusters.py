"""The cluster record (status, storage round trip), this head node's cluster name, and the
concurrency-cap limits that apply to a workset."""

from __future__ import annotations

from pathlib import Path

import pytest

from daylib import clusters
from daylib.clusters import ClusterInfo, local_cluster_name
from daylib.config import CapSettings

NOW = 1_700_000_000.0


# ---------------------------------------------------------------------- ClusterInfo

def test_status_active_stale_paused() -> None:
    c = ClusterInfo(name="a", heartbeat_at=NOW, lease_seconds=30)
    assert c.status(NOW) == "active"
    assert c.status(NOW + 30) == "active"
    assert c.status(NOW + 30.5) == "stale"
    assert ClusterInfo(name="a", heartbeat_at=NOW, paused=True).status(NOW) == "paused"
    assert ClusterInfo(name="never").status(NOW) == "stale"  # never heartbeated


def test_item_round_trip_ignores_unknown_keys() -> None:
    c = ClusterInfo(name="alpha", region="us-east-1", az="us-east-1a",
                    partitions=["i8", "i192"], cpus_total=192, cpus_free=100,
                    memory_mb_total=768_000, memory_mb_free=400_000, max_node_cpus=192,
                    max_node_memory_mb=768_000, cost_per_vcpu_hour=0.042, max_concurrent=4,
                    running=2, monitor_id="head-1", heartbeat_at=NOW, lease_seconds=45.0,
                    paused=False)
    item = c.to_item()
    assert item["name"] == "alpha" and item["partitions"] == ["i8", "i192"]
    assert ClusterInfo.from_item(item) == c
    assert ClusterInfo.from_item({**item, "from_a_newer_version": 1, "status": "x"}) == c
    assert ClusterInfo.from_item({"name": "bare"}) == ClusterInfo(name="bare")


# ---------------------------------------------------------------------- local_cluster_name

@pytest.fixture
def pc_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, Path]:
    cfn, cfg = tmp_path / "cfnconfig", tmp_path / "cluster-config.yaml"
    monkeypatch.setattr(clusters, "CFNCONFIG", cfn)
    monkeypatch.setattr(clusters, "CLUSTER_CONFIG", cfg)
    return cfn, cfg


def test_configured_name_wins(pc_files: tuple[Path, Path]) -> None:
    cfn, cfg = pc_files
    cfn.write_text("stack_name=from-cfn\n")
    cfg.write_text("ClusterName: from-config\n")
    assert local_cluster_name("configured") == "configured"


def test_name_from_cfnconfig(pc_files: tuple[Path, Path]) -> None:
    cfn, cfg = pc_files
    cfn.write_text("cfn_region=us-west-2\nstack_name=day-prod\ncfn_node_type=HeadNode\n")
    cfg.write_text("ClusterName: from-config\n")
    assert local_cluster_name(None) == "day-prod"
    assert local_cluster_name("") == "day-prod"


def test_name_from_cluster_config_when_cfnconfig_has_none(pc_files: tuple[Path, Path]) -> None:
    cfn, cfg = pc_files
    cfn.write_text("cfn_region=us-west-2\n")
    cfg.write_text("Region: us-west-2\nImage:\n  Os: ubuntu2204\nClusterName: day-dev\n")
    assert local_cluster_name(None) == "day-dev"
    cfn.unlink()
    assert local_cluster_name(None) == "day-dev"


def test_no_name_anywhere(pc_files: tuple[Path, Path]) -> None:
    assert local_cluster_name(None) is None
    cfn, cfg = pc_files
    cfn.write_text("cfn_region=us-west-2\n")
    cfg.write_text("Region: us-west-2\n")
    assert local_cluster_name(None) is None


# ---------------------------------------------------------------------- CapSettings.limits

def test_no_caps_by_default() -> None:
    assert CapSettings().limits("alpha", "acme") == {}
    assert CapSettings().limits("alpha", None) == {}


def test_default_maxima_apply_to_every_cluster_and_customer() -> None:
    caps = CapSettings(global_max=10, cluster_default_max=4, customer_default_max=2)
    assert caps.limits("alpha", "acme") == {"global": 10, "cluster#alpha": 4,
                                            "customer#acme": 2}
    assert caps.limits("alpha", None) == {"global": 10, "cluster#alpha": 4}


def test_overrides_per_cluster_and_customer() -> None:
    caps = CapSettings(cluster_max={"big": 16, "free": 0}, cluster_default_max=4,
                       customer_max={"vip": 8, "anyone": 0}, customer_default_max=2)
    assert caps.limits("big", "vip") == {"cluster#big": 16, "customer#vip": 8}
    assert caps.limits("small", "acme") == {"cluster#small": 4, "customer#acme": 2}
    # an override of 0 lifts the default cap for that one cluster / customer
    assert caps.limits("free", "anyone") == {}


def test_negative_caps_are_rejected() -> None:
    from pydantic import ValidationError

    with pytest.raises(ValidationError):
        CapSettings(global_max=-1)
