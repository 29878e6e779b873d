"""``daylily-workset``: the command line. Exit codes: 0 ok, 1 user error, 2 usage error.

Errors are one line on stderr; ``--json`` puts machine output (and only that) on stdout.
This module holds the parser and the dispatch; the handlers live in ``daylib.commands``.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from daylib import __version__, logformat, wiring
from daylib import states as S
from daylib.aws import AwsClients, is_missing_resource
from daylib.commands.common import RET_CONFIG, RET_ERROR, RET_USAGE, UsageError
from daylib.commands.daemon import cmd_monitor
from daylib.commands.operator import (
    cmd_affinity,
    cmd_cancel,
    cmd_dlq_list,
    cmd_dlq_redrive,
    cmd_pause,
    cmd_priority,
    cmd_retry,
)
from daylib.commands.setup import (
    cmd_completion,
    cmd_config_from_stack,
    cmd_demo,
    cmd_doctor,
    cmd_init,
    doctor_bad_config,
)
from daylib.commands.submit import cmd_submit, cmd_validate
from daylib.commands.views import cmd_clusters, cmd_list, cmd_logs, cmd_queue, cmd_report, cmd_show
from daylib.config import EXECUTORS, PRIORITIES, Settings, load_settings
from daylib.dlq import DeadLetterQueue
from daylib.errors import AwsError, ConfigError, DaylibError, UserError
from daylib.executors.base import STEPS
from daylib.late_setup import LateSetup
from daylib.outbox import Outbox
from daylib.s3 import S3Objects
from daylib.store.dynamodb import DynamoStore

log = logging.getLogger("daylib")


@dataclass
class Context:
    """What a command needs, built lazily (through daylib/wiring.py) so ``--help`` and config
    errors need no AWS."""

    settings: Settings
    as_json: bool
    _clients: AwsClients | None = None
    _store: DynamoStore | None = None
    _outbox: Outbox | None = None
    _outbox_built: bool = False
    _dlq: DeadLetterQueue | None = None
    late: LateSetup = field(default_factory=LateSetup)

    @property
    def clients(self) -> AwsClients:
        if self._clients is None:
            self._clients = AwsClients(self.settings.aws)
        return self._clients

    @property
    def store(self) -> DynamoStore:
        if self._store is None:
            self._store = wiring.store_for(self.settings, self.clients)
        return self._store

    @property
    def s3(self) -> S3Objects:
        return wiring.s3_for(self.clients)

    @property
    def dlq(self) -> DeadLetterQueue | None:
        """One lookup per process: the outbox's queue when the outbox found it first."""
        if self._dlq is None and self._outbox is not None:
            self._dlq = self._outbox.dlq
        if self._dlq is None:
            self._dlq = wiring.dlq_for(self.settings, self.clients)
        return self._dlq

    @property
    def notifier(self) -> Outbox | None:
        """The outbox publishing this process's events (None when neither notifications nor
        the dead-letter queue are configured); writers hand it what they wrote. A lookup AWS
        did not answer is kept in ``late`` for the monitor to retry."""
        if not self._outbox_built:
            self._outbox_built = True
            self._outbox = wiring.outbox_for(self.settings, self.clients, dlq=self._dlq,
                                              late=self.late)
        return self._outbox

    def close(self) -> None:
        """Clear the events this process published from the items (see daylib/outbox.py)."""
        if self._outbox is not None and self._store is not None:
            self._outbox.drain(self._store)

    @property
    def actor(self) -> str:
        """Who is acting: the OS user, else the AWS caller identity (never "unknown")."""
        from daylib.cli_habits import actor

        return actor(lambda: self.clients.client("sts"))

    def emit(self, data: Any, text: str) -> None:
        print(json.dumps(data, indent=2, sort_keys=True, default=str) if self.as_json else text)


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> Any:  # one line, exit 2
        from daylib.cli_habits import did_you_mean

        self.exit(RET_USAGE, f"{self.prog}: usage error: {did_you_mean(message)}\n")


