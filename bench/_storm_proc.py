"""One monitor process for bench/retry_storm.py: steps follow a deterministic failure plan;
serves until SIGTERM, logs each step execution, prints its stats."""

from __future__ import annotations

import json
import os
import sys
import tempfile
import threading
from pathlib import Path

from _common import bench_settings, deploy

from daylib import wiring
from daylib.config import RuleSettings
from daylib.dlq import DeadLetterQueue
from daylib.executors.base import StepOutcome, StepRequest
from daylib.notify import SnsTopic

PERMANENT_EXIT = 99


def plan(workset_id: str) -> str:
    """``ws-00042`` -> by its number: 30 in 100 fail transiently once, 5 in 100 for good."""
    n = int(workset_id.rsplit("-", 1)[1]) % 100
    return "transient" if n < 30 else "permanent" if n < 35 else "ok"


class PlanExecutor:
    """Steps end at once, as the plan says; every execution is appended to a log."""

    name = "plan"
    records_jobs = False

    def cluster_capacity(self) -> None:
        return None

    def __init__(self, log_path: Path) -> None:
        self.log = open(log_path, "a", buffering=1)  # noqa: SIM115 - open for the run
        self.lock = threading.Lock()

    def submit(self, req: StepRequest) -> str:
        with self.lock:
            self.log.write(f"{req.workset_id} {req.attempt} {req.step}\n")
        return "planned"

    def find(self, req: StepRequest) -> str | None:
        return None

    def wait(self, job_ref: str, req: StepRequest, stop: threading.Event) -> StepOutcome:
        what = plan(req.workset_id)
        if req.step == "run" and what == "transient" and req.attempt == 1:
            return StepOutcome("NODE_FAIL", None, None, "node lost", job_ref)
        if req.step == "run" and what == "permanent":
            return StepOutcome("FAILED", PERMANENT_EXIT, None, "licence expired", job_ref)
        return StepOutcome("COMPLETED", 0, job_ref=job_ref)

    def cancel(self, job_ref: str) -> None:
        return None


def main() -> int:
    endpoint, table, bucket, monitor_id, slots, base, topic, dlq_url, log_dir = sys.argv[1:10]
    os.nice(5)
    with tempfile.TemporaryDirectory() as work:
        s = bench_settings(endpoint, work, max_concurrent=int(slots), poll_seconds=0.5,
                           reap_seconds=1.0, monitor_id=monitor_id, discovery_seconds=3600)
        s.state.table, s.storage.bucket = table, bucket
        s.retry.base_seconds, s.retry.factor, s.retry.cap_seconds = float(base), 2.0, 60.0
        s.policy.rules = [RuleSettings(name="bench-permanent", category="permanent",
                                       exit_codes=[PERMANENT_EXIT])]
        clients, store, s3 = deploy(s)
        s.notify.ack_delay_seconds = 1.0
        outbox = wiring.outbox_for(s, clients,
                                   topic=SnsTopic(clients.client("sns"), topic),
                                   dlq=DeadLetterQueue(clients.client("sqs"), dlq_url))
        assert outbox is not None
        mon = wiring.monitor_for(s, clients, store=store, s3=s3, outbox=outbox, step_env={},
                                 executor=PlanExecutor(Path(log_dir) / f"{monitor_id}.log"))

        mon.install_signal_handlers()  # the parent sends SIGTERM once nothing is active
        mon.run()
        print(json.dumps({**vars(mon.stats), **vars(outbox.stats)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
