"""One monitor process of a chaos scenario: the product's Monitor with its real AWS clients
(pointed at the fault proxy), stage/export in-process and the ``run`` step a real local
process (adopted after a kill). ``--skew S`` shifts this process's wall clock by S seconds
before daylib is imported: the injected clock skew of one machine (the system clock is not
touched). Serves until SIGTERM or until it dies."""

from __future__ import annotations

import argparse
import faulthandler
import json
import signal
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _skew(seconds: float) -> None:
    if seconds:
        real = time.time
        time.time = lambda: real() + seconds  # the whole process runs skewed


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--spec", required=True, help="JSON: settings for this monitor")
    p.add_argument("--skew", type=float, default=0.0)
    args = p.parse_args()
    _skew(args.skew)
    faulthandler.register(signal.SIGUSR1, all_threads=True)  # `kill -USR1`: thread stacks
    sys.path[:0] = [str(ROOT), str(ROOT / "bench")]
    from _common import RunOnlyExecutor

    from daylib import logformat, wiring
    from daylib.aws import AwsClients
    from daylib.config import Settings
    from daylib.notify import SnsTopic

    logformat.setup("text", verbose=False)  # the monitor's INFO lines, as `monitor` logs them
    spec = json.loads(args.spec)
    s = Settings.model_validate(spec["settings"])
    clients = AwsClients(s.aws)
    outbox = None
    if spec.get("topic_arn"):
        s.notify.ack_delay_seconds, s.dlq.enabled = 1.0, False  # events to SNS only
        outbox = wiring.outbox_for(s, clients,
                                   topic=SnsTopic(clients.client("sns"), spec["topic_arn"]))
    mon = wiring.monitor_for(s, clients, executor=RunOnlyExecutor(), outbox=outbox)
    mon.install_signal_handlers()
    return mon.run()


if __name__ == "__main__":
    sys.exit(main())
