"""Small CLI habits users expect: who is acting, "did you mean", shell completion."""

from __future__ import annotations

import argparse
import difflib
import getpass
import logging
import re
from collections.abc import Callable
from typing import Any

log = logging.getLogger(__name__)
_CHOICE = re.compile(r"invalid choice: '([^']*)' \(choose from (.*)\)$")


def actor(sts: Callable[[], Any]) -> str:
    """``user:<os user>``; without one (a bare container, systemd without User=), the AWS
    caller identity's ARN; ``user:unknown`` only when both are unavailable."""
    try:
        name = getpass.getuser()
    except (KeyError, OSError):
        name = ""
    if name:
        return f"user:{name}"
    try:
        arn = sts().get_caller_identity()["Arn"]
    except Exception as exc:
        log.debug("caller identity unavailable: %s", exc)
        return "user:unknown"
    return f"aws:{arn}"


def did_you_mean(message: str) -> str:
    """argparse's "invalid choice" message with the closest valid choice suggested."""
    m = _CHOICE.search(message)
    if not m:
        return message
    choices = re.findall(r"'([^']*)'", m.group(2))
    close = difflib.get_close_matches(m.group(1), choices, n=1, cutoff=0.5)
    return f"{message}; did you mean {close[0]!r}?" if close else message


def _subcommands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:  # argparse exposes subparsers only this way
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def _options(parser: argparse.ArgumentParser) -> list[str]:
    return sorted(o for a in parser._actions for o in a.option_strings if o.startswith("--"))


def bash_completion(parser: argparse.ArgumentParser, prog: str = "daylily-workset") -> str:
    """A bash completion script: commands, then each command's options (and sub-commands)."""
    commands = _subcommands(parser)
    cases = []
    for name, sub in sorted(commands.items()):
        words = [*sorted(_subcommands(sub)), *_options(sub)]
        cases.append(f'        {name}) words="{" ".join(words)}" ;;')
    func = "_" + re.sub(r"[^A-Za-z0-9_]", "_", prog)
    return "\n".join([
        f"# bash completion for {prog}: source <({prog} completion)",
        f"{func}() {{",
        '    local cur="${COMP_WORDS[COMP_CWORD]}" cmd="" words="" i',
        "    for ((i = 1; i < COMP_CWORD; i++)); do",
        '        case "${COMP_WORDS[i]}" in -*) ;; *) cmd="${COMP_WORDS[i]}"; break ;; esac',
        "    done",
        '    case "$cmd" in',
        f'        "") words="{" ".join([*sorted(commands), *_options(parser)])}" ;;',
        *cases,
        "    esac",
        '    COMPREPLY=($(compgen -W "$words" -- "$cur"))',
        "}",
        f"complete -F {func} {prog}",
    ])
