"""The DynamoDB state store. Single-item conditional writes only (no transactions), so it
runs unchanged on AWS, moto and dynalite. What to write is decided in daylib/store/rules.py;
this module keeps the table schema, the encoding and how each write is expressed.

Table layout (one table, hash key ``pk``):
- workset items, ``pk`` = workset id;
- the control item, ``pk`` = ``#control`` (ids cannot start with ``#``).

Two sparse indexes keep reads proportional to what is asked for:
- ``active-index`` (``active_state``, ``queue_key``) holds only ready/locked/in_progress/
  retrying worksets; ``queue_key`` = ``<rank>#<created_at>#<id>`` so a Query on ``ready``
  returns claim order. Leaving the active states REMOVEs ``active_state``. The cluster items
  live there too (``active_state`` = ``#cluster``), so one Scan of it (``active_items``) is
  what an idle monitor reads, at a cost that does not grow with finished worksets.
- ``done-index`` (``done_state``, ``created_key``) holds only terminal worksets, so ``list
  --state complete`` and terminal counts never touch the active ones (and vice versa).
- ``outbox-index`` (``outbox_part``, ``outbox_due``) holds only worksets with events still to
  publish that no owner will publish (see daylib/outbox.py).

Claim timeline (why the lease version and token are enough, with no clocks compared):
  t0  monitor A claims: state ready->locked, owner=A, token=n+1, lease_expires=v0
  t1  A heartbeats every L/3: lease_expires=v1 (always a new value), on owner=A, token=n+1
  t2  A stalls (GC, network, kill -9); B first sees version v1 at its monotonic time m
  t3  B still sees v1 at m+L and claims, conditioned on v1: owner=B, token=n+2 (had A
      heartbeated in between, the version would differ and B's write would fail)
  t4  A wakes and writes: its condition names token n+1 -> ConditionalCheckFailed -> A stops
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

from daylib import states as S
from daylib.aws import guard
from daylib.config import (
    HISTORY_KEEP_FIRST,
    HISTORY_KEEP_LAST,
    OUTBOX_MAX_PENDING,
    OUTBOX_STALE_SECONDS,
)
from daylib.errors import AwsError, ConflictError, LeaseLost
from daylib.store.dynamo_io import Refused
from daylib.store.expression import Expr, from_ddb, to_ddb
from daylib.store.items import (
    ACTIVE_INDEX,
    ACTIVE_PROJECTION,
    CLAIM_KEY,
    CLUSTER_PARTITION,
    DONE_INDEX,
    OUTBOX_INDEX,
    OUTBOX_PART,
    matches,
    projected,
    record_from_item,
)
from daylib.store.queries import QueueReads
from daylib.store.records import ActiveItems, ControlRecord, Lease, WorksetRecord, utc_iso
from daylib.store.rules import Changes, ClaimPlan, conflict, next_expiry
from daylib.store.slots import DynamoSlots

CONTROL_PK = "#control"


def _record(item: dict[str, Any]) -> WorksetRecord:
    return record_from_item(from_ddb(item))


class DynamoStore(DynamoSlots, QueueReads):
    """Worksets, leases, history and the pause flag in one DynamoDB table."""

    def __init__(self, client: Any, table: str, *, keep_first: int = HISTORY_KEEP_FIRST,
                 keep_last: int = HISTORY_KEEP_LAST, clock: Callable[[], float] = time.time,
                 stale_seconds: float = OUTBOX_STALE_SECONDS,
                 max_pending: int = OUTBOX_MAX_PENDING) -> None:
        super().__init__(keep_first=keep_first, keep_last=keep_last, clock=clock,
                         stale_seconds=stale_seconds, max_pending=max_pending)
        self.client = guard(client)
        self.table = table
        self._cap_items: set[str] = set()

    def twin(self, *, clock: Callable[[], float] | None = None,
             stale_seconds: float | None = None) -> DynamoStore:
        """Another handle on the same table (another monitor), with its own clock."""
        return DynamoStore(self.client, self.table, keep_first=self.keep_first,
                           keep_last=self.keep_last, clock=clock or self.clock,
                           stale_seconds=stale_seconds or self.stale_seconds,
                           max_pending=self.max_pending)

    # ------------------------------------------------------------------ table

    def create_table(self) -> bool:
        """Create the table and its indexes if missing; True if it was created."""
        try:
            self._call(
                "create_table",
                TableName=self.table,
                AttributeDefinitions=[{"AttributeName": a, "AttributeType": "S"} for a in
                                      ("pk", "active_state", "queue_key", "done_state",
                                       "created_key", "outbox_part")]
                + [{"AttributeName": "outbox_due", "AttributeType": "N"}],
                KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
                GlobalSecondaryIndexes=[
                    _gsi(ACTIVE_INDEX, "active_state", "queue_key", list(ACTIVE_PROJECTION)),
                    _gsi(DONE_INDEX, "done_state", "created_key", []),
                    _gsi(OUTBOX_INDEX, "outbox_part", "outbox_due", [])],
                BillingMode="PAY_PER_REQUEST",
            )
        except AwsError as exc:
            if exc.code != "ResourceInUseException":
                raise
            self._ensure_outbox_index()
            return False
        self.client.get_waiter("table_exists").wait(
            TableName=self.table, WaiterConfig={"Delay": 0.2, "MaxAttempts": 150})
        return True

    def _ensure_outbox_index(self) -> None:
        """A table made by an older version lacks the outbox index: add it (idempotent)."""
        desc = self._call("describe_table", TableName=self.table)["Table"]
        if any(g["IndexName"] == OUTBOX_INDEX for g in desc.get("GlobalSecondaryIndexes", [])):
            return
        self._call("update_table", TableName=self.table,
                   AttributeDefinitions=[{"AttributeName": "outbox_part", "AttributeType": "S"},
                                         {"AttributeName": "outbox_due", "AttributeType": "N"}],
                   GlobalSecondaryIndexUpdates=[
                       {"Create": _gsi(OUTBOX_INDEX, "outbox_part", "outbox_due", [])}])

    # ------------------------------------------------------------------ reads

    def get(self, workset_id: str) -> WorksetRecord | None:
        item = self._call("get_item", TableName=self.table, Key={"pk": {"S": workset_id}},
                          ConsistentRead=True).get("Item")
        return _record(item) if item and "workset_id" in item else None

    def many(self, ids: list[str]) -> dict[str, WorksetRecord]:
        """Current records of ``ids`` that exist (BatchGetItem, 100 keys a call)."""
        found: dict[str, WorksetRecord] = {}
        for item in self._batch_get(ids, None):
            rec = _record(item)
            found[rec.workset_id] = rec
        return found

    def existing(self, ids: list[str]) -> set[str]:
        """Which of ``ids`` are registered."""
        return {item["pk"]["S"] for item in self._batch_get(ids, "pk")}

    def active(self, state: str, *, prefix: str | None = None, limit: int | None = None,
               descending: bool = False, before: str | None = None) -> list[WorksetRecord]:
        """Worksets of one active state in queue order, from the sparse index. ``prefix``
        (a priority rank) with ``before`` (an ISO time) bounds the creation time."""
        cond = "active_state = :s"
        values: dict[str, Any] = {":s": {"S": state}}
        if prefix is not None and before is not None:
            cond += " AND queue_key BETWEEN :lo AND :hi"
            values[":lo"] = {"S": prefix}
            values[":hi"] = {"S": f"{prefix}{before}"}
        elif prefix is not None:
            cond += " AND begins_with(queue_key, :p)"
            values[":p"] = {"S": prefix}
        kwargs: dict[str, Any] = {"IndexName": ACTIVE_INDEX, "KeyConditionExpression": cond,
                                  "ExpressionAttributeValues": values,
                                  "ScanIndexForward": not descending}
        if limit is not None:
            kwargs["Limit"] = limit
        out: list[WorksetRecord] = []
        for page in self._query(**kwargs):
            out.extend(projected(from_ddb(i)) for i in page.get("Items", []))
            if limit is not None and len(out) >= limit:
                return out[:limit]
        return out

    def active_items(self) -> ActiveItems:
        """Active worksets and cluster items: a Scan of the sparse active index, which holds
        nothing else, so a table of finished worksets costs one request."""
        worksets: list[WorksetRecord] = []
        clusters: list[dict[str, Any]] = []
        requests = 0
        for page in self._scan(IndexName=ACTIVE_INDEX):
            requests += 1
            for item in map(from_ddb, page.get("Items", [])):
                if item.get("active_state") == CLUSTER_PARTITION:
                    clusters.append(item.get("cluster_info", {}))
                elif "workset_id" in item:
                    worksets.append(projected(item))
        return ActiveItems(worksets, clusters, requests)

    def ready_summary(self, rank: int) -> tuple[int, str | None]:
        """How many worksets of one priority rank are ready, and the oldest one's
        ``created_at`` (Select=COUNT plus one Limit=1 read; for metrics)."""
        cond = "active_state = :s AND begins_with(queue_key, :p)"
        values = {":s": {"S": S.READY}, ":p": {"S": f"{rank}#"}}
        count = sum(int(page.get("Count", 0)) for page in self._query(
            IndexName=ACTIVE_INDEX, Select="COUNT", KeyConditionExpression=cond,
            ExpressionAttributeValues=values))
        head = self.active(S.READY, prefix=f"{rank}#", limit=1) if count else []
        return count, head[0].created_at if head else None

    def done_ids(self, state: str, *, before: str | None = None, since: str | None = None,
                 page_size: int = 100) -> Iterator[list[str]]:
        """Ids of terminal worksets of ``state``, newest first, a page at a time; ``before``
        (a ``created_at#id`` key, exclusive) and ``since`` (an ISO time) bound the range."""
        cond = "done_state = :s"
        values: dict[str, Any] = {":s": {"S": state}}
        if before is not None and since is not None:
            if since > before:
                return  # an empty range (BETWEEN would be a ValidationException)
            cond += " AND created_key BETWEEN :lo AND :hi"
            values.update({":lo": {"S": since}, ":hi": {"S": before}})
        elif before is not None:
            cond += " AND created_key < :hi"
            values[":hi"] = {"S": before}
        elif since is not None:
            cond += " AND created_key >= :lo"
            values[":lo"] = {"S": since}
        for page in self._query(IndexName=DONE_INDEX, ScanIndexForward=False, Limit=page_size,
                                KeyConditionExpression=cond, ExpressionAttributeValues=values):
            ids = [it["pk"]["S"] for it in page.get("Items", [])
                   if it.get("created_key", {}).get("S") != before]  # BETWEEN is inclusive
            if ids:
                yield ids

    def ready_pages(self, page_size: int) -> Iterator[list[WorksetRecord]]:
        """Ready worksets in queue order, a page at a time (for skipping ones routed
        elsewhere without loading the whole queue)."""
        for page in self._query(IndexName=ACTIVE_INDEX, Limit=page_size,
                                KeyConditionExpression="active_state = :s",
                                ExpressionAttributeValues={":s": {"S": S.READY}}):
            yield [projected(from_ddb(i)) for i in page.get("Items", [])]

    def _active_pages(self, state: str) -> Iterator[list[dict[str, Any]]]:
        for page in self._query(IndexName=ACTIVE_INDEX,
                                KeyConditionExpression="active_state = :s",
                                ExpressionAttributeValues={":s": {"S": state}},
                                ProjectionExpression="#c, customer_id, preferred_cluster",
                                ExpressionAttributeNames={"#c": "cluster"}):
            yield [from_ddb(i) for i in page.get("Items", [])]

    def _terminal_counts(self, state: str) -> Iterator[int]:
        for page in self._query(IndexName=DONE_INDEX, Select="COUNT",
                                KeyConditionExpression="done_state = :s",
                                ExpressionAttributeValues={":s": {"S": state}}):
            yield int(page.get("Count", 0))

    def _newest_done(self, state: str, cluster: str | None, customer: str | None,
                     limit: int) -> list[WorksetRecord]:
        rows: list[WorksetRecord] = []
        for page in self._query(IndexName=DONE_INDEX, ScanIndexForward=False,
                                KeyConditionExpression="done_state = :s",
                                ExpressionAttributeValues={":s": {"S": state}}):
            ids = [it["pk"]["S"] for it in page.get("Items", [])]
            found = self.many(ids)
            rows.extend(r for i in ids if (r := found.get(i)) is not None
                        and matches(r, cluster, customer))
            if len(rows) >= limit:
                break
        return rows

    def outbox_due(self, now: float, limit: int = 100) -> list[str]:
        """Worksets whose pending events are older than the outbox's stale limit."""
        ids: list[str] = []
        for page in self._query(IndexName=OUTBOX_INDEX, Limit=limit,
                                KeyConditionExpression="outbox_part = :p AND outbox_due <= :t",
                                ExpressionAttributeValues={":p": {"S": OUTBOX_PART},
                                                           ":t": to_ddb(now)}):
            ids.extend(i["pk"]["S"] for i in page.get("Items", []))
            if len(ids) >= limit:
                break
        return ids[:limit]

    # ------------------------------------------------------------------ write primitives

    def _conflict(self, workset_id: str, old: dict[str, Any] | None) -> ConflictError:
        current = _record(old) if old else self.get(workset_id)
        err = conflict(workset_id, current.state if current else None)
        err.owner = current.owner if current else None
        return err

    def _update(self, workset_id: str, expect: dict[str, Any], changes: Changes) -> None:
        expr = Expr()
        for attr, v in expect.items():
            expr.expect(attr, "=", v)
        for attr, v in changes.attrs.items():
            expr.set(attr, v)
        for (attr, key), v in changes.entry_sets.items():
            expr.set(attr, v, key)
        for attr, key in changes.entry_removes:
            expr.remove(attr, key)
        for attr, items in changes.appends.items():
            expr.set_expr(attr, f"list_append(if_not_exists({expr.name(attr)}, "
                                f"{expr.value([])}), {expr.value(items)})")
        try:
            self._write(workset_id, expr, ReturnValues="NONE",
                        ReturnValuesOnConditionCheckFailure="ALL_OLD")
        except Refused as exc:
            raise self._conflict(workset_id, exc.item) from None

    def _put_new(self, item: dict[str, Any]) -> bool:
        try:
            self._call("put_item", TableName=self.table,
                       Item={k: to_ddb(v) for k, v in item.items()},
                       ConditionExpression="attribute_not_exists(pk)")
        except Refused:
            return False
        return True

    def _claim_write(self, plan: ClaimPlan) -> tuple[WorksetRecord, bool]:
        try:
            return self._claim_once(plan, outbox=plan.drop_keys is not None), True
        except AwsError as exc:
            if exc.code != "ValidationException" or plan.drop_keys is None:
                raise
            # An item written before outboxes existed has no outbox map to add to.
            return self._claim_once(plan, outbox=False), False

    def _claim_once(self, plan: ClaimPlan, *, outbox: bool) -> WorksetRecord:
        up = Expr()
        expired = plan.expired
        if expired is not None:
            up.expect("state", "=", expired.state).expect("owner_id", "=", expired.owner)
            up.expect("lease_token", "=", expired.lease_token)
            up.expect("lease_expires", "=", expired.lease_expires)
        else:
            up.expect("state", "=", S.READY)
            up.set("state", S.LOCKED).set("active_state", S.LOCKED)
        up.set("owner_id", plan.owner).set("lease_expires", plan.now + plan.lease_seconds)
        up.set("updated_at", utc_iso(plan.now)).remove("reason")
        for key, value in plan.fields.items():
            up.set(key, value)
        up.set_expr("step", f"if_not_exists({up.name('step')}, {up.value('stage')})")
        up.set_expr("history", f"list_append({up.name('history')}, {up.value([plan.entry])})")
        up.add("lease_token", 1).add("version", 1).add("history_total", 1)
        if outbox:
            for key in plan.drop_keys or ():
                up.remove("outbox", key)
            if plan.started is not None:
                up.set("outbox", plan.started, CLAIM_KEY)
                nxt = (f"if_not_exists({up.name('event_seq')}, {up.value(0)}) + "
                       f"{up.value(1)}")
                up.set_expr("event_seq", nxt).set_expr("claim_seq", nxt)
            up.remove("outbox_part").remove("outbox_due")  # owned: the owner publishes
        try:
            resp = self._write(plan.workset_id, up, ReturnValues="ALL_NEW",
                               ReturnValuesOnConditionCheckFailure="ALL_OLD")
        except Refused as exc:
            raise self._conflict(plan.workset_id, exc.item) from None
        return _record(resp["Attributes"])

    def heartbeat(self, lease: Lease, lease_seconds: float, *,
                  jobs: dict[str, str] | None = None) -> Lease:
        """Extend the lease (and record ``jobs``); raises LeaseLost if another owner, a cancel
        or a newer token intervened. Does not bump ``version``: it must not race the owner's
        own writes."""
        expires = next_expiry(self.clock(), lease, lease_seconds)
        up = Expr().set("lease_expires", expires)
        if jobs is not None:
            up.set("jobs", jobs)
        up.expect("owner_id", "=", lease.owner).expect("lease_token", "=", lease.token)
        up.expect_raw(f"{up.name('state')} IN ({up.value(S.LOCKED)}, {up.value(S.IN_PROGRESS)})")
        if not self._try_write(lease.workset_id, up):
            raise LeaseLost(f"lease on {lease.workset_id} lost")
        return Lease(lease.workset_id, lease.owner, lease.token, expires)

    def note_waiting(self, workset_id: str, reason: str) -> None:
        """Say on a ready workset why it is not running (affinity, caps). Not a transition:
        no version bump, no history; lost if the workset moved on, which is fine."""
        self._try_write(workset_id, Expr().set("reason", reason[:300]).expect("state", "=",
                                                                             S.READY))

    def ack_outbox(self, workset_id: str, keys: list[str]) -> None:
        """Remove published outbox entries (by key) without touching anything else, so it
        never conflicts with the owner's writes; also drops the due marker when nothing is
        left. Removing entries already gone is a no-op."""
        base = "attribute_exists(pk)"
        up = Expr()
        for key in keys:
            up.remove("outbox", key)
        up.remove("outbox_part").remove("outbox_due")
        box = up.name("outbox")
        if keys:
            present = " AND ".join(f"attribute_exists({up.name('outbox', k)})" for k in keys)
            up.expect_raw(f"{base} AND size({box}) = {up.value(len(keys))} AND {present}")
        else:
            up.expect_raw(f"{base} AND (attribute_not_exists({box}) OR size({box}) = "
                          f"{up.value(0)})")
        if self._try_write(workset_id, up) or not keys:
            return
        up = Expr()
        for key in keys:
            up.remove("outbox", key)
        up.expect_raw(f"{base} AND attribute_exists({up.name('outbox')})")
        self._try_write(workset_id, up)

    # ------------------------------------------------------------------ clusters, control

    def put_cluster(self, info: dict[str, Any]) -> None:
        """Register or heartbeat a cluster (a plain overwrite: one writer per cluster)."""
        item = {"pk": f"{CLUSTER_PARTITION}#{info['name']}", "active_state": CLUSTER_PARTITION,
                "queue_key": info["name"], "cluster_info": info}
        self._call("put_item", TableName=self.table, Item={k: to_ddb(v) for k, v in item.items()})

    def clusters(self) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        for page in self._query(IndexName=ACTIVE_INDEX,
                                KeyConditionExpression="active_state = :s",
                                ExpressionAttributeValues={":s": {"S": CLUSTER_PARTITION}}):
            out.extend(from_ddb(i).get("cluster_info", {}) for i in page.get("Items", []))
        return out

    def control(self) -> ControlRecord:
        d = from_ddb(self._call("get_item", TableName=self.table, Key={"pk": {"S": CONTROL_PK}},
                                ConsistentRead=True).get("Item", {}))
        return ControlRecord(paused=bool(d.get("paused", False)), reason=d.get("reason"),
                             changed_by=d.get("changed_by"), changed_at=d.get("changed_at"))

    def set_paused(self, paused: bool, *, actor: str, reason: str = "") -> ControlRecord:
        up = Expr().set("paused", paused).set("changed_by", actor)
        up.set("changed_at", utc_iso(self.clock())).set("reason", reason or None)
        d = from_ddb(self._write(CONTROL_PK, up, ReturnValues="ALL_NEW")["Attributes"])
        return ControlRecord(paused=bool(d.get("paused")), reason=d.get("reason"),
                             changed_by=d.get("changed_by"), changed_at=d.get("changed_at"))


def _gsi(name: str, hash_key: str, range_key: str, proj: list[str]) -> dict[str, Any]:
    projection: dict[str, Any] = (
        {"ProjectionType": "INCLUDE", "NonKeyAttributes": proj} if proj
        else {"ProjectionType": "KEYS_ONLY"})
    return {"IndexName": name,
            "KeySchema": [{"AttributeName": hash_key, "KeyType": "HASH"},
                          {"AttributeName": range_key, "KeyType": "RANGE"}],
            "Projection": projection}
