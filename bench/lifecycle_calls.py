"""AWS calls per workset lifecycle (register -> complete), counted at the botocore layer.

Runs N worksets through intake and the monitor (local executor, real subprocess steps) and
counts every call the monitor process makes, split into per-workset writes and the reads
that are amortised across worksets (queue queries, pause flag). Step subprocesses move the
data (S3 GetObject/PutObject of FASTQs and results); those are data transfer, not control,
and are listed separately from their own counters where relevant.

    python bench/lifecycle_calls.py [N] [--no-slurm]

Runs three times: local executor without notifications; local executor with the SNS topic
and dead-letter queue attached through the outbox (daylib/outbox.py), to show what events
cost; and the Slurm executor (a real single-node Slurm, as the tests start it) with
notifications. Each run also prints the write capacity units per lifecycle as DynamoDB
bills them (bench/_wcu.py): item size rounded up to 1 KB per write, plus each index write.
"""

from __future__ import annotations

import os
import sys
import tempfile
from collections import Counter
from pathlib import Path
from typing import Any

from _common import ROOT, CallCounter, bench_settings, deploy
from _wcu import WriteCost

from daylib import wiring
from daylib.aws import raw_client
from daylib.dlq import DeadLetterQueue, ensure_queue
from daylib.emulator import start_moto
from daylib.executors.base import Executor
from daylib.executors.local import LocalExecutor
from daylib.executors.slurm import SlurmExecutor
from daylib.notify import SnsTopic, ensure_topic

WRITES = {"PutItem", "UpdateItem", "DeleteItem", "BatchWriteItem"}


class UpdateKinds:
    """Each UpdateItem on a workset item by what it does: a transition or claim (bumps the
    version), a lease heartbeat (``lease_expires`` alone, maybe with the step's job), or an
    outbox ack (removes published events only)."""

    def __init__(self, client: Any) -> None:
        self.kinds: Counter[str] = Counter()
        client.meta.events.register("before-parameter-build.dynamodb.UpdateItem", self._seen)

    def _seen(self, params: Any = None, **_: Any) -> None:
        if str(params["Key"]["pk"]["S"]).startswith("#"):
            return
        names = set(params.get("ExpressionAttributeNames", {}).values())
        kind = ("transition or claim" if "version" in names else
                "heartbeat" if "lease_expires" in names else "outbox ack")
        self.kinds[kind + (" (+ job id)" if kind == "heartbeat" and "jobs" in names
                           else "")] += 1


def lifecycle(n: int, events: bool, executor: Executor) -> dict[str, Any]:
    server = start_moto(in_process=False)
    try:
        with tempfile.TemporaryDirectory(dir="/tmp") as work:
            os.chmod(work, 0o755)  # Slurm's steps run as this user, but keep it traversable
            s = bench_settings(server.endpoint_url, work, max_concurrent=4, poll_seconds=0.5)
            clients, store, s3 = deploy(s)
            outbox = None
            if events:
                topic, _ = ensure_topic(clients.client("sns"), "lifecycle-events")
                dlq, _ = ensure_queue(clients.client("sqs"), "lifecycle-dlq")
                outbox = wiring.outbox_for(s, clients,
                                           topic=SnsTopic(clients.client("sns"), topic),
                                           dlq=DeadLetterQueue(clients.client("sqs"), dlq))
            for i in range(n):
                prefix = f"{s.storage.prefix}ws-{i:03d}/"
                s3.put_bytes(s.storage.bucket, prefix + "r1.fq", b"@r\nACGT\n+\nFFFF\n")
                s3.put_text(s.storage.bucket, prefix + "daylily_work.yaml",
                            "samples: [{sample_id: S1, fastq_r1: r1.fq}]\n"
                            "reference_genome: hg38\n")
            counter = CallCounter(clients.client("dynamodb"), clients.client("s3"),
                                  clients.client("sns"), clients.client("sqs"))
            kinds = UpdateKinds(clients.client("dynamodb"))
            cost = WriteCost(clients.client("dynamodb"),
                             raw_client("dynamodb", endpoint_url=server.endpoint_url), store.table)
            mon = wiring.monitor_for(s, clients, store=store, s3=s3, executor=executor,
                                     outbox=outbox)
            mon.run(once=True)
            calls = counter.snapshot()
            recs = store.many([f"ws-{i:03d}" for i in range(n)])
            states = Counter(r.state for r in recs.values())
            pending = sum(len(r.outbox or {}) for r in recs.values())
    finally:
        server.stop()
    return {"calls": calls, "states": states, "pending": pending, "wcu": cost.wcu,
            "kinds": kinds.kinds}


