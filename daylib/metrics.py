"""Metrics as CloudWatch Embedded Metric Format (EMF) lines on the monitor's log stream.

Why EMF: CloudWatch extracts metrics from log lines that carry an ``_aws`` block, so the
monitor reports metrics with zero PutMetricData calls (no API cost, no extra credentials,
nothing lost when the API throttles). One JSON object per line; the CloudWatch agent (or
journald forwarded to CloudWatch Logs) does the rest. The schema below is documented in
docs/metrics.md, and a test parses emitted lines against that document.

Dimensions stay low-cardinality: cluster, state, step, priority, error category, customer.
Workset and monitor ids travel as plain properties (searchable in Logs Insights, not metrics).
"""

from __future__ import annotations

import json
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

from daylib.config import PRIORITIES, Settings
from daylib.spec import priority_rank


@dataclass(frozen=True)
class MetricDef:
    unit: str
    dimensions: tuple[tuple[str, ...], ...]
    help: str


SCHEMA: dict[str, MetricDef] = {
    "Transitions": MetricDef("Count", (("cluster", "state"), ("cluster", "customer", "state")),
                             "a workset entered `state` on this cluster"),
    "StepDuration": MetricDef("Seconds", (("cluster", "step"),),
                              "wall time of one step attempt, from submission to its end"),
    "Retries": MetricDef("Count", (("cluster", "category"),),
                         "a failure that will be retried, by error category"),
    "DeadLetters": MetricDef("Count", (("cluster", "category"), ("cluster", "customer")),
                             "a workset that gave up (failed, sent to the dead-letter queue)"),
    "ClaimConflicts": MetricDef("Count", (("cluster",),),
                                "a claim lost to another monitor (contention)"),
    "LeaseTakeovers": MetricDef("Count", (("cluster",),),
                                "a workset taken over after its owner's lease ran out"),
    "QueueDepth": MetricDef("Count", ((),),
                            "ready worksets waiting for a slot, all priorities (the scaling "
                            "signal; use the Maximum statistic)"),
    "QueueDepthByPriority": MetricDef("Count", (("priority",),),
                                      "ready worksets waiting, per priority"),
    "OldestReadyAge": MetricDef("Seconds", ((),), "age of the oldest ready workset"),
    "OldestReadyAgeByPriority": MetricDef("Seconds", (("priority",),),
                                          "age of the oldest ready workset, per priority"),
    "RunningWorksets": MetricDef("Count", (("cluster",),),
                                 "worksets this monitor runs right now"),
}


class ReadyCounts(Protocol):
    """What the queue sample needs from the store."""

    def ready_summary(self, rank: int) -> tuple[int, str | None]: ...


def iso_epoch(stamp: str) -> float:
    """Epoch seconds of a record timestamp (``utc_iso``: ``2026-01-02T03:04:05.678Z``)."""
    return datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC).timestamp()


class Metrics:
    """Writes EMF lines; ``write`` receives one line (no newline). Disabled = no output."""

    def __init__(self, namespace: str, cluster: str, *, enabled: bool = True,
                 write: Callable[[str], None] | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        self.namespace = namespace
        self.cluster = cluster
        self.enabled = enabled
        self.clock = clock
        self._write = write or self._stderr
        self._lock = threading.Lock()

    @classmethod
    def from_settings(cls, settings: Settings, cluster: str) -> Metrics:
        m = settings.metrics
        return cls(m.namespace, cluster, enabled=m.enabled)

    @staticmethod
    def _stderr(line: str) -> None:
        sys.stderr.write(line + "\n")
        sys.stderr.flush()

    def emit(self, name: str, value: float, dims: dict[str, str] | None = None,
             **props: Any) -> None:
        """One metric value with its documented dimension sets; ``props`` ride along."""
        if not self.enabled:
            return
        spec = SCHEMA[name]
        values = {"cluster": self.cluster, **(dims or {})}
        sets = [list(s) for s in spec.dimensions if all(values.get(d) for d in s)]
        doc: dict[str, Any] = {
            "_aws": {"Timestamp": int(self.clock() * 1000), "CloudWatchMetrics": [{
                "Namespace": self.namespace, "Dimensions": sets,
                "Metrics": [{"Name": name, "Unit": spec.unit}]}]},
            **{k: v for k, v in props.items() if v is not None},
            **{k: v for k, v in values.items() if v},
            name: value,
        }
        line = json.dumps(doc, sort_keys=True, separators=(",", ":"))
        with self._lock:
            self._write(line)

    def transition(self, state: str, customer: str | None, **props: Any) -> None:
        self.emit("Transitions", 1, {"state": state, "customer": customer or ""}, **props)

    def step_duration(self, step: str, seconds: float, outcome: str, **props: Any) -> None:
        self.emit("StepDuration", round(seconds, 3), {"step": step}, outcome=outcome, **props)

    def failure(self, category: str, retry: bool, customer: str | None, **props: Any) -> None:
        if retry:
            self.emit("Retries", 1, {"category": category}, **props)
        else:
            self.emit("DeadLetters", 1, {"category": category, "customer": customer or ""},
                      **props)

    def sample_queue(self, store: ReadyCounts, running: int, *,
                     known_empty: bool = False) -> None:
        """Ready depth and oldest-ready age per priority, plus totals (each a few reads;
        none when the caller just saw the ready index empty)."""
        if not self.enabled:
            return
        now = self.clock()
        total, oldest = 0, 0.0
        for name in PRIORITIES:
            count, first = (0, None) if known_empty else store.ready_summary(priority_rank(name))
            age = max(0.0, now - iso_epoch(first)) if first else 0.0
            total += count
            oldest = max(oldest, age)
            self.emit("QueueDepthByPriority", count, {"priority": name})
            self.emit("OldestReadyAgeByPriority", round(age, 1), {"priority": name})
        self.emit("QueueDepth", total)
        self.emit("OldestReadyAge", round(oldest, 1))
        self.emit("RunningWorksets", running)
