"""``daylily-workset``: the command line. Exit codes: 0 ok, 1 user error, 2 usage error.

Errors are one line on stderr; ``--json`` puts machine output (and only that) on stdout.
"""

from __future__ import annotations

import argparse
import json
import logging
import shutil
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from daylib import __version__, control, logformat
from daylib import states as S
from daylib.aws import AwsClients, is_missing_resource
from daylib.config import PRIORITIES, Settings, load_settings
from daylib.dlq import DeadLetterQueue, ensure_queue, queue_for
from daylib.errors import AwsError, ConfigError, DaylibError, NotFound, UserError
from daylib.executors.base import Executor
from daylib.late_setup import LateSetup
from daylib.notify import ensure_topic, topic_for
from daylib.outbox import Outbox
from daylib.progress import Tally, reporter
from daylib.s3 import S3Objects
from daylib.store.dynamodb import DynamoStore
from daylib.store.records import QueueDepth, WorksetRecord, utc_iso
from daylib.textable import table as _table

RET_OK = 0
RET_ERROR = 1
RET_USAGE = 2
RET_CONFIG = 78  # monitor only (sysexits EX_CONFIG): systemd must not restart on it

log = logging.getLogger("daylib")


@dataclass
class Context:
    """What a command needs, built lazily so ``--help`` and config errors need no AWS."""

    settings: Settings
    as_json: bool
    _clients: AwsClients | None = None
    _store: DynamoStore | None = None
    _outbox: Outbox | None = None
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
            st = self.settings.state
            self._store = DynamoStore(self.clients.client("dynamodb"), st.table,
                                      keep_first=st.history_keep_first,
                                      keep_last=st.history_keep_last)
        return self._store

    @property
    def s3(self) -> S3Objects:
        return S3Objects(self.clients.client("s3"))

    @property
    def dlq(self) -> DeadLetterQueue | None:
        d = self.settings.dlq
        if self._dlq is None and d.enabled:
            self._dlq = queue_for(self.clients.client("sqs"), queue_url=d.queue_url,
                                  queue_name=d.queue_name)
        return self._dlq

    @property
    def notifier(self) -> Outbox | None:
        """The outbox publishing this process's events, attached to ``store`` (None when
        neither notifications nor the dead-letter queue are configured). A lookup that AWS
        did not answer is kept in ``late`` for the monitor to retry."""
        if self._outbox is None:
            n, d = self.settings.notify, self.settings.dlq
            outbox = Outbox(topic=None, dlq=None, stale_seconds=n.stale_seconds,
                            ack_delay_seconds=n.ack_delay_seconds,
                            max_pending=n.max_pending)

            def find_topic() -> None:
                outbox.topic = topic_for(self.clients.client("sns"), topic_arn=n.topic_arn,
                                         topic_name=n.topic_name)
                if outbox.topic is None:
                    log.warning("notifications are off: SNS topic %r not found (run "
                                "`daylily-workset init`, or set notify.enabled: false)",
                                n.topic_name)

            def find_dlq() -> None:
                outbox.dlq = self.dlq
                if outbox.dlq is None:
                    log.warning("dead-lettering is off: queue %r not found (run "
                                "`daylily-workset init`, or set dlq.enabled: false)",
                                d.queue_name)

            if n.enabled:
                self.late.attempt(f"notifications (SNS topic {n.topic_name!r})", find_topic)
            if d.enabled:
                self.late.attempt(f"dead-lettering (queue {d.queue_name!r})", find_dlq)
            if not outbox.enabled and not self.late.pending:
                return None
            self._outbox = outbox
            self.store.outbox = outbox
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


# ---------------------------------------------------------------------- formatting

