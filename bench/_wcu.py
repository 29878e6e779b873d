"""Write capacity units as DynamoDB bills them, worked out from each write's before and after
item (read back through a second, uncounted client).

Table: a write costs ceil(max(size before, size after) / 1 KB); a failed conditional write
costs the same for the item as it stood. Each global secondary index: an item entering or
leaving the index is one index write, a changed index key two (delete and put), a changed
projected attribute of an item that stays one; each ceil(index entry size / 1 KB).
Item size: attribute names plus values (strings and binaries by length, numbers ~1 byte per
two digits + 1, 1 byte per list/map element + 3, booleans and nulls 1).
"""

from __future__ import annotations

import math
import threading
from collections import Counter
from typing import Any

KB = 1024
WRITES = {"PutItem", "UpdateItem", "DeleteItem"}


def value_size(v: dict[str, Any]) -> int:
    (kind, x), = v.items()
    if kind in ("S", "B"):
        return len(x.encode() if isinstance(x, str) else x)
    if kind == "N":
        return (len(x.lstrip("-").replace(".", "").lstrip("0")) + 1) // 2 + 1
    if kind in ("BOOL", "NULL"):
        return 1
    if kind == "L":
        return 3 + sum(1 + value_size(e) for e in x)
    if kind == "M":
        return 3 + sum(1 + len(k.encode()) + value_size(e) for k, e in x.items())
    return sum(len(str(e)) for e in x)  # SS, NS, BS


def item_size(item: dict[str, Any]) -> int:
    return sum(len(k.encode()) + value_size(v) for k, v in item.items())


class WriteCost:
    """Hooks a DynamoDB client; ``wcu`` sums by ``table`` and per index, split by whether the
    item is a workset or a registry/control item (``pk`` starting with '#')."""

    def __init__(self, client: Any, reader: Any, table: str) -> None:
        self.reader = reader
        self.table = table
        self.indexes = self._indexes(reader, table)
        self.wcu: Counter[str] = Counter()
        self._images: dict[str, dict[str, Any]] = {}
        self._lock = threading.Lock()
        client.meta.events.register("before-parameter-build.dynamodb.*", self._before)
        client.meta.events.register("after-call.dynamodb.*", self._after)

    @staticmethod
    def _before(params: dict[str, Any], context: dict[str, Any], **_: Any) -> None:
        context["wcu_params"] = dict(params)

    @staticmethod
    def _indexes(reader: Any, table: str) -> dict[str, tuple[set[str], set[str] | None]]:
        """Index name -> (key attributes, projected non-key attributes; None: all)."""
        desc = reader.describe_table(TableName=table)["Table"]
        out: dict[str, tuple[set[str], set[str] | None]] = {}
        for g in desc.get("GlobalSecondaryIndexes", []):
            keys = {k["AttributeName"] for k in g["KeySchema"]}
            proj = g["Projection"]
            out[g["IndexName"]] = (keys, None if proj["ProjectionType"] == "ALL"
                                   else set(proj.get("NonKeyAttributes", [])))
        return out

    def _after(self, model: Any, parsed: dict[str, Any], context: dict[str, Any],
               **_: Any) -> None:
        params = context.get("wcu_params", {})
        if model.name not in WRITES or params.get("TableName") != self.table:
            return
        key = params.get("Key") or {"pk": params["Item"]["pk"]}
        pk = key["pk"]["S"]
        failed = "Error" in parsed
        after: dict[str, Any] = {}
        if not failed and model.name != "DeleteItem":
            after = self.reader.get_item(TableName=self.table, Key=key,
                                         ConsistentRead=True).get("Item", {})
        with self._lock:
            before = self._images.get(pk, {})
            if failed:
                after = before
            elif model.name == "DeleteItem":
                self._images.pop(pk, None)
            else:
                self._images[pk] = after
            kind = "registry/control" if pk.startswith("#") else "workset"
            size = max(item_size(before), item_size(after), 1)
            self.wcu[f"{kind} table"] += math.ceil(size / KB)
            if not failed:
                for name, cost in self._index_writes(before, after).items():
                    self.wcu[f"{kind} {name}"] += cost

    def _index_writes(self, before: dict[str, Any], after: dict[str, Any]) -> dict[str, int]:
        out: dict[str, int] = {}
        for name, (keys, proj) in self.indexes.items():
            old, new = self._entry(before, keys, proj), self._entry(after, keys, proj)
            if old == new:
                continue
            writes = [e for e in (old, new) if e]
            if old and new and all(old[k] == new[k] for k in keys):
                writes = [new]  # same key, a projected attribute changed
            out[name] = sum(math.ceil(max(item_size(w), 1) / KB) for w in writes)
        return out

    @staticmethod
    def _entry(item: dict[str, Any], keys: set[str], proj: set[str] | None
               ) -> dict[str, Any] | None:
        """The item's index entry (table key, index keys, projected attributes), or None when
        the sparse index does not hold it."""
        if not all(k in item for k in keys):
            return None
        wanted = keys | {"pk"} | (set(item) if proj is None else proj)
        return {k: v for k, v in item.items() if k in wanted}
