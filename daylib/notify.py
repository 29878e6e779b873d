"""Notifications: one event per state change (PRODUCT.md "Notifications").

The monitor and CLI call ``Notifier.emit``; ``NullNotifier`` is used when no topic is
configured. A publish failure never blocks or reverts a transition.
"""

from __future__ import annotations

import json
import logging
from typing import Any, Protocol

from botocore.exceptions import BotoCoreError, ClientError

from daylib.store.records import WorksetRecord, utc_iso

log = logging.getLogger(__name__)
SCHEMA_VERSION = 1
EVENTS = ("registered", "started", "step", "retrying", "completed", "failed", "cancelled",
          "dead_lettered")


def event_body(event: str, rec: WorksetRecord, message: str) -> dict[str, Any]:
    return {
        "schema_version": SCHEMA_VERSION, "event": event, "workset_id": rec.workset_id,
        "state": rec.state, "step": rec.step, "cluster": rec.cluster,
        "customer_id": rec.customer_id, "attempt": rec.attempt,
        "error_category": rec.error_category, "message": message, "timestamp": utc_iso(),
    }


class Notifier(Protocol):
    def emit(self, event: str, rec: WorksetRecord, message: str = "") -> None: ...


class NullNotifier:
    def emit(self, event: str, rec: WorksetRecord, message: str = "") -> None:
        log.debug("event %s for %s: %s", event, rec.workset_id, message)


class SnsNotifier:
    """Publishes to one SNS topic with attributes subscribers can filter on."""

    def __init__(self, client: Any, topic_arn: str) -> None:
        self.client = client
        self.topic_arn = topic_arn

    def emit(self, event: str, rec: WorksetRecord, message: str = "") -> None:
        body = event_body(event, rec, message)
        attrs = {k: {"DataType": "String", "StringValue": str(v)} for k, v in (
            ("event", event), ("workset_id", rec.workset_id),
            ("customer_id", rec.customer_id or "-"), ("state", rec.state))}
        try:
            self.client.publish(TopicArn=self.topic_arn, Message=json.dumps(body),
                                MessageAttributes=attrs)
        except (ClientError, BotoCoreError) as exc:
            log.warning("could not publish %s for %s: %s", event, rec.workset_id, exc)
