"""A stand-in pipeline for monitor tests: sleeps, writes a result, exits with a chosen code.

Failure plans (for the failure-policy tests):
- ``--fail-first N`` (needs ``--marker``): ``--sleep``, ``--stderr``, ``--signal`` and
  ``--exit`` apply to the first N runs only; later runs succeed at once.
- ``--need-mem-mb M``: under Slurm, fail like the OOM killer (stderr evidence, SIGKILL)
  unless the job was given at least M MB (``SLURM_MEM_PER_NODE``).
- ``--gate PATH``: wait until PATH exists (a test releases the step when it has seen what
  it needs to see while the step runs).
- ``--need-walltime-min M``: under Slurm, outlive the job's time limit unless it is at least
  M minutes (so Slurm ends it with TIMEOUT).
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path


def _time_limit_minutes() -> int | None:
    job = os.environ.get("SLURM_JOB_ID")
    if not job:
        return None
    out = subprocess.run(["scontrol", "show", "job", "-o", job], capture_output=True,
                         text=True, check=False).stdout
    m = re.search(r"TimeLimit=(?:(\d+)-)?(\d+):(\d+):(\d+)", out)
    if not m:
        return None
    days, hours, minutes, _ = (int(x) if x else 0 for x in m.groups())
    return days * 1440 + hours * 60 + minutes


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--sleep", type=float, default=0.0)
    p.add_argument("--exit", type=int, default=0)
    p.add_argument("--signal", type=int, default=0)
    p.add_argument("--stderr", default="")
    p.add_argument("--marker", type=Path, help="append one line per run (counts executions)")
    p.add_argument("--fail-first", type=int, default=None)
    p.add_argument("--gate", type=Path, default=None)
    p.add_argument("--need-mem-mb", type=int, default=None)
    p.add_argument("--need-walltime-min", type=int, default=None)
    args, extra = p.parse_known_args()
    mem = os.environ.get("SLURM_MEM_PER_NODE", "-")
    limit = _time_limit_minutes() if args.need_walltime_min else None
    run = 0
    if args.marker:
        with open(args.marker, "a") as fh:
            fh.write(f"{os.getpid()} {time.time()} mem={mem} limit={limit} {' '.join(extra)}\n")
        run = len(args.marker.read_text().splitlines())
    if args.need_mem_mb is not None and (not mem.isdigit() or int(mem) < args.need_mem_mb):
        print(f"Out of memory: Killed process {os.getpid()} (fakepipe) needing "
              f"{args.need_mem_mb} MB, given {mem}", file=sys.stderr, flush=True)
        os.kill(os.getpid(), signal.SIGKILL)
    if args.need_walltime_min is not None and (limit or 0) < args.need_walltime_min:
        time.sleep(600)
    while args.gate is not None and not args.gate.exists():
        time.sleep(0.05)
    failing = args.fail_first is None or run <= args.fail_first
    if failing:
        time.sleep(args.sleep)
        if args.stderr:
            print(args.stderr, file=sys.stderr)
        if args.signal:
            os.kill(os.getpid(), args.signal)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "result.txt").write_text(f"done {' '.join(extra)}\n")
    return args.exit if failing else 0


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    sys.exit(main())
