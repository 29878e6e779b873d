"""Retry storm: 500 worksets, of which 30% fail transiently once (Slurm NODE_FAIL in ``run``)
and 5% for good, drained by 4 monitor processes sharing one moto server (table, S3, SNS topic,
dead-letter queue). Prints completions, the dead-letter count, duplicate executions (must be
0) and the spread of retry times: with full jitter the drawn backoffs cover [0, base] evenly
instead of all retries landing at once.

    python bench/retry_storm.py [N] [BASE_SECONDS]
"""

from __future__ import annotations

import json
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

from _common import bench_settings, deploy, register
from _storm_proc import plan

from daylib.dlq import DeadLetterQueue, ensure_queue
from daylib.emulator import start_moto
from daylib.notify import ensure_topic
from daylib.ordering import epoch
from daylib.states import ACTIVE

HERE = Path(__file__).resolve().parent
MONITORS = 4


def histogram(values: list[float], top: float, bins: int = 10, width: int = 40) -> str:
    counts = [0] * bins
    for v in values:
        counts[min(bins - 1, int(v / top * bins))] += 1
    peak = max(counts) or 1
    return "\n".join(f"  {i * top / bins:5.1f}-{(i + 1) * top / bins:5.1f} s {c:4d} "
                     + "#" * round(c / peak * width) for i, c in enumerate(counts))


def spread(values: list[float]) -> str:
    if not values:
        return "none"
    q = statistics.quantiles(values, n=10) if len(values) > 1 else values * 9
    return (f"min {min(values):.2f}  p10 {q[0]:.2f}  median {statistics.median(values):.2f}  "
            f"p90 {q[-1]:.2f}  max {max(values):.2f}  stdev {statistics.pstdev(values):.2f}")


def main() -> int:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 500
    base = float(sys.argv[2]) if len(sys.argv) > 2 else 10.0
    server = start_moto(in_process=False)
    try:
        with tempfile.TemporaryDirectory() as work:
            s = bench_settings(server.endpoint_url, work)
            clients, store, _ = deploy(s)
            topic, _ = ensure_topic(clients.client("sns"), f"storm-{s.state.table}")
            dlq_url, _ = ensure_queue(clients.client("sqs"), f"storm-dlq-{s.state.table}")
            ids = [f"ws-{i:05d}" for i in range(n)]
            for wid in ids:
                register(store, s, wid, pipeline="germline")
            want = Counter(plan(w) for w in ids)
            print(f"{n} worksets: {want['transient']} fail transiently once, "
                  f"{want['permanent']} fail for good; {MONITORS} monitor processes x 8 slots;"
                  f" backoff full jitter, base {base:.0f} s")
            started = time.time()
            procs = [subprocess.Popen(
                [sys.executable, str(HERE / "_storm_proc.py"), server.endpoint_url,
                 s.state.table, s.storage.bucket, f"m{i}", "8", str(base), topic, dlq_url,
                 work],
                stdout=subprocess.PIPE, stderr=open(Path(work) / f"m{i}.err", "wb"),  # noqa: SIM115
                text=True)
                for i in range(MONITORS)]
            while True:  # one watcher (index counts are cheap, but not free on moto)
                time.sleep(1.0)
                depth = store.queue_depth(terminal=False)
                if sum(depth.states[st] for st in ACTIVE) == 0:
                    break
            elapsed = time.time() - started
            for p in procs:
                p.send_signal(signal.SIGTERM)
            stats = [json.loads(p.communicate()[0].strip().splitlines()[-1]) for p in procs]
            recs = store.many(ids)
            executions: Counter[tuple[str, ...]] = Counter()
            for i in range(MONITORS):
                for line in (Path(work) / f"m{i}.log").read_text().splitlines():
                    executions[tuple(line.split())] += 1
            letters = DeadLetterQueue(clients.client("sqs"), dlq_url).letters()
    finally:
        server.stop()

    states = Counter(r.state for r in recs.values())
    dup_steps = sum(c - 1 for c in executions.values() if c > 1)
    runs_ok = Counter(w for (w, a, step) in executions if step == "run"
                      and not (plan(w) == "transient" and a == "1") and plan(w) != "permanent")
    dup_runs = sum(c - 1 for c in runs_ok.values() if c > 1)
    drawn, waited = [], []
    for rec in recs.values():
        for i, h in enumerate(rec.history):
            if h["to"] != "retrying":
                continue
            m = re.search(r"in ([\d.]+) s", h["reason"])
            if m:
                drawn.append(float(m.group(1)))
            nxt = next((x for x in rec.history[i + 1:] if x["to"] == "ready"), None)
            if nxt:
                waited.append(epoch(nxt["at"]) - epoch(h["at"]))
    wrong = [w for w, r in recs.items() if r.state != {"ok": "complete",
                                                      "transient": "complete",
                                                      "permanent": "failed"}[plan(w)]]
    print(f"\nfinished in {elapsed:.1f} s: {dict(states)}")
    print(f"completions:            {states['complete']} (expected {n - want['permanent']})")
    print(f"failed:                 {states['failed']} (expected {want['permanent']})")
    print(f"dead-letter queue:      {len({d.workset_id for d in letters})} worksets, "
          f"{len(letters)} messages")
    print(f"duplicate executions:   {dup_steps} step(s), {dup_runs} successful run(s) "
          "(must be 0)")
    print(f"in the wrong end state: {len(wrong)}")
    print(f"retries:                {sum(x['retrying'] for x in stats)} "
          f"(lost claim races {sum(x['conflicts'] for x in stats)}, "
          f"events published {sum(x['published'] for x in stats)}, "
          f"outbox acks {sum(x['acks'] for x in stats)})")
    print(f"backoff drawn (s):      {spread(drawn)}")
    print(f"retry -> ready (s):     {spread(waited)}")
    print(f"drawn backoff histogram (uniform over [0, {base:.0f}] = full jitter):")
    print(histogram(drawn, base))
    return 0 if not wrong and dup_steps == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
