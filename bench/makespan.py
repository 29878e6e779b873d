"""Makespan vs ideal: 12 worksets (one of 3 s, eleven of 0.5 s) on 4 slots.

ideal = max(longest, total / slots). The monitor refills a slot the moment a workset ends,
so the ratio should stay near 1 when the long workset starts early; the "long last" row
shows what any duration-blind FIFO pays when the long one is submitted last.

    python bench/makespan.py
"""

from __future__ import annotations

import sys
import tempfile
import time

from _common import RunOnlyExecutor, bench_settings, deploy, register

from daylib import wiring
from daylib.emulator import start_moto
from daylib.ordering import epoch

SLOTS = 4
DURATIONS = [3.0] + [0.5] * 11
TARGET = 1.02


def run(endpoint: str, order: str) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as work:
        s = bench_settings(endpoint, work, max_concurrent=SLOTS, poll_seconds=1.0)
        s.workset.pipelines = {"long": "sleep 3", "short": "sleep 0.5"}
        clients, store, s3 = deploy(s)
        durations = DURATIONS if order == "long first" else DURATIONS[::-1]
        t0 = time.time() - 100
        for i, d in enumerate(durations):
            register(store, s, f"ws-{i:02d}", pipeline="long" if d > 1 else "short",
                     created=t0 + i)
        mon = wiring.monitor_for(s, clients, store=store, s3=s3, step_env={},
                                 executor=RunOnlyExecutor(poll_seconds=0.01))
        start = time.time()
        mon.run(once=True)
        recs = store.many([f"ws-{i:02d}" for i in range(len(durations))])
        end = max(epoch(r.updated_at) for r in recs.values())
        ideal = max(max(durations), sum(durations) / SLOTS)
        return {"makespan_s": end - start, "ideal_s": ideal,
                "ratio": (end - start) / ideal,
                "complete": sum(r.state == "complete" for r in recs.values())}


def main() -> int:
    server = start_moto(in_process=False)
    try:
        print(f"{'order':12} {'complete':>8} {'makespan s':>11} {'ideal s':>8} {'ratio':>6}")
        met = "not run"
        for order in ("long first", "long last"):
            r = run(server.endpoint_url, order)
            print(f"{order:12} {r['complete']:>8.0f} {r['makespan_s']:>11.2f} "
                  f"{r['ideal_s']:>8.2f} {r['ratio']:>6.3f}")
            if order == "long first":
                met = "MET" if r["ratio"] <= TARGET else "NOT MET"
        print(f"target (issue 11): ratio <= {TARGET} (long first): {met}")
    finally:
        server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
