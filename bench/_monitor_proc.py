"""One monitor process for bench/throughput.py: instant steps, drains the queue, prints stats."""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time

from _common import InstantExecutor, bench_settings, deploy

from daylib.aws import raw_client
from daylib.monitor import Monitor
from daylib.store.dynamodb import DynamoStore


def main() -> int:
    endpoint, table, bucket, monitor_id, slots, start_at, ddb = sys.argv[1:8]
    os.nice(5)  # the shared server is the bottleneck on a 2-core box: let it run first
    with tempfile.TemporaryDirectory() as work:
        s = bench_settings(endpoint, work, max_concurrent=int(slots), poll_seconds=0.5,
                           monitor_id=monitor_id, discovery_seconds=3600)
        s.state.table, s.storage.bucket = table, bucket
        _clients, store, s3 = deploy(s)
        if ddb != endpoint:
            store = DynamoStore(raw_client("dynamodb", endpoint_url=ddb), table)
        mon = Monitor(s, store, s3, InstantExecutor())
        time.sleep(max(0.0, float(start_at) - time.time()))
        mon.run(once=True)
        print(json.dumps(vars(mon.stats)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
