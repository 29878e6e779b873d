"""Every AWS client daylib uses is wrapped here, so no botocore exception crosses the
boundary: a call, a paginated call or a waiter raises daylib's AWS error families only."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from daylib.aws.errors import AwsFailure, translate

# Attributes handed through untouched (botocore's event system, for tests and metrics).
_PASS_THROUGH = frozenset({"meta", "exceptions", "can_paginate"})


class Guarded:
    """A boto3 client whose failures are daylib errors. ``raw`` is the client itself."""

    def __init__(self, client: Any) -> None:
        self.raw = client

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self.raw, name)
        if name in _PASS_THROUGH or not callable(attr):
            return attr
        if name == "get_paginator":
            return lambda op: _Paginator(attr(op), op)
        if name == "get_waiter":
            return lambda op: _Waiter(attr(op), op)
        return _guarded_call(attr, name)


def guard(client: Any) -> Any:
    """``client`` wrapped once (a Guarded client is returned as it is)."""
    return client if isinstance(client, Guarded) else Guarded(client)


def _guarded_call(fn: Callable[..., Any], op: str) -> Callable[..., Any]:
    def call(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except AwsFailure as exc:
            raise translate(exc, op, kwargs) from exc
    return call


class _Paginator:
    def __init__(self, paginator: Any, op: str) -> None:
        self._paginator = paginator
        self._op = op

    def paginate(self, **kwargs: Any) -> Iterator[dict[str, Any]]:
        try:
            yield from self._paginator.paginate(**kwargs)
        except AwsFailure as exc:
            raise translate(exc, self._op, kwargs) from exc


class _Waiter:
    def __init__(self, waiter: Any, op: str) -> None:
        self._waiter = waiter
        self._op = op

    def wait(self, **kwargs: Any) -> None:
        try:
            self._waiter.wait(**kwargs)
        except AwsFailure as exc:
            raise translate(exc, self._op, kwargs) from exc
