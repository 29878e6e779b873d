"""``daylily-workset dlq list`` / ``dlq redrive ID...`` / ``dlq redrive --all`` and the
failure decision in ``show``, through the real entry point against a moto server: a workset
that fails goes to the dead-letter queue; once fixed, a redrive brings it to complete."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from daylib.emulator import MotoServer
from tests.cli.conftest import CliEnv, _build, daylib_yaml, one_line_error, paired_sample

FASTQS = ("NA12878_R1.fastq.gz", "NA12878_R2.fastq.gz")


def _upload_bad_reference(env: CliEnv, wid: str) -> None:
    """Straight to S3, as a careless upload would be: a reference nobody configured."""
    env.upload_sample_data(wid, *FASTQS)
    doc = {"samples": [paired_sample()], "reference_genome": "hg99"}
    env.put(env.key(wid, "daylily_work.yaml"), yaml.safe_dump(doc))


def _fix_reference(env: CliEnv, wid: str, tmp: Path) -> None:
    path = daylib_yaml(tmp / wid / "daylily_work.yaml", [paired_sample()])
    env.put(env.key(wid, "daylily_work.yaml"), path.read_text())


@pytest.fixture(scope="module")
def dlq_env(moto_server: MotoServer, tmp_path_factory: pytest.TempPathFactory
            ) -> Iterator[CliEnv]:
    """Three worksets that fail at once (configuration), run by one ``monitor --once``."""
    tmp = tmp_path_factory.mktemp("dlq")
    env = _build(moto_server, tmp / "work")
    env.ok("init")
    for wid in ("dl-one", "dl-two", "dl-three"):
        _upload_bad_reference(env, wid)
    env.ok("monitor", "--once")
    yield env


def test_failed_worksets_are_listed_in_the_dlq(dlq_env: CliEnv) -> None:
    rows = dlq_env.json("dlq", "list")
    assert sorted(r["workset_id"] for r in rows) == ["dl-one", "dl-three", "dl-two"]
    for r in rows:
        assert (r["category"], r["rule"], r["attempts"], r["state"]) == (
            "configuration", "validation:configuration", 1, "failed")
        assert "hg99" in r["error"] and r["messages"] == 1
        assert r["decision"] == "configuration (rule validation:configuration): not " \
                                "retryable; failed"
    plain = dlq_env.ok("dlq", "list").stdout
    assert plain.splitlines()[0].split()[:4] == ["workset", "category", "rule", "attempts"]
    assert "dl-two" in plain


def test_show_explains_the_decision(dlq_env: CliEnv) -> None:
    shown = dlq_env.show("dl-one")
    assert (shown["error_category"], shown["error_rule"]) == ("configuration",
                                                              "validation:configuration")
    assert shown["decision"].endswith("not retryable; failed")
    assert shown["retries_used"] == 0 and shown["failed_at"]
    plain = dlq_env.ok("show", "dl-one").stdout
    assert "decision    configuration (rule validation:configuration): not retryable" in plain
    assert "retries     0 of 3 used" in plain


def test_redrive_of_a_fixed_workset_completes_and_is_safe_to_repeat(
        dlq_env: CliEnv, tmp_path: Path) -> None:
    env = dlq_env
    _fix_reference(env, "dl-one", tmp_path)
    data = env.json("dlq", "redrive", "dl-one")
    assert (data["redriven"], data["unchanged"], data["messages_deleted"]) == (["dl-one"], [],
                                                                              1)
    shown = env.show("dl-one")
    assert (shown["state"], shown["attempts"], shown["retries_used"]) == ("ready", 2, 0)
    assert shown["history"][-1]["reason"] == "redriven from the dead-letter queue"
    assert "dl-one" not in {r["workset_id"] for r in env.json("dlq", "list")}

    again = env.ok("dlq", "redrive", "dl-one")  # repeating is a no-op that says so
    assert "dl-one is ready, not failed; nothing to redrive" in again.stdout
    assert "0 dead-letter message(s) deleted" in again.stdout
    assert env.show("dl-one")["attempts"] == 2

    env.ok("monitor", "--once")
    done = env.show("dl-one")
    assert done["state"] == "complete" and done["error"] is None
    assert env.keys("worksets/dl-one/results/")


def test_redrive_all_and_its_repeat(dlq_env: CliEnv, tmp_path: Path) -> None:
    env = dlq_env
    data = env.json("dlq", "redrive", "--all")  # not fixed: they fail again
    assert sorted(data["redriven"]) == ["dl-three", "dl-two"]
    assert data["messages_deleted"] == 2
    assert env.json("dlq", "list") == []
    repeat = env.json("dlq", "redrive", "--all")
    assert repeat["redriven"] == [] and repeat["messages_deleted"] == 0
    assert "nothing to redrive" in env.ok("dlq", "redrive", "--all").stdout
    env.ok("monitor", "--once")
    rows = {r["workset_id"]: r for r in env.json("dlq", "list")}
    assert sorted(rows) == ["dl-three", "dl-two"]  # dead-lettered again, fresh messages
    assert {r["attempts"] for r in rows.values()} == {2}
    assert env.show("dl-two")["retries_used"] == 0  # budget counted from the redrive


def test_redrive_refuses_what_is_not_failed_or_unknown(dlq_env: CliEnv) -> None:
    env = dlq_env
    res = env.run("dlq", "redrive", "ghost-ws", "--json")
    assert "ghost-ws" in one_line_error(res)
    assert json.loads(res.stdout)["unknown"] == ["ghost-ws"]


@pytest.mark.parametrize("args", [("dlq",), ("dlq", "redrive"), ("dlq", "redrive", "--all", "x"),
                                  ("dlq", "peek")])
def test_dlq_usage_errors_exit_2(dlq_env: CliEnv, args: tuple[str, ...]) -> None:
    res = dlq_env.run(*args)
    assert res.returncode == 2, (res.stdout, res.stderr)
    assert "usage error" in res.stderr and "Traceback" not in res.stderr


def test_retry_is_refused_for_a_complete_workset(dlq_env: CliEnv, tmp_path: Path) -> None:
    env = dlq_env
    if env.show("dl-one")["state"] != "complete":
        pytest.skip("needs the redrive test first")
    line = one_line_error(env.run("retry", "dl-one"))
    assert "dl-one is complete" in line and "failed, retrying or cancelled" in line


def test_dlq_without_a_queue_says_how_to_fix_it(moto_server: MotoServer,
                                               tmp_path: Path) -> None:
    env = _build(moto_server, tmp_path / "work")
    line = one_line_error(env.run("dlq", "list"))
    assert "run `daylily-workset init`" in line
