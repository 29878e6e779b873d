"""What a new user sees before `init`, with a wrong bucket, or with a mistyped variable."""

from __future__ import annotations

from pathlib import Path

from tests.cli.conftest import (
    EnvFactory,
    daylib_yaml,
    one_line_error,
)
from tests.conftest import REGION


def test_missing_table_names_table_region_and_fix(make_env: EnvFactory) -> None:
    """Seen: before `init` every command failed with a bare ResourceNotFoundException."""
    env = make_env(init=False)
    for command in ("queue", "list", "clusters"):
        line = one_line_error(env.run(command))
        assert f"DynamoDB table '{env.table}' not found in region {REGION}" in line, line
        assert "daylily-workset init" in line, line


def test_missing_bucket_names_bucket_region_and_fix(make_env: EnvFactory, tmp_path: Path
                                                    ) -> None:
    """Seen: a wrong bucket gave a bare NoSuchBucket."""
    env = make_env()
    wrong = "no-such-bucket-daylib"
    r1 = env.upload_fastq("NA12878_R1.fastq.gz", "inputs/NA12878_R1.fastq.gz")
    spec = daylib_yaml(tmp_path / "ws" / "daylily_work.yaml",
                       [{"sample_id": "NA12878", "fastq_r1": r1}])
    line = one_line_error(env.run("submit", str(spec), extra_env={
        "DAYLILY_STORAGE__BUCKET": wrong, "DAYLILY_STORAGE__ALLOWED_BUCKETS": f"[{env.bucket}]"}))
    assert f"S3 bucket '{wrong}' not found in region {REGION}" in line, line
    assert "daylily-workset init" in line, line


def test_monitor_exits_78_on_missing_table(make_env: EnvFactory) -> None:
    """A missing table is a configuration error: the service must not restart on it."""
    env = make_env(init=False)
    res = env.run("monitor", timeout=60)
    assert res.returncode == 78, (res.returncode, res.stderr)
    assert f"DynamoDB table '{env.table}' not found" in res.stderr


def test_monitor_exits_78_on_bad_setting(make_env: EnvFactory) -> None:
    env = make_env()
    res = env.run("monitor", extra_env={"DAYLILY_MONITOR__MAX_CONCURENT": "8"})
    assert res.returncode == 78, (res.returncode, res.stderr)


def test_env_typo_is_named_as_an_environment_variable(make_env: EnvFactory, tmp_path: Path
                                                      ) -> None:
    """Seen: DAYLILY_MONITOR__MAX_CONCURENT was reported as an unknown key in the config
    file."""
    env = make_env(init=False)
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text("monitor:\n  max_concurrent: 2\n")
    line = one_line_error(env.run("--config", str(cfg), "queue",
                                  extra_env={"DAYLILY_MONITOR__MAX_CONCURENT": "8"}))
    assert "environment variable DAYLILY_MONITOR__MAX_CONCURENT" in line, line
    assert str(cfg) not in line, line
    assert "max_concurrent" in line, line  # the known keys are listed
    # a bad key in the file is still blamed on the file
    cfg.write_text("monitor:\n  max_concurent: 2\n")
    line = one_line_error(env.run("--config", str(cfg), "queue"))
    assert line.startswith(f"daylily-workset: {cfg}: unknown config key"), line
    # a bad value from the environment names the variable too
    line = one_line_error(env.run("queue", extra_env={"DAYLILY_MONITOR__MAX_CONCURRENT": "x"}))
    assert "environment variable DAYLILY_MONITOR__MAX_CONCURRENT" in line, line


def test_monitor_exits_78_on_missing_bucket(make_env: EnvFactory) -> None:
    """Seen: a monitor whose bucket is missing looped instead of exiting 78."""
    env = make_env()
    wrong = "no-such-bucket-daylib-mon"
    res = env.run("monitor", extra_env={"DAYLILY_STORAGE__BUCKET": wrong}, timeout=60)
    assert res.returncode == 78, (res.returncode, res.stderr[-2000:])
    lines = [ln for ln in res.stderr.splitlines() if f"S3 bucket '{wrong}' not found" in ln]
    assert len(lines) == 1, res.stderr[-2000:]
    assert f"in region {REGION}" in lines[0] and "daylily-workset init" in lines[0], lines


def test_validation_names_the_missing_bucket_not_the_fastq(make_env: EnvFactory,
                                                           tmp_path: Path) -> None:
    """Seen: HeadObject on a missing bucket said the FASTQ "does not exist"."""
    env = make_env()
    gone = "no-such-bucket-daylib-fq"
    spec = daylib_yaml(tmp_path / "ws" / "daylily_work.yaml", [
        {"sample_id": "NA12878", "fastq_r1": f"s3://{gone}/in/NA12878_R1.fastq.gz"}])
    line = one_line_error(env.run("submit", str(spec), extra_env={
        "DAYLILY_STORAGE__ALLOWED_BUCKETS": f"[{gone}]"}))
    assert "does not exist" not in line, line
    assert f"S3 bucket '{gone}' not found in region {REGION}" in line, line
