"""``daylily-workset demo``: the embedded default, end to end (its own in-process moto, the
monitor with the local executor, the example worksets of both formats plus a broken one)."""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Iterator
from typing import Any

import pytest

from tests.conftest import ROOT, cli_command

HANG_GUARD_SECONDS = 600  # the demo runs real steps; a loaded machine must never reach this

VALID = ("demo-na12878-wgs", "demo-hg002-panel", "demo-hg003-daylily")
BROKEN = "demo-broken-upload"
STATES = ("ready", "locked", "in_progress", "retrying", "complete", "failed", "cancelled")


def _run_demo(*args: str) -> subprocess.CompletedProcess[str]:
    # The demo needs no AWS settings: drop anything that could point it elsewhere.
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("DAYLILY_", "AWS_ENDPOINT_URL", "AWS_PROFILE"))}
    env["PYTHONPATH"] = str(ROOT)
    t0 = time.monotonic()
    res = subprocess.run([*cli_command(), "demo", *args], capture_output=True, text=True,
                         env=env, cwd=ROOT, timeout=HANG_GUARD_SECONDS)
    print(f"demo {' '.join(args)}: {time.monotonic() - t0:.1f} s")  # a figure, not a limit
    return res


@pytest.fixture(scope="module")
def demo_json() -> Iterator[dict[str, Any]]:
    res = _run_demo("--json")
    assert res.returncode == 0, (res.stdout[-3000:], res.stderr[-3000:])
    yield json.loads(res.stdout)  # stdout is the JSON document and nothing else


def test_demo_json_ok(demo_json: dict[str, Any]) -> None:
    data = demo_json
    assert data["ok"] is True
    assert set(data["worksets"]) == {*VALID, BROKEN}


@pytest.mark.parametrize("wid", VALID)
def test_demo_valid_worksets_complete_with_results(
        demo_json: dict[str, Any], wid: str) -> None:
    ws = demo_json["worksets"][wid]
    assert ws["state"] == "complete", ws
    assert ws["error"] is None
    assert ws["results_uri"].startswith("s3://") and ws["results_uri"].endswith(
        f"{wid}/results/")
    names = {uri.rsplit("/", 1)[-1] for uri in ws["results"]}
    assert {"qc_summary.json", "qc_summary.tsv"} <= names
    assert all(uri.startswith(ws["results_uri"]) for uri in ws["results"])


def test_demo_broken_upload_fails_with_data_error(
        demo_json: dict[str, Any]) -> None:
    ws = demo_json["worksets"][BROKEN]
    assert ws["state"] == "failed"
    assert ws["error_category"] == "data"
    assert "reference_genome" in ws["error"]
    assert "samples[1].fastq_r1" in ws["error"]
    assert "Traceback" not in ws["error"]
    assert ws["results"] == []


def test_demo_json_queue(demo_json: dict[str, Any]) -> None:
    queue = demo_json["queue"]
    assert set(queue["states"]) == set(STATES)
    assert queue["states"]["complete"] == 3
    assert queue["states"]["failed"] == 1
    assert queue["total"] == 4


def test_demo_plain_prints_queue_table() -> None:
    res = _run_demo()
    assert res.returncode == 0, (res.stdout[-3000:], res.stderr[-3000:])
    out = res.stdout
    lines = [line.split() for line in out.splitlines()]
    assert ["state", "count"] in lines
    counts = {row[0]: row[1] for row in lines if len(row) == 2 and row[0] in (*STATES, "total")}
    assert set(counts) == {*STATES, "total"}
    assert counts["complete"] == "3" and counts["failed"] == "1" and counts["total"] == "4"
    for wid in (*VALID, BROKEN):
        assert wid in out
    assert "qc_summary.json" in out
    assert "Traceback" not in res.stderr
