"""Operator actions on worksets and the queue: ``cancel``, ``affinity``, ``retry``,
``priority``, ``pause``/``resume`` and the dead-letter queue (``dlq list``, ``dlq redrive``)."""

from __future__ import annotations

import argparse
import logging
import shutil
from typing import TYPE_CHECKING, Any

from daylib import control
from daylib.commands.common import RET_OK, UsageError, wake_monitors
from daylib.dlq import DeadLetterQueue
from daylib.errors import UserError
from daylib.formatters import format_letters
from daylib.progress import reporter
from daylib.store.records import WorksetRecord

if TYPE_CHECKING:
    from daylib.cli import Context

log = logging.getLogger("daylib")


def _changed(ctx: Context, rec: WorksetRecord, text: str) -> int:
    """An action's result: the workset as it is now."""
    ctx.emit(rec.public(), text)
    return RET_OK


def cmd_cancel(ctx: Context, args: argparse.Namespace) -> int:
    rec = control.cancel(ctx.store, args.id, ctx.actor, outbox=ctx.notifier)
    note = ""
    job = rec.jobs.get(rec.step or "") if rec.step else None
    if job and job.isdigit() and shutil.which("scancel"):
        from daylib.executors.slurm import SlurmExecutor

        SlurmExecutor().cancel(job)
        note = f"; Slurm job {job} cancelled"
    elif job:
        note = f"; its monitor stops job {job} within a heartbeat"
    return _changed(ctx, rec, f"{rec.workset_id} cancelled{note}")


def cmd_affinity(ctx: Context, args: argparse.Namespace) -> int:
    rec = control.set_affinity(ctx.store, args.id, args.cluster, args.soft, ctx.actor)
    wake_monitors(ctx, f"affinity {rec.workset_id}")
    return _changed(ctx, rec, f"{rec.workset_id} will run on {args.cluster}"
                    + (" (soft affinity)" if args.soft else ""))


def cmd_retry(ctx: Context, args: argparse.Namespace) -> int:
    rec = control.retry(ctx.store, ctx.s3, ctx.settings, args.id, ctx.actor,
                        keep_overrides=not args.reset_overrides)
    wake_monitors(ctx, f"retry {rec.workset_id}")
    if rec.intake_error:
        log.warning("workset %s: its daylily_work.yaml is still invalid and will fail again: %s",
                    rec.workset_id, rec.intake_error)
    return _changed(ctx, rec, f"{rec.workset_id} ready (attempt {rec.attempt})")


def cmd_priority(ctx: Context, args: argparse.Namespace) -> int:
    rec = control.set_priority(ctx.store, args.id, args.priority, ctx.actor)
    wake_monitors(ctx, f"priority {rec.workset_id}")
    return _changed(ctx, rec, f"{rec.workset_id} priority {rec.priority}")


def _require_dlq(ctx: Context) -> DeadLetterQueue:
    dlq = ctx.dlq
    if dlq is None:
        d = ctx.settings.dlq
        raise UserError("the dead-letter queue is disabled (dlq.enabled)" if not d.enabled else
                        f"dead-letter queue {d.queue_url or d.queue_name!r} not found; run "
                        "`daylily-workset init`")
    return dlq


def cmd_dlq_list(ctx: Context, args: argparse.Namespace) -> int:
    letters = _require_dlq(ctx).letters()
    latest: dict[str, Any] = {}
    counts: dict[str, int] = {}
    for letter in letters:  # a message may arrive twice: one row per workset, the newest
        counts[letter.workset_id] = counts.get(letter.workset_id, 0) + 1
        latest[letter.workset_id] = letter
    now = ctx.store.many(sorted(latest)) if latest else {}
    rows = []
    for wid, letter in latest.items():
        rec = now.get(wid)
        rows.append({**letter.public(), "messages": counts[wid],
                     "state": rec.state if rec else None})
    ctx.emit(rows, format_letters(rows))
    return RET_OK


def cmd_dlq_redrive(ctx: Context, args: argparse.Namespace) -> int:
    if bool(args.ids) == bool(args.all):
        raise UsageError("dlq redrive: give workset ids or --all (not both)")
    if args.all:
        ids = sorted({letter.workset_id for letter in _require_dlq(ctx).letters()})
    else:
        ids = list(args.ids)
    results, deleted = control.redrive(ctx.store, ctx.s3, ctx.settings, ctx.dlq, ids,
                                       ctx.actor, progress=reporter())
    unknown = [r for r in results if r.outcome == "unknown"]
    if any(r.outcome == "redriven" for r in results):
        wake_monitors(ctx, "redrive")
    data = {"redriven": [r.workset_id for r in results if r.outcome == "redriven"],
            "unchanged": [r.workset_id for r in results if r.outcome == "unchanged"],
            "unknown": [r.workset_id for r in unknown], "messages_deleted": deleted,
            "results": [vars(r) for r in results]}
    lines = [r.message for r in results if r.outcome != "unknown"]
    if not results:
        lines.append("dead-letter queue is empty; nothing to redrive")
    lines.append(f"{deleted} dead-letter message(s) deleted")
    ctx.emit(data, "\n".join(lines))
    if unknown:
        raise UserError("; ".join(r.message for r in unknown))
    return RET_OK


def cmd_pause(ctx: Context, args: argparse.Namespace) -> int:
    rec = ctx.store.set_paused(args.command == "pause", actor=ctx.actor,
                               reason=getattr(args, "reason", "") or "")
    wake_monitors(ctx, args.command)
    word = "paused: monitors stop claiming" if rec.paused else "resumed: monitors claim again"
    ctx.emit({"paused": rec.paused, "changed_by": rec.changed_by,
              "changed_at": rec.changed_at}, word)
    return RET_OK


