"""Concurrency-cap slots in DynamoDB: one item per scope holding a ``holders`` map, taken
with a write conditioned on the map's size (a counting semaphore exact across monitors)."""

from __future__ import annotations

import contextlib
from typing import Any

from daylib.errors import AwsError
from daylib.store.dynamo_io import DynamoTable, Refused
from daylib.store.expression import Expr, from_ddb
from daylib.store.items import CAP_PREFIX


class DynamoSlots(DynamoTable):
    _cap_items: set[str]

    def acquire_slot(self, scope: str, workset_id: str, limit: int, holder: str) -> bool:
        """Take one of ``limit`` slots of ``scope`` for ``workset_id`` (holding it already
        is fine). False when the cap is reached."""
        up = Expr().set("holders", {"at": self.clock(), "by": holder}, workset_id)
        slot = up.name("holders", workset_id)
        up.expect_raw(f"attribute_exists({slot}) OR size({up.name('holders')}) < "
                      f"{up.value(limit)}")
        if scope not in self._cap_items:
            self._ensure_cap_item(scope)  # the map must exist before SET holders.x
            self._cap_items.add(scope)
        return self._try_write(CAP_PREFIX + scope, up)

    def _ensure_cap_item(self, scope: str) -> None:
        with contextlib.suppress(Refused):  # another monitor made it first
            self._call("put_item", TableName=self.table,
                       Item={"pk": {"S": CAP_PREFIX + scope}, "holders": {"M": {}}},
                       ConditionExpression="attribute_not_exists(pk)")

    def release_slot(self, scope: str, workset_id: str) -> None:
        up = Expr().remove("holders", workset_id).expect_raw("attribute_exists(pk)")
        self._release(scope, up)

    def slot_holders(self, scope: str) -> dict[str, dict[str, Any]]:
        resp = self._call("get_item", TableName=self.table,
                          Key={"pk": {"S": CAP_PREFIX + scope}}, ConsistentRead=True)
        return dict(from_ddb(resp.get("Item", {})).get("holders", {}))

    def release_stale_slot(self, scope: str, workset_id: str, taken_at: float) -> bool:
        """Drop a holder left by a crash, only if it is still the entry we judged stale."""
        up = Expr().remove("holders", workset_id)
        up.expect_raw(f"{up.name('holders', workset_id, 'at')} = {up.value(taken_at)}")
        return self._release(scope, up)

    def _release(self, scope: str, up: Expr) -> bool:
        """False when there was nothing to release (no item, or the entry changed)."""
        try:
            self._write(CAP_PREFIX + scope, up)
        except Refused:
            return False
        except AwsError as exc:
            if exc.code != "ValidationException":  # the map itself is missing
                raise
            return False
        return True
