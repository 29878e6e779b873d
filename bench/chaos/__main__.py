"""Print the chaos figures, one line per scenario (``--json``: one object per line).

    python -m bench.chaos                 # every scenario, full size
    python -m bench.chaos --quick         # the small variant CI runs
    python -m bench.chaos kill9 skew      # chosen scenarios

Goal on every scenario: completed = worksets, 0 lost, 0 dup, 0 stuck, 0 exits, max <= cap.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from bench.chaos.harness import Figures, Scenario, as_json, run_scenario


def scenarios(quick: bool) -> dict[str, Scenario]:
    n = 30 if quick else 1000
    small = 20 if quick else 200
    # The most time after the faults; a run ends sooner once nothing progresses for
    # ``stall_seconds`` (what is then still active is stuck), so a slow machine is not stuck.
    # SNS down: 250 worksets make the 1,000 transitions (4 each; printed).
    settle = 300.0 if quick else 3600.0
    return {
        # Quick: two slots a monitor and 3 s steps keep the work going long enough for a
        # kill every 3 s to find busy monitors several times, however loaded the machine.
        "kill9": Scenario("kill9", worksets=n, monitors=4 if not quick else 3,
                          slots=4 if not quick else 2,
                          step_seconds=0.3 if not quick else 3.0, kill_every_seconds=3.0,
                          storm_seconds=600 if not quick else 45,
                          settle_seconds=settle),
        "down5": Scenario("down5", worksets=small, step_seconds=2.0,
                          faults=[(4.0, "down"), (9.0, "up")], settle_seconds=settle),
        "down60": Scenario("down60", worksets=small, step_seconds=2.0,
                           faults=[(4.0, "down"), (64.0, "up")], settle_seconds=settle),
        "throttle": Scenario("throttle", worksets=small, step_seconds=0.5,
                             faults=[(0.0, {"*": 0.2}), (6.0, {"*": 1.0}),
                                     (26.0 if not quick else 12.0, {"*": 0.2}),
                                     (40.0 if not quick else 20.0, {})],
                             settle_seconds=settle),
        "caps": Scenario("caps", worksets=small, monitors=3, slots=4, step_seconds=3.0,
                         global_max=5, settle_seconds=settle),
        "skew": Scenario("skew", worksets=small, monitors=3, step_seconds=4.0,
                         lease_seconds=3.0, skews=[60.0, -60.0, 0.0], settle_seconds=settle),
        "sns_down": Scenario("sns_down", worksets=small if quick else 250, step_seconds=0.1,
                             sns_down=True, settle_seconds=settle),
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.chaos", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("names", nargs="*", help="scenarios (default: all)")
    p.add_argument("--quick", action="store_true", help="small sizes, as CI runs them")
    p.add_argument("--json", action="store_true")
    p.add_argument("--verbose", action="store_true", help="print the monitors' log tails")
    p.add_argument("--keep", type=Path, metavar="DIR",
                   help="copy each scenario's monitor logs and step run log into DIR")
    p.add_argument("--max-seconds", type=float, metavar="S",
                   help="cut each scenario after S seconds and print its figures so far")
    args = p.parse_args(argv)
    table = scenarios(args.quick)
    unknown = [n for n in args.names if n not in table]
    if unknown:
        p.error(f"unknown scenario {unknown[0]!r}; known: {', '.join(table)}")
    results: list[Figures] = []
    for name in args.names or list(table):
        fig = run_scenario(table[name], verbose=args.verbose, keep=args.keep,
                           max_seconds=args.max_seconds)
        results.append(fig)
        print(as_json(fig) if args.json else fig.line(), flush=True)
    return 0 if all(f.clean for f in results) else 1


if __name__ == "__main__":
    sys.exit(main())
