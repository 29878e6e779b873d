"""A stand-in pipeline for monitor tests: sleeps, writes a result, exits with a chosen code."""

from __future__ import annotations

import argparse
import os
import signal
import sys
import time
from pathlib import Path


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--sleep", type=float, default=0.0)
    p.add_argument("--exit", type=int, default=0)
    p.add_argument("--signal", type=int, default=0)
    p.add_argument("--stderr", default="")
    p.add_argument("--marker", type=Path, help="append one line per run (counts executions)")
    args, extra = p.parse_known_args()
    if args.marker:
        with open(args.marker, "a") as fh:
            fh.write(f"{os.getpid()} {time.time()} {' '.join(extra)}\n")
    time.sleep(args.sleep)
    if args.stderr:
        print(args.stderr, file=sys.stderr)
    if args.signal:
        os.kill(os.getpid(), args.signal)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "result.txt").write_text(f"done {' '.join(extra)}\n")
    return args.exit


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    sys.exit(main())
