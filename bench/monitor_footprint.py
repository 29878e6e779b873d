"""Monitor footprint: resident memory and CPU seconds per minute of one monitor process with
10,000 worksets in the table, idle (nothing ready) and busy (a queue of ready worksets it
drains with instant steps). Target: RSS below 100 MB. Prints figures; asserts nothing.

The monitor runs in its own process with the default intervals (poll 2 s, discovery 10 s,
reap 5 s, metrics 60 s) against a moto server in another process, so only the monitor's own
memory and CPU are measured (``/proc/<pid>``: VmRSS, VmHWM, utime + stime).

    python bench/monitor_footprint.py [--seconds 60] [--total 10000] [--ready 1000]
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from _common import ROOT, bench_settings, deploy, print_json, register
from queue_depth import item

from daylib import states as S
from daylib.emulator import start_moto

TICKS = os.sysconf("SC_CLK_TCK")


def sample(pid: int) -> dict[str, float]:
    status = Path(f"/proc/{pid}/status").read_text()
    kb = {line.split(":")[0]: int(line.split()[1]) for line in status.splitlines()
          if line.startswith(("VmRSS", "VmHWM"))}
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    cpu = (int(fields[11]) + int(fields[12])) / TICKS  # utime + stime
    return {"rss_mb": kb["VmRSS"] / 1024, "peak_rss_mb": kb["VmHWM"] / 1024, "cpu_s": cpu,
            "at": time.monotonic()}


def window(pid: int, seconds: float) -> dict[str, float]:
    start = sample(pid)
    rss_max = start["rss_mb"]
    end = start
    while end["at"] - start["at"] < seconds:
        time.sleep(1.0)
        end = sample(pid)
        rss_max = max(rss_max, end["rss_mb"])
    minutes = (end["at"] - start["at"]) / 60
    return {"seconds": round(end["at"] - start["at"], 1),
            "cpu_seconds_per_minute": round((end["cpu_s"] - start["cpu_s"]) / minutes, 2),
            "rss_mb_end": round(end["rss_mb"], 1), "rss_mb_max": round(rss_max, 1),
            "peak_rss_mb_since_start": round(end["peak_rss_mb"], 1)}


def load_terminal(client: Any, table: str, total: int) -> None:
    items = [item(i, S.COMPLETE) for i in range(total)]

    def write(batch: list[dict[str, Any]]) -> None:
        request = {table: [{"PutRequest": {"Item": it}} for it in batch]}
        while request:
            request = client.batch_write_item(RequestItems=request).get("UnprocessedItems") or {}

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(write, [items[i:i + 25] for i in range(0, total, 25)]))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=60.0, help="length of each window")
    ap.add_argument("--total", type=int, default=10_000, help="worksets in the table")
    ap.add_argument("--ready", type=int, default=1_000, help="ready worksets in the busy phase")
    args = ap.parse_args()
    server = start_moto(in_process=False)
    work = tempfile.mkdtemp(prefix="footprint-")
    s = bench_settings(server.endpoint_url, work)
    clients, store, _s3 = deploy(s)
    proc: subprocess.Popen[bytes] | None = None
    try:
        t = time.perf_counter()
        load_terminal(clients.client("dynamodb"), s.state.table, args.total - args.ready)
        loaded = time.perf_counter() - t
        store.set_paused(True, actor="bench")
        with ThreadPoolExecutor(8) as pool:
            list(pool.map(lambda i: register(store, s, f"busy-{i:05d}", pipeline="germline"),
                          range(args.ready)))
        with open(Path(work) / "monitor.stderr", "wb") as err:
            proc = subprocess.Popen([sys.executable, str(ROOT / "bench" / "_footprint_proc.py"),
                                     server.endpoint_url, s.state.table, s.storage.bucket,
                                     work], stdout=subprocess.DEVNULL, stderr=err,
                                    env={**os.environ, "PYTHONPATH": str(ROOT)})
        time.sleep(10)  # start-up: imports, registration, first passes
        idle = window(proc.pid, args.seconds)
        done_before = store.queue_depth().states[S.COMPLETE]
        store.set_paused(False, actor="bench")
        busy = window(proc.pid, args.seconds)
        depth = store.queue_depth()
        completed = depth.states[S.COMPLETE] - done_before
        busy["worksets_completed"] = completed
        if completed:
            cpu = busy["cpu_seconds_per_minute"] * busy["seconds"] / 60
            busy["cpu_seconds_per_workset"] = round(cpu / completed, 3)
        emf_lines = sum(1 for line in (Path(work) / "monitor.stderr").read_text().splitlines()
                        if '"_aws"' in line)
        print_json({"table_worksets": depth.total, "load_seconds": round(loaded, 1),
                    "idle (paused, nothing claimable)": idle,
                    f"busy (draining {args.ready} ready, instant steps)": busy,
                    "emf_lines_written": emf_lines, "target_rss_mb": 100,
                    "rss_below_target": max(idle["rss_mb_max"], busy["rss_mb_max"]) < 100})
    finally:
        if proc is not None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                proc.kill()
        server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
