"""The emulator's request recording (what tests/infra/test_iam.py reads) stays one JSON
document per line while requests run at the same time, one of them outside the emulator's
request lock (an SQS long poll)."""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path

import boto3
import pytest

from daylib.emulator import start_moto

REGION = "us-west-2"


def test_recording_keeps_whole_lines_under_concurrent_requests(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    recording = tmp_path / "requests.jsonl"
    monkeypatch.setenv("MOTO_ENABLE_RECORDING", "true")
    monkeypatch.setenv("MOTO_RECORDER_FILEPATH", str(recording))
    server = start_moto(in_process=False)
    try:
        kw = {"endpoint_url": server.endpoint_url, "region_name": REGION}
        s3, sqs = boto3.client("s3", **kw), boto3.client("sqs", **kw)
        s3.create_bucket(Bucket="rec", CreateBucketConfiguration={
            "LocationConstraint": REGION})
        url = sqs.create_queue(QueueName="rec")["QueueUrl"]
        done = threading.Event()

        def poll() -> None:
            while not done.is_set():
                sqs.receive_message(QueueUrl=url, WaitTimeSeconds=0)

        pollers = [threading.Thread(target=poll) for _ in range(2)]
        for t in pollers:
            t.start()
        try:
            for i in range(20):
                s3.put_object(Bucket="rec", Key=f"big-{i}", Body=os.urandom(512 * 1024))
        finally:
            done.set()
            for t in pollers:
                t.join()
    finally:
        server.stop()
    lines = recording.read_text().splitlines()
    bad = []
    for n, line in enumerate(lines):
        try:
            json.loads(line)
        except ValueError:
            bad.append(n)
    assert not bad, f"{len(bad)} of {len(lines)} recorded lines are not JSON"
    assert sum('"PUT"' in line for line in lines) >= 20
