"""DynamoDB's typed attribute values, converted to and from plain Python values."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from boto3.dynamodb.types import TypeDeserializer, TypeSerializer

_ser = TypeSerializer()
_de = TypeDeserializer()


def to_ddb(value: Any) -> dict[str, Any]:
    """A plain value as a typed DynamoDB attribute (floats as Decimal)."""
    return _ser.serialize(_decimalize(value))  # type: ignore[no-any-return]


def _decimalize(value: Any) -> Any:
    if isinstance(value, float):
        return Decimal(repr(value))
    if isinstance(value, dict):
        return {k: _decimalize(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_decimalize(v) for v in value]
    return value


def _plain(value: Any) -> Any:
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | set):
        return [_plain(v) for v in value]
    return value


def from_ddb(item: dict[str, Any]) -> dict[str, Any]:
    """A typed DynamoDB item as plain values (int where whole, else float)."""
    return {k: _plain(_de.deserialize(v)) for k, v in item.items()}
