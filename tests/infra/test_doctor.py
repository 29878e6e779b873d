"""`daylily-workset doctor` explains each broken setup of the issue, and exits 1 on any."""

from __future__ import annotations

import json

from daylib.doctor import clock_skew
from tests.cli.conftest import EnvFactory
from tests.conftest import REGION, client


def _checks(stdout: str) -> dict[str, dict[str, object]]:
    return {c["name"]: c for c in json.loads(stdout)["checks"]}


def test_before_init_every_missing_resource_is_named_with_the_fix(make_env: EnvFactory
                                                                   ) -> None:
    env = make_env(init=False)
    res = env.run("doctor")
    assert res.returncode == 1, res.stdout + res.stderr
    for line in (f"FAIL table         DynamoDB table '{env.table}' not found in {REGION}",
                 f"FAIL bucket        S3 bucket '{env.bucket}' not found",
                 "FAIL topic", "FAIL dead-letter queue",
                 f"FAIL intake queue  SQS queue '{env.env['DAYLILY_INTAKE__QUEUE_NAME']}' not "
                 f"found in {REGION}"):
        assert line in res.stdout, res.stdout
    assert res.stdout.count("fix: run `daylily-workset init`") == 5, res.stdout


def test_after_init_all_is_well(make_env: EnvFactory) -> None:
    env = make_env()
    res = env.run("doctor", "--json")
    assert res.returncode == 0, res.stdout + res.stderr
    checks = _checks(res.stdout)
    assert {"config", "credentials", "clock", "region", "table", "bucket", "topic",
            "dead-letter queue", "intake queue", "notification", "slurm"} <= set(checks)
    assert all(c["ok"] for c in checks.values()), checks
    assert "active-index, done-index, outbox-index" in str(checks["table"]["detail"])


def test_env_typo_is_explained(make_env: EnvFactory) -> None:
    env = make_env()
    res = env.run("doctor", extra_env={"DAYLILY_MONITOR__MAX_CONCURENT": "8"})
    assert res.returncode == 1
    assert "FAIL config" in res.stdout
    assert "environment variable DAYLILY_MONITOR__MAX_CONCURENT" in res.stdout


def test_resources_in_another_region_are_flagged(make_env: EnvFactory) -> None:
    """Seen: AWS_REGION was ignored, so the topic landed in another region than the rest."""
    env = make_env()
    topic = env.json("init")["topic_arn"]
    elsewhere = topic.replace(f":{REGION}:", ":us-east-1:")
    res = env.run("doctor", extra_env={"DAYLILY_NOTIFY__TOPIC_ARN": elsewhere})
    assert res.returncode == 1
    assert f"FAIL region        {REGION} (from AWS_REGION); notify.topic_arn is in us-east-1" \
        in res.stdout, res.stdout
    assert f"FAIL topic         SNS topic {elsewhere} not found in {REGION}" in res.stdout


def test_slurm_unreachable_is_flagged(make_env: EnvFactory) -> None:
    env = make_env()
    res = env.run("doctor", extra_env={"DAYLILY_MONITOR__EXECUTOR": "slurm",
                                       "PATH": "/nonexistent"})
    assert res.returncode == 1
    assert "FAIL slurm         sinfo not on PATH" in res.stdout, res.stdout


def test_clock_skew_from_the_date_header() -> None:
    assert clock_skew("Tue, 01 Dec 2026 22:00:00 GMT", 1796162400.0 + 300) == 300.0


def test_init_wires_an_existing_bucket_to_the_stack_queue(make_env: EnvFactory) -> None:
    """A stack with CreateBucket=false: the config from the stack names the intake queue by
    URL, and `init` must still point the existing bucket's events at it."""
    env = make_env()
    url = env.json("init")["intake_queue_url"]
    s3 = client("s3", env.url)
    s3.put_bucket_notification_configuration(Bucket=env.bucket, NotificationConfiguration={})
    assert env.run("doctor").returncode == 1
    res = env.run("init", extra_env={"DAYLILY_INTAKE__QUEUE_URL": url,
                                     "DAYLILY_INTAKE__QUEUE_NAME": "some-other-name"})
    assert res.returncode == 0, res.stderr
    checks = _checks(env.run("doctor", "--json", extra_env={
        "DAYLILY_INTAKE__QUEUE_URL": url}).stdout)
    assert checks["notification"]["ok"], checks