def build_parser() -> argparse.ArgumentParser:
    def globals_(parser: argparse.ArgumentParser, default: Any) -> None:
        """Global options, accepted before or after the command (``queue --json``)."""

        def d(value: Any) -> Any:
            return value if default is None else default

        parser.add_argument("--config", default=d(None),
                            help="settings file (default: $DAYLILY_CONFIG, else built-in)")
        parser.add_argument("--profile", default=d(None),
                            help="AWS profile (default: $AWS_PROFILE)")
        parser.add_argument("--region", default=d(None), help="AWS region (default: $AWS_REGION)")
        parser.add_argument("--json", action="store_true", default=d(False),
                            help="machine-readable output on stdout")
        parser.add_argument("-v", "--verbose", action="store_true", default=d(False),
                            help="debug logging on stderr")
        parser.add_argument("--log-format", choices=logformat.FORMATS, default=d(None),
                            help="log lines on stderr (default: text on a terminal, json "
                            "under systemd)")

    p = _Parser(prog="daylily-workset", description="Orchestrate Daylily worksets on AWS.")
    globals_(p, None)
    p.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    common = _Parser(add_help=False)
    globals_(common, argparse.SUPPRESS)
    sub = p.add_subparsers(dest="command", required=True, parser_class=_Parser)

    def add(name: str, fn: Callable[[Context, argparse.Namespace], int], help_: str
            ) -> argparse.ArgumentParser:
        sp = sub.add_parser(name, help=help_, description=help_, parents=[common])
        sp.set_defaults(fn=fn)
        return sp

    add("init", cmd_init, "create the table, bucket, topic and dead-letter queue the config "
        "names (idempotent)")
    sp = add("submit", cmd_submit, "validate a workset locally and upload it to S3")
    sp.add_argument("file", help="daylily_work.yaml, or a Daylily workset folder")
    sp.add_argument("--id", help="workset id (default: folder name, or generated)")
    sp.add_argument("--priority", choices=PRIORITIES)
    sp.add_argument("--cluster", help="preferred cluster")
    sp.add_argument("--wait", action="store_true",
                    help="follow the workset to its end; exit 1 unless it completes")
    sp.add_argument("--poll-seconds", type=float, default=2.0, help=argparse.SUPPRESS)
    sp = add("validate", cmd_validate, "every local check of a workset file or folder; "
             "exit 1 listing all problems")
    sp.add_argument("path", help="daylily_work.yaml, or a workset folder")

    def watch_opts(sp: argparse.ArgumentParser) -> None:
        sp.add_argument("--watch", action="store_true", help="refresh until Ctrl-C")
        sp.add_argument("--interval", type=float, default=2.0, help="seconds between refreshes")
        sp.add_argument("--count", type=int, help="stop after this many refreshes")

    watch_opts(add("queue", cmd_queue, "queue depth per state, cluster and customer; the "
                   "oldest waiting workset; what runs"))
    sp = add("list", cmd_list, "worksets, newest first, a page at a time")
    sp.add_argument("--state", choices=S.ALL)
    sp.add_argument("--cluster")
    sp.add_argument("--customer")
    sp.add_argument("--priority", choices=PRIORITIES)
    sp.add_argument("--since", help="created at or after: ISO time or age (2h, 7d)")
    sp.add_argument("--until", help="created at or before: ISO time or age")
    sp.add_argument("--limit", type=int, default=50, help="rows per page (>= 1)")
    sp.add_argument("--next-token", help="the token a previous page printed")
    watch_opts(sp)
    sp = add("logs", cmd_logs, "what a step printed (from S3, or live on its head node)")
    sp.add_argument("id")
    sp.add_argument("--step", choices=STEPS)
    sp.add_argument("--attempt", type=int)
    sp.add_argument("--follow", "-f", action="store_true",
                    help="follow the live log until the step ends")
    sp = add("report", cmd_report, "runtime per step, attempts and estimated cost per "
             "workset, with totals per customer")
    sp.add_argument("--since", help="worksets created at or after: ISO time or age (7d)")
    sp.add_argument("--format", choices=("table", "csv", "json"), default="table")
    sp = add("completion", cmd_completion, "print a bash completion script "
             "(source <(daylily-workset completion))")
    for name, fn, help_ in (("show", cmd_show, "one workset in detail"),
                            ("cancel", cmd_cancel, "cancel a workset"),
                            ("retry", cmd_retry, "retry a failed, retrying or cancelled workset "
                             "(keeps the priority and affinity an operator set)")):
        add(name, fn, help_).add_argument("id")
    sub.choices["retry"].add_argument(
        "--reset-overrides", action="store_true",
        help="take priority and affinity from the workset's YAML again")
    sp = add("affinity", cmd_affinity, "route a workset that has not started to a cluster")
    sp.add_argument("id")
    sp.add_argument("cluster")
    sp.add_argument("--soft", action="store_true", help="fall back to others after a wait")
    sp = add("clusters", cmd_clusters, "known clusters: state, capacity, running worksets")
    sp.add_argument("--discover", action="store_true",
                    help="also list the account's ParallelCluster stacks (CloudFormation)")
    sp = add("priority", cmd_priority, "change a workset's priority")
    sp.add_argument("id")
    sp.add_argument("priority", choices=PRIORITIES)
    for name in ("pause", "resume"):
        sp = add(name, cmd_pause, f"{name} claiming of new work on every monitor")
        sp.add_argument("--reason", default="")
    sp = add("monitor", cmd_monitor, "run the monitor daemon")
    sp.add_argument("--once", action="store_true", help="one pass: claim what is ready, run "
                    "it to the end, exit")
    sp.add_argument("--cluster", help="this monitor's cluster name")
    sp.add_argument("--executor", choices=EXECUTORS)
    dlq = sub.add_parser("dlq", help="the dead-letter queue: list, redrive",
                         description="Worksets that ended failed, in the SQS dead-letter queue.",
                         parents=[common])
    dlq_sub = dlq.add_subparsers(dest="dlq_command", required=True, parser_class=_Parser)
    sp = dlq_sub.add_parser("list", help="dead-lettered worksets, one row each",
                            parents=[common])
    sp.set_defaults(fn=cmd_dlq_list)
    sp = dlq_sub.add_parser("redrive", help="back to ready with a fresh retry budget; their "
                            "messages deleted (safe to repeat)", parents=[common])
    sp.add_argument("ids", nargs="*", metavar="ID")
    sp.add_argument("--all", action="store_true", help="every workset in the queue")
    sp.set_defaults(fn=cmd_dlq_redrive)
    add("doctor", cmd_doctor, "check config, credentials, region, resources, Slurm and clock; "
        "say what to fix (exit 1 if anything is wrong)")
    cfg = sub.add_parser("config", help="settings files", parents=[common],
                         description="Settings files.")
    cfg_sub = cfg.add_subparsers(dest="config_command", required=True, parser_class=_Parser)
    sp = cfg_sub.add_parser("from-stack", help="write settings from an infra/daylib.yaml "
                            "stack's outputs", parents=[common])
    sp.add_argument("stack", help="CloudFormation stack name")
    sp.add_argument("-o", "--output", help="file to write (default: stdout)")
    sp.set_defaults(fn=cmd_config_from_stack)
    sp = add("demo", cmd_demo, "run the embedded demo (emulated AWS, no account needed)")
    sp.add_argument("--keep", action="store_true", help="keep the work directory")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logformat.setup(args.log_format, args.verbose)
    try:
        try:
            settings = load_settings(args.config)
        except ConfigError as exc:
            if args.fn is cmd_doctor:
                return doctor_bad_config(exc, args.json)
            raise
        if args.profile:
            settings.aws.profile = args.profile
        if args.region:
            settings.aws.region = args.region
        ctx = Context(settings, args.json)
        try:
            code: int = args.fn(ctx, args)
        finally:
            ctx.close()
        return code
    except UsageError as exc:
        print(f"daylily-workset: usage error: {exc}", file=sys.stderr)
        return RET_USAGE
    except (UserError, ConfigError) as exc:
        print(f"daylily-workset: {exc}", file=sys.stderr)
        return _config_exit(args, exc)
    except AwsError as exc:
        message = " ".join(str(exc).split())
        print(f"daylily-workset: AWS error: {message}", file=sys.stderr)
        return _config_exit(args, exc)
    except DaylibError as exc:
        print(f"daylily-workset: {exc}", file=sys.stderr)
        return RET_ERROR
    except KeyboardInterrupt:
        return 130


def _config_exit(args: argparse.Namespace, exc: DaylibError) -> int:
    """The monitor exits RET_CONFIG when restarting cannot help: bad settings or a missing
    table/bucket/topic/queue. Other commands keep the documented exit 1."""
    if args.fn is cmd_monitor and (isinstance(exc, ConfigError) or is_missing_resource(exc)):
        return RET_CONFIG
    return RET_ERROR


def monitor_main() -> int:
    """``daylily-workset-monitor [opts]`` = ``daylily-workset monitor [opts]``."""
    return main(["monitor", *sys.argv[1:]])


if __name__ == "__main__":
    sys.exit(main())
