"""Makespan vs ideal: 12 worksets (one of 3 s, eleven of 0.5 s) on 4 slots.

ideal = max(longest, total / slots). The monitor refills a slot the moment a workset ends,
so the ratio should stay near 1 when the long workset starts early; the "long last" row
shows what any duration-blind FIFO pays when the long one is submitted last. "refill s" is
the mean time a slot stood empty between a workset's end and the next claim. Below the
table, where the long workset's time went (from its history): any time between ``mon.run``
and its complete write other than its 3 s step is overhead.

    python bench/makespan.py
"""

from __future__ import annotations

import sys
import tempfile
import time
from typing import Any

from _common import RunOnlyExecutor, bench_settings, deploy, register

from daylib import wiring
from daylib.emulator import start_moto
from daylib.ordering import epoch
from daylib.store.records import WorksetRecord

SLOTS = 4
DURATIONS = [3.0] + [0.5] * 11
TARGET = 1.02


def timeline(rec: WorksetRecord, start: float) -> str:
    """Each transition of ``rec`` as seconds after ``start``."""
    return ", ".join(f"{h['reason'] or h['to']} +{epoch(h['at']) - start:.3f}"
                     for h in rec.history if h["reason"] != "registered")


def refill_lag(recs: list[WorksetRecord]) -> float:
    """Mean time a slot stood empty: each claim after the first ``SLOTS`` against the end
    that freed its slot (the n-th end frees the slot of the (n + SLOTS)-th claim)."""
    claims = sorted(epoch(h["at"]) for r in recs for h in r.history if h["reason"] == "claimed")
    ends = sorted(epoch(r.updated_at) for r in recs)
    lags = [c - e for c, e in zip(claims[SLOTS:], ends, strict=False)]
    return sum(lags) / len(lags) if lags else 0.0


def run(endpoint: str, order: str) -> dict[str, Any]:
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
                "complete": sum(r.state == "complete" for r in recs.values()),
                "long": timeline(recs[f"ws-{durations.index(max(durations)):02d}"], start),
                "lag": refill_lag(list(recs.values()))}


def main() -> int:
    server = start_moto(in_process=False)
    try:
        print(f"{'order':12} {'complete':>8} {'makespan s':>11} {'ideal s':>8} {'ratio':>6} "
              f"{'refill s':>8}")
        met = long_first = "not run"
        for order in ("long first", "long last"):
            r = run(server.endpoint_url, order)
            print(f"{order:12} {r['complete']:>8.0f} {r['makespan_s']:>11.2f} "
                  f"{r['ideal_s']:>8.2f} {r['ratio']:>6.3f} {r['lag']:>8.3f}")
            if order == "long first":
                met = "MET" if r["ratio"] <= TARGET else "NOT MET"
                long_first = r["long"]
        print(f"long first, the {max(DURATIONS):.0f} s workset after mon.run: {long_first}")
        print(f"target (issue 11): ratio <= {TARGET} (long first): {met}")
    finally:
        server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
