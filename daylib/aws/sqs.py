"""SQS lookups shared by the dead-letter and intake queues."""

from __future__ import annotations

from typing import Any

from daylib.aws.guard import guard
from daylib.errors import AwsNotFound


def find_queue(client: Any, name: str) -> str | None:
    """The URL of the queue called ``name``, or None if it does not exist."""
    try:
        return str(guard(client).get_queue_url(QueueName=name)["QueueUrl"])
    except AwsNotFound:
        return None
