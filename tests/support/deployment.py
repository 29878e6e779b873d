"""A test deployment on the emulator: settings, store, S3, worksets uploaded like users do,
and (``env.wire()``) an SNS topic with SQS queues subscribed and a dead-letter queue.

The store is DynamoDB on the moto server, or (``memory=True``) the in-memory store with the
same guarantees, for monitor tests that are not about DynamoDB: every store call is then a
dictionary lookup instead of an HTTP round trip. Monitors in other processes need DynamoDB."""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import yaml

from daylib import wiring as wire
from daylib.aws import AwsClients
from daylib.config import Settings
from daylib.dlq import DeadLetterQueue, ensure_queue
from daylib.executors.base import Executor
from daylib.executors.local import LocalExecutor
from daylib.monitor import Monitor
from daylib.notify import SnsTopic
from daylib.outbox import Outbox
from daylib.s3 import S3Objects
from daylib.store.contract import Store
from daylib.store.memory import MemoryStore

# How long a wait for a condition may take before the test calls it a hang: generous, because
# it only guards against hangs and a loaded machine must never reach it.
HANG_GUARD_SECONDS = 300.0
FASTQ = b"@r1\nACGTACGTAC\n+\nFFFFFFFFFF\n@r2\nGGGCCCAAAT\n+\nFFFFF:::::\n"


def fake(sleep: float = 0.0, code: int = 0, extra: str = "") -> str:
    return (f"{{python}} -m tests.support.fakepipe --out {{results_dir}} --sleep {sleep} "
            f"--exit {code} {extra}").strip()


class Inbox:
    """An SQS queue subscribed to the topic with raw delivery: what a subscriber receives."""

    def __init__(self, sqs: Any, url: str) -> None:
        self.sqs = sqs
        self.url = url

    def take(self) -> list[dict[str, Any]]:
        """Every message now in the queue (deleted as read): body plus ``_attributes``."""
        out: list[dict[str, Any]] = []
        empty = 0
        while empty < 2:
            resp = self.sqs.receive_message(QueueUrl=self.url, MaxNumberOfMessages=10,
                                            WaitTimeSeconds=0, MessageAttributeNames=["All"])
            batch = resp.get("Messages", [])
            empty = 0 if batch else empty + 1
            for m in batch:
                body = json.loads(m["Body"])
                body["_attributes"] = {k: v["StringValue"]
                                       for k, v in m.get("MessageAttributes", {}).items()}
                out.append(body)
                self.sqs.delete_message(QueueUrl=self.url, ReceiptHandle=m["ReceiptHandle"])
        return out


@dataclass
class Wiring:
    topic_arn: str
    inbox: Inbox  # every event
    filtered: Inbox  # filter policy: event in (completed, failed, dead_lettered)
    dlq: DeadLetterQueue


FILTER = {"event": ["completed", "failed", "dead_lettered"]}


