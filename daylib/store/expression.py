"""One builder for DynamoDB update and condition expressions, with one placeholder mechanism:
every attribute name or map key becomes ``#nI`` and every value ``:vI``, so no caller writes
a placeholder (workset ids may hold characters a placeholder cannot, such as '-')."""

from __future__ import annotations

from typing import Any

from daylib.aws.dynamodb_types import from_ddb, to_ddb

__all__ = ["Expr", "from_ddb", "to_ddb"]


class Expr:
    """Builds one UpdateExpression and ConditionExpression."""

    def __init__(self) -> None:
        self.sets: list[str] = []
        self.removes: list[str] = []
        self.adds: list[str] = []
        self.names: dict[str, str] = {}
        self.values: dict[str, Any] = {}
        self.conditions: list[str] = []

    def name(self, attr: str, *keys: str) -> str:
        """A path: the attribute, then map keys, each by placeholder."""
        parts = []
        for part in (attr, *keys):
            ph = next((p for p, known in self.names.items() if known == part), None)
            if ph is None:
                ph = f"#n{len(self.names)}"
                self.names[ph] = part
            parts.append(ph)
        return ".".join(parts)

    def value(self, v: Any) -> str:
        ph = f":v{len(self.values)}"
        self.values[ph] = to_ddb(v)
        return ph

    def set(self, attr: str, v: Any, *keys: str) -> Expr:
        """SET attr[.keys] = v; None removes it."""
        if v is None:
            return self.remove(attr, *keys)
        self.sets.append(f"{self.name(attr, *keys)} = {self.value(v)}")
        return self

    def set_expr(self, attr: str, expr: str) -> Expr:
        """SET attr = an expression built from this builder's placeholders."""
        self.sets.append(f"{self.name(attr)} = {expr}")
        return self

    def remove(self, attr: str, *keys: str) -> Expr:
        self.removes.append(self.name(attr, *keys))
        return self

    def add(self, attr: str, v: Any) -> Expr:
        self.adds.append(f"{self.name(attr)} {self.value(v)}")
        return self

    def expect(self, attr: str, op: str, v: Any) -> Expr:
        self.conditions.append(f"{self.name(attr)} {op} {self.value(v)}")
        return self

    def expect_raw(self, condition: str) -> Expr:
        """A condition built from this builder's placeholders (functions, OR, IN)."""
        self.conditions.append(condition)
        return self

    def kwargs(self) -> dict[str, Any]:
        parts = []
        if self.sets:
            parts.append("SET " + ", ".join(self.sets))
        if self.removes:
            parts.append("REMOVE " + ", ".join(self.removes))
        if self.adds:
            parts.append("ADD " + ", ".join(self.adds))
        out: dict[str, Any] = {"ExpressionAttributeNames": self.names}
        if parts:
            out["UpdateExpression"] = " ".join(parts)
        if self.values:
            out["ExpressionAttributeValues"] = self.values
        if self.conditions:
            out["ConditionExpression"] = " AND ".join(f"({c})" for c in self.conditions)
        return out
