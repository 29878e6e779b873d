"""The code stays in rooms a reader can hold in their head (issue 8)."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "daylib"
MAX_LINES = 450


def test_no_file_in_daylib_exceeds_450_lines() -> None:
    too_long = {str(p.relative_to(PACKAGE.parent)): n for p in sorted(PACKAGE.rglob("*.py"))
                if (n := len(p.read_text().splitlines())) > MAX_LINES}
    assert not too_long, f"over {MAX_LINES} lines, split by concern: {too_long}"


def test_pipelines_import_only_the_standard_library_and_each_other() -> None:
    """Pipelines run on compute nodes, where daylib's AWS dependencies may be missing."""
    outside = {}
    for path in sorted((PACKAGE / "pipelines").glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import) else
                     [node.module or ""] if isinstance(node, ast.ImportFrom) and not node.level
                     else [])
            for name in names:
                top = name.split(".")[0]
                if top not in sys.stdlib_module_names and not name.startswith(
                        "daylib.pipelines") and top != "__future__":
                    outside.setdefault(path.name, []).append(name)
    assert not outside, f"pipelines import beyond the standard library: {outside}"


def test_the_demo_does_not_import_the_command_line() -> None:
    """Renderers live in daylib.formatters, so cli -> demo is one way."""
    tree = ast.parse((PACKAGE / "demo.py").read_text())
    imported = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
    imported |= {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    assert not {m for m in imported if m and (m == "daylib.cli" or m.startswith("daylib.cli."))}
