"""Issue 10 through the real entry point: submit registers (and ``--wait``), ``validate``,
``show`` of an upload no monitor has seen, ``init`` wiring S3 events to the intake queue."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

from tests.cli.conftest import (
    PAIRED_FASTQS,
    CliEnv,
    daylib_yaml,
    one_line_error,
    paired_sample,
)
from tests.conftest import cli_command

DAYLILY = Path(__file__).resolve().parents[1] / "data" / "daylily" / "ws-daylily-example"


def test_submit_registers_at_once(cli_env: CliEnv, tmp_path: Path) -> None:
    env = cli_env
    env.upload_sample_data("reg-now", *PAIRED_FASTQS)
    path = daylib_yaml(tmp_path / "daylily_work.yaml", [paired_sample()])
    env.ok("submit", str(path), "--id", "reg-now")
    rec = env.show("reg-now")  # no monitor has run
    assert (rec["state"], rec["format"]) == ("ready", "daylib")
    assert env.json("queue")["states"]["ready"] == 1
    env.ok("cancel", "reg-now")
    assert env.show("reg-now")["state"] == "cancelled"


def test_show_of_an_upload_not_registered_yet(cli_env: CliEnv) -> None:
    env = cli_env
    env.put(env.key("up-only", "daylily_work.yaml"), "reference_genome: hg38\n")
    res = env.ok("show", "up-only")
    assert "uploaded, not registered yet" in res.stdout
    assert env.json("show", "up-only")["registered"] is False
    assert "no workset" in one_line_error(env.run("show", "nowhere-at-all"))


def test_submit_wait_follows_to_the_end(cli_env: CliEnv, tmp_path: Path) -> None:
    env = cli_env
    env.upload_sample_data("wait-ok", *PAIRED_FASTQS)
    path = daylib_yaml(tmp_path / "ok" / "daylily_work.yaml", [paired_sample()])
    monitor = subprocess.Popen([*cli_command(), "monitor"], env={**_os_env(), **env.env},
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        res = env.run("submit", str(path), "--id", "wait-ok", "--wait", "--poll-seconds", "0.2",
                      timeout=180)
        assert res.returncode == 0, res.stderr
        assert "wait-ok: ready" in res.stderr and "wait-ok: complete" in res.stderr
        env.upload_sample_data("wait-bad", *PAIRED_FASTQS)
        bad = daylib_yaml(tmp_path / "bad" / "daylily_work.yaml", [paired_sample()],
                          after=["wait-missing"])
        res = env.run("submit", str(bad), "--id", "wait-bad", "--wait", "--poll-seconds",
                      "0.2", timeout=180)
        assert res.returncode == 1
        assert "wait-bad ended failed" in res.stderr.strip().splitlines()[-1]
    finally:
        monitor.terminate()
        monitor.wait(30)


def test_validate_lists_every_problem(cli_env: CliEnv, tmp_path: Path) -> None:
    folder = tmp_path / "val-bad"
    folder.mkdir()
    (folder / "daylily_work.yaml").write_text(
        "reference_genome: hg99\nsamples:\n  - sample_id: '..'\n    fastq_r1: a.fq\n"
        "    fastq_r1: b.fq\n")
    res = cli_env.run("validate", str(folder))
    assert res.returncode == 1 and "duplicate key 'fastq_r1'" in res.stdout
    (folder / "daylily_work.yaml").write_text(
        "reference_genome: hg99\npriority: asap\nsamples:\n  - sample_id: '..'\n"
        "    fastq_r1: sample_data/missing.fq\n")
    res = cli_env.run("validate", str(folder))
    assert res.returncode == 1
    assert [p for p in ("hg99", "asap", "'..'") if p in res.stdout] == ["hg99", "asap", "'..'"]
    assert "3 problem(s)" in res.stderr
    good = tmp_path / "ws-daylily-example"
    shutil.copytree(DAYLILY, good)
    for name in ("HG002_L1", "HG002_L2", "HG003_L1"):
        for read in ("R1", "R2"):
            (good / "sample_data" / f"{name}_{read}.fastq").write_text("@r\nA\n+\nF\n")
    (good / "daylily_work.yaml").write_text((DAYLILY / "daylily_work.yaml").read_text()
                                            .replace("daylily-results", cli_env.bucket)
                                            + "favourite_colour: blue\n")
    res = cli_env.run("validate", str(good))
    assert res.returncode == 0, (res.stdout, res.stderr)
    assert "daylily format, 2 samples" in res.stdout
    assert "warning: favourite_colour: unknown key" in res.stderr


def test_submit_prints_and_show_keeps_daylily_warnings(cli_env: CliEnv, tmp_path: Path) -> None:
    env = cli_env
    folder = tmp_path / "warn-dl"
    (folder / "sample_data").mkdir(parents=True)
    (folder / "sample_data" / "S1_R1.fastq").write_text("@r\nACGT\n+\nFFFF\n")
    (folder / "daylily_work.yaml").write_text("dy-r: >\n  produce_multiqc -j 1\nmood: sunny\n")
    (folder / "stage_samples.tsv").write_text("SAMPLE_ID\tR1_FQ\nS1\tsample_data/S1_R1.fastq\n")
    res = env.run("submit", str(folder))
    assert res.returncode == 0, res.stderr
    assert "warning: mood: unknown key" in res.stderr
    assert env.show("warn-dl")["warnings"] == [
        "mood: unknown key kept as-is (Daylily ignores it)"]
    assert "warning: mood: unknown key" in env.ok("show", "warn-dl").stdout


def test_init_wires_s3_events_to_the_intake_queue(cli_env: CliEnv) -> None:
    env = cli_env
    data = env.json("init")
    assert data["created"]["intake"] is False  # created by the fixture's first init
    config = env.s3.get_bucket_notification_configuration(Bucket=env.bucket)
    queues = config["QueueConfigurations"]
    assert [q["QueueArn"].rsplit(":", 1)[1] for q in queues] == [f"intake-{env.table}"]
    assert queues[0]["Filter"]["Key"]["FilterRules"][0]["Value"] == "worksets/"
    from tests.conftest import client

    sqs = client("sqs", env.url)
    env.put(env.key("evt-1", "daylily_work.yaml"), "x: 1\n")
    msgs = []
    for _ in range(3):
        got = sqs.receive_message(QueueUrl=data["intake_queue_url"], WaitTimeSeconds=1,
                                  MaxNumberOfMessages=10).get("Messages", [])
        msgs += [json.loads(m["Body"]) for m in got]
    keys = [r["s3"]["object"]["key"] for m in msgs for r in m.get("Records", [])]
    assert any("evt-1" in k for k in keys)


def _os_env() -> dict[str, str]:
    import os

    return dict(os.environ)
