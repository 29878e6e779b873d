"""``monitor``: run the daemon with the executor the settings name."""

from __future__ import annotations

import argparse
import json
from typing import TYPE_CHECKING

from daylib import wiring

if TYPE_CHECKING:
    from daylib.cli import Context


def cmd_monitor(ctx: Context, args: argparse.Namespace) -> int:
    settings = ctx.settings
    if args.cluster:
        settings.monitor.cluster = args.cluster
    if args.executor:
        settings.monitor.executor = args.executor
    from daylib.intake_events import intake_queue_for

    monitor = wiring.monitor_for(settings, ctx.clients, store=ctx.store, s3=ctx.s3,
                                 outbox=ctx.notifier, late=ctx.late)

    def find_intake() -> None:
        queue = intake_queue_for(ctx.clients.client("sqs"), settings)
        if queue is not None:
            monitor.use_intake_queue(queue)

    if settings.intake.enabled:
        ctx.late.attempt(f"event intake (queue {settings.intake.queue_name!r})", find_intake)
    monitor.install_signal_handlers()
    code = monitor.run(once=args.once)
    if ctx.as_json:
        print(json.dumps(vars(monitor.stats)))
    return code
