"""The DynamoDB state store. Single-item conditional writes only (no transactions), so it
runs unchanged on AWS, moto and dynalite.

Table layout (one table, hash key ``pk``):
- workset items, ``pk`` = workset id;
- the control item, ``pk`` = ``#control`` (ids cannot start with ``#``).

Two sparse indexes keep reads proportional to what is asked for:
- ``active-index`` (``active_state``, ``queue_key``) holds only ready/locked/in_progress/
  retrying worksets; ``queue_key`` = ``<rank>#<created_at>#<id>`` so a Query on ``ready``
  returns claim order. Leaving the active states REMOVEs ``active_state``.
- ``done-index`` (``done_state``, ``created_key``) holds only terminal worksets, so ``list
  --state complete`` and terminal counts never touch the active ones (and vice versa).
- ``outbox-index`` (``outbox_part``, ``outbox_due``) holds only worksets with events still to
  publish that no owner will publish (see daylib/outbox.py).

Claim timeline (why the lease and token are enough):
  t0  monitor A claims: state ready->locked, owner=A, token=n+1, lease=t0+L
  t1  A heartbeats every L/3: lease=t1+L, conditioned on owner=A and token=n+1
  t2  A stalls (GC, network, kill -9) past its lease
  t3  B sees lease < now and claims: owner=B, token=n+2
  t4  A wakes and writes: its condition names token n+1 -> ConditionalCheckFailed -> A stops
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import fields as dataclass_fields
from dataclasses import replace
from decimal import Decimal
from typing import Any, Protocol

from boto3.dynamodb.types import TypeDeserializer, TypeSerializer
from botocore.exceptions import ClientError

from daylib import states as S
from daylib.aws import describe, error_code
from daylib.errors import (
    AwsError,
    ConflictError,
    IllegalTransition,
    LeaseLost,
    NotFound,
    StoreError,
)
from daylib.spec import priority_rank
from daylib.store.records import ControlRecord, Lease, QueueDepth, WorksetRecord, utc_iso

log = logging.getLogger(__name__)
CONTROL_PK = "#control"
CLUSTER_PARTITION = "#cluster"  # cluster items live in their own active-index partition
CAP_PREFIX = "#cap#"
ACTIVE_INDEX = "active-index"
DONE_INDEX = "done-index"
OUTBOX_INDEX = "outbox-index"
OUTBOX_PART = "due"
CLAIM_KEY = "claim"
_ACTIVE_PROJECTION = ["workset_id", "state", "priority", "customer_id", "cluster",
                      "preferred_cluster", "created_at", "owner_id", "lease_expires",
                      "retry_at", "after", "attempt", "lease_token", "step", "routing",
                      "reason", "cluster_info"]
_OPERATOR_RETRIES = 8
_RECORD_FIELDS = {f.name for f in dataclass_fields(WorksetRecord)} - {"owner"}
_LIST_FIELDS = {"steps_done", "after", "history"}
_DICT_FIELDS = {"summary", "jobs", "routing", "resources"}


# Names for annotations inside DynamoStore, whose ``list`` method shadows the builtin.
Seqs = list[int]
Keys = list[str]


def outbox_key(seq: int) -> str:
    """Map key of an outbox entry: its sequence number, zero-padded."""
    return f"{seq:010d}"


class OutboxHook(Protocol):
    """What the store asks of the outbox (daylib/outbox.py) around each write."""

    stale_seconds: float

    def wants(self, event: str) -> bool: ...

    def entry(self, event: str, message: str, *, by: str, at: float, seq: int | None,
              rec: WorksetRecord | None = None, **fields: Any) -> dict[str, Any]: ...

    def delivered(self, workset_id: str) -> dict[int, str]: ...

    def removed(self, workset_id: str, seqs: Iterable[int]) -> None: ...

    def after_write(self, store: Any, rec: WorksetRecord, new_seqs: Iterable[int]) -> None: ...

    def adopt(self, store: Any, rec: WorksetRecord) -> None: ...

_ser = TypeSerializer()
_de = TypeDeserializer()


def _to_ddb(value: Any) -> dict[str, Any]:
    return _ser.serialize(_decimalize(value))  # type: ignore[no-any-return]


def _decimalize(value: Any) -> Any:
    if isinstance(value, float):
        return Decimal(repr(value))
    if isinstance(value, dict):
        return {k: _decimalize(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_decimalize(v) for v in value]
    return value


def _plain(value: Any) -> Any:
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | set):
        return [_plain(v) for v in value]
    return value


def _from_ddb(item: dict[str, Any]) -> dict[str, Any]:
    return {k: _plain(_de.deserialize(v)) for k, v in item.items()}


def _outbox(d: dict[str, Any]) -> dict[str, dict[str, Any]] | None:
    box = d.get("outbox")
    if not isinstance(box, dict):
        return None
    out = {str(k): dict(v) for k, v in box.items() if isinstance(v, dict)}
    claim = out.get(CLAIM_KEY)
    if claim is not None and "seq" not in claim and d.get("claim_seq") is not None:
        claim["seq"] = int(d["claim_seq"])
    return out


def _record(item: dict[str, Any]) -> WorksetRecord:
    d = _from_ddb(item)
    return WorksetRecord(
        workset_id=d["workset_id"], state=d["state"], version=int(d.get("version", 0)),
        priority=d.get("priority", "normal"), step=d.get("step"),
        steps_done=list(d.get("steps_done", [])), attempt=int(d.get("attempt", 1)),
        max_retries=int(d.get("max_retries", 3)), customer_id=d.get("customer_id"),
        preferred_cluster=d.get("preferred_cluster"), cluster=d.get("cluster"),
        format=d.get("format"), s3_uri=d.get("s3_uri"), results_uri=d.get("results_uri"),
        created_at=d.get("created_at", ""), updated_at=d.get("updated_at", ""),
        owner=d.get("owner_id"), lease_expires=d.get("lease_expires"),
        lease_token=int(d.get("lease_token", 0)), error=d.get("error"),
        error_category=d.get("error_category"), error_rule=d.get("error_rule"),
        retry_at=d.get("retry_at"), after=list(d.get("after", [])),
        spec_json=d.get("spec_json"), intake_error=d.get("intake_error"),
        summary=dict(d.get("summary", {})), jobs=dict(d.get("jobs", {})), reason=d.get("reason"),
        routing=dict(d.get("routing", {})), route=d.get("route"),
        history=list(d.get("history", [])), history_total=int(d.get("history_total", 0)),
        attempt_base=int(d.get("attempt_base", 1)),
        resource_retries=int(d.get("resource_retries", 0)),
        resources=dict(d.get("resources", {})), decision=d.get("decision"),
        failed_at=d.get("failed_at"), outbox=_outbox(d), event_seq=int(d.get("event_seq", 0)),
    )


def _queue_key(priority: str, created_at: str, workset_id: str) -> str:
    return f"{priority_rank(priority)}#{created_at}#{workset_id}"


class _Update:
    """Builds one UpdateExpression with placeholders, so callers never hand-write them."""

    def __init__(self) -> None:
        self.sets: list[str] = []
        self.removes: list[str] = []
        self.adds: list[str] = []
        self.names: dict[str, str] = {}
        self.values: dict[str, Any] = {}
        self.conditions: list[str] = []

    def name(self, attr: str) -> str:
        """A positional placeholder: attribute names (and workset ids used as map keys) may
        hold characters a placeholder cannot, such as '-'."""
        for ph, known in self.names.items():
            if known == attr:
                return ph
        ph = f"#n{len(self.names)}"
        self.names[ph] = attr
        return ph

    def nested(self, attr: str, key: str) -> str:
        """``attr.key`` (a map entry) with placeholders for both parts."""
        ph = f"#k{key}"
        self.names[ph] = key
        return f"{self.name(attr)}.{ph}"

    def set_nested(self, attr: str, key: str, v: Any) -> _Update:
        self.sets.append(f"{self.nested(attr, key)} = {self.value(v)}")
        return self

    def remove_nested(self, attr: str, key: str) -> _Update:
        self.removes.append(self.nested(attr, key))
        return self

    def value(self, v: Any) -> str:
        ph = f":v{len(self.values)}"
        self.values[ph] = _to_ddb(v)
        return ph

    def set(self, attr: str, v: Any) -> _Update:
        if v is None:
            return self.remove(attr)
        self.sets.append(f"{self.name(attr)} = {self.value(v)}")
        return self

    def set_expr(self, attr: str, expr: str) -> _Update:
        self.sets.append(f"{self.name(attr)} = {expr}")
        return self

    def remove(self, attr: str) -> _Update:
        self.removes.append(self.name(attr))
        return self

    def add(self, attr: str, v: Any) -> _Update:
        self.adds.append(f"{self.name(attr)} {self.value(v)}")
        return self

    def expect(self, attr: str, op: str, v: Any) -> _Update:
        self.conditions.append(f"{self.name(attr)} {op} {self.value(v)}")
        return self

    def expect_raw(self, condition: str) -> _Update:
        self.conditions.append(condition)
        return self

    def kwargs(self) -> dict[str, Any]:
        parts = []
        if self.sets:
            parts.append("SET " + ", ".join(self.sets))
        if self.removes:
            parts.append("REMOVE " + ", ".join(self.removes))
        if self.adds:
            parts.append("ADD " + ", ".join(self.adds))
        out: dict[str, Any] = {"UpdateExpression": " ".join(parts),
                               "ExpressionAttributeNames": self.names}
        if self.values:
            out["ExpressionAttributeValues"] = self.values
        if self.conditions:
            out["ConditionExpression"] = " AND ".join(f"({c})" for c in self.conditions)
        return out


class DynamoStore:
    """Worksets, leases, history and the pause flag in one DynamoDB table."""

    def __init__(self, client: Any, table: str, *, keep_first: int = 5, keep_last: int = 50,
                 clock: Callable[[], float] = time.time,
                 outbox: OutboxHook | None = None) -> None:
        self.client = client
        self.table = table
        self.keep_first = keep_first
        self.keep_last = keep_last
        self.clock = clock
        self._cap_items: set[str] = set()
        # Events are recorded on items only when an outbox is attached (it publishes them).
        self.outbox = outbox

    # ------------------------------------------------------------------ table

    def create_table(self) -> bool:
        """Create the table and its indexes if missing; True if it was created."""
        def gsi(name: str, hash_key: str, range_key: str, proj: list[str]) -> dict[str, Any]:
            projection: dict[str, Any] = (
                {"ProjectionType": "INCLUDE", "NonKeyAttributes": proj} if proj
                else {"ProjectionType": "KEYS_ONLY"})
            return {"IndexName": name,
                    "KeySchema": [{"AttributeName": hash_key, "KeyType": "HASH"},
                                  {"AttributeName": range_key, "KeyType": "RANGE"}],
                    "Projection": projection}
        try:
            self.client.create_table(
                TableName=self.table,
                AttributeDefinitions=[{"AttributeName": a, "AttributeType": "S"} for a in
                                      ("pk", "active_state", "queue_key", "done_state",
                                       "created_key", "outbox_part")]
                + [{"AttributeName": "outbox_due", "AttributeType": "N"}],
                KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
                GlobalSecondaryIndexes=[
                    gsi(ACTIVE_INDEX, "active_state", "queue_key", _ACTIVE_PROJECTION),
                    gsi(DONE_INDEX, "done_state", "created_key", []),
                    gsi(OUTBOX_INDEX, "outbox_part", "outbox_due", [])],
                BillingMode="PAY_PER_REQUEST",
            )
        except ClientError as exc:
            if error_code(exc) == "ResourceInUseException":
                self._ensure_outbox_index(gsi(OUTBOX_INDEX, "outbox_part", "outbox_due", []))
                return False
            raise describe(exc) from exc
        self.client.get_waiter("table_exists").wait(
            TableName=self.table, WaiterConfig={"Delay": 0.2, "MaxAttempts": 150})
        return True

    def _ensure_outbox_index(self, index: dict[str, Any]) -> None:
        """A table made by an older version lacks the outbox index: add it (idempotent)."""
        try:
            desc = self.client.describe_table(TableName=self.table)["Table"]
            if any(g["IndexName"] == OUTBOX_INDEX
                   for g in desc.get("GlobalSecondaryIndexes", [])):
                return
            self.client.update_table(
                TableName=self.table,
                AttributeDefinitions=[{"AttributeName": "outbox_part", "AttributeType": "S"},
                                      {"AttributeName": "outbox_due", "AttributeType": "N"}],
                GlobalSecondaryIndexUpdates=[{"Create": index}])
        except ClientError as exc:
            raise describe(exc) from exc

    # ------------------------------------------------------------------ helpers

    def _entry(self, src: str | None, dst: str, actor: str, reason: str) -> dict[str, Any]:
        return {"at": utc_iso(self.clock()), "actor": actor, "from": src, "to": dst,
                "reason": reason[:500]}

    def _bounded(self, history: list[dict[str, Any]],
                 entry: dict[str, Any]) -> list[dict[str, Any]]:
        """Keep the first ``keep_first`` and the newest ``keep_last`` entries."""
        full = [*history, entry]
        if len(full) <= self.keep_first + self.keep_last:
            return full
        return full[: self.keep_first] + full[-self.keep_last:]

    def _index_fields(self, up: _Update, rec: WorksetRecord, state: str, priority: str) -> None:
        if state in S.ACTIVE:
            up.set("active_state", state).set(
                "queue_key", _queue_key(priority, rec.created_at, rec.workset_id))
            up.remove("done_state").remove("created_key")
        else:
            up.set("done_state", state).set("created_key", f"{rec.created_at}#{rec.workset_id}")
            up.remove("active_state").remove("queue_key")

    def _call_update(self, workset_id: str, up: _Update,
                     returns: str = "ALL_NEW") -> WorksetRecord | None:
        try:
            resp = self.client.update_item(
                TableName=self.table, Key={"pk": {"S": workset_id}}, ReturnValues=returns,
                ReturnValuesOnConditionCheckFailure="ALL_OLD", **up.kwargs())
        except ClientError as exc:
            if error_code(exc) == "ConditionalCheckFailedException":
                old = exc.response.get("Item")
                current = _record(old) if old else self.get(workset_id)
                raise ConflictError(self._conflict_message(workset_id, current)) from None
            raise describe(exc) from exc
        return _record(resp["Attributes"]) if returns == "ALL_NEW" else None

    @staticmethod
    def _conflict_message(workset_id: str, current: WorksetRecord | None) -> str:
        if current is None:
            return f"workset {workset_id} does not exist"
        return f"workset {workset_id} changed concurrently (now {current.state})"

    # ------------------------------------------------------------------ reads

    def get(self, workset_id: str) -> WorksetRecord | None:
        try:
            resp = self.client.get_item(TableName=self.table, Key={"pk": {"S": workset_id}},
                                        ConsistentRead=True)
        except ClientError as exc:
            raise describe(exc) from exc
        item = resp.get("Item")
        return _record(item) if item and "workset_id" in item else None

    def require(self, workset_id: str) -> WorksetRecord:
        rec = self.get(workset_id)
        if rec is None:
            raise NotFound(f"no workset {workset_id!r}")
        return rec

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

    def _batch_get(self, ids: list[str], projection: str | None) -> Iterator[dict[str, Any]]:
        unique = list(dict.fromkeys(ids))
        for i in range(0, len(unique), 100):
            spec: dict[str, Any] = {"Keys": [{"pk": {"S": x}} for x in unique[i:i + 100]],
                                    "ConsistentRead": True}
            if projection:
                spec["ProjectionExpression"] = projection
            request: dict[str, Any] = {self.table: spec}
            while request:
                try:
                    resp = self.client.batch_get_item(RequestItems=request)
                except ClientError as exc:
                    raise describe(exc) from exc
                yield from resp["Responses"].get(self.table, [])
                request = resp.get("UnprocessedKeys") or {}
                if request:
                    time.sleep(0.05)

    def _query(self, **kwargs: Any) -> Iterator[dict[str, Any]]:
        """All pages of a Query; dynalite may end with an empty page carrying a key."""
        start: dict[str, Any] | None = None
        while True:
            if start:
                kwargs["ExclusiveStartKey"] = start
            try:
                resp = self.client.query(TableName=self.table, **kwargs)
            except ClientError as exc:
                raise describe(exc) from exc
            yield resp
            start = resp.get("LastEvaluatedKey")
            if not start:
                return

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
            out.extend(_record({**i, "version": {"N": "0"}}) for i in page.get("Items", []))
            if limit is not None and len(out) >= limit:
                return out[:limit]
        return out

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
            yield [_record({**i, "version": {"N": "0"}}) for i in page.get("Items", [])]

    def note_waiting(self, workset_id: str, reason: str) -> None:
        """Say on a ready workset why it is not running (affinity, caps). Not a transition:
        no version bump, no history; lost if the workset moved on, which is fine."""
        up = _Update().set("reason", reason[:300]).expect("state", "=", S.READY)
        try:
            self.client.update_item(TableName=self.table, Key={"pk": {"S": workset_id}},
                                    **up.kwargs())
        except ClientError as exc:
            if error_code(exc) != "ConditionalCheckFailedException":
                raise describe(exc) from exc

    def aged(self, limit: int, older_than: float) -> list[WorksetRecord]:
        """Ready worksets below the top priority created before ``older_than``: those that
        ageing may promote past newer, higher-priority work (one Query per level)."""
        from daylib.config import PRIORITIES

        cutoff = utc_iso(older_than)
        out: list[WorksetRecord] = []
        for rank in range(1, len(PRIORITIES)):
            out.extend(self.active(S.READY, prefix=f"{rank}#", limit=limit, before=cutoff))
        return out

    def expired(self, now: float) -> list[WorksetRecord]:
        """Owned worksets whose lease has run out (their monitor died or stalled)."""
        return [r for st in S.OWNED for r in self.active(st)
                if r.lease_expires is not None and r.lease_expires < now]

    def due_retries(self, now: float) -> list[WorksetRecord]:
        return [r for r in self.active(S.RETRYING) if (r.retry_at or 0) <= now]

    def queue_depth(self, *, terminal: bool = True) -> QueueDepth:
        """Exact counts: active states by reading the sparse index (cost grows with active
        worksets only); terminal states by Select=COUNT on the done index."""
        requests = terminal_requests = 0
        states = dict.fromkeys(S.ALL, 0)
        by_cluster: dict[str, Counter[str]] = {}
        by_customer: dict[str, Counter[str]] = {}
        for st in S.ACTIVE:
            for page in self._query(IndexName=ACTIVE_INDEX,
                                    KeyConditionExpression="active_state = :s",
                                    ExpressionAttributeValues={":s": {"S": st}},
                                    ProjectionExpression="#c, customer_id, preferred_cluster",
                                    ExpressionAttributeNames={"#c": "cluster"}):
                requests += 1
                for raw in page.get("Items", []):
                    item = _from_ddb(raw)
                    states[st] += 1
                    cluster = item.get("cluster") or item.get("preferred_cluster") or "-"
                    by_cluster.setdefault(cluster, Counter())[st] += 1
                    by_customer.setdefault(item.get("customer_id") or "-", Counter())[st] += 1
        for st in S.TERMINAL if terminal else ():
            for page in self._query(IndexName=DONE_INDEX, Select="COUNT",
                                    KeyConditionExpression="done_state = :s",
                                    ExpressionAttributeValues={":s": {"S": st}}):
                terminal_requests += 1
                states[st] += int(page.get("Count", 0))
        return QueueDepth(states=states,
                          by_cluster={k: dict(v) for k, v in sorted(by_cluster.items())},
                          by_customer={k: dict(v) for k, v in sorted(by_customer.items())},
                          requests=requests, terminal_requests=terminal_requests)

    def newest(self, *, state: str | None = None, cluster: str | None = None,
             customer: str | None = None, limit: int = 50) -> list[WorksetRecord]:
        """Newest first, from the indexes (never a scan)."""
        wanted = [state] if state else list(S.ALL)
        out: list[WorksetRecord] = []
        for st in wanted:
            if st in S.ACTIVE:
                rows = self.active(st)
            else:
                rows = []
                for page in self._query(IndexName=DONE_INDEX, ScanIndexForward=False,
                                        KeyConditionExpression="done_state = :s",
                                        ExpressionAttributeValues={":s": {"S": st}}):
                    ids = [it["pk"]["S"] for it in page.get("Items", [])]
                    found = self.many(ids)
                    rows.extend(r for i in ids if (r := found.get(i)) is not None
                                and self._matches(r, cluster, customer))
                    if len(rows) >= limit:
                        break
            out.extend(r for r in rows if self._matches(r, cluster, customer))
        out.sort(key=lambda r: (r.created_at, r.workset_id), reverse=True)
        return out[:limit]

    @staticmethod
    def _matches(rec: WorksetRecord, cluster: str | None, customer: str | None) -> bool:
        return ((cluster is None or cluster in (rec.cluster, rec.preferred_cluster))
                and (customer is None or rec.customer_id == customer))

    # ------------------------------------------------------------------ writes

    def register(self, workset_id: str, *, actor: str, priority: str = "normal",
                 fields: dict[str, Any] | None = None, created: float | None = None) -> bool:
        """Record a new workset as ``ready``; a second registration of the same id is a no-op
        (returns False). With an outbox, the ``registered`` event rides on the same write."""
        now = self.clock() if created is None else created
        created_at = utc_iso(now)
        item: dict[str, Any] = {k: v for k, v in (fields or {}).items() if v not in (None, [], {})}
        item.update({
            "pk": workset_id, "workset_id": workset_id, "state": S.READY, "priority": priority,
            "created_at": created_at, "updated_at": created_at, "attempt": 1, "version": 1,
            "lease_token": 0, "active_state": S.READY,
            "queue_key": _queue_key(priority, created_at, workset_id),
            "history": [self._entry(None, S.READY, actor, "registered")], "history_total": 1,
            "outbox": {}, "event_seq": 0,
        })
        hook = self.outbox
        if hook is not None and hook.wants("registered"):
            written = self.clock()
            item["outbox"] = {outbox_key(1): hook.entry(
                "registered", f"registered by {actor}", by=actor, at=written, seq=1,
                state=S.READY, attempt=1)}
            item.update(event_seq=1, outbox_part=OUTBOX_PART,
                        outbox_due=written + hook.stale_seconds)
        ddb_item = {k: _to_ddb(v) for k, v in item.items()}
        try:
            self.client.put_item(TableName=self.table, Item=ddb_item,
                                 ConditionExpression="attribute_not_exists(pk)")
        except ClientError as exc:
            if error_code(exc) == "ConditionalCheckFailedException":
                return False
            raise describe(exc) from exc
        if item["event_seq"]:
            self._published_after(_record(ddb_item), [1])
        return True

    def claim(self, workset_id: str, owner: str, lease_seconds: float,
              *, expired: WorksetRecord | None = None,
              fields: dict[str, Any] | None = None) -> tuple[WorksetRecord, Lease]:
        """Own a workset: ready -> locked, or take over ``expired`` (an owned workset whose
        lease ran out; state and step are kept so the new owner resumes). One conditional
        write; raises ConflictError if someone else got there first.

        With an outbox, a fresh claim also records the ``started`` event (its seq is computed
        in the write, as the claimer does not know the item's) and removes the events this
        process already published (e.g. ``registered``)."""
        now = self.clock()
        hook = self.outbox
        done = hook.delivered(workset_id) if hook is not None else {}
        started = hook is not None and expired is None and hook.wants("started")
        try:
            rec = self._claim_write(workset_id, owner, lease_seconds, now, expired,
                                    hook if (started or done) else None, done, fields)
        except AwsError as exc:
            if exc.code != "ValidationException" or not (started or done):
                raise
            # An item written before outboxes existed has no outbox map to add to.
            rec = self._claim_write(workset_id, owner, lease_seconds, now, expired, None, {},
                                    fields)
            started, done = False, {}
        if hook is not None:
            hook.removed(workset_id, done)
            if expired is not None:
                self._adopted(rec)
            elif started and rec.outbox and CLAIM_KEY in rec.outbox:
                self._published_after(rec, [rec.outbox[CLAIM_KEY]["seq"]])
        return rec, Lease(workset_id, owner, rec.lease_token, now + lease_seconds)

    def _claim_write(self, workset_id: str, owner: str, lease_seconds: float, now: float,
                     expired: WorksetRecord | None, hook: OutboxHook | None,
                     done: dict[int, str],
                     fields: dict[str, Any] | None = None) -> WorksetRecord:
        up = _Update()
        if expired is not None:
            up.expect("state", "=", expired.state).expect("lease_expires", "<", now)
            up.expect("lease_token", "=", expired.lease_token)
            entry = self._entry(expired.state, expired.state, owner,
                                f"lease of {expired.owner} expired; taken over")
        else:
            up.expect("state", "=", S.READY)
            up.set("state", S.LOCKED).set("active_state", S.LOCKED)
            entry = self._entry(S.READY, S.LOCKED, owner, "claimed")
        up.set("owner_id", owner).set("lease_expires", now + lease_seconds)
        up.set("updated_at", utc_iso(now)).remove("reason")
        for key, value in (fields or {}).items():
            up.set(key, value)
        up.set_expr("step", f"if_not_exists({up.name('step')}, {up.value('stage')})")
        history = up.name("history")
        up.set_expr("history", f"list_append({history}, {up.value([entry])})")
        up.add("lease_token", 1).add("version", 1).add("history_total", 1)
        if hook is not None:
            for key in done.values():
                up.remove_nested("outbox", key)
            if expired is None and hook.wants("started"):
                up.set_nested("outbox", CLAIM_KEY, hook.entry(
                    "started", f"claimed by {owner}", by=owner, at=now, seq=None,
                    state=S.LOCKED))
                nxt = (f"if_not_exists({up.name('event_seq')}, {up.value(0)}) + "
                       f"{up.value(1)}")
                up.set_expr("event_seq", nxt).set_expr("claim_seq", nxt)
            up.remove("outbox_part").remove("outbox_due")  # owned: the owner publishes
        rec = self._call_update(workset_id, up)
        assert rec is not None
        return rec

    def heartbeat(self, lease: Lease, lease_seconds: float) -> Lease:
        """Extend the lease; raises LeaseLost if another owner, a cancel or a newer token
        intervened. Does not bump ``version``: it must not race the owner's own writes."""
        expires = self.clock() + lease_seconds
        up = _Update().set("lease_expires", expires)
        up.expect("owner_id", "=", lease.owner).expect("lease_token", "=", lease.token)
        up.expect_raw(f"{up.name('state')} IN ({up.value(S.LOCKED)}, {up.value(S.IN_PROGRESS)})")
        try:
            self.client.update_item(TableName=self.table, Key={"pk": {"S": lease.workset_id}},
                                    **up.kwargs())
        except ClientError as exc:
            if error_code(exc) == "ConditionalCheckFailedException":
                raise LeaseLost(f"lease on {lease.workset_id} lost") from None
            raise describe(exc) from exc
        return Lease(lease.workset_id, lease.owner, lease.token, expires)

    def transition(self, rec: WorksetRecord, to: str, *, actor: str, reason: str,
                   lease: Lease | None = None, fields: dict[str, Any] | None = None,
                   release: bool = False,
                   events: Sequence[tuple[str, str]] = ()) -> WorksetRecord:
        """Move ``rec`` to ``to`` with one conditional write naming the state and version it
        expects (and, for an owner, its fencing token). ``fields`` set (None removes).
        ``events`` ((event, message) pairs) are recorded in the same write when an outbox is
        attached, which publishes them after it; the same write drops events this process
        already published (the piggy-backed half of the outbox).

        An owner whose write loses only to an operator edit (same state, same token) retries
        on the fresh item; any other loss raises LeaseLost / ConflictError."""
        for _ in range(_OPERATOR_RETRIES):
            if to != rec.state and not S.allowed(rec.state, to):
                raise IllegalTransition(f"workset {rec.workset_id} is {rec.state}; cannot move "
                                        f"it to {to}")
            up = _Update()
            now = self.clock()
            up.expect("state", "=", rec.state).expect("version", "=", rec.version)
            if lease is not None:
                up.expect("owner_id", "=", lease.owner).expect("lease_token", "=", lease.token)
            priority = (fields or {}).get("priority", rec.priority)
            updated_at = utc_iso(now)
            up.set("state", to).set("updated_at", updated_at).set("version", rec.version + 1)
            self._index_fields(up, rec, to, priority)
            for k, v in (fields or {}).items():
                up.set(k, v)
            # The version condition means we know the item exactly, so the new record is
            # computed here rather than shipped back (ALL_NEW costs the emulator dearly).
            changes: dict[str, Any] = {k: v for k, v in (fields or {}).items()
                                       if k in _RECORD_FIELDS}
            if release or to not in S.OWNED:
                up.remove("owner_id").remove("lease_expires")
                changes.update(owner=None, lease_expires=None)
            if to != rec.state or reason:
                hist = self._bounded(rec.history, self._entry(rec.state, to, actor, reason))
                up.set("history", hist).set("history_total", rec.history_total + 1)
                changes.update(history=hist, history_total=rec.history_total + 1)
            new = replace(rec, state=to, version=rec.version + 1, updated_at=updated_at,
                          **{k: ([] if v is None and k in _LIST_FIELDS else
                                 {} if v is None and k in _DICT_FIELDS else v)
                             for k, v in changes.items()})
            new, added, dropped = self._outbox_changes(up, rec, new, actor, now, events)
            try:
                self._call_update(rec.workset_id, up, returns="NONE")
            except ConflictError:
                current = self.get(rec.workset_id)
                if lease is None or current is None:
                    raise
                if (current.owner != lease.owner or current.lease_token != lease.token
                        or current.state != rec.state):
                    raise LeaseLost(f"lease on {rec.workset_id} lost (now {current.state}, "
                                    f"owner {current.owner})") from None
                rec = current
                continue
            if self.outbox is not None:
                self.outbox.removed(rec.workset_id, dropped)
            self._published_after(new, added)
            return new
        raise StoreError(f"workset {rec.workset_id}: too many concurrent edits")

    def _outbox_changes(self, up: _Update, rec: WorksetRecord, new: WorksetRecord, actor: str,
                        now: float, events: Sequence[tuple[str, str]]
                        ) -> tuple[WorksetRecord, Seqs, Seqs]:
        """Add this write's events to ``up``, drop the ones this process published, rename a
        claim's entry to its seq, and keep the due marker right. Returns the new record, the
        seqs added and the seqs dropped."""
        hook = self.outbox
        if hook is None:
            return new, [], []
        box = dict(rec.outbox or {})
        done = hook.delivered(rec.workset_id)
        sets: dict[str, dict[str, Any]] = {}
        removes: Keys = []
        dropped: Seqs = []
        for key, e in list(box.items()):
            seq = e.get("seq")
            if seq in done:
                removes.append(key)
                dropped.append(seq)
                del box[key]
            elif key == CLAIM_KEY and seq is not None:
                removes.append(key)
                del box[key]
                box[outbox_key(seq)] = sets[outbox_key(seq)] = e
        seq = rec.event_seq
        added: Seqs = []
        for event, message in events:
            if not hook.wants(event):
                continue
            seq += 1
            box[outbox_key(seq)] = sets[outbox_key(seq)] = hook.entry(
                event, message, by=actor, at=now, seq=seq, rec=new)
            added.append(seq)
        if rec.outbox is None:
            if sets:
                up.set("outbox", box)
        else:
            for key, e in sets.items():
                up.set_nested("outbox", key, e)
            for key in removes:
                up.remove_nested("outbox", key)
        if seq != rec.event_seq:
            up.set("event_seq", seq)
        if box and new.state not in S.OWNED:
            oldest = min(float(e.get("at", now)) for e in box.values())
            up.set("outbox_part", OUTBOX_PART).set("outbox_due", oldest + hook.stale_seconds)
        else:
            up.remove("outbox_part").remove("outbox_due")
        outbox = box if (rec.outbox is not None or box) else None
        return replace(new, outbox=outbox, event_seq=seq), added, dropped

    def _published_after(self, rec: WorksetRecord, seqs: Seqs) -> None:
        if self.outbox is not None and (seqs or rec.outbox):
            self.outbox.after_write(self, rec, seqs)

    def _adopted(self, rec: WorksetRecord) -> None:
        if self.outbox is not None and rec.outbox:
            self.outbox.adopt(self, rec)

    def edit(self, workset_id: str, change: Callable[[WorksetRecord], tuple[str, dict[str, Any]]],
             *, actor: str, reason: str,
             events: Sequence[tuple[str, str]] = ()) -> WorksetRecord:
        """Operator read-modify-write, safe by version condition: ``change`` returns the
        target state and fields for the current record and is re-run on a lost race."""
        for _ in range(_OPERATOR_RETRIES):
            rec = self.require(workset_id)
            to, fields = change(rec)
            try:
                return self.transition(rec, to, actor=actor, reason=reason, fields=fields,
                                       events=events)
            except ConflictError:
                continue
        raise StoreError(f"workset {workset_id}: too many concurrent edits; try again")

    # ------------------------------------------------------------------ clusters

    def put_cluster(self, info: dict[str, Any]) -> None:
        """Register or heartbeat a cluster (a plain overwrite: one writer per cluster)."""
        item = {"pk": f"{CLUSTER_PARTITION}#{info['name']}", "active_state": CLUSTER_PARTITION,
                "queue_key": info["name"], "cluster_info": info}
        try:
            self.client.put_item(TableName=self.table,
                                 Item={k: _to_ddb(v) for k, v in item.items()})
        except ClientError as exc:
            raise describe(exc) from exc

    def clusters(self) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        for page in self._query(IndexName=ACTIVE_INDEX,
                                KeyConditionExpression="active_state = :s",
                                ExpressionAttributeValues={":s": {"S": CLUSTER_PARTITION}}):
            out.extend(_from_ddb(i).get("cluster_info", {}) for i in page.get("Items", []))
        return out

    # ------------------------------------------------------------------ concurrency caps

    def acquire_slot(self, scope: str, workset_id: str, limit: int, holder: str) -> bool:
        """Take one of ``limit`` slots of ``scope`` for ``workset_id`` (a counting semaphore
        on one item; holding it already is fine). False when the cap is reached."""
        key = {"pk": {"S": CAP_PREFIX + scope}}
        up = _Update()
        slot = f"{up.name('holders')}.{up.name(workset_id)}"
        up.sets.append(f"{slot} = {up.value({'at': self.clock(), 'by': holder})}")
        up.expect_raw(f"attribute_exists({slot}) OR size({up.name('holders')}) < "
                      f"{up.value(limit)}")
        if scope not in self._cap_items:
            self._ensure_cap_item(scope)  # the map must exist before SET holders.x
            self._cap_items.add(scope)
        try:
            self.client.update_item(TableName=self.table, Key=key, **up.kwargs())
        except ClientError as exc:
            if error_code(exc) == "ConditionalCheckFailedException":
                return False
            raise describe(exc) from exc
        return True

    def _ensure_cap_item(self, scope: str) -> None:
        try:
            self.client.put_item(TableName=self.table,
                                 Item={"pk": {"S": CAP_PREFIX + scope}, "holders": {"M": {}}},
                                 ConditionExpression="attribute_not_exists(pk)")
        except ClientError as exc:
            if error_code(exc) != "ConditionalCheckFailedException":
                raise describe(exc) from exc

    def release_slot(self, scope: str, workset_id: str) -> None:
        up = _Update()
        up.removes.append(f"{up.name('holders')}.{up.name(workset_id)}")
        up.expect_raw("attribute_exists(pk)")
        try:
            self.client.update_item(TableName=self.table, Key={"pk": {"S": CAP_PREFIX + scope}},
                                    **up.kwargs())
        except ClientError as exc:
            if error_code(exc) not in ("ConditionalCheckFailedException", "ValidationException"):
                raise describe(exc) from exc

    def slot_holders(self, scope: str) -> dict[str, dict[str, Any]]:
        try:
            resp = self.client.get_item(TableName=self.table,
                                        Key={"pk": {"S": CAP_PREFIX + scope}},
                                        ConsistentRead=True)
        except ClientError as exc:
            raise describe(exc) from exc
        return dict(_from_ddb(resp.get("Item", {})).get("holders", {}))

    def release_stale_slot(self, scope: str, workset_id: str, taken_at: float) -> bool:
        """Drop a holder left by a crash, only if it is still the entry we judged stale."""
        up = _Update()
        slot = f"{up.name('holders')}.{up.name(workset_id)}"
        up.removes.append(slot)
        up.expect_raw(f"{slot}.{up.name('at')} = {up.value(taken_at)}")
        try:
            self.client.update_item(TableName=self.table, Key={"pk": {"S": CAP_PREFIX + scope}},
                                    **up.kwargs())
            return True
        except ClientError as exc:
            if error_code(exc) in ("ConditionalCheckFailedException", "ValidationException"):
                return False
            raise describe(exc) from exc
    # ------------------------------------------------------------------ outbox

    def ack_outbox(self, workset_id: str, keys: Keys) -> None:
        """Remove published outbox entries (by key) without touching anything else, so it
        never conflicts with the owner's writes; also drops the due marker when nothing is
        left. Removing entries already gone is a no-op."""
        base = "attribute_exists(pk)"
        up = _Update()
        for key in keys:
            up.remove_nested("outbox", key)
        up.remove("outbox_part").remove("outbox_due")
        box = up.name("outbox")
        if keys:
            present = " AND ".join(f"attribute_exists({up.nested('outbox', k)})" for k in keys)
            up.expect_raw(f"{base} AND size({box}) = {up.value(len(keys))} AND {present}")
        else:
            up.expect_raw(f"{base} AND (attribute_not_exists({box}) OR size({box}) = "
                          f"{up.value(0)})")
        if self._try_update(workset_id, up) or not keys:
            return
        up = _Update()
        for key in keys:
            up.remove_nested("outbox", key)
        up.expect_raw(f"{base} AND attribute_exists({up.name('outbox')})")
        self._try_update(workset_id, up)

    def _try_update(self, workset_id: str, up: _Update) -> bool:
        """One conditional update; False if the condition did not hold (nothing read back)."""
        try:
            self.client.update_item(TableName=self.table, Key={"pk": {"S": workset_id}},
                                    **up.kwargs())
        except ClientError as exc:
            if error_code(exc) == "ConditionalCheckFailedException":
                return False
            raise describe(exc) from exc
        return True

    def outbox_due(self, now: float, limit: int = 100) -> Keys:
        """Worksets whose pending events are older than the outbox's stale limit."""
        ids: Keys = []
        for page in self._query(IndexName=OUTBOX_INDEX, Limit=limit,
                                KeyConditionExpression="outbox_part = :p AND outbox_due <= :t",
                                ExpressionAttributeValues={":p": {"S": OUTBOX_PART},
                                                           ":t": _to_ddb(now)}):
            ids.extend(i["pk"]["S"] for i in page.get("Items", []))
            if len(ids) >= limit:
                break
        return ids[:limit]

    # ------------------------------------------------------------------ control item

    def control(self) -> ControlRecord:
        try:
            resp = self.client.get_item(TableName=self.table, Key={"pk": {"S": CONTROL_PK}},
                                        ConsistentRead=True)
        except ClientError as exc:
            raise describe(exc) from exc
        d = _from_ddb(resp.get("Item", {}))
        return ControlRecord(paused=bool(d.get("paused", False)), reason=d.get("reason"),
                             changed_by=d.get("changed_by"), changed_at=d.get("changed_at"))

    def set_paused(self, paused: bool, *, actor: str, reason: str = "") -> ControlRecord:
        up = _Update().set("paused", paused).set("changed_by", actor)
        up.set("changed_at", utc_iso(self.clock())).set("reason", reason or None)
        try:
            resp = self.client.update_item(TableName=self.table, Key={"pk": {"S": CONTROL_PK}},
                                           ReturnValues="ALL_NEW", **up.kwargs())
        except ClientError as exc:
            raise describe(exc) from exc
        d = _from_ddb(resp["Attributes"])
        return ControlRecord(paused=bool(d.get("paused")), reason=d.get("reason"),
                             changed_by=d.get("changed_by"), changed_at=d.get("changed_at"))