def runs(slurm: bool) -> list[tuple[str, bool, Any]]:
    """(title, notifications, executor factory); the Slurm one starts a real Slurm."""
    out: list[tuple[str, bool, Any]] = [
        ("local executor, without notifications", False, LocalExecutor),
        ("local executor, with notifications (SNS topic + dead-letter queue, outbox)", True,
         LocalExecutor)]
    if slurm:
        out.append(("Slurm executor, with notifications", True,
                    lambda: SlurmExecutor(poll_seconds=0.25)))
    return out


def main() -> int:
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    n = int(args[0]) if args else 10
    sys.path.insert(0, str(ROOT))
    from tests.support.slurm import slurm_unavailable_reason, start_slurm

    reason = None if "--no-slurm" not in sys.argv else "--no-slurm"
    reason = reason or slurm_unavailable_reason()
    cluster = None
    if reason is None:
        cluster = start_slurm(Path(tempfile.mkdtemp(prefix="lcb-", dir="/tmp")))
        os.environ.update(cluster.env)
    try:
        for title, events, make in runs(cluster is not None):
            r = lifecycle(n, events, make())
            print(f"\n== {title} ==")
            report(n, r["calls"], r["states"])
            print("UpdateItem per workset lifecycle by kind: " + ", ".join(
                f"{k} {v / n:.2f}" for k, v in sorted(r["kinds"].items())))
            report_wcu(n, r["wcu"])
            if events:
                print(f"events still pending on the items: {r['pending']}")
    finally:
        if cluster is not None:
            cluster.stop()
    if reason:
        print(f"\nSlurm executor not run: {reason}")
    print("\ntarget: <= 5 DynamoDB writes per lifecycle; no per-transition CloudWatch call."
          "\nWith notifications, one more small write per workset clears the terminal event "
          "(the outbox ack) once published: no write follows a terminal state to drop it, and "
          "the marker that lets any monitor find unpublished events is cleared only by a "
          "write.")
    return 0


def report_wcu(n: int, wcu: Counter[str]) -> None:
    mine = {k.removeprefix("workset "): v for k, v in wcu.items() if k.startswith("workset ")}
    print(f"write capacity units per workset lifecycle (as billed: 1 KB rounding, index "
          f"writes): {sum(mine.values()) / n:.2f}  "
          + ", ".join(f"{k} {v / n:.2f}" for k, v in sorted(mine.items())))
    other = {k: v for k, v in wcu.items() if not k.startswith("workset ")}
    print(f"write capacity units on registry/control items (periodic, not per workset): "
          f"{dict(other)}")


def report(n: int, calls: Counter[str], states: Counter[str]) -> None:
    ddb = {k.split(".", 1)[1]: v for k, v in calls.items() if k.startswith("dynamodb.")}
    writes = {k: v for k, v in ddb.items() if k in WRITES}
    reads = {k: v for k, v in ddb.items() if k not in WRITES}
    periodic = {k: v for k, v in ddb.items() if "registry" in k}
    reads = {k: v for k, v in reads.items() if k not in periodic}
    other = {k: v for k, v in calls.items() if not k.startswith("dynamodb.")}
    print(f"worksets: {n} ({dict(states)})")
    print(f"DynamoDB writes per workset lifecycle: {sum(writes.values()) / n:.2f}  {writes}")
    print(f"DynamoDB reads (queue/pause/lease housekeeping), total {sum(reads.values())}, "
          f"per workset {sum(reads.values()) / n:.2f}: {reads}")
    print(f"DynamoDB calls on the cluster registry and pause flag (per heartbeat/poll, not "
          f"per workset): {periodic}")
    print(f"DynamoDB calls per workset, all: {sum(ddb.values()) / n:.2f}")
    print(f"other AWS calls by the monitor: {other}")
    print(f"  per workset: {sum(other.values()) / n:.2f} "
          "(S3 listing for intake, GetObject of the YAML, HeadObject per FASTQ; SNS publish "
          "per event)")
    print(f"CloudWatch calls: {sum(v for k, v in calls.items() if 'cloudwatch' in k)}")


if __name__ == "__main__":
    sys.exit(main())