def format_queue(depth: QueueDepth) -> str:
    out = [_table(["state", "count"], [[s, depth.states[s]] for s in S.ALL]
                  + [["total", depth.total]])]
    for title, groups in (("cluster", depth.by_cluster), ("customer", depth.by_customer)):
        if groups:
            rows = [[name] + [counts.get(s, 0) for s in S.ACTIVE] for name, counts in
                    groups.items()]
            out.append(_table([title, *S.ACTIVE], rows))
    return "\n\n".join(out)


def format_list(rows: list[WorksetRecord]) -> str:
    if not rows:
        return "no worksets"
    return _table(["workset", "state", "step", "priority", "cluster", "customer", "attempt",
                   "created"],
                  [[r.workset_id, r.state, r.step, r.priority, r.cluster or r.preferred_cluster,
                    r.customer_id, r.attempt, r.created_at] for r in rows])


def format_show(rec: WorksetRecord, extra: dict[str, Any]) -> str:
    d = rec.public()
    summary = d["summary"] or {}
    lines = [
        f"workset     {rec.workset_id}  ({rec.format or '?'} format)",
        f"state       {rec.state}" + (f"  step {rec.step}" if rec.step else "")
        + (f"  done: {', '.join(rec.steps_done)}" if rec.steps_done else ""),
        f"priority    {rec.priority}   {extra['attempt_of']}",
        f"cluster     {rec.cluster or '-'}   preferred {rec.preferred_cluster or '-'}"
        f"   customer {rec.customer_id or '-'}",
        f"spec        {summary.get('samples', '?')} sample(s), reference "
        f"{summary.get('reference_genome') or '-'}, pipeline {summary.get('pipeline') or '-'}",
        f"source      {rec.s3_uri or '-'}",
        f"results     {rec.results_uri or '-'}",
        f"logs        {extra['logs_uri']}  (daylily-workset logs {rec.workset_id})",
    ]
    if extra["step_seconds"]:
        lines.append("durations   " + ", ".join(f"{k} {v:.1f}s" for k, v in
                                                extra["step_seconds"].items()))
    if rec.route:
        lines.append(f"routed      {rec.cluster}: {rec.route}")
    if rec.reason and rec.state == S.READY:
        lines.append(f"waiting     {rec.reason}")
    if rec.owner:
        lines.append(f"owner       {rec.owner}  (lease token {rec.lease_token})")
    if rec.jobs:
        lines.append("jobs        " + ", ".join(f"{k}={v}" for k, v in rec.jobs.items()))
    if rec.error or rec.intake_error:
        lines.append(f"error       [{rec.error_category}] {rec.error or rec.intake_error}")
        if rec.error_rule:
            lines.append(f"rule        {rec.error_rule}")
    if rec.decision:
        lines.append(f"decision    {rec.decision}")
    if rec.error_category or rec.retries_used or rec.attempt_base > 1:
        lines.append(f"retries     {rec.retries_used} of {rec.max_retries} used"
                     + (f" (budget renewed at attempt {rec.attempt_base})"
                        if rec.attempt_base > 1 else ""))
    if rec.failed_at:
        lines.append(f"failed at   {utc_iso(rec.failed_at)}")
    if rec.retry_at:
        lines.append(f"retry at    {utc_iso(rec.retry_at)}")
    if rec.resources:
        lines.append("resources   " + ", ".join(f"{k}={v}" for k, v in rec.resources.items())
                     + f"  (raised by {rec.resource_retries} resource retr"
                     + ("y)" if rec.resource_retries == 1 else "ies)"))
    if rec.outbox:
        lines.append(f"events      {len(rec.outbox)} not yet published")
    lines.append("history" + (f" ({d['history_omitted']} older entries omitted)"
                              if d["history_omitted"] else ""))
    lines.append(_timeline(rec.history))
    return "\n".join(lines)


