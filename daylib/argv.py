"""Templates to argv: split first (shell-style quoting), then fill ``{name}`` fields, so a value
can never add arguments. Every way a template can be wrong becomes a one-line SpecError that
names where the template came from: ``configuration`` for the deployment's own templates,
``data`` for what a user uploaded (Daylily's ``day-clone``)."""

from __future__ import annotations

import shlex
from collections.abc import Mapping

from daylib.errors import Issue, SpecError


def fill_template(template: str, values: Mapping[str, str], where: str,
                  category: str) -> list[str]:
    try:
        tokens = shlex.split(template)
    except ValueError as exc:
        raise SpecError([Issue(where, f"cannot be split into arguments: {exc}",
                               category)]) from None
    out = []
    for tok in tokens:
        try:
            out.append(tok.format_map(values))
        except KeyError as exc:
            known = ", ".join("{" + k + "}" for k in sorted(values))
            raise SpecError([Issue(where, f"unknown field {{{exc.args[0]}}} in {tok!r}; "
                                          f"known: {known}", category)]) from None
        except (ValueError, IndexError, AttributeError) as exc:
            raise SpecError([Issue(where, f"bad field in {tok!r}: {exc}; write a literal "
                                          "brace as {{ or }}", category)]) from None
    return out


def pipeline_template(pipelines: Mapping[str, str], name: str, monitor_id: str) -> str:
    """The command template configured for ``name`` on this monitor."""
    try:
        return pipelines[name]
    except KeyError:
        known = ", ".join(sorted(pipelines)) or "none"
        raise SpecError([Issue("pipeline", f"{name!r} is not configured on monitor "
                               f"{monitor_id} (known: {known})", "configuration")]) from None
