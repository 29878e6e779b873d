"""Dependency checks (``after``): pure functions over a lookup of current records, so the
claimer and the runner ask the same questions the same way."""

from __future__ import annotations

from collections.abc import Callable

from daylib import states as S
from daylib.store.records import WorksetRecord

Lookup = Callable[[list[str]], dict[str, WorksetRecord]]


def in_cycle(workset_id: str, after: list[str], many: Lookup, max_depth: int = 20) -> bool:
    """Whether following ``after`` links leads back to ``workset_id``."""
    seen, frontier = set(after), list(after)
    for _ in range(max_depth):
        if not frontier:
            return False
        nxt: list[str] = []
        for rec in many(frontier[:100]).values():
            if workset_id in rec.after:
                return True
            nxt.extend(d for d in rec.after if d not in seen)
            seen.update(rec.after)
        frontier = nxt
    return False


def blocked(cands: list[WorksetRecord], many: Lookup) -> set[str]:
    """Worksets whose ``after`` list is not all complete yet. Unknown, failed or cyclic
    dependencies are not blocking: the claimant fails the workset with the reason."""
    deps = {d for c in cands for d in c.after}
    if not deps:
        return set()
    known = many(sorted(deps))
    out = set()
    for c in cands:
        waiting = [d for d in c.after if (dep := known.get(d)) is not None
                   and dep.state in S.ACTIVE]
        if waiting and not in_cycle(c.workset_id, c.after, many):
            out.add(c.workset_id)
    return out


def problem(workset_id: str, after: list[str], many: Lookup) -> str | None:
    """Why a claimed workset cannot run because of its dependencies, or None."""
    if not after:
        return None
    known = many(after)
    missing = [dep for dep in after if dep not in known]
    if missing:
        return f"after: workset {missing[0]!r} does not exist"
    if in_cycle(workset_id, after, many):
        return f"after: dependency cycle back to {workset_id!r}; remove one of the links"
    for dep in after:
        rec = known[dep]
        if rec.state in (S.FAILED, S.CANCELLED):
            why = f" ({rec.error[:200]})" if rec.error else ""
            return f"after: workset {dep!r} is {rec.state}{why}, so this one cannot run"
    return None