class Env:
    """One test's emulated deployment: settings, store, S3, and ways to upload worksets."""

    def __init__(self, settings: Settings, *, memory: bool = False) -> None:
        self.settings = settings
        self.clients = AwsClients(settings.aws)
        st, n = settings.state, settings.notify
        self.store: Store = (MemoryStore(keep_first=st.history_keep_first,
                                         keep_last=st.history_keep_last,
                                         stale_seconds=n.stale_seconds,
                                         max_pending=n.max_pending)
                             if memory else wire.store_for(settings, self.clients))
        self.s3 = wire.s3_for(self.clients)
        self.store.create_table()
        self.s3.ensure_bucket(settings.storage.bucket, self.clients.region)
        self.bucket = settings.storage.bucket
        self.prefix = settings.storage.prefix
        self.wiring: Wiring | None = None

    def wire(self) -> Wiring:
        """Topic, two subscribed queues (raw delivery; one with a filter policy) and a DLQ,
        all named for this test; monitors made from now on publish to them."""
        sns, sqs = self.clients.client("sns"), self.clients.client("sqs")
        tag = uuid.uuid4().hex[:10]
        arn = sns.create_topic(Name=f"events-{tag}")["TopicArn"]
        inboxes = []
        for name, policy in ((f"all-{tag}", None), (f"end-{tag}", FILTER)):
            url = sqs.create_queue(QueueName=name)["QueueUrl"]
            qarn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])[
                "Attributes"]["QueueArn"]
            attrs = {"RawMessageDelivery": "true"}
            if policy:
                attrs["FilterPolicy"] = json.dumps(policy)
            sns.subscribe(TopicArn=arn, Protocol="sqs", Endpoint=qarn, Attributes=attrs)
            inboxes.append(Inbox(sqs, url))
        dlq_url, _ = ensure_queue(sqs, f"dlq-{tag}")
        self.settings.notify.topic_arn = arn
        self.settings.dlq.queue_url = dlq_url
        self.wiring = Wiring(arn, inboxes[0], inboxes[1], DeadLetterQueue(sqs, dlq_url))
        return self.wiring

    def events(self, clients: AwsClients | None = None,
               stale_seconds: float | None = None) -> tuple[Store, Outbox]:
        """A store and the outbox its writers hand their records to (one pair per monitor or
        operator process)."""
        assert self.wiring is not None, "call env.wire() first"
        c = clients or self.clients
        s = self.settings.model_copy(deep=True)
        s.notify.stale_seconds = stale_seconds or s.notify.stale_seconds
        outbox = wire.outbox_for(s, c, topic=SnsTopic(c.client("sns"), self.wiring.topic_arn),
                                 dlq=DeadLetterQueue(c.client("sqs"), self.wiring.dlq.queue_url))
        assert outbox is not None
        if isinstance(self.store, MemoryStore):
            return self.store.twin(stale_seconds=s.notify.stale_seconds), outbox
        return wire.store_for(s, c), outbox

    def put(self, workset_id: str, name: str, body: str | bytes) -> None:
        data = body.encode() if isinstance(body, str) else body
        self.s3.put_bytes(self.bucket, f"{self.prefix}{workset_id}/{name}", data)

    def upload(self, workset_id: str, *, pipeline: str = "germline", priority: str = "normal",
               **extra: Any) -> None:
        self.put(workset_id, "sample_data/S1_R1.fastq", FASTQ)
        doc = {"samples": [{"sample_id": "S1", "fastq_r1": "sample_data/S1_R1.fastq"}],
               "reference_genome": "hg38", "pipeline": pipeline, "priority": priority, **extra}
        self.put(workset_id, "daylily_work.yaml", yaml.safe_dump(doc))

    def monitor(self, *, executor: Executor | None = None, store: Store | None = None,
                outbox: Outbox | None = None, s3: S3Objects | None = None,
                **overrides: Any) -> Monitor:
        """A monitor through daylib/wiring.py; once wired, with its own store and outbox."""
        s = self.settings.model_copy(deep=True)
        for key, value in overrides.items():
            setattr(s.monitor, key, value)
        if store is None:
            store, outbox = self.events() if self.wiring else (self.store, None)
        return wire.monitor_for(s, self.clients, store=store, s3=s3 or self.s3,
                                executor=executor or LocalExecutor(), outbox=outbox)

    @contextmanager
    def running(self, **overrides: Any) -> Iterator[Monitor]:
        mon = self.monitor(**overrides)
        thread = threading.Thread(target=mon.run, daemon=True)
        thread.start()
        try:
            yield mon
        finally:
            mon.request_stop()
            thread.join(30)

    def wait_for(self, pred: Callable[[], bool], timeout: float = HANG_GUARD_SECONDS) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if pred():
                return
            time.sleep(0.05)
        raise AssertionError("condition not met within timeout")

    def at(self, workset_id: str, state: str, step: str | None = None) -> bool:
        rec = self.store.get(workset_id)
        return rec is not None and rec.state == state and (step is None or rec.step == step)

    def state(self, workset_id: str) -> str | None:
        rec = self.store.get(workset_id)
        return rec.state if rec else None
