"""``monitor``: run the daemon with the executor the settings name."""

from __future__ import annotations

import argparse
import json
import shutil
from typing import TYPE_CHECKING

from daylib.config import Settings
from daylib.errors import UserError
from daylib.executors.base import Executor

if TYPE_CHECKING:
    from daylib.cli import Context


def build_executor(settings: Settings) -> Executor:
    from daylib.executors.local import LocalExecutor
    from daylib.executors.slurm import SlurmExecutor

    if settings.monitor.executor == "local":
        return LocalExecutor()
    sl = settings.slurm
    if shutil.which("sbatch") is None:
        raise UserError("--executor slurm needs sbatch on PATH (on ParallelCluster: "
                        "/opt/slurm/bin)")
    return SlurmExecutor(partition=sl.partition, account=sl.account,
                         poll_seconds=sl.poll_seconds,
                         command_timeout_seconds=sl.command_timeout_seconds,
                         extra_sbatch_args=sl.extra_sbatch_args)


def cmd_monitor(ctx: Context, args: argparse.Namespace) -> int:
    from daylib.monitor import Monitor

    settings = ctx.settings
    if args.cluster:
        settings.monitor.cluster = args.cluster
    if args.executor:
        settings.monitor.executor = args.executor
    from daylib.intake_events import intake_queue_for

    monitor = Monitor(settings, ctx.store, ctx.s3, build_executor(settings),
                      notifier=ctx.notifier, step_env=ctx.clients.subprocess_env(),
                      region=ctx.clients.region,
                      intake_queue=intake_queue_for(ctx.clients.client("sqs"), settings))
    monitor.install_signal_handlers()
    code = monitor.run(once=args.once)
    if ctx.as_json:
        print(json.dumps(vars(monitor.stats)))
    return code


