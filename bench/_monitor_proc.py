"""One monitor process for bench/throughput.py: instant steps, drains the queue, prints stats."""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time

from _common import bench_settings, deploy

from daylib import wiring
from daylib.aws import AwsClients
from tests.support.executors import InstantSteps


def main() -> int:
    endpoint, table, bucket, monitor_id, slots, start_at, ddb = sys.argv[1:8]
    os.nice(5)  # the shared server is the bottleneck on a 2-core box: let it run first
    with tempfile.TemporaryDirectory() as work:
        s = bench_settings(endpoint, work, max_concurrent=int(slots), poll_seconds=0.5,
                           monitor_id=monitor_id, discovery_seconds=3600)
        s.state.table, s.storage.bucket = table, bucket
        clients, store, s3 = deploy(s)
        if ddb != endpoint:  # the table on another emulator (dynalite)
            d = s.model_copy(deep=True)
            d.aws.endpoint_url = ddb
            store = wiring.store_for(d, AwsClients(d.aws, max_pool_connections=64))
        mon = wiring.monitor_for(s, clients, store=store, s3=s3, executor=InstantSteps())
        time.sleep(max(0.0, float(start_at) - time.time()))
        started = time.process_time()
        mon.run(once=True)
        print(json.dumps({**vars(mon.stats), "cpu": time.process_time() - started}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
