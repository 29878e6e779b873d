"""Intake latency: time from the S3 PUT of ``daylily_work.yaml`` to the workset being claimed,
for N uploads (default 200) at a steady rate, with S3 events through the SQS intake queue and
with listing only (``monitor.discovery_seconds`` at its default). Prints p50/p95/p99/max and the
S3 LIST calls each mode made. Target with events: p50 < 1 s, p99 < 3 s.

    python bench/intake_latency.py [N] [UPLOADS_PER_SECOND]
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import threading
import time
from typing import Any

import yaml
from _common import FASTQ, bench_settings, deploy

from daylib import states as S
from daylib import wiring
from daylib.config import Settings
from daylib.emulator import start_moto
from daylib.intake_events import IntakeQueue, ensure_intake
from daylib.ordering import epoch
from tests.support.executors import InstantSteps


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def run(endpoint: str, n: int, rate: float, events: bool) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as work:
        s: Settings = bench_settings(endpoint, work, max_concurrent=16, poll_seconds=2.0,
                                     monitor_id=f"bench-{'events' if events else 'list'}")
        clients, store, s3 = deploy(s)
        queue = None
        if events:
            sqs = clients.client("sqs")
            url = ensure_intake(sqs, clients.client("s3"), s.storage.bucket, s.storage.prefix,
                                f"intake-{s.storage.bucket}")
            queue = IntakeQueue(sqs, url, s.storage.bucket, s.storage.prefix)
        lists = [0]

        def count(**_: Any) -> None:
            lists[0] += 1

        s3.client.meta.events.register("before-call.s3.ListObjectsV2", count)
        mon = wiring.monitor_for(s, clients, store=store, s3=s3, executor=InstantSteps(),
                                 intake_queue=queue, step_env={})
        thread = threading.Thread(target=mon.run, daemon=True)
        thread.start()
        time.sleep(1.0)  # the start-up reconciliation listing is done
        doc = yaml.safe_dump({"samples": [{"sample_id": "S1", "fastq_r1": "S1.fq"}],
                              "reference_genome": "hg38"})
        put_at: dict[str, float] = {}
        start = time.time()
        for i in range(n):
            wid = f"lat-{i:04d}"
            prefix = f"{s.storage.prefix}{wid}/"
            s3.put_bytes(s.storage.bucket, prefix + "S1.fq", FASTQ)
            s3.put_text(s.storage.bucket, prefix + "daylily_work.yaml", doc)
            put_at[wid] = time.time()
            time.sleep(max(0.0, start + (i + 1) / rate - time.time()))
        deadline = time.time() + 120
        latencies: list[float] = []
        while time.time() < deadline:
            recs = store.many(list(put_at))
            claims = {wid: next((h["at"] for h in rec.history if h["to"] == S.LOCKED), None)
                      for wid, rec in recs.items()}
            latencies = [epoch(str(at)) - put_at[wid] for wid, at in claims.items()
                         if at is not None]
            if len(latencies) == n:
                break
            time.sleep(0.5)
        mon.request_stop()
        thread.join(60)
        if not latencies:
            return {"mode": "events" if events else "listing", "done": 0}
        return {"mode": "events" if events else "listing", "done": len(latencies),
                "p50": statistics.median(latencies), "p95": _pct(latencies, 0.95),
                "p99": _pct(latencies, 0.99), "max": max(latencies),
                "lists": lists[0], "discovery_seconds": s.monitor.discovery_seconds}


def main() -> int:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 200
    rate = float(sys.argv[2]) if len(sys.argv) > 2 else 2.0
    server = start_moto(in_process=False)
    try:
        print(f"intake latency, S3 PUT -> claimed: {n} uploads at {rate:g}/s, moto server, "
              "16 slots, instant steps")
        for events in (True, False):
            r = run(server.endpoint_url, n, rate, events)
            if not r["done"]:
                print(f"  {r['mode']:8}: none of {n} claimed within the time limit")
                continue
            extra = ("" if events else
                     f" (listing every {r['discovery_seconds']:g} s)")
            print(f"  {r['mode']:8}: {r['done']}/{n} claimed; "
                  f"p50 {r['p50']:.3f} s  p95 {r['p95']:.3f} s  "
                  f"p99 {r['p99']:.3f} s  max {r['max']:.3f} s  monitor S3 LISTs "
                  f"{r['lists']}{extra}")
        print("target with events: p50 < 1 s, p99 < 3 s")
    finally:
        server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
