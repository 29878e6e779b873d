"""Strict, bounded YAML reading for uploaded files.

PyYAML's safe loader silently keeps the last of duplicate keys, accepts ``.nan``/``.inf``
and raises plain ``ValueError`` (not ``YAMLError``) for an integer too long to convert. Users'
files must never slip through or crash the reader, so every problem here becomes an
``Issue`` naming the file and line.
"""

from __future__ import annotations

import math
from typing import Any

import yaml
from yaml.constructor import ConstructorError
from yaml.nodes import MappingNode, Node, ScalarNode

from daylib.errors import Issue

_Base: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
BOM = "\ufeff"


class _StrictLoader(_Base):  # type: ignore[misc, valid-type]
    """Safe loader that refuses duplicate keys, NaN/inf and unconvertible integers."""


def _line(node: Node) -> int:
    return int(node.start_mark.line) + 1


def _mapping(loader: _StrictLoader, node: MappingNode, deep: bool = False) -> dict[Any, Any]:
    loader.flatten_mapping(node)
    seen: dict[Any, int] = {}
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=True)
        try:
            first = seen.get(key)
        except TypeError as exc:
            raise ConstructorError(None, None, "a mapping key must be a plain value",
                                   key_node.start_mark) from exc
        if first is not None:
            raise ConstructorError(None, None, f"duplicate key {key!r} (first at line {first})",
                                   key_node.start_mark)
        seen[key] = _line(key_node)
    return dict(loader.construct_pairs(node, deep=deep))


def _float(loader: _StrictLoader, node: ScalarNode) -> float:
    value = float(yaml.SafeLoader.construct_yaml_float(loader, node))
    if math.isnan(value) or math.isinf(value):
        raise ConstructorError(None, None, f"{node.value!r} is not a finite number",
                               node.start_mark)
    return value


def _int(loader: _StrictLoader, node: ScalarNode) -> int:
    try:
        return int(yaml.SafeLoader.construct_yaml_int(loader, node))
    except ValueError as exc:
        raise ConstructorError(None, None, f"integer {str(node.value)[:20]}... cannot be read: "
                               f"{exc}", node.start_mark) from exc


_StrictLoader.add_constructor("tag:yaml.org,2002:map", _mapping)
_StrictLoader.add_constructor("tag:yaml.org,2002:float", _float)
_StrictLoader.add_constructor("tag:yaml.org,2002:int", _int)


def decode(data: bytes | str, filename: str) -> tuple[str | None, list[Issue]]:
    """UTF-8 text without a leading BOM, or an issue naming the first bad byte."""
    if isinstance(data, str):
        return data.removeprefix(BOM), []
    try:
        return data.decode("utf-8").removeprefix(BOM), []
    except UnicodeDecodeError as exc:
        line = data[:exc.start].count(b"\n") + 1
        return None, [Issue(filename, f"is not UTF-8 text (byte 0x{data[exc.start]:02x} at "
                                      f"line {line}); save it as UTF-8")]


def _tab_hint(text: str) -> str:
    for n, line in enumerate(text.splitlines(), start=1):
        indent = line[:len(line) - len(line.lstrip(" \t"))]
        if "\t" in indent:
            return f"; line {n} is indented with a tab, YAML needs spaces"
    return ""


def load(data: bytes | str, filename: str, *, max_bytes: int, max_aliases: int,
         max_depth: int) -> tuple[Any, list[Issue]]:
    """Parse one YAML document with bounds on size, alias expansion and nesting; never
    raises for any content."""
    size = len(data) if isinstance(data, bytes) else len(data.encode("utf-8", "replace"))
    if size > max_bytes:
        return None, [Issue(filename, f"file is larger than {max_bytes} bytes")]
    text, issues = decode(data, filename)
    if text is None:
        return None, issues
    aliases = depth = 0
    try:
        for event in yaml.parse(text, Loader=_Base):
            if isinstance(event, yaml.AliasEvent):
                aliases += 1
                if aliases > max_aliases:
                    return None, [Issue(filename, f"uses more than {max_aliases} YAML aliases")]
            elif isinstance(event, yaml.CollectionStartEvent):
                depth += 1
                if depth > max_depth:
                    return None, [Issue(filename, f"nests more than {max_depth} levels deep")]
            elif isinstance(event, yaml.CollectionEndEvent):
                depth -= 1
        return yaml.load(text, Loader=_StrictLoader), []
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        return None, [Issue(filename, f"not valid YAML{where}: {problem}{_tab_hint(text)}")]
    except (ValueError, TypeError, RecursionError, MemoryError) as exc:
        return None, [Issue(filename, f"cannot be read: {str(exc)[:200]}")]