def _timeline(history: list[dict[str, Any]]) -> str:
    """History as a timeline: each entry with the time since the previous one."""
    from daylib.metrics import iso_epoch

    rows, prev = [], None
    for h in history:
        at = h.get("at")
        gap = f"+{iso_epoch(at) - iso_epoch(prev):.1f}s" if at and prev else ""
        prev = at or prev
        move = f"{h.get('from') or '-'} -> {h.get('to')}" if h.get("from") != h.get("to") \
            else str(h.get("to"))
        rows.append([at, gap, move, h.get("actor"), h.get("reason")])
    return _table(["at", "after", "state", "actor", "reason"], rows)


# ---------------------------------------------------------------------- commands

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
        from daylib.intake_events import ensure_intake, resolve_queue_url

        sqs = ctx.clients.client("sqs")
        queue = (st.intake.queue_url or "").rstrip("/").rsplit("/", 1)[-1] or \
            st.intake.queue_name
        created["intake"] = resolve_queue_url(sqs, queue) is None
        names["intake"] = out["intake_queue_url"] = ensure_intake(
            sqs, ctx.clients.client("s3"), st.storage.bucket, st.storage.prefix, queue)
    ctx.emit({"created": created, **out},
             "\n".join(f"{k:7} {'created' if v else 'exists '}  {names[k]}"
                       for k, v in created.items()))
    return RET_OK


def cmd_submit(ctx: Context, args: argparse.Namespace) -> int:
    ctx.notifier  # noqa: B018 - attaches the outbox, so the registered event is recorded
    done = control.submit(Path(args.file), ctx.settings, ctx.s3, workset_id=args.id,
                          priority=args.priority, cluster=args.cluster, store=ctx.store,
                          actor=ctx.actor, progress=reporter())
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


def _pause_note(ctx: Context) -> tuple[dict[str, Any], str]:
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
        raise _UsageError("--interval must be > 0 and --count >= 1")
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
        raise _UsageError("--limit must be at least 1")
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
        rows = [_iso_times(r.public()) | {"history": None} for r in got.rows]
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


def _iso_times(d: dict[str, Any]) -> dict[str, Any]:
    """Every timestamp in one format (ISO 8601 UTC); records keep epochs internally."""
    return {k: utc_iso(v) if k in _EPOCH_FIELDS and isinstance(v, int | float) else v
            for k, v in d.items()}


_EPOCH_FIELDS = ("lease_expires", "retry_at", "failed_at")


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
    ctx.emit(_iso_times(rec.public()) | extra,
             format_show(rec, extra) + "".join(f"\nwarning: {w}" for w in warnings))
    return RET_OK


def _warnings(rec: WorksetRecord) -> list[str]:
    from daylib.spec import Workset

    try:
        return Workset.model_validate_json(rec.spec_json).warnings if rec.spec_json else []
    except ValueError:
        return []


def _show_unregistered(ctx: Context, workset_id: str) -> int:
    from daylib.spec import WORK_FILE, is_valid_id

    st = ctx.settings.storage
    prefix = f"{st.prefix}{workset_id}/"
    if not is_valid_id(workset_id) or WORK_FILE not in ctx.s3.files(st.bucket, prefix):
        raise NotFound(f"no workset {workset_id!r}")
    uri = f"s3://{st.bucket}/{prefix}"
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


def cmd_completion(ctx: Context, args: argparse.Namespace) -> int:
    from daylib.cli_habits import bash_completion

    print(bash_completion(build_parser()))
    return RET_OK


def _changed(ctx: Context, rec: WorksetRecord, text: str) -> int:
    ctx.emit(rec.public(), text)
    return RET_OK


