"""The item layout every backend shares: keys, sparse-index attributes and the record codec.

Both backends keep a workset as the same plain item (``pk`` = workset id), so ordering,
projections and index membership behave alike; only how an item is stored and how a
conditional write is expressed differ.
"""

from __future__ import annotations

from typing import Any

from daylib import states as S
from daylib.spec import priority_rank
from daylib.store.records import WorksetRecord

CONTROL_PK = "#control"
CLUSTER_PARTITION = "#cluster"  # cluster items live in their own active-index partition
CAP_PREFIX = "#cap#"
ACTIVE_INDEX = "active-index"
DONE_INDEX = "done-index"
OUTBOX_INDEX = "outbox-index"
OUTBOX_PART = "due"
CLAIM_KEY = "claim"
ACTIVE_PROJECTION = ("workset_id", "state", "priority", "customer_id", "cluster",
                     "preferred_cluster", "created_at", "owner_id", "lease_expires",
                     "retry_at", "after", "attempt", "lease_token", "step", "routing",
                     "reason", "cluster_info")


def outbox_key(seq: int) -> str:
    """Map key of an outbox entry: its sequence number, zero-padded."""
    return f"{seq:010d}"


def queue_key(priority: str, created_at: str, workset_id: str) -> str:
    """Sort key of the active index: priority rank, then age, then id."""
    return f"{priority_rank(priority)}#{created_at}#{workset_id}"


def index_fields(rec: WorksetRecord, state: str, priority: str) -> dict[str, Any]:
    """Attributes that put an item in exactly one of the active and done indexes (None =
    remove); only those that change, so a write stays small and leaves index keys alone."""
    was_active = rec.state in S.ACTIVE
    if state in S.ACTIVE:
        out: dict[str, Any] = {}
        if state != rec.state or not was_active:
            out["active_state"] = state
        if priority != rec.priority or not was_active:
            out["queue_key"] = queue_key(priority, rec.created_at, rec.workset_id)
        if not was_active:
            out.update(done_state=None, created_key=None)
        return out
    if not was_active:
        return {"done_state": state} if state != rec.state else {}
    return {"done_state": state, "created_key": f"{rec.created_at}#{rec.workset_id}",
            "active_state": None, "queue_key": None}


def _outbox(d: dict[str, Any]) -> dict[str, dict[str, Any]] | None:
    box = d.get("outbox")
    if not isinstance(box, dict):
        return None
    out = {str(k): dict(v) for k, v in box.items() if isinstance(v, dict)}
    claim = out.get(CLAIM_KEY)
    if claim is not None and "seq" not in claim and d.get("claim_seq") is not None:
        claim["seq"] = int(d["claim_seq"])
    return out


def record_from_item(d: dict[str, Any]) -> WorksetRecord:
    """A plain item (numbers as int/float) as the record callers see."""
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
        events_dropped=int(d.get("events_dropped", 0)),
    )


def projected(item: dict[str, Any]) -> WorksetRecord:
    """What the active index returns: the projected attributes, version unknown (0), so a
    write based on it must read the item first."""
    keep = {k: v for k, v in item.items() if k in ACTIVE_PROJECTION}
    return record_from_item({**keep, "version": 0})


def matches(rec: WorksetRecord, cluster: str | None, customer: str | None) -> bool:
    """The ``list`` filters."""
    return ((cluster is None or cluster in (rec.cluster, rec.preferred_cluster))
            and (customer is None or rec.customer_id == customer))
