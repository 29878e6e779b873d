"""Setting up and checking a deployment: ``init``, ``doctor``, ``config from-stack``,
``completion`` and the embedded ``demo``."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from daylib.commands.common import RET_ERROR, RET_OK
from daylib.dlq import ensure_queue
from daylib.errors import ConfigError
from daylib.notify import ensure_topic

if TYPE_CHECKING:
    from daylib.cli import Context


def cmd_init(ctx: Context, args: argparse.Namespace) -> int:
    """Table, bucket, SNS topic and dead-letter queue, each created only if missing."""
    st = ctx.settings
    created = {"table": ctx.store.create_table(),
               "bucket": ctx.s3.ensure_bucket(st.storage.bucket, ctx.clients.region)}
    names = {"table": st.state.table, "bucket": st.storage.bucket}
    out: dict[str, Any] = {"table": st.state.table, "bucket": st.storage.bucket}
    if st.notify.enabled and not st.notify.topic_arn:
        arn, created["topic"] = ensure_topic(ctx.clients.client("sns"), st.notify.topic_name)
        names["topic"] = out["topic_arn"] = arn
    if st.dlq.enabled and not st.dlq.queue_url:
        url, created["queue"] = ensure_queue(ctx.clients.client("sqs"), st.dlq.queue_name)
        names["queue"] = out["queue_url"] = url
    if st.intake.enabled:  # a stack's queue too: its existing bucket needs the notification
        from daylib.aws import find_queue
        from daylib.intake_events import ensure_intake

        sqs = ctx.clients.client("sqs")
        queue = (st.intake.queue_url or "").rstrip("/").rsplit("/", 1)[-1] or \
            st.intake.queue_name
        created["intake"] = find_queue(sqs, queue) is None
        names["intake"] = out["intake_queue_url"] = ensure_intake(
            sqs, ctx.clients.client("s3"), st.storage.bucket, st.storage.prefix, queue)
    ctx.emit({"created": created, **out},
             "\n".join(f"{k:7} {'created' if v else 'exists '}  {names[k]}"
                       for k, v in created.items()))
    return RET_OK


def cmd_doctor(ctx: Context, args: argparse.Namespace) -> int:
    from daylib.doctor import Doctor, report

    checks = Doctor(ctx.settings, ctx.clients).run()
    ctx.emit(report(checks), "\n".join(c.line() for c in checks))
    return RET_OK if all(c.ok for c in checks) else RET_ERROR


def doctor_bad_config(exc: ConfigError, as_json: bool) -> int:
    """``doctor`` still reports when the settings cannot load: that is what it is for."""
    from daylib.doctor import config_failure, report

    checks = config_failure(str(exc))
    print(json.dumps(report(checks), indent=2) if as_json else checks[0].line())
    return RET_ERROR


def cmd_config_from_stack(ctx: Context, args: argparse.Namespace) -> int:
    from daylib.stackconfig import render, settings_from_outputs, stack_outputs

    outputs = stack_outputs(ctx.clients.client("cloudformation"), args.stack)
    data, unused = settings_from_outputs(outputs)
    text = render(args.stack, data, unused)
    if args.output:
        Path(args.output).parent.mkdir(parents=True, exist_ok=True)
        Path(args.output).write_text(text)
        ctx.emit({"written": args.output, "settings": data},
                 f"wrote {args.output} (use it with --config or DAYLILY_CONFIG)")
    else:
        ctx.emit({"settings": data}, text.rstrip())
    return RET_OK


def cmd_demo(ctx: Context, args: argparse.Namespace) -> int:
    from daylib.demo import run_demo
    return run_demo(as_json=ctx.as_json, keep_workdir=args.keep)


def cmd_completion(ctx: Context, args: argparse.Namespace) -> int:
    from daylib.cli import build_parser
    from daylib.cli_habits import bash_completion

    print(bash_completion(build_parser()))
    return RET_OK


