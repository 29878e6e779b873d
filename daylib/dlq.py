"""The dead-letter queue: one SQS message per workset that gave up (ended ``failed``).

A message is sent by the outbox after the write that failed the workset (so it is sent at
least once, and possibly twice: readers group by workset). Body (JSON): ``schema_version``,
``workset_id``, ``category``, ``rule``, ``error``, ``attempts``, ``decision``,
``dead_lettered_at``, ``seq``; message attribute ``workset_id``.

Reading: SQS has no "peek", so ``letters`` receives every message with a short visibility
timeout and then makes them visible again at once; while a listing runs (about a second)
another reader sees fewer. ``delete`` removes the messages of given worksets the same way.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from daylib.aws import find_queue, guard
from daylib.store.records import WorksetRecord, utc_iso

log = logging.getLogger(__name__)
SCHEMA_VERSION = 1
_EMPTY_POLLS = 2


@dataclass(frozen=True)
class DeadLetter:
    workset_id: str
    category: str | None
    rule: str | None
    error: str | None
    attempts: int | None
    decision: str | None
    dead_lettered_at: str | None
    seq: int | None
    message_id: str

    def public(self) -> dict[str, Any]:
        return {"workset_id": self.workset_id, "category": self.category, "rule": self.rule,
                "error": self.error, "attempts": self.attempts, "decision": self.decision,
                "dead_lettered_at": self.dead_lettered_at, "seq": self.seq,
                "message_id": self.message_id}


def letter_body(entry: dict[str, Any], rec: WorksetRecord) -> dict[str, Any]:
    """The DLQ message for a ``dead_lettered`` outbox entry of ``rec``."""
    return {"schema_version": SCHEMA_VERSION, "workset_id": rec.workset_id,
            "category": entry.get("error_category", rec.error_category),
            "rule": entry.get("error_rule", rec.error_rule),
            "error": entry.get("error", rec.error), "attempts": entry.get("attempt", rec.attempt),
            "decision": entry.get("decision", rec.decision),
            "dead_lettered_at": utc_iso(float(entry["at"])), "seq": entry.get("seq")}


class DeadLetterQueue:
    def __init__(self, client: Any, queue_url: str, *, visibility_seconds: int = 30) -> None:
        self.client = guard(client)
        self.queue_url = queue_url
        self.visibility_seconds = visibility_seconds

    def send(self, body: dict[str, Any]) -> None:
        self.client.send_message(
            QueueUrl=self.queue_url, MessageBody=json.dumps(body, default=str),
            MessageAttributes={"workset_id": {"DataType": "String",
                                              "StringValue": str(body["workset_id"])}})

    def letters(self) -> list[DeadLetter]:
        """Every message in the queue (oldest first), left in the queue."""
        return self._sweep(lambda _letter: False)

    def delete(self, select: Callable[[DeadLetter], bool]) -> list[DeadLetter]:
        """Delete every message ``select`` picks; returns the deleted ones."""
        return self._sweep(select, deleting=True)

    def _sweep(self, remove: Callable[[DeadLetter], bool],
               deleting: bool = False) -> list[DeadLetter]:
        """Receive everything (hidden briefly), delete what ``remove`` selects, make the rest
        visible again. Returns the deleted letters when ``deleting``, else all of them."""
        seen: dict[str, tuple[DeadLetter, str]] = {}
        empty = 0
        while empty < _EMPTY_POLLS:
            resp = self.client.receive_message(
                QueueUrl=self.queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=0,
                VisibilityTimeout=self.visibility_seconds,
                AttributeNames=["SentTimestamp"])
            batch = resp.get("Messages", [])
            empty = 0 if batch else empty + 1
            for msg in batch:
                seen.setdefault(msg["MessageId"], (_parse(msg), msg["ReceiptHandle"]))
        deleted = [(letter, receipt) for letter, receipt in seen.values() if remove(letter)]
        kept = [(letter, receipt) for letter, receipt in seen.values() if not remove(letter)]
        self._batch("delete_message_batch", [r for _, r in deleted])
        self._batch("change_message_visibility_batch", [r for _, r in kept],
                    VisibilityTimeout=0)
        if deleting:
            return [letter for letter, _ in deleted]
        return sorted((letter for letter, _ in seen.values()),
                      key=lambda d: (d.dead_lettered_at or "", d.workset_id))

    def _batch(self, op: str, receipts: list[str], **extra: Any) -> None:
        for i in range(0, len(receipts), 10):
            entries = [{"Id": str(n), "ReceiptHandle": r, **extra}
                       for n, r in enumerate(receipts[i:i + 10])]
            resp = getattr(self.client, op)(QueueUrl=self.queue_url, Entries=entries)
            for failed in resp.get("Failed", []):
                log.warning("%s: %s", op, failed.get("Message", failed))


def _parse(msg: dict[str, Any]) -> DeadLetter:
    try:
        body = json.loads(msg.get("Body") or "{}")
    except ValueError:
        body = {}
    if not isinstance(body, dict):
        body = {}
    attempts = body.get("attempts")
    return DeadLetter(
        workset_id=str(body.get("workset_id") or "?"), category=body.get("category"),
        rule=body.get("rule"), error=body.get("error"),
        attempts=attempts if isinstance(attempts, int) else None,
        decision=body.get("decision"), dead_lettered_at=body.get("dead_lettered_at"),
        seq=body.get("seq"), message_id=str(msg.get("MessageId")))


def ensure_queue(client: Any, name: str) -> tuple[str, bool]:
    """Create the queue if missing (14 days retention: dead letters wait for an operator)."""
    existing = find_queue(client, name)
    if existing:
        return existing, False
    url = guard(client).create_queue(QueueName=name,
                                     Attributes={"MessageRetentionPeriod": "1209600"})["QueueUrl"]
    return str(url), True


def queue_for(client: Any, *, queue_url: str | None, queue_name: str) -> DeadLetterQueue | None:
    """The configured queue (URL, else looked up by name); None if it does not exist."""
    if queue_url:
        return DeadLetterQueue(client, queue_url)
    url = find_queue(client, queue_name)
    return DeadLetterQueue(client, url) if url else None
