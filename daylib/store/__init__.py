"""The state store: worksets, leases and history in one DynamoDB table.

Contract (what every backend guarantees):
- every write is a single-item conditional write naming the state (and version) it expects;
- ``claim`` is the only way to own a workset; it returns a ``Lease`` whose fencing token
  conditions every later write by that owner;
- ``register`` is idempotent;
- counts of active states cost reads proportional to active worksets, never a scan.
"""

from daylib.store.records import ControlRecord, Lease, QueueDepth, WorksetRecord

__all__ = ["ControlRecord", "Lease", "QueueDepth", "WorksetRecord"]
