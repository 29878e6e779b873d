"""Slot refill cost of the step wrapper: wall time of a step that does nothing (``true``)
under the Python reference wrapper and under ``jobwrap.sh``, with the log bounded (the
default), bounded through a fifo the caller made (``--fifo``, as the local executor does) and
written directly. Side by side in one run, so the machine's load is shared.

    python bench/wrapper_start.py [RUNS]
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import ROOT

JOBWRAP = ROOT / "daylib" / "executors" / "jobwrap.py"
WRAPPERS = {"python jobwrap.py": [sys.executable, "-I", str(JOBWRAP)],
            "bash jobwrap.sh": ["/bin/bash", str(JOBWRAP.with_name("jobwrap.sh"))]}
BOUNDED = ["--max-bytes", "1048576", "--head-bytes", "65536"]


def once(wrapper: list[str], work: Path, log: str) -> float:
    t = time.perf_counter()
    fifo = []
    if log == "fifo":  # made as the local executor makes it, timed with the step
        os.mkfifo(work / "given.fifo", 0o600)
        fifo = ["--fifo", str(work / "given.fifo")]
    subprocess.run([*wrapper, "--status", str(work / "s.json"), "--log", str(work / "l.log"),
                    *(BOUNDED if log != "direct" else []), *fifo, "--", "true"], check=True)
    return time.perf_counter() - t


def main() -> int:
    runs = int(sys.argv[1]) if len(sys.argv) > 1 else 30
    print(f"step `true` under each wrapper, {runs} runs each, interleaved (ms)")
    print(f"{'wrapper':20} {'log':8} {'median':>8} {'p90':>8}")
    with tempfile.TemporaryDirectory() as tmp:
        for log in ("bounded", "fifo", "direct"):
            times: dict[str, list[float]] = {name: [] for name in WRAPPERS}
            for _ in range(runs):
                for name, wrapper in WRAPPERS.items():
                    times[name].append(once(wrapper, Path(tmp), log) * 1000)
            for name, ts in times.items():
                ts.sort()
                print(f"{name:20} {log:8} "
                      f"{statistics.median(ts):8.1f} {ts[int(0.9 * (len(ts) - 1))]:8.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
