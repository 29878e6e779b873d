"""Getting work in: ``submit`` (upload, optionally follow to the end) and ``validate``."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from daylib import control
from daylib import states as S
from daylib.commands.common import RET_OK
from daylib.errors import UserError
from daylib.progress import reporter

if TYPE_CHECKING:
    from daylib.cli import Context


def cmd_submit(ctx: Context, args: argparse.Namespace) -> int:
    done = control.submit(Path(args.file), ctx.settings, ctx.s3, workset_id=args.id,
                          priority=args.priority, cluster=args.cluster, store=ctx.store,
                          actor=ctx.actor, progress=reporter(), outbox=ctx.notifier)
    for warning in done.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    if not done.registered:
        print(f"warning: {done.workset_id} uploaded, not registered yet "
              f"({done.not_registered_why}); a monitor will register it", file=sys.stderr)
    ctx.emit({"workset_id": done.workset_id, "uri": done.uri, "format": done.format,
              "samples": done.samples, "registered": done.registered,
              "warnings": done.warnings}, done.workset_id)
    if not args.wait:
        return RET_OK
    from daylib.follow import follow

    rec = follow(ctx.store, done.workset_id, lambda line: print(line, file=sys.stderr),
                 poll_seconds=args.poll_seconds)
    if rec is not None and rec.state == S.COMPLETE:
        return RET_OK
    raise UserError(f"workset {done.workset_id} ended "
                    f"{rec.state if rec else 'unregistered'}"
                    + (f": {rec.error}" if rec is not None and rec.error else ""))


def cmd_validate(ctx: Context, args: argparse.Namespace) -> int:
    from daylib.validate import check_local

    ws, issues = check_local(Path(args.path), ctx.settings)
    for warning in ws.warnings if ws else []:
        print(f"warning: {warning}", file=sys.stderr)
    problems = [str(i) for i in issues]
    text = "\n".join(problems) if issues or ws is None else \
        f"{args.path}: ok ({ws.format} format, {len(ws.samples)} samples)"
    ctx.emit({"ok": not issues, "problems": problems, "warnings": ws.warnings if ws else []},
             text)
    if issues:
        raise UserError(f"{args.path}: {len(issues)} problem(s)")
    return RET_OK


