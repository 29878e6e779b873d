"""AWS calls per workset lifecycle (register -> complete), counted at the botocore layer.

Runs N worksets through intake and the monitor (local executor, real subprocess steps) and
counts every call the monitor process makes, split into per-workset writes and the reads
that are amortised across worksets (queue queries, pause flag). Step subprocesses move the
data (S3 GetObject/PutObject of FASTQs and results); those are data transfer, not control,
and are listed separately from their own counters where relevant.

    python bench/lifecycle_calls.py [N]

Runs twice: without notifications, and with the SNS topic and dead-letter queue attached
through the outbox (daylib/outbox.py), to show what events cost.
"""

from __future__ import annotations

import sys
import tempfile
from collections import Counter

from _common import CallCounter, bench_settings, deploy

from daylib import wiring
from daylib.dlq import DeadLetterQueue, ensure_queue
from daylib.emulator import start_moto
from daylib.executors.local import LocalExecutor
from daylib.notify import SnsTopic, ensure_topic

WRITES = {"PutItem", "UpdateItem", "DeleteItem", "BatchWriteItem"}


def lifecycle(n: int, events: bool) -> dict[str, object]:
    server = start_moto(in_process=False)
    try:
        with tempfile.TemporaryDirectory() as work:
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
            mon = wiring.monitor_for(s, clients, store=store, s3=s3, executor=LocalExecutor(),
                                     outbox=outbox)
            mon.run(once=True)
            calls = counter.snapshot()
            recs = store.many([f"ws-{i:03d}" for i in range(n)])
            states = Counter(r.state for r in recs.values())
            pending = sum(len(r.outbox or {}) for r in recs.values())
    finally:
        server.stop()
    return {"calls": calls, "states": states, "pending": pending}


def main() -> int:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 10
    for events in (False, True):
        r = lifecycle(n, events)
        calls: Counter[str] = r["calls"]  # type: ignore[assignment]
        print("\n== with notifications (SNS topic + dead-letter queue, through the outbox) =="
              if events else "\n== without notifications ==")
        report(n, calls, r["states"])  # type: ignore[arg-type]
        if events:
            print(f"events still pending on the items: {r['pending']}")
    print("\ntarget: <= 5 DynamoDB writes per lifecycle; no per-transition CloudWatch call."
          "\nWith notifications, one more small write per workset clears the last event "
          "(the outbox ack), after it was published.")
    return 0


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
