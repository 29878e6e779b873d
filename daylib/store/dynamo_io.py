"""Calls to one DynamoDB table through a guarded client: a failed condition becomes
``Refused``; anything else is already one of daylib's AWS errors."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

from daylib.errors import AwsConditionFailed
from daylib.store.expression import Expr


class Refused(Exception):
    """A condition did not hold (ConditionalCheckFailedException); ``item`` is the old item
    when the service returned it."""

    def __init__(self, item: dict[str, Any] | None) -> None:
        self.item = item


class DynamoTable:
    """Base of the DynamoDB store's parts: the client, the table and how calls are made."""

    client: Any
    table: str
    clock: Callable[[], float]

    def _call(self, op: str, **kwargs: Any) -> Any:
        """One API call on the table."""
        try:
            return getattr(self.client, op)(**kwargs)
        except AwsConditionFailed as exc:
            raise Refused(exc.item) from None

    def _write(self, key: str, expr: Expr, **kwargs: Any) -> Any:
        return self._call("update_item", TableName=self.table, Key={"pk": {"S": key}},
                          **expr.kwargs(), **kwargs)

    def _try_write(self, key: str, expr: Expr) -> bool:
        """One conditional update; False if the condition did not hold."""
        try:
            self._write(key, expr)
        except Refused:
            return False
        return True

    def _query(self, **kwargs: Any) -> Iterator[dict[str, Any]]:
        return self._pages("query", **kwargs)

    def _scan(self, **kwargs: Any) -> Iterator[dict[str, Any]]:
        """Of an index, so only what it holds is read."""
        return self._pages("scan", **kwargs)

    def _pages(self, op: str, **kwargs: Any) -> Iterator[dict[str, Any]]:
        """All pages of a Query or Scan; dynalite may end with an empty page carrying a key."""
        start: dict[str, Any] | None = None
        while True:
            if start:
                kwargs["ExclusiveStartKey"] = start
            resp = self._call(op, TableName=self.table, **kwargs)
            yield resp
            start = resp.get("LastEvaluatedKey")
            if not start:
                return

    def _batch_get(self, ids: list[str], projection: str | None) -> Iterator[dict[str, Any]]:
        """Items of ``ids`` that exist, 100 keys a call, unprocessed keys asked again."""
        unique = list(dict.fromkeys(ids))
        for i in range(0, len(unique), 100):
            spec: dict[str, Any] = {"Keys": [{"pk": {"S": x}} for x in unique[i:i + 100]],
                                    "ConsistentRead": True}
            if projection:
                spec["ProjectionExpression"] = projection
            request: dict[str, Any] = {self.table: spec}
            while request:
                resp = self._call("batch_get_item", RequestItems=request)
                yield from resp["Responses"].get(self.table, [])
                request = resp.get("UnprocessedKeys") or {}
                if request:
                    time.sleep(0.05)
