"""Throughput: 1,000 zero-length worksets drained by 1, 2 and 4 monitor processes (8 slots
each) sharing one moto server; and, in the same run, the server's own ceiling (conditional
writes/s from one client). Also checks that no workset was claimed twice.

    python bench/throughput.py [N]
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import ROOT, bench_settings, deploy, register

from daylib.aws import raw_client
from daylib.emulator import start_moto
from daylib.ordering import epoch
from daylib.store.dynamodb import DynamoStore

HERE = Path(__file__).resolve().parent


def ceiling(endpoint: str, n: int = 400) -> float:
    store = DynamoStore(raw_client("dynamodb", endpoint_url=endpoint), "ceiling")
    store.create_table()
    for i in range(n):
        store.register(f"c-{i:05d}", actor="bench")
    t = time.perf_counter()
    for i in range(n):
        store.claim(f"c-{i:05d}", "m", 30)
    return n / (time.perf_counter() - t)


def drain(endpoint: str, ddb: str, monitors: int, n: int) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as work:
        s = bench_settings(endpoint, work)
        _, store, _ = deploy(s)
        if ddb != endpoint:
            store = DynamoStore(raw_client("dynamodb", endpoint_url=ddb), s.state.table)
            store.create_table()
        ids = [f"ws-{i:05d}" for i in range(n)]
        for wid in ids:
            register(store, s, wid, pipeline="germline")
        start_at = time.time() + 3.0
        procs = [subprocess.Popen(
            [sys.executable, str(HERE / "_monitor_proc.py"), endpoint, s.state.table,
             s.storage.bucket, f"m{i}", "8", str(start_at), ddb],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
            for i in range(monitors)]
        stats = [json.loads(p.communicate()[0].strip().splitlines()[-1]) for p in procs]
        recs = store.many(ids)
        end = max(epoch(r.updated_at) for r in recs.values())
        claims = sum(1 for r in recs.values() for h in r.history if h["reason"] == "claimed")
        complete = sum(r.state == "complete" for r in recs.values())
        return {"rate": complete / (end - start_at), "seconds": end - start_at,
                "complete": complete, "double_claims": claims - len(recs),
                "conflicts": sum(x["conflicts"] for x in stats)}


def main() -> int:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 1000
    server = start_moto(in_process=False)
    backends = [("moto", server.endpoint_url)]
    dyn = None
    sys.path.insert(0, str(ROOT))
    from tests.support.dynalite import dynalite_unavailable_reason, start_dynalite

    if dynalite_unavailable_reason() is None:
        dyn = start_dynalite(ROOT / ".cache")
        backends.append(("dynalite", dyn.endpoint_url))
    try:
        for name, ddb in backends:
            print(f"\nDynamoDB on {name} (S3 on moto), {n} worksets, 8 slots per monitor")
            print(f"server ceiling: {ceiling(ddb):.0f} conditional writes/s from one client")
            print(f"{'monitors':>8} {'complete':>8} {'seconds':>8} {'worksets/s':>10} "
                  f"{'lost races':>10} {'double claims':>13}")
            for monitors in (1, 2, 4):
                r = drain(server.endpoint_url, ddb, monitors, n)
                print(f"{monitors:>8} {r['complete']:>8.0f} {r['seconds']:>8.1f} "
                      f"{r['rate']:>10.1f} {r['conflicts']:>10.0f} {r['double_claims']:>13.0f}")
        print("target: worksets/s rises with monitors; >= 40 with 4 monitors")
    finally:
        server.stop()
        if dyn is not None:
            dyn.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
