"""The state store: worksets, leases, history, caps and the pause flag.

``contract.Store`` names each primitive and what is atomic about it; ``rules`` holds the
domain rules above every backend; ``dynamodb`` (DynamoDB, moto, dynalite) and ``memory`` (the
in-memory twin with the same guarantees) are the backends.
"""

from daylib.store.records import ControlRecord, Lease, QueueDepth, WorksetRecord

__all__ = ["ControlRecord", "Lease", "QueueDepth", "WorksetRecord"]
