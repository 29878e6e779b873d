"""Slurm overhead: 50 one-second worksets through a real single-node Slurm with 8 slots.

Each workset runs its three steps as batch jobs (stage downloads the FASTQ, run sleeps 1 s,
export uploads the result). Prints makespan / ideal (ideal = max(longest, total / slots),
counting only the 1 s of work per workset) and the monitor's CPU seconds per workset.

    python bench/slurm_overhead.py [N] [SLOTS]
"""

from __future__ import annotations

import os
import resource
import sys
import tempfile
import time
from pathlib import Path

from _common import ROOT, bench_settings, deploy, register

from daylib import wiring
from daylib.emulator import start_moto
from daylib.executors.slurm import SlurmExecutor
from daylib.ordering import epoch

sys.path.insert(0, str(ROOT))
from tests.support.slurm import start_slurm


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def main() -> int:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 50
    slots = int(sys.argv[2]) if len(sys.argv) > 2 else 8
    base = Path(tempfile.mkdtemp(prefix="slb-", dir="/tmp"))
    cluster = start_slurm(base / "s", cpus=max(slots, os.cpu_count() or 1))
    os.environ.update(cluster.env)
    server = start_moto(in_process=False)
    try:
        s = bench_settings(server.endpoint_url, str(base / "work"), max_concurrent=slots,
                           poll_seconds=0.5, cluster="bench")
        s.workset.pipelines = {"sleep1": "{python} -m tests.support.fakepipe --out "
                               "{results_dir} --sleep 1"}
        clients, store, s3 = deploy(s)
        for i in range(n):
            register(store, s, f"ws-{i:03d}", pipeline="sleep1")
        mon = wiring.monitor_for(s, clients, store=store, s3=s3,
                                 executor=SlurmExecutor(poll_seconds=0.25))
        cpu0, start = cpu_seconds(), time.time()
        mon.run(once=True)
        cpu = cpu_seconds() - cpu0
        recs = store.many([f"ws-{i:03d}" for i in range(n)])
        end = max(epoch(r.updated_at) for r in recs.values())
        ideal = max(1.0, n * 1.0 / slots)
        done = sum(r.state == "complete" for r in recs.values())
        print(f"worksets {n}, slots {slots}, Slurm node CPUs {cluster.cpus}, complete {done}")
        print(f"makespan {end - start:.1f} s, ideal {ideal:.2f} s (1 s of work each), "
              f"ratio {(end - start) / ideal:.2f}")
        print(f"per workset: 3 Slurm jobs; wall {((end - start) * slots / n):.2f} slot-seconds")
        print(f"monitor CPU: {cpu:.1f} s in all, {cpu / n:.3f} s per workset")
    finally:
        server.stop()
        cluster.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
