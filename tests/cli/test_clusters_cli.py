"""``daylily-workset clusters`` and ``affinity`` end to end: monitors register their cluster,
the registry is listed (and the account's ParallelCluster stacks discovered), and a workset
with hard affinity runs only on its cluster, with the routing decision recorded on it."""

from __future__ import annotations

import json
import time
import uuid
from pathlib import Path

from daylib.clusters import PCLUSTER_VERSION_TAG
from tests.cli.conftest import (
    PAIRED_FASTQS,
    CliEnv,
    EnvFactory,
    daylib_yaml,
    one_line_error,
    paired_sample,
)
from tests.conftest import REGION, client

TEMPLATE = json.dumps({"AWSTemplateFormatVersion": "2010-09-09",
                       "Resources": {"Q": {"Type": "AWS::SQS::Queue"}}})
COST = "0.0425"


def _monitor(env: CliEnv, cluster: str) -> None:
    res = env.run("monitor", "--once", "--cluster", cluster, timeout=90,
                  extra_env={"DAYLILY_ROUTING__COST_PER_VCPU_HOUR": COST})
    assert res.returncode == 0, (res.stdout, res.stderr)


def test_clusters_lists_registered_clusters_and_stacks(cli_env: CliEnv) -> None:
    env = cli_env
    text, empty = env.run_many(("clusters",), ("clusters", "--json"))
    assert text.returncode == 0 and "no clusters" in text.stdout, text
    assert json.loads(empty.stdout) == {"clusters": [], "paused": False, "pause_reason": None,
                                        "paused_by": None}

    started = time.time()
    _monitor(env, "alpha")
    stack = f"pc-{uuid.uuid4().hex[:8]}"
    cfn = client("cloudformation", env.url)
    cfn.create_stack(StackName=stack, TemplateBody=TEMPLATE,
                     Tags=[{"Key": PCLUSTER_VERSION_TAG, "Value": "3.9.0"}])
    try:
        # the plain listings first: the --once monitor's heartbeat stays fresh for them
        listed, table, found = env.run_many(("clusters", "--json"), ("clusters",),
                                            ("clusters", "--discover", "--json"))
    finally:
        cfn.delete_stack(StackName=stack)

    data = json.loads(listed.stdout)
    assert "stacks" not in data
    [alpha] = data["clusters"]
    assert alpha["name"] == "alpha"
    assert alpha["status"] == "active"  # a --once monitor leaves its last heartbeat
    assert alpha["region"] == REGION
    assert alpha["cost_per_vcpu_hour"] == float(COST)
    assert alpha["cpus_total"] >= 1 and 0 <= alpha["cpus_free"] <= alpha["cpus_total"]
    assert alpha["memory_mb_total"] > 0 and alpha["max_node_cpus"] >= 1
    assert "local" in alpha["partitions"]
    assert started - 1 <= alpha["heartbeat_at"] <= time.time()
    assert alpha["paused"] is False

    discovered = json.loads(found.stdout)
    assert [c["name"] for c in discovered["clusters"]] == ["alpha"]
    assert {"name": stack, "status": "CREATE_COMPLETE", "version": "3.9.0"} in \
        discovered["stacks"]

    assert table.returncode == 0
    header, _, row = table.stdout.splitlines()[:3]
    assert "status" in header and row.split()[:3] == ["alpha", "active", REGION]


def test_affinity_routes_a_ready_workset_to_its_cluster(make_env: EnvFactory,
                                                        tmp_path: Path) -> None:
    env = make_env()
    wid = "aff-1"
    env.upload_sample_data(wid, *PAIRED_FASTQS)
    path = daylib_yaml(tmp_path / wid / "daylily_work.yaml", [paired_sample()])
    # hard affinity to a cluster that does not exist keeps it ready through alpha's pass
    env.ok("submit", str(path), "--id", wid, "--cluster", "gamma")
    _monitor(env, "alpha")
    rec = env.show(wid)
    assert rec["state"] == "ready" and rec["cluster"] is None, rec
    assert "gamma" in (rec["reason"] or ""), rec

    res = env.ok("affinity", wid, "beta")
    assert "beta" in res.stdout
    rec = env.show(wid)
    assert rec["preferred_cluster"] == "beta"
    assert rec["state"] == "ready"

    _monitor(env, "alpha")  # alpha is active and free, but the affinity is hard
    rec = env.show(wid)
    assert rec["state"] == "ready" and rec["cluster"] is None, rec
    assert "beta" in (rec["reason"] or "") and "gamma" not in rec["reason"], rec
    text = env.ok("show", wid).stdout
    [waiting] = [ln for ln in text.splitlines() if ln.startswith("waiting")]
    assert "beta" in waiting

    _monitor(env, "beta")
    rec = env.show(wid)
    assert rec["state"] == "complete", rec
    assert rec["cluster"] == "beta"
    assert rec["route"] and "beta" in rec["route"] and "affinity" in rec["route"], rec
    clusters = {c["name"]: c for c in env.json("clusters")["clusters"]}
    assert set(clusters) == {"alpha", "beta"}

    err = one_line_error(env.run("affinity", wid, "alpha"))
    assert wid in err and "complete" in err
    assert env.show(wid)["preferred_cluster"] == "beta"
