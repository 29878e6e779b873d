"""Read-only views of the queue: ``queue``, ``list``, ``show``, ``logs``, ``report`` and
``clusters`` (the first two with ``--watch``)."""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from daylib.commands.common import RET_OK, UsageError
from daylib.errors import NotFound
from daylib.formatters import format_clusters, format_list, format_queue, format_show, iso_times
from daylib.progress import Tally
from daylib.store.records import WorksetRecord

if TYPE_CHECKING:
    from daylib.cli import Context


def _pause_note(ctx: Context) -> tuple[dict[str, Any], str]:
    """Whether claiming is paused, as JSON fields and a note under a view."""
    c = ctx.store.control()
    text = (f"\n\nclaiming is PAUSED since {c.changed_at or '?'} by {c.changed_by or '?'}"
            + (f": {c.reason}" if c.reason else "") + " (daylily-workset resume)"
            if c.paused else "")
    return {"paused": c.paused, "pause_reason": c.reason if c.paused else None,
            "paused_by": c.changed_by if c.paused else None}, text


def _queue_once(ctx: Context) -> tuple[dict[str, Any], str]:
    from daylib.watch import details, format_details

    depth = ctx.store.queue_depth()
    more = details(ctx.store)
    pause, note = _pause_note(ctx)
    return ({**depth.public(), **pause, **more.public()},
            format_queue(depth) + "\n\n" + format_details(more) + note)


def _watching(ctx: Context, args: argparse.Namespace,
              once: Callable[[], tuple[Any, str]]) -> int:
    """``--watch``: redraw on a terminal, repeat plainly otherwise; else print once."""
    if not args.watch:
        ctx.emit(*once())
        return RET_OK
    if args.interval <= 0 or (args.count is not None and args.count < 1):
        raise UsageError("--interval must be > 0 and --count >= 1")
    from daylib.watch import loop

    def render() -> str:
        data, text = once()
        return json.dumps(data, sort_keys=True, default=str) if ctx.as_json else text

    loop(render, sys.stdout, interval_seconds=args.interval, count=args.count,
         tty=False if ctx.as_json else None)
    return RET_OK


def cmd_queue(ctx: Context, args: argparse.Namespace) -> int:
    return _watching(ctx, args, lambda: _queue_once(ctx))


def cmd_list(ctx: Context, args: argparse.Namespace) -> int:
    from daylib.listing import Filters, page, parse_time

    if args.limit < 1:
        raise UsageError("--limit must be at least 1")
    filters = Filters(state=args.state, cluster=args.cluster, customer=args.customer,
                      priority=args.priority,
                      since=parse_time(args.since) if args.since else None,
                      until=parse_time(args.until) if args.until else None)

    def once() -> tuple[Any, str, str | None]:
        tally = Tally("reading worksets")
        try:
            got = page(ctx.store, filters, args.limit, args.next_token, tally)
        finally:
            tally.close()
        text = format_list(got.rows)
        if got.next_token:
            text += f"\n\nmore worksets: daylily-workset list ... --next-token {got.next_token}"
        rows = [iso_times(r.public()) | {"history": None} for r in got.rows]
        return rows, text, got.next_token

    def shown() -> tuple[Any, str]:
        rows, text, _ = once()
        return rows, text

    if args.watch:
        return _watching(ctx, args, shown)
    rows, text, token = once()
    ctx.emit(rows, text)
    if token and ctx.as_json:  # stdout stays the JSON array; the cursor goes to stderr
        print(f"next_token: {token}", file=sys.stderr)
    return RET_OK



def cmd_show(ctx: Context, args: argparse.Namespace) -> int:
    from daylib import steplogs
    from daylib.report import step_seconds

    rec = ctx.store.get(args.id)
    if rec is None:
        return _show_unregistered(ctx, args.id)
    warnings = _warnings(rec)
    extra = {"step_seconds": step_seconds(rec.history),
             "attempt_of": f"attempt {rec.attempt} of "
                           f"{rec.attempt_base + rec.max_retries}",
             "logs_uri": steplogs.folder_uri(ctx.settings, rec.workset_id),
             "warnings": warnings}
    ctx.emit(iso_times(rec.public()) | extra,
             format_show(rec, extra) + "".join(f"\nwarning: {w}" for w in warnings))
    return RET_OK


def _warnings(rec: WorksetRecord) -> list[str]:
    from daylib.spec import Workset

    try:
        return Workset.model_validate_json(rec.spec_json).warnings if rec.spec_json else []
    except ValueError:
        return []


def _show_unregistered(ctx: Context, workset_id: str) -> int:
    from daylib.spec import WORK_FILE, folder_uri, is_valid_id

    st = ctx.settings.storage
    prefix = f"{st.prefix}{workset_id}/"
    if not is_valid_id(workset_id) or WORK_FILE not in ctx.s3.files(st.bucket, prefix):
        raise NotFound(f"no workset {workset_id!r}")
    uri = folder_uri(ctx.settings, workset_id)
    ctx.emit({"workset_id": workset_id, "state": None, "registered": False, "s3_uri": uri,
              "status": "uploaded, not registered yet"},
             f"{workset_id}: uploaded, not registered yet ({uri})")
    return RET_OK


def cmd_logs(ctx: Context, args: argparse.Namespace) -> int:
    from daylib.logview import show_logs

    return show_logs(ctx.store, ctx.s3, ctx.settings, args.id, step=args.step,
                     attempt=args.attempt, follow=args.follow, out=sys.stdout)


def cmd_report(ctx: Context, args: argparse.Namespace) -> int:
    from daylib.report import render, report_rows

    since = None
    if args.since:
        from daylib.listing import parse_time

        since = parse_time(args.since)
    tally = Tally("reading worksets")
    try:
        rows = report_rows(ctx.store, since, tally=tally)
    finally:
        tally.close()
    print(render(rows, "json" if ctx.as_json else args.format))
    return RET_OK


def cmd_clusters(ctx: Context, args: argparse.Namespace) -> int:
    from daylib.clusters import ClusterInfo, discover_stacks

    now = time.time()
    infos = sorted((ClusterInfo.from_item(c) for c in ctx.store.clusters()),
                   key=lambda c: c.name)
    running = ctx.store.queue_depth(terminal=False).by_cluster
    rows = [{**c.to_item(), "status": c.status(now),
             "worksets": running.get(c.name, {})} for c in infos]
    stacks = discover_stacks(ctx.clients.client("cloudformation")) if args.discover else None
    pause, note = _pause_note(ctx)
    data: dict[str, Any] = {"clusters": rows, **pause}
    if stacks is not None:
        data["stacks"] = stacks
    ctx.emit(data, format_clusters(rows, stacks, now) + note)
    return RET_OK


