"""``daylily-workset`` end to end against a moto server over HTTP: ``main(argv)`` in this
process, and the real entry point as a subprocess where the process itself is the contract.
Asserts the CLI contract of PRODUCT.md (exit codes, one-line errors, ``--json`` output) and the
behaviour behind each command."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from daylib.emulator import MotoServer
from daylib.ordering import epoch
from tests.cli.conftest import (
    FASTQ_DIR,
    PAIRED_FASTQS,
    WORKSETS_DIR,
    CliEnv,
    EnvFactory,
    _build,
    daylib_yaml,
    one_line_error,
    paired_sample,
)
from tests.conftest import ROOT, cli_command, run_cli

ALL_STATES = ("ready", "locked", "in_progress", "retrying", "complete", "failed", "cancelled")
SHOW_KEYS = ("workset_id", "state", "step", "priority", "cluster", "attempts", "error_category",
             "error", "history", "results_uri")


def _hg002_uri(env: CliEnv) -> str:
    key = "shared-fastq/HG002_R1.fastq.gz"
    if key not in env.keys(key):
        env.upload_fastq("HG002_R1.fastq.gz", key)
    return f"s3://{env.bucket}/{key}"


def _submit_paired(env: CliEnv, tmp: Path, wid: str, *args: str, **extra: Any) -> None:
    env.upload_sample_data(wid, *PAIRED_FASTQS)
    path = daylib_yaml(tmp / wid / "daylily_work.yaml", [paired_sample()], **extra)
    res = env.ok("submit", str(path), "--id", wid, *args)
    assert res.stdout == f"{wid}\n"


def _submit_single(env: CliEnv, tmp: Path, wid: str, *args: str, **extra: Any) -> None:
    sample = {"sample_id": "HG002", "fastq_r1": _hg002_uri(env)}
    path = daylib_yaml(tmp / wid / "daylily_work.yaml", [sample], **extra)
    res = env.ok("submit", str(path), "--id", wid, *args)
    assert res.stdout == f"{wid}\n"


def _broken_upload(env: CliEnv, wid: str) -> None:
    """Straight to S3 (submit would refuse it): what a careless upload looks like."""
    text = (WORKSETS_DIR / "demo-broken-upload" / "daylily_work.yaml").read_text()
    env.put(env.key(wid, "daylily_work.yaml"), text)


# ====================================================================== init

def test_init_is_idempotent(make_env: EnvFactory) -> None:
    env = make_env(init=False)
    first = env.ok("init")
    assert "created" in first.stdout
    second = env.ok("init")
    assert "exists" in second.stdout and "created" not in second.stdout
    data = env.json("init")
    assert data["table"] == env.table and data["bucket"] == env.bucket
    assert data["created"] == {"table": False, "bucket": False, "topic": False,
                               "queue": False, "intake": False}
    env.s3.head_bucket(Bucket=env.bucket)
    assert data["topic_arn"].endswith(f":events-{env.table}")
    assert data["queue_url"].endswith(f"/dlq-{env.table}")


# ====================================================================== submit

def test_submit_prints_only_the_id(module_env: CliEnv, tmp_path: Path) -> None:
    env = module_env
    sample = {"sample_id": "S1", "fastq_r1": _hg002_uri(env)}
    path = daylib_yaml(tmp_path / "daylily_work.yaml", [sample])
    res = env.ok("submit", str(path))
    wid = res.stdout.strip()
    assert res.stdout == wid + "\n"
    assert re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_-]{2,63}", wid), wid
    uploaded = yaml.safe_load(env.get_text(env.key(wid, "daylily_work.yaml")))
    assert uploaded["samples"] == [sample]


def test_submit_honours_id_priority_and_cluster(cli_env: CliEnv, tmp_path: Path) -> None:
    env = cli_env
    _submit_paired(env, tmp_path, "opts-1", "--priority", "urgent", "--cluster", "c1")
    uploaded = yaml.safe_load(env.get_text(env.key("opts-1", "daylily_work.yaml")))
    assert uploaded["priority"] == "urgent"
    assert uploaded["preferred_cluster"] == "c1"
    assert uploaded["samples"] == [paired_sample()]
    assert env.keys(env.key("opts-1", "daylily.ready")) == []  # daylib format needs no gate

    env.ok("monitor", "--once", "--cluster", "c1")
    rec = env.show("opts-1")
    assert rec["workset_id"] == "opts-1"
    assert rec["priority"] == "urgent"
    assert rec["preferred_cluster"] == "c1"
    assert rec["cluster"] == "c1"
    assert rec["state"] == "complete", rec
    assert rec["format"] == "daylib"


def test_submit_daylily_folder(cli_env: CliEnv, tmp_path: Path) -> None:
    env = cli_env
    folder = tmp_path / "demo-hg003-daylily"
    shutil.copytree(WORKSETS_DIR / "demo-hg003-daylily", folder)
    (folder / "sample_data").mkdir()
    for fq in sorted(FASTQ_DIR.glob("HG003_*.fastq.gz")):
        shutil.copy(fq, folder / "sample_data" / fq.name)

    res = env.run("submit", str(folder))
    assert res.returncode == 0, res.stderr
    assert res.stdout == "demo-hg003-daylily\n"
    keys = env.keys("worksets/demo-hg003-daylily/")
    rel = {k.removeprefix("worksets/demo-hg003-daylily/") for k in keys}
    assert {"daylily_work.yaml", "stage_samples.tsv", "daylily_info.yaml", "daylily.ready",
            "sample_data/HG003_L1_R1.fastq.gz", "sample_data/HG003_L2_R2.fastq.gz"} <= rel

    env.ok("monitor", "--once")
    rec = env.show("demo-hg003-daylily")
    assert rec["state"] == "complete", rec
    assert rec["format"] == "daylily"


def test_submit_invalid_yaml_names_the_key(module_env: CliEnv, tmp_path: Path) -> None:
    env = module_env
    env.upload_sample_data("bad-key", *PAIRED_FASTQS)
    path = daylib_yaml(tmp_path / "daylily_work.yaml", [paired_sample()], priorty="urgent")
    line = one_line_error(env.run("submit", str(path), "--id", "bad-key"))
    assert "priorty" in line
    assert env.keys(env.key("bad-key", "daylily_work.yaml")) == []

    nested = daylib_yaml(tmp_path / "nested.yaml",
                         [{**paired_sample(), "fastq_3": "sample_data/x.fastq.gz"}])
    line = one_line_error(env.run("submit", str(nested), "--id", "bad-key"))
    assert "samples[0].fastq_3" in line

    garbage = tmp_path / "garbage.yaml"
    garbage.write_text("samples: [unclosed\n  - {x: \n")
    line = one_line_error(env.run("submit", str(garbage), "--id", "bad-key"))
    assert "daylily_work.yaml" in line or "garbage.yaml" in line


def test_submit_missing_fastq_names_it(module_env: CliEnv, tmp_path: Path) -> None:
    env = module_env
    env.upload_fastq("NA12878_R1.fastq.gz", env.key("miss-fq", "sample_data/NA12878_R1.fastq.gz"))
    path = daylib_yaml(tmp_path / "daylily_work.yaml", [paired_sample()])
    line = one_line_error(env.run("submit", str(path), "--id", "miss-fq"))
    assert "NA12878_R2.fastq.gz" in line
    assert "NA12878_R1.fastq.gz" not in line
    assert env.keys(env.key("miss-fq", "daylily_work.yaml")) == []


def test_submit_same_id_twice_is_refused(module_env: CliEnv, tmp_path: Path) -> None:
    env = module_env
    _submit_paired(env, tmp_path, "dup-id")
    path = tmp_path / "dup-id" / "daylily_work.yaml"
    line = one_line_error(env.run("submit", str(path), "--id", "dup-id"))
    assert "dup-id" in line


def test_submit_bad_arguments(module_env: CliEnv, tmp_path: Path) -> None:
    env = module_env
    path = daylib_yaml(tmp_path / "daylily_work.yaml", [paired_sample()])
    res = env.run("submit", str(path), "--priority", "extreme")
    assert res.returncode == 2 and "Traceback" not in res.stderr
    line = one_line_error(env.run("submit", str(path), "--id", "bad id!"))
    assert "bad id!" in line
    line = one_line_error(env.run("submit", str(tmp_path / "nope.yaml")))
    assert "nope.yaml" in line


# ====================================================================== monitor, queue, list, show

FIRST_BATCH = ("done-a", "done-b", "bad-upload")
SECOND_BATCH = ("wait-c", "wait-d", "wait-e")


@pytest.fixture(scope="module")
def populated(moto_server: MotoServer, tmp_path_factory: pytest.TempPathFactory
              ) -> Iterator[CliEnv]:
    """Two submitted worksets and one broken upload run by ``monitor --once``; then three
    more registered while claiming is paused, so they stay ``ready``."""
    tmp = tmp_path_factory.mktemp("populated")
    env = _build(moto_server, tmp / "work")
    env.ok("init")
    _submit_paired(env, tmp, "done-a", "--priority", "high", customer_id="lab-a")
    _submit_single(env, tmp, "done-b", customer_id="lab-b", pipeline="somatic")
    _broken_upload(env, "bad-upload")
    env.ok("monitor", "--once")
    env.ok("pause")
    _submit_single(env, tmp, "wait-c", customer_id="lab-a")
    _submit_single(env, tmp, "wait-d", "--cluster", "c9", customer_id="lab-c")
    _submit_single(env, tmp, "wait-e")
    env.ok("monitor", "--once")
    env.ok("resume")
    yield env
    shutil.rmtree(tmp, ignore_errors=True)


@pytest.mark.parametrize("wid", ["done-a", "done-b"])
def test_monitor_once_completes_with_results(populated: CliEnv, wid: str) -> None:
    rec = populated.show(wid)
    assert rec["state"] == "complete", rec
    assert rec["error"] is None and rec["error_category"] is None
    assert rec["results_uri"] == f"s3://{populated.bucket}/worksets/{wid}/results/"
    names = {k.rsplit("/", 1)[-1] for k in populated.keys(f"worksets/{wid}/results/")}
    assert {"qc_summary.json", "qc_summary.tsv"} <= names
    summary = json.loads(populated.get_text(f"worksets/{wid}/results/qc_summary.json"))
    assert [s["sample_id"] for s in summary["samples"]] == [
        "NA12878" if wid == "done-a" else "HG002"]
    assert rec["history"][-1]["to"] == "complete"


def test_monitor_once_fails_malformed_upload_with_data_category(populated: CliEnv) -> None:
    rec = populated.show("bad-upload")
    assert rec["state"] == "failed"
    assert rec["error_category"] == "data"
    assert "samples[1].fastq_r1" in rec["error"]
    assert "priorty" in rec["error"]
    assert "Traceback" not in rec["error"]
    assert populated.keys("worksets/bad-upload/results/") == []


def test_queue_json(populated: CliEnv) -> None:
    res = populated.ok("queue", "--json")
    data = json.loads(res.stdout)  # exactly one JSON document, nothing else on stdout
    assert {"states", "by_cluster", "by_customer", "total"} <= set(data)
    assert set(data["states"]) == set(ALL_STATES)
    assert data["states"] == {"ready": 3, "locked": 0, "in_progress": 0, "retrying": 0,
                              "complete": 2, "failed": 1, "cancelled": 0}
    assert data["total"] == 6
    by_customer, by_cluster = data["by_customer"], data["by_cluster"]
    assert by_customer["lab-a"].get("ready") == 1
    assert by_customer["lab-c"].get("ready") == 1
    assert sum(by_customer.get("lab-b", {}).values()) == 0  # lab-b has nothing active
    assert sum(c.get("ready", 0) for c in by_customer.values()) == 3
    assert by_cluster["c9"].get("ready") == 1
    assert sum(c.get("ready", 0) for c in by_cluster.values()) == 3
    assert data.get("paused") is False
    # the global option works before the command too
    assert json.loads(populated.ok("--json", "queue").stdout)["total"] == 6


def test_queue_plain_table(populated: CliEnv) -> None:
    out = populated.ok("queue").stdout
    rows = dict(line.split()[:2] for line in out.splitlines()
                if line.split() and line.split()[0] in (*ALL_STATES, "total"))
    assert rows["ready"] == "3" and rows["complete"] == "2" and rows["failed"] == "1"
    assert rows["total"] == "6"
    assert "lab-a" in out and "c9" in out
    with pytest.raises(json.JSONDecodeError):
        json.loads(out)


def test_list_newest_first(populated: CliEnv) -> None:
    rows = populated.json("list")
    ids = [r["workset_id"] for r in rows]
    assert sorted(ids) == sorted(FIRST_BATCH + SECOND_BATCH)
    assert max(ids.index(w) for w in SECOND_BATCH) < min(ids.index(w) for w in FIRST_BATCH)
    created = [r["created_at"] for r in rows]
    assert created == sorted(created, reverse=True)
    states = {r["workset_id"]: r["state"] for r in rows}
    assert states["done-a"] == "complete" and states["bad-upload"] == "failed"
    assert states["wait-c"] == "ready"


def test_list_filters(populated: CliEnv) -> None:
    queries = {
        "ready": ("--state", "ready"), "complete": ("--state", "complete"),
        "failed": ("--state", "failed"), "cancelled": ("--state", "cancelled"),
        "lab-a": ("--customer", "lab-a"), "c9": ("--cluster", "c9"), "all": (),
        "limit": ("--limit", "2"), "ready-lab-c": ("--state", "ready", "--customer", "lab-c"),
    }
    results = populated.run_many(*(("list", *q, "--json") for q in queries.values()))
    ids = {}
    for name, res in zip(queries, results, strict=True):
        assert res.returncode == 0, (name, res.stderr)
        ids[name] = [r["workset_id"] for r in json.loads(res.stdout)]
    assert sorted(ids["ready"]) == sorted(SECOND_BATCH)
    assert sorted(ids["complete"]) == ["done-a", "done-b"]
    assert ids["failed"] == ["bad-upload"]
    assert ids["cancelled"] == []
    assert sorted(ids["lab-a"]) == ["done-a", "wait-c"]
    assert ids["c9"] == ["wait-d"]
    assert ids["limit"] == ids["all"][:2]
    assert ids["ready-lab-c"] == ["wait-d"]


def test_list_plain_and_bad_state(populated: CliEnv) -> None:
    out = populated.ok("list").stdout
    for wid in FIRST_BATCH + SECOND_BATCH:
        assert wid in out
    assert populated.run("list", "--state", "sleeping").returncode == 2
    assert populated.run("list", "--limit", "many").returncode == 2


def test_show_json_has_contract_fields(populated: CliEnv) -> None:
    rec = populated.show("done-a")
    assert set(SHOW_KEYS) <= set(rec)
    assert rec["workset_id"] == "done-a"
    assert rec["priority"] == "high"
    assert rec["attempts"] == 1
    assert rec["step"] is None
    assert rec["customer_id"] == "lab-a"
    assert rec["format"] == "daylib"
    assert rec["cluster"]
    assert isinstance(rec["history"], list)
    moves = [(h.get("from"), h.get("to")) for h in rec["history"]]
    assert moves[0] == (None, "ready") and moves[-1][1] == "complete"
    assert all(h.get("at") and h.get("actor") for h in rec["history"])
    ready = populated.show("wait-d")
    assert ready["state"] == "ready" and ready["preferred_cluster"] == "c9"
    assert ready["attempts"] == 1 and ready["error"] is None


def test_show_plain(populated: CliEnv) -> None:
    out = populated.ok("show", "bad-upload").stdout
    assert "bad-upload" in out and "failed" in out and "samples[1].fastq_r1" in out
    assert "history" in out


def test_show_unknown_id(populated: CliEnv) -> None:
    line = one_line_error(populated.run("show", "no-such-workset"))
    assert "no-such-workset" in line
    res = populated.run("show", "no-such-workset", "--json")
    one_line_error(res)
    assert res.stdout == ""


# ====================================================================== control

@pytest.fixture(scope="module")
def control_env(moto_server: MotoServer, tmp_path_factory: pytest.TempPathFactory
                ) -> Iterator[CliEnv]:
    """Worksets registered ``ready`` while claiming stays paused (nothing runs them)."""
    tmp = tmp_path_factory.mktemp("control")
    env = _build(moto_server, tmp / "work")
    env.ok("init")
    env.ok("pause")
    for wid in ("ctl-cancel", "ctl-ready", "ctl-prio", "ctl-done"):
        _submit_single(env, tmp, wid)
    env.ok("monitor", "--once")
    yield env
    shutil.rmtree(tmp, ignore_errors=True)


def test_cancel_then_retry(control_env: CliEnv) -> None:
    env = control_env
    assert env.show("ctl-cancel")["state"] == "ready"
    rec = env.json("cancel", "ctl-cancel")
    assert rec["workset_id"] == "ctl-cancel" and rec["state"] == "cancelled"
    shown = env.show("ctl-cancel")
    assert shown["state"] == "cancelled"
    last = shown["history"][-1]
    assert (last["from"], last["to"]) == ("ready", "cancelled")
    assert last["actor"].startswith("user:") and "cancel" in last["reason"]

    line = one_line_error(env.run("cancel", "ctl-cancel"))
    assert "ctl-cancel" in line and "cancelled" in line

    res = env.ok("retry", "ctl-cancel")
    assert "ctl-cancel" in res.stdout
    shown = env.show("ctl-cancel")
    assert shown["state"] == "ready" and shown["attempts"] == 2
    assert (shown["history"][-1]["from"], shown["history"][-1]["to"]) == ("cancelled", "ready")


def test_retry_of_ready_workset_is_refused(control_env: CliEnv) -> None:
    line = one_line_error(control_env.run("retry", "ctl-ready"))
    assert "ctl-ready" in line and "ready" in line
    assert control_env.show("ctl-ready")["attempts"] == 1


def test_control_of_unknown_id(control_env: CliEnv) -> None:
    calls = (("cancel", "ghost-ws"), ("retry", "ghost-ws"), ("priority", "ghost-ws", "low"))
    for res in control_env.run_many(*calls):
        assert "ghost-ws" in one_line_error(res)


def test_priority(control_env: CliEnv) -> None:
    env = control_env
    assert env.show("ctl-prio")["priority"] == "normal"
    res = env.ok("priority", "ctl-prio", "high")
    assert "high" in res.stdout
    assert env.show("ctl-prio")["priority"] == "high"
    assert env.json("priority", "ctl-prio", "low")["priority"] == "low"
    bad = env.run("priority", "ctl-prio", "extreme")
    assert bad.returncode == 2 and "Traceback" not in bad.stderr
    assert env.show("ctl-prio")["priority"] == "low"
    ready = env.json("list", "--state", "ready")
    assert {r["workset_id"]: r["priority"] for r in ready}["ctl-prio"] == "low"


def test_pause_and_resume(cli_env: CliEnv, tmp_path: Path) -> None:
    env = cli_env
    data = env.json("pause")
    assert data["paused"] is True
    assert env.json("queue")["paused"] is True
    assert "PAUSED" in env.ok("queue").stdout.upper()
    _submit_single(env, tmp_path, "paused-1")
    env.ok("monitor", "--once", timeout=60)
    rec = env.show("paused-1")
    assert rec["state"] == "ready" and rec["owner"] is None
    assert [h["to"] for h in rec["history"]] == ["ready"]

    assert env.json("resume")["paused"] is False
    assert env.json("queue")["paused"] is False
    env.ok("monitor", "--once", timeout=60)
    assert env.show("paused-1")["state"] == "complete"


# ====================================================================== usage, config, options

@pytest.mark.parametrize("args", [
    (), ("frobnicate",), ("show",), ("priority", "some-id"), ("cancel",),
    ("list", "--bogus-flag"), ("submit",),
])
def test_usage_errors_exit_2(module_env: CliEnv, args: tuple[str, ...]) -> None:
    res = module_env.run(*args)
    assert res.returncode == 2, (res.stdout, res.stderr)
    assert "Traceback" not in res.stderr
    assert res.stdout == ""


def test_help_exits_0(module_env: CliEnv) -> None:
    res = module_env.run("--help", process=True)
    assert res.returncode == 0 and "submit" in res.stdout


def test_entry_point_usage_error_exits_2(module_env: CliEnv) -> None:
    """The installed script itself: exit 2, one line, nothing on stdout."""
    res = module_env.run("frobnicate", process=True)
    assert one_line_error(res, 2).startswith("daylily-workset: usage error")
    assert res.stdout == ""


def test_unknown_config_key(module_env: CliEnv, tmp_path: Path) -> None:
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text("monitor:\n  poll_secondz: 1\n")
    line = one_line_error(module_env.run("--config", str(cfg), "queue"))
    assert "poll_secondz" in line
    cfg.write_text("bogus_section:\n  x: 1\n")
    line = one_line_error(module_env.run("queue", "--config", str(cfg)))
    assert "bogus_section" in line
    line = one_line_error(module_env.run("--config", str(tmp_path / "absent.yaml"), "queue"))
    assert "absent.yaml" in line
    line = one_line_error(module_env.run("queue", extra_env={"DAYLILY_MONITOR__POLL_SECONDS":
                                                              "-1"}))
    assert "poll_seconds" in line


def test_valid_config_file_is_used(module_env: CliEnv, tmp_path: Path) -> None:
    cfg = tmp_path / "cfg.yaml"
    other = f"{module_env.table}-other"
    cfg.write_text(yaml.safe_dump({"state": {"table": other}}))
    env = {**module_env.env}
    del env["DAYLILY_STATE__TABLE"]  # env overrides would win over the file
    res = run_cli("--config", str(cfg), "init", "--json", env=env)
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout)["table"] == other


def test_region_and_profile_options(module_env: CliEnv, tmp_path: Path) -> None:
    env = module_env
    assert json.loads(env.ok("--region", "us-west-2", "queue", "--json").stdout)["total"] >= 0
    assert json.loads(env.ok("queue", "--region", "us-west-2", "--json").stdout)["total"] >= 0

    aws_config = tmp_path / "aws-config"
    aws_config.write_text("[profile daylib-cli-test]\nregion = us-west-2\n"
                          "aws_access_key_id = testing\naws_secret_access_key = testing\n")
    res = env.run("--profile", "daylib-cli-test", "queue", "--json",
                  extra_env={"AWS_CONFIG_FILE": str(aws_config)})
    assert res.returncode == 0, res.stderr
    json.loads(res.stdout)

    res = env.run("--profile", "no-such-profile-xyz", "queue",
                  extra_env={"AWS_CONFIG_FILE": str(aws_config)})
    line = one_line_error(res)
    assert "no-such-profile-xyz" in line


def test_json_outputs_are_pure_json(populated: CliEnv) -> None:
    """Every ``--json`` command writes one JSON document and nothing else on stdout (logs go
    to stderr)."""
    calls = (("queue",), ("list",), ("show", "done-a"), ("list", "--state", "ready"),
             ("-v", "queue"))
    for args, res in zip(calls, populated.run_many(*((*c, "--json") for c in calls)),
                         strict=True):
        assert res.returncode == 0, (args, res.stderr)
        json.loads(res.stdout)


def test_json_outputs_of_changes(control_env: CliEnv) -> None:
    env = control_env
    for args in (("pause",), ("cancel", "ctl-done"), ("pause", "--reason", "maintenance")):
        res = env.ok(*args, "--json")
        json.loads(res.stdout)


# ====================================================================== SIGTERM

HANG_GUARD_SECONDS = 300  # only guards against a hang; a loaded machine must never reach it
SLEEP_PIPELINE = "{germline: \"{python} -c 'import time; time.sleep(30)'\"}"


def _wait_for(env: CliEnv, wid: str, states: tuple[str, ...], step: str | None,
              proc: subprocess.Popen[bytes],
              timeout: float = HANG_GUARD_SECONDS) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    rec: dict[str, Any] = {}
    while time.monotonic() < deadline:
        assert proc.poll() is None, "monitor exited early"
        res = env.run("show", wid, "--json")
        if res.returncode == 0:
            rec = json.loads(res.stdout)
            if rec["state"] in states and (step is None or rec["step"] == step):
                return rec
        time.sleep(0.3)
    raise AssertionError(f"{wid} never reached {states}/{step}: {rec}")


def test_sigterm_hands_running_workset_back(make_env: EnvFactory, tmp_path: Path) -> None:
    env = make_env(DAYLILY_WORKSET__PIPELINES=SLEEP_PIPELINE,
                   DAYLILY_MONITOR__SHUTDOWN_GRACE_SECONDS="1")
    _submit_single(env, tmp_path, "sleepy-1")
    log_path = tmp_path / "monitor.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen([*cli_command(), "monitor"], cwd=ROOT, stdout=log,
                                stderr=subprocess.STDOUT,
                                env={**os.environ, "PYTHONPATH": str(ROOT), **env.env})
    try:
        running = _wait_for(env, "sleepy-1", ("in_progress",), "run", proc)
        assert running["owner"]
        proc.send_signal(signal.SIGTERM)
        rc = proc.wait(timeout=HANG_GUARD_SECONDS)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    output = log_path.read_text(errors="replace")
    assert rc == 0, output
    assert "Traceback" not in output
    rec = env.show("sleepy-1")
    assert rec["state"] == "ready", rec
    assert rec["owner"] is None and rec["lease_expires"] is None
    last = rec["history"][-1]
    assert last["to"] == "ready" and last["from"] == "in_progress"
    assert "handed back" in last["reason"]
    run_started = next(h["at"] for h in rec["history"] if h["reason"] == "stage done")
    # handed back while the 30 s run step still ran: the monitor did not wait for it to end
    assert epoch(last["at"]) < epoch(run_started) + 30
    assert "stage" in rec["steps_done"]  # the finished step is kept; a retry resumes at run


# ====================================================================== AWS-side errors

def test_aws_errors_are_one_line(make_env: EnvFactory) -> None:
    fresh = make_env(init=False)
    line = one_line_error(fresh.run("queue", process=True))  # no table yet
    assert fresh.table in line or "ResourceNotFound" in line
    bad_bucket = make_env(init=False, DAYLILY_STORAGE__BUCKET="ab")  # S3 refuses: too short
    line = one_line_error(bad_bucket.run("init"))
    assert "InvalidBucketName" in line or "'ab'" in line


# ====================================================================== dependencies

def test_monitor_once_rejects_dependency_cycle(cli_env: CliEnv, tmp_path: Path) -> None:
    """``after`` cycles are rejected (PRODUCT.md): both end ``failed`` naming the cycle, and
    ``monitor --once`` terminates instead of waiting on them forever."""
    env = cli_env
    _submit_single(env, tmp_path, "cyc-a", after=["cyc-b"])
    _submit_single(env, tmp_path, "cyc-b", after=["cyc-a"])
    try:
        env.ok("monitor", "--once", timeout=20, process=True)
    except subprocess.TimeoutExpired:
        pytest.fail("monitor --once never returned: the two worksets wait on each other")
    for wid in ("cyc-a", "cyc-b"):
        rec = env.show(wid)
        assert rec["state"] == "failed", rec
        assert rec["error_category"] == "data"
        assert "cycle" in rec["error"]
