"""The monitor process measured by bench/monitor_footprint.py: instant steps, runs until
SIGTERM, with the default poll, discovery and metrics intervals."""

from __future__ import annotations

import sys

from _common import bench_settings, deploy

from daylib import wiring
from tests.support.executors import InstantSteps


def main() -> int:
    endpoint, table, bucket, workdir = sys.argv[1:5]
    s = bench_settings(endpoint, workdir, monitor_id="footprint")
    s.state.table, s.storage.bucket = table, bucket
    clients, store, s3 = deploy(s)
    mon = wiring.monitor_for(s, clients, store=store, s3=s3, executor=InstantSteps(),
                             step_env={})
    mon.install_signal_handlers()
    return mon.run()


if __name__ == "__main__":
    sys.exit(main())
