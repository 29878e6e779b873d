"""The README and docs/ agree with the CLI and stay inside the repository."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from daylib.cli import build_parser
from daylib.cli_habits import _subcommands

ROOT = Path(__file__).resolve().parents[2]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
OPERATOR_VIEW = ("logs", "report", "queue --watch", "completion", "--version", "--log-format")


def _using_it() -> str:
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## Using it", 1)[1].split("\n## ", 1)[0]
    return section


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: p.name)
def test_links_stay_in_the_repository(doc: Path) -> None:
    text = doc.read_text()
    assert not re.search(r"https?://", text), "a link or address outside the repository"
    for target in re.findall(r"\]\(([^)#]+)", text):
        assert (doc.parent / target).exists(), f"{doc.name} links to missing {target}"


def test_readme_cli_section_names_real_commands_and_the_operator_view() -> None:
    section = _using_it()
    commands = set(_subcommands(build_parser()))
    used = set(re.findall(r"^daylily-workset ([a-z][a-z-]*)", section, re.MULTILINE))
    assert used <= commands, used - commands
    for word in OPERATOR_VIEW:
        assert word in section, f"README's CLI section does not mention {word}"
    assert "docs/metrics.md" in section and "docs/operating.md" in section


def test_readme_module_table_names_the_operator_modules() -> None:
    built = (ROOT / "README.md").read_text().split("## How it is built", 1)[1]
    for module in ("steplogs.py", "logview.py", "metrics.py", "logformat.py", "listing.py",
                   "watch.py", "report.py", "progress.py", "jobwrap"):
        assert module in built, module
