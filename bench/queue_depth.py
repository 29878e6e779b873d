"""Queue depth at scale: 100,000 worksets of which 2,000 active.

Compares ``queue`` (the store's ``queue_depth``) with a full-scan ground truth, and prints
how many requests each made and how long each took, on moto and (when Node is available)
dynalite.

    python bench/queue_depth.py [TOTAL] [ACTIVE]
"""

from __future__ import annotations

import random
import sys
import time
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from _common import ROOT

from daylib import states as S
from daylib.aws import raw_client
from daylib.emulator import start_moto
from daylib.store.dynamodb import DynamoStore
from daylib.store.expression import to_ddb as _to_ddb
from daylib.store.items import queue_key as _queue_key
from daylib.store.records import utc_iso


def item(i: int, state: str) -> dict[str, Any]:
    wid = f"ws-{i:07d}"
    created = utc_iso(1_700_000_000 + i)
    it: dict[str, Any] = {"pk": wid, "workset_id": wid, "state": state, "priority": "normal",
                          "created_at": created, "updated_at": created, "version": 3,
                          "customer_id": f"lab-{i % 7}", "cluster": f"c{i % 3}",
                          "history": [{"at": created, "actor": "bench", "from": None,
                                       "to": state, "reason": "loaded"}],
                          "history_total": 1, "attempt": 1}
    if state in S.ACTIVE:
        it |= {"active_state": state, "queue_key": _queue_key("normal", created, wid)}
    else:
        it |= {"done_state": state, "created_key": f"{created}#{wid}"}
    return {k: _to_ddb(v) for k, v in it.items()}


def load(client: Any, table: str, total: int, active: int) -> Counter[str]:
    rng = random.Random(7)
    active_ids = set(rng.sample(range(total), active))
    truth: Counter[str] = Counter()
    items = []
    for i in range(total):
        state = rng.choice(S.ACTIVE) if i in active_ids else rng.choices(
            S.TERMINAL, weights=[90, 7, 3])[0]
        truth[state] += 1
        items.append(item(i, state))
    batches = [items[i:i + 25] for i in range(0, len(items), 25)]

    def write(batch: list[dict[str, Any]]) -> None:
        request = {table: [{"PutRequest": {"Item": it}} for it in batch]}
        while request:
            resp = client.batch_write_item(RequestItems=request)
            request = resp.get("UnprocessedItems") or {}

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(write, batches))
    return truth


def scan_truth(client: Any, table: str) -> tuple[Counter[str], int, float]:
    t = time.perf_counter()
    counts: Counter[str] = Counter()
    requests = 0
    for page in client.get_paginator("scan").paginate(TableName=table,
                                                      ProjectionExpression="#s",
                                                      ExpressionAttributeNames={"#s": "state"}):
        requests += 1
        for it in page["Items"]:
            if "state" in it:
                counts[it["state"]["S"]] += 1
    return counts, requests, time.perf_counter() - t


def compare(q_time: float, scan_time: float, scan_requests: int, q_requests: int) -> str:
    """Say which path won in words, so a slower index path never reads as "0.6x faster"
    (nor more requests as "0.2x fewer")."""
    if q_time <= scan_time:
        speed = f"queue is {scan_time / q_time:.1f}x faster than the scan"
    else:
        speed = f"queue is SLOWER than the scan ({q_time / scan_time:.1f}x the scan's time)"
    if q_requests <= scan_requests:
        return f"{speed}, {scan_requests / q_requests:.1f}x fewer requests"
    return f"{speed}, MORE requests than the scan ({q_requests} vs {scan_requests})"


def run(name: str, endpoint: str, total: int, active: int) -> None:
    client = raw_client("dynamodb", endpoint_url=endpoint)
    store = DynamoStore(client, f"qd-{uuid.uuid4().hex[:8]}")
    store.create_table()
    t = time.perf_counter()
    truth = load(client, store.table, total, active)
    print(f"[{name}] loaded {total} items ({active} active) in {time.perf_counter() - t:.1f} s")
    t = time.perf_counter()
    depth = store.queue_depth()
    q_time = time.perf_counter() - t
    t = time.perf_counter()
    active_only = store.queue_depth(terminal=False)
    a_time = time.perf_counter() - t
    scanned, scan_requests, scan_time = scan_truth(client, store.table)
    exact = dict(depth.states) == {s: scanned.get(s, 0) for s in S.ALL} == {
        s: truth.get(s, 0) for s in S.ALL}
    print(f"[{name}] queue equals full-scan ground truth: {exact}")
    print(f"[{name}] queue: {depth.requests + depth.terminal_requests} requests, "
          f"{q_time:.2f} s: {depth.requests} for the {active} active (sparse index), "
          f"{depth.terminal_requests} for the {total - active} finished (Select=COUNT)")
    print(f"[{name}] active part alone: {active_only.requests} requests, {a_time:.2f} s")
    q_requests = depth.requests + depth.terminal_requests
    print(f"[{name}] full scan: {scan_requests} requests, {scan_time:.2f} s "
          f"-> {compare(q_time, scan_time, scan_requests, q_requests)}")
    print(f"[{name}] states: {dict(depth.states)}")


def main() -> int:
    total = int(sys.argv[1]) if len(sys.argv) > 1 else 100_000
    active = int(sys.argv[2]) if len(sys.argv) > 2 else 2_000
    server = start_moto(in_process=False)
    try:
        run("moto", server.endpoint_url, total, active)
    finally:
        server.stop()
    sys.path.insert(0, str(ROOT))
    from tests.support.dynalite import dynalite_unavailable_reason, start_dynalite

    reason = dynalite_unavailable_reason()
    if reason:
        print(f"[dynalite] not run: {reason}")
        return 0
    dyn = start_dynalite(Path(ROOT) / ".cache")
    try:
        run("dynalite", dyn.endpoint_url, total, active)
    finally:
        dyn.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
