"""A stand-in pipeline that prints numbered lines over time (for following a live log)."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--lines", type=int, default=5)
    p.add_argument("--every", type=float, default=0.5)
    args, _ = p.parse_known_args()
    args.out.mkdir(parents=True, exist_ok=True)
    for i in range(1, args.lines + 1):
        print(f"chatty line {i} of {args.lines}", flush=True)
        time.sleep(args.every)
    (args.out / "done.txt").write_text("done\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
