"""S3 event notifications through an SQS queue: which workset folders just changed.

The consumer receives an injected SQS client. A message is deleted only after every folder it
names was handled (registered, known, waiting or refused for a bad name); a folder whose
registration could not be stored leaves its message in the queue, so SQS delivers it again.
Duplicates and out-of-order events are harmless: registration is idempotent, and a folder is
always read as it is now, not as the event describes it.

Operators' commands that make work claimable (retry, redrive, resume, ...) send a wake message
to the same queue, so an idle monitor acts on them at once; only the monitor that receives it
wakes (the others see the change at their next idle pass).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote_plus

from daylib import spec as sp
from daylib.aws import find_queue, guard
from daylib.config import Settings
from daylib.errors import AwsError

log = logging.getLogger(__name__)
RETRY = "refused"
# Only these files can make a folder registrable; a FASTQ or result landing changes nothing.
TRIGGERS = frozenset({sp.WORK_FILE, sp.STAGE_FILE, sp.READY_FILE})


WAKE = "daylib-wake"  # the ``kind`` of a wake message's body


@dataclass(frozen=True)
class Message:
    receipt: str
    folders: tuple[str, ...]
    wake: bool = False


def is_wake(body: str) -> bool:
    try:
        doc = json.loads(body)
    except ValueError:
        return False
    return isinstance(doc, dict) and doc.get("kind") == WAKE


def folders_in(body: str, bucket: str, prefix: str) -> tuple[str, ...]:
    """The workset folders an S3 event body makes worth a look: those whose spec, sample
    sheet or ready gate was written (``s3:TestEvent``, other buckets and prefixes, FASTQs and
    results touch none). Keys are URL-encoded in events; moto encodes '/' too."""
    try:
        doc = json.loads(body)
    except ValueError:
        return ()
    if isinstance(doc, dict) and "Message" in doc and "Records" not in doc:
        return folders_in(str(doc["Message"]), bucket, prefix)  # delivered through SNS
    records = doc.get("Records") if isinstance(doc, dict) else None
    found: list[str] = []
    for rec in records if isinstance(records, list) else []:
        s3 = rec.get("s3", {}) if isinstance(rec, dict) else {}
        if not isinstance(s3, dict) or s3.get("bucket", {}).get("name") != bucket:
            continue
        key = unquote_plus(str(s3.get("object", {}).get("key", "")))
        if not key.startswith(prefix):
            continue
        name, sep, rest = key[len(prefix):].partition("/")
        if sep and name and rest in TRIGGERS and name not in found:
            found.append(name)
    return tuple(found)


class IntakeQueue:
    """Long-polls the intake queue and hands each changed folder to ``handle``."""

    def __init__(self, sqs: Any, queue_url: str, bucket: str, prefix: str, *,
                 wait_seconds: int = 20, batch_size: int = 10) -> None:
        self.sqs = guard(sqs)  # its failures are daylib's AWS errors, whoever built it
        self.queue_url = queue_url
        self.bucket = bucket
        self.prefix = prefix
        self.wait_seconds = wait_seconds
        self.batch_size = batch_size

    def receive(self, wait_seconds: int | None = None) -> list[Message]:
        resp = self.sqs.receive_message(
            QueueUrl=self.queue_url, MaxNumberOfMessages=self.batch_size,
            WaitTimeSeconds=self.wait_seconds if wait_seconds is None else wait_seconds)
        return [Message(m["ReceiptHandle"], folders_in(m.get("Body", ""), self.bucket,
                                                       self.prefix), is_wake(m.get("Body", "")))
                for m in resp.get("Messages", [])]

    def wake(self, why: str) -> None:
        """Wake a monitor long-polling this queue (an operator's command changed the queue)."""
        self.sqs.send_message(QueueUrl=self.queue_url,
                              MessageBody=json.dumps({"kind": WAKE, "why": why[:200]}))

    def delete(self, receipts: list[str]) -> None:
        for i in range(0, len(receipts), 10):
            entries = [{"Id": str(n), "ReceiptHandle": r}
                       for n, r in enumerate(receipts[i:i + 10])]
            self.sqs.delete_message_batch(QueueUrl=self.queue_url, Entries=entries)

    def poll_once(self, handle: Callable[[str], str], wait_seconds: int | None = None, *,
                  wake: Callable[[], None] = lambda: None) -> int:
        """One receive; each folder handled once per batch, ``wake`` called once if a wake
        message came (deleted like any message handled); returns folders handled."""
        messages = self.receive(wait_seconds)
        if any(m.wake for m in messages):
            wake()
        outcome: dict[str, str] = {}
        for msg in messages:
            for folder in msg.folders:
                if folder not in outcome:
                    outcome[folder] = handle(folder)
        done = [m.receipt for m in messages
                if all(outcome[f] != RETRY for f in m.folders)]
        if done:
            self.delete(done)
        return len(outcome)


NOTIFICATION_ID = "daylily-workset-intake"


def ensure_intake(sqs: Any, s3: Any, bucket: str, prefix: str, queue_name: str) -> str:
    """Create the intake queue (if missing), let S3 send to it, and point the bucket's
    ObjectCreated notifications for ``prefix`` at it; other notifications are kept. Returns
    the queue URL. Idempotent."""
    sqs, s3 = guard(sqs), guard(s3)
    url = str(sqs.create_queue(QueueName=queue_name)["QueueUrl"])
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])[
        "Attributes"]["QueueArn"]
    policy = {"Version": "2012-10-17", "Statement": [{
        "Effect": "Allow", "Principal": {"Service": "s3.amazonaws.com"},
        "Action": "sqs:SendMessage", "Resource": arn,
        "Condition": {"ArnLike": {"aws:SourceArn": f"arn:aws:s3:::{bucket}"}}}]}
    sqs.set_queue_attributes(QueueUrl=url, Attributes={"Policy": json.dumps(policy)})
    current = s3.get_bucket_notification_configuration(Bucket=bucket)
    config = {k: v for k, v in current.items()
              if k in ("TopicConfigurations", "QueueConfigurations",
                       "LambdaFunctionConfigurations", "EventBridgeConfiguration")}
    queues = [q for q in config.get("QueueConfigurations", [])
              if q.get("Id") != NOTIFICATION_ID]
    queues.append({"Id": NOTIFICATION_ID, "QueueArn": arn, "Events": ["s3:ObjectCreated:*"],
                   "Filter": {"Key": {"FilterRules": [{"Name": "prefix",
                                                       "Value": prefix}]}}})
    config["QueueConfigurations"] = queues
    s3.put_bucket_notification_configuration(Bucket=bucket,
                                             NotificationConfiguration=config)
    return url


def intake_queue_for(sqs: Any, settings: Settings) -> IntakeQueue | None:
    """The configured intake queue, or None (listing only) when it is off or missing; an
    AwsError when it cannot be looked up (the monitor retries: daylib/late_setup.py)."""
    cfg = settings.intake
    if not cfg.enabled:
        return None
    url = cfg.queue_url or find_queue(sqs, cfg.queue_name)
    if url is None:
        log.info("no intake queue %r (run `daylily-workset init`); listing every %.0f s",
                 cfg.queue_name, settings.monitor.discovery_seconds)
        return None
    return IntakeQueue(sqs, url, settings.storage.bucket, settings.storage.prefix,
                       wait_seconds=cfg.wait_seconds, batch_size=cfg.batch_size)


__all__ = ["AwsError", "IntakeQueue", "Message", "ensure_intake", "folders_in",
           "intake_queue_for", "is_wake"]