def cmd_cancel(ctx: Context, args: argparse.Namespace) -> int:
    ctx.notifier  # noqa: B018 - attaches the outbox, so the cancelled event is recorded
    rec = control.cancel(ctx.store, args.id, ctx.actor)
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
    return _changed(ctx, rec, f"{rec.workset_id} will run on {args.cluster}"
                    + (" (soft affinity)" if args.soft else ""))


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
    table = _table(["cluster", "status", "region", "vCPUs free/total", "memory GB free",
                    "$/vCPU-h", "slots", "locked", "in_progress", "heartbeat s ago"],
                   [[r["name"], r["status"], r["region"], f"{r['cpus_free']}/{r['cpus_total']}",
                     f"{r['memory_mb_free'] / 1024:.0f}", f"{r['cost_per_vcpu_hour']:g}",
                     r["max_concurrent"], r["worksets"].get("locked", 0),
                     r["worksets"].get("in_progress", 0),
                     f"{now - r['heartbeat_at']:.0f}" if r["heartbeat_at"] else "-"]
                    for r in rows]) if rows else "no clusters registered"
    if stacks is not None:
        table += "\n\nParallelCluster stacks in the account:\n" + (
            _table(["stack", "status", "version"],
                   [[s["name"], s["status"], s["version"]] for s in stacks])
            if stacks else "none")
    ctx.emit(data, table + note)
    return RET_OK


def cmd_retry(ctx: Context, args: argparse.Namespace) -> int:
    rec = control.retry(ctx.store, ctx.s3, ctx.settings, args.id, ctx.actor,
                        keep_overrides=not args.reset_overrides)
    if rec.intake_error:
        log.warning("workset %s: its daylily_work.yaml is still invalid and will fail again: %s",
                    rec.workset_id, rec.intake_error)
    return _changed(ctx, rec, f"{rec.workset_id} ready (attempt {rec.attempt})")


def cmd_priority(ctx: Context, args: argparse.Namespace) -> int:
    rec = control.set_priority(ctx.store, args.id, args.priority, ctx.actor)
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
    text = "dead-letter queue is empty" if not rows else _table(
        ["workset", "category", "rule", "attempts", "dead-lettered", "state now", "error"],
        [[r["workset_id"], r["category"], r["rule"], r["attempts"], r["dead_lettered_at"],
          r["state"], (r["error"] or "")[:60]] for r in rows])
    ctx.emit(rows, text)
    return RET_OK


def cmd_dlq_redrive(ctx: Context, args: argparse.Namespace) -> int:
    if bool(args.ids) == bool(args.all):
        raise _UsageError("dlq redrive: give workset ids or --all (not both)")
    if args.all:
        ids = sorted({letter.workset_id for letter in _require_dlq(ctx).letters()})
    else:
        ids = list(args.ids)
    results, deleted = control.redrive(ctx.store, ctx.s3, ctx.settings, ctx.dlq, ids,
                                       ctx.actor, progress=reporter())
    unknown = [r for r in results if r.outcome == "unknown"]
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
    word = "paused: monitors stop claiming" if rec.paused else "resumed: monitors claim again"
    ctx.emit({"paused": rec.paused, "changed_by": rec.changed_by,
              "changed_at": rec.changed_at}, word)
    return RET_OK


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
                      region=ctx.clients.region, late=ctx.late)

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


def cmd_doctor(ctx: Context, args: argparse.Namespace) -> int:
    from daylib.doctor import Doctor, report

    checks = Doctor(ctx.settings, ctx.clients).run()
    ctx.emit(report(checks), "\n".join(c.line() for c in checks))
    return RET_OK if all(c.ok for c in checks) else RET_ERROR


def _doctor_bad_config(exc: ConfigError, as_json: bool) -> int:
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


# ---------------------------------------------------------------------- parser

class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> Any:  # one line, exit 2
        from daylib.cli_habits import did_you_mean

        self.exit(RET_USAGE, f"{self.prog}: usage error: {did_you_mean(message)}\n")


class _UsageError(DaylibError):
    """A combination of arguments argparse cannot express; exit code 2."""


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
        parser.add_argument("--log-format", choices=("json", "text"), default=d(None),
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
    sp.add_argument("--step", choices=("stage", "run", "export"))
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
    sp.add_argument("--executor", choices=("local", "slurm"))
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
                return _doctor_bad_config(exc, args.json)
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
    except _UsageError as exc:
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
