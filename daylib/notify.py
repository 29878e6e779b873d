"""Notifications: the event schema of PRODUCT.md "Notifications" and the SNS topic they go to.

Events are not published from here directly: a write records them on the workset item and
returns the record; its caller hands that to the outbox (daylib/outbox.py), which publishes
them through ``SnsTopic``.

Body (JSON): ``schema_version``, ``event``, ``seq`` (per workset, increasing: consumers dedupe
on ``(workset_id, seq)`` and may order by it), ``workset_id``, ``state``, ``step``,
``cluster``, ``customer_id``, ``attempt``, ``error_category``, ``error_rule``, ``message``,
``timestamp``. Message attributes (for filter policies): ``event``, ``workset_id``,
``customer_id`` ("-" when none), ``state``, ``error_category`` ("-" when none).
"""

from __future__ import annotations

import json
from typing import Any

from daylib.aws import guard
from daylib.store.records import WorksetRecord, utc_iso

SCHEMA_VERSION = 1
EVENTS = ("registered", "started", "step", "retrying", "completed", "failed", "cancelled",
          "dead_lettered")


def event_body(entry: dict[str, Any], rec: WorksetRecord) -> dict[str, Any]:
    """The published body of one outbox entry of ``rec``."""
    def pick(name: str) -> Any:
        return entry[name] if name in entry else getattr(rec, name)
    return {
        "schema_version": SCHEMA_VERSION, "event": entry["event"], "seq": entry.get("seq"),
        "workset_id": rec.workset_id, "state": pick("state"), "step": pick("step"),
        "cluster": pick("cluster"), "customer_id": rec.customer_id, "attempt": pick("attempt"),
        "error_category": pick("error_category"), "error_rule": pick("error_rule"),
        "message": entry.get("message", ""), "timestamp": utc_iso(float(entry["at"])),
    }


def attributes(body: dict[str, Any]) -> dict[str, dict[str, str]]:
    """SNS message attributes for filter policies (values never empty)."""
    return {k: {"DataType": "String", "StringValue": str(body.get(k) or "-")}
            for k in ("event", "workset_id", "customer_id", "state", "error_category")}


class SnsTopic:
    """One SNS topic; ``publish`` raises AwsError so the outbox can retry later."""

    def __init__(self, client: Any, topic_arn: str) -> None:
        self.client = guard(client)
        self.topic_arn = topic_arn

    def publish(self, body: dict[str, Any]) -> None:
        self.client.publish(TopicArn=self.topic_arn, Message=json.dumps(body, default=str),
                            MessageAttributes=attributes(body))


def find_topic(client: Any, name: str) -> str | None:
    """The ARN of the topic called ``name`` in this account and region, or None."""
    for page in guard(client).get_paginator("list_topics").paginate():
        for topic in page.get("Topics", []):
            arn = str(topic["TopicArn"])
            if arn.rsplit(":", 1)[-1] == name:
                return arn
    return None


def ensure_topic(client: Any, name: str) -> tuple[str, bool]:
    """Create the topic if missing (CreateTopic is idempotent); (arn, created)."""
    existing = find_topic(client, name)
    if existing:
        return existing, False
    return str(guard(client).create_topic(Name=name)["TopicArn"]), True


def topic_for(client: Any, *, topic_arn: str | None, topic_name: str) -> SnsTopic | None:
    """The configured topic (ARN, else looked up by name); None if it does not exist."""
    if topic_arn:
        return SnsTopic(client, topic_arn)
    arn = find_topic(client, topic_name)
    return SnsTopic(client, arn) if arn else None
