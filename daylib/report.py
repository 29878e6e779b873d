"""``report``: what each workset took (per step, attempts) and cost, with totals per customer.

Why from the history: every transition is already recorded with its time, so a step's
runtime is the gap between the write that started it (the claim or the previous step's
checkpoint) and its own checkpoint, and the time a workset held a cluster is the sum of the
intervals it spent locked or in progress (failed attempts included). Cost is an estimate:
vCPUs asked for x hours held x the cluster's configured price per vCPU-hour.
"""

from __future__ import annotations

import csv
import io
import itertools
import json
import re
import time
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from daylib import states as S
from daylib.metrics import iso_epoch
from daylib.progress import Tally
from daylib.store.records import WorksetRecord
from daylib.textable import table

_DONE = re.compile(r"^(stage|run) done$")


@dataclass(frozen=True)
class Row:
    workset_id: str
    customer_id: str
    cluster: str
    state: str
    attempts: int
    stage_seconds: float | None
    run_seconds: float | None
    export_seconds: float | None
    busy_seconds: float
    vcpus: int
    vcpu_hours: float
    cost: float | None


def step_seconds(history: Sequence[dict[str, Any]]) -> dict[str, float]:
    """Runtime of each step that finished: the gap from the previous entry to its
    checkpoint (the newest run of a step wins)."""
    out: dict[str, float] = {}
    for prev, entry in itertools.pairwise(history):
        reason = entry.get("reason") or ""
        m = _DONE.match(reason)
        step = m.group(1) if m else ("export" if reason == "all steps done" else None)
        if step and prev.get("at") and entry.get("at"):
            out[step] = round(iso_epoch(entry["at"]) - iso_epoch(prev["at"]), 3)
    return out


def busy_seconds(history: Sequence[dict[str, Any]], now: float) -> float:
    """Seconds spent locked or in progress (held by a monitor), over every attempt."""
    total = 0.0
    for i, entry in enumerate(history):
        if entry.get("to") not in S.OWNED or not entry.get("at"):
            continue
        end = iso_epoch(history[i + 1]["at"]) if i + 1 < len(history) else now
        total += max(0.0, end - iso_epoch(entry["at"]))
    return round(total, 3)


def _vcpus(rec: WorksetRecord) -> int:
    try:
        spec = json.loads(rec.spec_json or "{}")
    except ValueError:
        spec = {}
    vcpus = ((spec.get("resources") or {}).get("vcpus")) if isinstance(spec, dict) else None
    return int(vcpus) if isinstance(vcpus, int) and vcpus > 0 else 1


def row(rec: WorksetRecord, prices: dict[str, float], now: float | None = None) -> Row:
    now = time.time() if now is None else now
    steps = step_seconds(rec.history)
    busy = busy_seconds(rec.history, now)
    vcpus = _vcpus(rec)
    vcpu_hours = round(vcpus * busy / 3600.0, 6)
    price = prices.get(rec.cluster or "")
    return Row(rec.workset_id, rec.customer_id or "-", rec.cluster or "-", rec.state,
               rec.attempt, steps.get("stage"), steps.get("run"), steps.get("export"), busy,
               vcpus, vcpu_hours, round(vcpu_hours * price, 6) if price is not None else None)


def totals(rows: Iterable[Row]) -> dict[str, dict[str, Any]]:
    """Per customer: worksets, attempts, vCPU-hours and cost (unknown prices count 0)."""
    out: dict[str, dict[str, Any]] = {}
    for r in rows:
        t = out.setdefault(r.customer_id, {"worksets": 0, "attempts": 0, "vcpu_hours": 0.0,
                                           "cost": 0.0})
        t["worksets"] += 1
        t["attempts"] += r.attempts
        t["vcpu_hours"] = round(t["vcpu_hours"] + r.vcpu_hours, 6)
        t["cost"] = round(t["cost"] + (r.cost or 0.0), 6)
    return dict(sorted(out.items()))


def _fmt(value: float | None, digits: int = 1) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def render(rows: list[Row], fmt: str) -> str:
    per_customer = totals(rows)
    if fmt == "json":
        grand = {k: round(sum(t[k] for t in per_customer.values()), 6)
                 for k in ("worksets", "attempts", "vcpu_hours", "cost")}
        return json.dumps({"worksets": [asdict(r) for r in rows], "customers": per_customer,
                           "total": grand}, indent=2, sort_keys=True)
    if fmt == "csv":
        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator="\n")
        fields = list(Row.__dataclass_fields__)
        writer.writerow(fields)
        for r in rows:
            writer.writerow(["" if v is None else v for v in asdict(r).values()])
        return buf.getvalue().rstrip("\n")
    body = table(["workset", "customer", "cluster", "state", "attempts", "stage s", "run s",
                  "export s", "held s", "vCPU-h", "cost $"],
                 [[r.workset_id, r.customer_id, r.cluster, r.state, r.attempts,
                   _fmt(r.stage_seconds), _fmt(r.run_seconds), _fmt(r.export_seconds),
                   _fmt(r.busy_seconds), _fmt(r.vcpu_hours, 4), _fmt(r.cost, 4)]
                  for r in rows]) if rows else "no worksets in the period"
    summary = table(["customer", "worksets", "attempts", "vCPU-h", "cost $"],
                    [[c, t["worksets"], t["attempts"], _fmt(t["vcpu_hours"], 4),
                      _fmt(t["cost"], 4)] for c, t in per_customer.items()])
    return body + ("\n\n" + summary if rows else "")


def report_rows(store: Any, since: str | None, now: float | None = None,
                tally: Tally | None = None) -> list[Row]:
    """Every workset created since ``since`` (all when None), oldest first, priced with the
    registered clusters' cost per vCPU-hour; ``tally`` counts the rows read."""
    from daylib.listing import Filters, page

    prices = {c["name"]: float(c.get("cost_per_vcpu_hour") or 0.0) for c in store.clusters()
              if c.get("name")}
    records: list[WorksetRecord] = []
    token = None
    while True:
        got = page(store, Filters(since=since), 100, token, tally)
        full = store.many([r.workset_id for r in got.rows if not r.history])
        records.extend(full.get(r.workset_id, r) for r in got.rows)
        token = got.next_token
        if not token:
            break
    records.sort(key=lambda r: (r.created_at, r.workset_id))
    return [row(r, prices, now) for r in records]
