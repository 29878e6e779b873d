"""Throughput: 1,000 zero-length worksets drained by 1, 2 and 4 monitor processes (8 slots
each) sharing one moto server; and, in the same run, the server's own ceiling (conditional
writes/s from one client). Also checks that no workset was claimed twice. Prints, per
backend, each of issue 11's targets and whether this run met it.

Where the time goes: the CPU the monitors and the emulators used during each drain, per
workset, and how many of the machine's cores that kept busy ("cores busy"; the emulators'
own share in "servers"). Monitors, emulators and this script share one machine: once the
cores are busy, another monitor only divides them further. moto serves one request at a
time (daylib/emulator.py's lock), so a moto "servers" figure near 1.0 is its ceiling.

    python bench/throughput.py [N]
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from itertools import pairwise
from pathlib import Path

from _common import ROOT, bench_settings, deploy, process_cpu, register

from daylib.aws import raw_client
from daylib.emulator import start_moto
from daylib.ordering import epoch
from daylib.store.dynamodb import DynamoStore

HERE = Path(__file__).resolve().parent
MONITORS = (1, 2, 4)
DAYLILY_MOTO = {1: (17, 20), 2: (11, 15), 4: (7, 8)}  # Daylily's own monitor, same machine
CEILING_SHARE = 0.5  # dynalite, 4 monitors: at least this share of the raw claim ceiling


def ceiling(endpoint: str, n: int = 400) -> float:
    store = DynamoStore(raw_client("dynamodb", endpoint_url=endpoint), "ceiling")
    store.create_table()
    for i in range(n):
        store.register(f"c-{i:05d}", actor="bench")
    t = time.perf_counter()
    for i in range(n):
        store.claim(f"c-{i:05d}", "m", 30)
    return n / (time.perf_counter() - t)


def drain(endpoint: str, ddb: str, monitors: int, n: int,
          servers: list[int | None]) -> dict[str, float]:
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
        time.sleep(max(0.0, start_at - time.time()))
        before = sum(process_cpu(pid) for pid in servers)
        stats = [json.loads(p.communicate()[0].strip().splitlines()[-1]) for p in procs]
        server_cpu = sum(process_cpu(pid) for pid in servers) - before
        recs = store.many(ids)
        end = max(epoch(r.updated_at) for r in recs.values())
        claims = sum(1 for r in recs.values() for h in r.history if h["reason"] == "claimed")
        complete = sum(r.state == "complete" for r in recs.values())
        return {"rate": complete / (end - start_at), "seconds": end - start_at,
                "complete": complete, "double_claims": claims - len(recs),
                "conflicts": sum(x["conflicts"] for x in stats),
                "cpu": sum(x["cpu"] for x in stats) + server_cpu, "server_cpu": server_cpu}


def verdicts(name: str, rates: dict[int, float], top: float, doubles: int) -> list[str]:
    """Issue 11's targets for one backend, each with MET or NOT MET (a run that left any
    workset unfinished counts as 0 worksets/s)."""

    def say(ok: bool, what: str) -> str:
        return f"  {'MET    ' if ok else 'NOT MET'} {what}"

    steps = list(MONITORS)
    rising = all(rates[a] < rates[b] for a, b in pairwise(steps))
    got = " / ".join(f"{rates[m]:.1f}" for m in steps)
    out = [f"targets on {name} (worksets/s at {' / '.join(map(str, steps))} monitors: {got}):",
           say(doubles == 0, f"no workset claimed twice ({doubles})"),
           say(rising, "rising with monitors")]
    if name == "moto":
        for m in steps:
            lo, hi = DAYLILY_MOTO[m]
            out.append(say(rates[m] >= hi, f"{m} monitor(s): >= Daylily's {lo}-{hi} "
                                           f"(the top of its range): {rates[m]:.1f}"))
    else:
        want = CEILING_SHARE * top
        out.append(say(rates[4] >= want, f"4 monitors: >= {CEILING_SHARE} of the raw claim "
                                         f"ceiling ({want:.0f}): {rates[4]:.1f}"))
    return out


def main() -> int:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 1000
    server = start_moto(in_process=False)
    backends = [("moto", server.endpoint_url, [server.pid])]
    dyn = None
    sys.path.insert(0, str(ROOT))
    from tests.support.dynalite import dynalite_unavailable_reason, start_dynalite

    if dynalite_unavailable_reason() is None:
        dyn = start_dynalite(ROOT / ".cache")
        backends.append(("dynalite", dyn.endpoint_url, [server.pid, dyn.pid]))
    try:
        for name, ddb, pids in backends:
            print(f"\nDynamoDB on {name} (S3 on moto), {n} worksets, 8 slots per monitor")
            top = ceiling(ddb)
            print(f"server ceiling: {top:.0f} conditional writes/s from one client")
            print(f"{'monitors':>8} {'complete':>8} {'seconds':>8} {'worksets/s':>10} "
                  f"{'lost races':>10} {'double claims':>13} {'CPU ms/ws':>9} "
                  f"{'cores busy':>10} {'servers':>7}")
            rates: dict[int, float] = {}
            doubles = 0
            for monitors in MONITORS:
                r = drain(server.endpoint_url, ddb, monitors, n, pids)
                rates[monitors] = r["rate"] if r["complete"] == n else 0.0
                doubles += int(r["double_claims"])
                print(f"{monitors:>8} {r['complete']:>8.0f} {r['seconds']:>8.1f} "
                      f"{r['rate']:>10.1f} {r['conflicts']:>10.0f} {r['double_claims']:>13.0f} "
                      f"{1000 * r['cpu'] / n:>9.1f} {r['cpu'] / r['seconds']:>10.2f} "
                      f"{r['server_cpu'] / r['seconds']:>7.2f}")
            print(f"(this machine has {os.cpu_count()} cores)")
            for line in verdicts(name, rates, top, doubles):
                print(line)
    finally:
        server.stop()
        if dyn is not None:
            dyn.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
