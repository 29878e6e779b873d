"""Idle cost: AWS calls per minute, by operation, of one monitor with nothing to do.

Counts every request the moto server receives (its request recorder, so every service and
every client is counted, whoever made it) over a window of an idle monitor set up as in
production: intake queue long-polled, notifications on (SNS topic and dead-letter queue),
default timers. Two tables: an empty one, and one holding 10,000 finished worksets whose
10,000 folders are in S3, each with a FASTQ, results and logs besides its spec (50,000
objects). Target: <= 6 calls a minute, flat in history. The window
opens once the monitor is idle: its passes have slowed to ``monitor.idle_max_seconds`` (about
40 s after the last work, at the defaults).

    python bench/idle_cost.py [--quick] [--seconds S] [--history N]

``--quick``: a 20 s window and 1,000 worksets of history. The monitor's log (EMF metric lines
included) goes to stderr.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from _common import ROOT, bench_settings, deploy
from queue_depth import item

from daylib import wiring
from daylib.dlq import DeadLetterQueue, ensure_queue
from daylib.emulator import start_moto
from daylib.executors.local import LocalExecutor
from daylib.intake_events import IntakeQueue, ensure_intake
from daylib.notify import SnsTopic, ensure_topic

sys.path.insert(0, str(ROOT))
from tests.support.iamrecord import calls

TARGET_PER_MINUTE = 6.0
# Besides its spec, a finished folder holds a FASTQ, results and logs (the listing must not
# pay for them).
FINISHED_FOLDER = ("sample_data/S1_R1.fastq.gz", "results/S1.vcf.gz", "logs/align.log",
                   "logs/call.log")
SETTLE_SECONDS = 5.0  # after the monitor reaches its idle pace, before the window opens


def _recording_lines(path: Path) -> list[str]:
    """Complete lines only: the server may be half-way through writing the last one."""
    if not path.exists():
        return []
    text = path.read_text(encoding="utf-8", errors="replace")
    return text.split("\n")[:-1]


def _operation(entry: dict[str, Any]) -> str:
    found = calls([entry])
    if not found:
        return "(unsigned)"
    call = found[0]
    index = call.resource.split("/index/", 1)[1] if "/index/" in call.resource else ""
    return f"{call.action} [{index}]" if index else call.action


def _load_history(clients: Any, store: Any, s3: Any, bucket: str, prefix: str, n: int) -> None:
    """n finished worksets in the table and their n folders in S3, each holding what a
    finished workset leaves besides its spec (before the intake queue exists, so no S3 events
    are queued for them)."""
    ddb = clients.client("dynamodb")
    items = [item(i, "complete") for i in range(n)]

    def write(batch: list[dict[str, Any]]) -> None:
        request = {store.table: [{"PutRequest": {"Item": it}} for it in batch]}
        while request:
            request = ddb.batch_write_item(RequestItems=request).get("UnprocessedItems") or {}

    def upload(i: int) -> None:
        folder = f"{prefix}ws-{i:07d}/"
        s3.put_text(bucket, folder + "daylily_work.yaml",
                    "samples: [{sample_id: S1, fastq_r1: r1.fq}]\nreference_genome: hg38\n")
        for name in FINISHED_FOLDER:
            s3.put_text(bucket, folder + name, "x")

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(write, [items[i:i + 25] for i in range(0, n, 25)]))
        list(pool.map(upload, range(n)))


def measure(history: int, window_s: float) -> tuple[Counter[str], Counter[str], float]:
    """Calls by operation during ``window_s`` of an idle monitor, the start-up calls by
    operation, and the reconciliation listing's interval (it runs at start-up, then rarely:
    the window may not see it, so it is amortised from the start-up count over the interval
    the monitor chose after it)."""
    with tempfile.TemporaryDirectory() as tmp:
        recording = Path(tmp) / "requests.jsonl"
        saved = {k: os.environ.get(k) for k in ("MOTO_ENABLE_RECORDING",
                                                "MOTO_RECORDER_FILEPATH")}
        os.environ.update(MOTO_ENABLE_RECORDING="true", MOTO_RECORDER_FILEPATH=str(recording))
        server = start_moto(in_process=False)
        for k, v in saved.items():
            os.environ.pop(k) if v is None else os.environ.__setitem__(k, v)
        try:
            s = bench_settings(server.endpoint_url, str(Path(tmp) / "work"), cluster="idle")
            clients, store, s3 = deploy(s)
            if history:
                _load_history(clients, store, s3, s.storage.bucket, s.storage.prefix, history)
            sqs = clients.client("sqs")
            url = ensure_intake(sqs, clients.client("s3"), s.storage.bucket, s.storage.prefix,
                                f"intake-{s.storage.bucket}")
            queue = IntakeQueue(sqs, url, s.storage.bucket, s.storage.prefix,
                                wait_seconds=s.intake.wait_seconds,
                                batch_size=s.intake.batch_size)
            topic, _ = ensure_topic(clients.client("sns"), f"events-{s.storage.bucket}")
            dlq, _ = ensure_queue(sqs, f"dlq-{s.storage.bucket}")
            outbox = wiring.outbox_for(s, clients, topic=SnsTopic(clients.client("sns"), topic),
                                       dlq=DeadLetterQueue(sqs, dlq))
            mon = wiring.monitor_for(s, clients, store=store, s3=s3, executor=LocalExecutor(),
                                     outbox=outbox, intake_queue=queue)
            before = len(_recording_lines(recording))
            thread = threading.Thread(target=mon.run, name="idle-monitor", daemon=True)
            thread.start()
            last = f"ws-{history - 1:07d}"
            while history and not mon.intake.is_known(last):
                time.sleep(0.5)
            while mon.pacer.interval < mon.pacer.max_seconds:
                time.sleep(0.5)
            time.sleep(SETTLE_SECONDS)
            start = len(_recording_lines(recording))
            time.sleep(window_s)
            lines = _recording_lines(recording)
            assert mon.intake_service is not None
            listing_s = mon.intake_service.listing_pause
            mon.request_stop()
            thread.join(30)
        finally:
            server.stop()
    ops = Counter(_operation(json.loads(line)) for line in lines[start:])
    startup = Counter(_operation(json.loads(line)) for line in lines[before:start])
    return ops, startup, listing_s


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="20 s window, 1,000 of history")
    parser.add_argument("--seconds", type=float, help="window length (default 120)")
    parser.add_argument("--history", type=int, help="finished worksets (default 10,000)")
    ns = parser.parse_args()
    window = ns.seconds or (20.0 if ns.quick else 120.0)
    history = ns.history if ns.history is not None else (1_000 if ns.quick else 10_000)
    results: dict[str, dict[str, float]] = {}
    for label, n in (("empty table", 0), (f"{history} finished", history)):
        counted, startup, reconcile_s = measure(n, window)
        ops_seen: dict[str, float] = dict(counted)
        listing = startup.get("s3:ListBucket", 0)
        if listing and not ops_seen.get("s3:ListBucket"):  # amortised over its interval
            ops_seen["s3:ListBucket (amortised)"] = round(listing * window / reconcile_s, 2)
        results[label] = ops_seen
        print(f"[{label}] start-up calls (before the window): {sum(startup.values())} "
              f"{dict(startup)}; reconciliation: {listing} list requests (the bucket check "
              f"included), then again in {reconcile_s:.0f} s", flush=True)
    labels = list(results)
    ops = sorted(set().union(*results.values()))
    width = max([len(o) for o in ops] + [28])
    print(f"\nidle AWS calls per minute by operation, {window:.0f} s window, one monitor "
          f"(intake queue, notifications on, default timers)")
    print(f"{'operation':{width}} " + " ".join(f"{lbl:>16}" for lbl in labels))
    per_min = 60.0 / window
    for op in ops:
        print(f"{op:{width}} " + " ".join(f"{results[lbl].get(op, 0) * per_min:16.1f}"
                                           for lbl in labels))
    totals = [sum(results[lbl].values()) * per_min for lbl in labels]
    print(f"{'TOTAL':{width}} " + " ".join(f"{t:16.1f}" for t in totals))
    verdict = ["meets" if t <= TARGET_PER_MINUTE else "MISSES" for t in totals]
    print(f"target <= {TARGET_PER_MINUTE:.0f} calls/min, flat in history: "
          + ", ".join(f"{lbl} {v}" for lbl, v in zip(labels, verdict, strict=True)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
