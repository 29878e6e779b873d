"""Concurrency-cap slots in DynamoDB: one item per scope holding a ``holders`` map, taken
with a write conditioned on the map's size (a counting semaphore exact across monitors).

Each entry is keyed by workset id and carries the claim token of the holder that took it;
every release is conditioned on that token, so a monitor that lost a claim race (or a
takeover) can never free the slot of the one that won."""

from __future__ import annotations

import contextlib
from typing import Any

from daylib.errors import AwsError
from daylib.store.dynamo_io import DynamoTable, Refused
from daylib.store.expression import Expr, from_ddb
from daylib.store.items import CAP_PREFIX


class DynamoSlots(DynamoTable):
    _cap_items: set[str]

    def acquire_slot(self, scope: str, workset_id: str, limit: int, holder: str,
                     token: str) -> bool:
        """Take one of ``limit`` slots of ``scope`` for ``workset_id`` under ``token``.
        False when the cap is reached or the workset already holds a slot under another
        token (someone else is claiming or running it)."""
        up = Expr().set("holders", {"at": self.clock(), "by": holder, "token": token},
                        workset_id)
        slot = up.name("holders", workset_id)
        up.expect_raw(f"(attribute_not_exists({slot}) AND size({up.name('holders')}) < "
                      f"{up.value(limit)}) OR {up.name('holders', workset_id, 'token')} = "
                      f"{up.value(token)}")
        return self._slot_write(scope, up)

    def adopt_slot(self, scope: str, workset_id: str, limit: int, holder: str,
                   token: str) -> bool:
        """After winning a takeover: re-key the workset's slot to ``token`` whoever held it,
        or take a new one under ``limit``. False when it had none and the cap is reached."""
        up = Expr().set("holders", {"at": self.clock(), "by": holder, "token": token},
                        workset_id)
        up.expect_raw(f"attribute_exists({up.name('holders', workset_id)}) OR "
                      f"size({up.name('holders')}) < {up.value(limit)}")
        return self._slot_write(scope, up)

    def _slot_write(self, scope: str, up: Expr) -> bool:
        if scope not in self._cap_items:
            self._ensure_cap_item(scope)  # the map must exist before SET holders.x
            self._cap_items.add(scope)
        return self._try_write(CAP_PREFIX + scope, up)

    def _ensure_cap_item(self, scope: str) -> None:
        with contextlib.suppress(Refused):  # another monitor made it first
            self._call("put_item", TableName=self.table,
                       Item={"pk": {"S": CAP_PREFIX + scope}, "holders": {"M": {}}},
                       ConditionExpression="attribute_not_exists(pk)")

    def release_slot(self, scope: str, workset_id: str, token: str) -> bool:
        """Give the slot back, only if it is still held under ``token``; False otherwise."""
        up = Expr().remove("holders", workset_id)
        up.expect_raw(f"{up.name('holders', workset_id, 'token')} = {up.value(token)}")
        try:
            self._write(CAP_PREFIX + scope, up)
        except Refused:
            return False
        except AwsError as exc:
            if exc.code != "ValidationException":  # the map itself is missing
                raise
            return False
        return True

    def slot_holders(self, scope: str) -> dict[str, dict[str, Any]]:
        resp = self._call("get_item", TableName=self.table,
                          Key={"pk": {"S": CAP_PREFIX + scope}}, ConsistentRead=True)
        return dict(from_ddb(resp.get("Item", {})).get("holders", {}))
