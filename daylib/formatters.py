"""Text renderers for the command line and the demo: records in, plain text out.

Kept apart from ``cli`` so the demo (and anything else that prints a queue) need not import
the command line.
"""

from __future__ import annotations

from typing import Any

from daylib import states as S
from daylib.store.records import QueueDepth, WorksetRecord, utc_iso
from daylib.textable import table as _table

_EPOCH_FIELDS = ("lease_expires", "retry_at", "failed_at")


def iso_times(d: dict[str, Any]) -> dict[str, Any]:
    """Every timestamp in one format (ISO 8601 UTC); records keep epochs internally."""
    return {k: utc_iso(v) if k in _EPOCH_FIELDS and isinstance(v, int | float) else v
            for k, v in d.items()}


def format_queue(depth: QueueDepth) -> str:
    out = [_table(["state", "count"], [[s, depth.states[s]] for s in S.ALL]
                  + [["total", depth.total]])]
    for title, groups in (("cluster", depth.by_cluster), ("customer", depth.by_customer)):
        if groups:
            rows = [[name] + [counts.get(s, 0) for s in S.ACTIVE] for name, counts in
                    groups.items()]
            out.append(_table([title, *S.ACTIVE], rows))
    return "\n\n".join(out)


def format_list(rows: list[WorksetRecord]) -> str:
    if not rows:
        return "no worksets"
    return _table(["workset", "state", "step", "priority", "cluster", "customer", "attempt",
                   "created"],
                  [[r.workset_id, r.state, r.step, r.priority, r.cluster or r.preferred_cluster,
                    r.customer_id, r.attempt, r.created_at] for r in rows])


def format_show(rec: WorksetRecord, extra: dict[str, Any]) -> str:
    d = rec.public()
    summary = d["summary"] or {}
    lines = [
        f"workset     {rec.workset_id}  ({rec.format or '?'} format)",
        f"state       {rec.state}" + (f"  step {rec.step}" if rec.step else "")
        + (f"  done: {', '.join(rec.steps_done)}" if rec.steps_done else ""),
        f"priority    {rec.priority}   {extra['attempt_of']}",
        f"cluster     {rec.cluster or '-'}   preferred {rec.preferred_cluster or '-'}"
        f"   customer {rec.customer_id or '-'}",
        f"spec        {summary.get('samples', '?')} sample(s), reference "
        f"{summary.get('reference_genome') or '-'}, pipeline {summary.get('pipeline') or '-'}",
        f"source      {rec.s3_uri or '-'}",
        f"results     {rec.results_uri or '-'}",
        f"logs        {extra['logs_uri']}  (daylily-workset logs {rec.workset_id})",
    ]
    if extra["step_seconds"]:
        lines.append("durations   " + ", ".join(f"{k} {v:.1f}s" for k, v in
                                                extra["step_seconds"].items()))
    if rec.route:
        lines.append(f"routed      {rec.cluster}: {rec.route}")
    if rec.reason and rec.state == S.READY:
        lines.append(f"waiting     {rec.reason}")
    if rec.owner:
        lines.append(f"owner       {rec.owner}  (lease token {rec.lease_token})")
    if rec.jobs:
        lines.append("jobs        " + ", ".join(f"{k}={v}" for k, v in rec.jobs.items()))
    if rec.error or rec.intake_error:
        lines.append(f"error       [{rec.error_category}] {rec.error or rec.intake_error}")
        if rec.error_rule:
            lines.append(f"rule        {rec.error_rule}")
    if rec.decision:
        lines.append(f"decision    {rec.decision}")
    if rec.error_category or rec.retries_used or rec.attempt_base > 1:
        lines.append(f"retries     {rec.retries_used} of {rec.max_retries} used"
                     + (f" (budget renewed at attempt {rec.attempt_base})"
                        if rec.attempt_base > 1 else ""))
    if rec.failed_at:
        lines.append(f"failed at   {utc_iso(rec.failed_at)}")
    if rec.retry_at:
        lines.append(f"retry at    {utc_iso(rec.retry_at)}")
    if rec.resources:
        lines.append("resources   " + ", ".join(f"{k}={v}" for k, v in rec.resources.items())
                     + f"  (raised by {rec.resource_retries} resource retr"
                     + ("y)" if rec.resource_retries == 1 else "ies)"))
    if rec.outbox:
        lines.append(f"events      {len(rec.outbox)} not yet published")
    lines.append("history" + (f" ({d['history_omitted']} older entries omitted)"
                              if d["history_omitted"] else ""))
    lines.append(_timeline(rec.history))
    return "\n".join(lines)


def _timeline(history: list[dict[str, Any]]) -> str:
    """History as a timeline: each entry with the time since the previous one."""
    from daylib.metrics import iso_epoch

    rows, prev = [], None
    for h in history:
        at = h.get("at")
        gap = f"+{iso_epoch(at) - iso_epoch(prev):.1f}s" if at and prev else ""
        prev = at or prev
        move = f"{h.get('from') or '-'} -> {h.get('to')}" if h.get("from") != h.get("to") \
            else str(h.get("to"))
        rows.append([at, gap, move, h.get("actor"), h.get("reason")])
    return _table(["at", "after", "state", "actor", "reason"], rows)


def format_clusters(rows: list[dict[str, Any]], stacks: list[dict[str, Any]] | None,
                    now: float) -> str:
    """Known clusters, then (with ``--discover``) the account's ParallelCluster stacks."""
    text = _table(["cluster", "status", "region", "vCPUs free/total", "memory GB free",
                   "$/vCPU-h", "slots", "locked", "in_progress", "heartbeat s ago"],
                  [[r["name"], r["status"], r["region"], f"{r['cpus_free']}/{r['cpus_total']}",
                    f"{r['memory_mb_free'] / 1024:.0f}", f"{r['cost_per_vcpu_hour']:g}",
                    r["max_concurrent"], r["worksets"].get("locked", 0),
                    r["worksets"].get("in_progress", 0),
                    f"{now - r['heartbeat_at']:.0f}" if r["heartbeat_at"] else "-"]
                   for r in rows]) if rows else "no clusters registered"
    if stacks is not None:
        text += "\n\nParallelCluster stacks in the account:\n" + (
            _table(["stack", "status", "version"],
                   [[s["name"], s["status"], s["version"]] for s in stacks])
            if stacks else "none")
    return text


def format_letters(rows: list[dict[str, Any]]) -> str:
    """Dead-lettered worksets, one row each."""
    return "dead-letter queue is empty" if not rows else _table(
        ["workset", "category", "rule", "attempts", "dead-lettered", "state now", "error"],
        [[r["workset_id"], r["category"], r["rule"], r["attempts"], r["dead_lettered_at"],
          r["state"], (r["error"] or "")[:60]] for r in rows])
