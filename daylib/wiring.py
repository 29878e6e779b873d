"""One place that builds the stack: settings -> AWS clients -> store -> outbox -> executor ->
monitor. The CLI's ``Context``, the demo, the benchmarks and the tests build through here, so
no setting (history limits, outbox limits) is forgotten by one of them."""

from __future__ import annotations

import logging
import shutil
from collections.abc import Callable
from typing import TYPE_CHECKING

from daylib.aws import AwsClients
from daylib.config import Settings
from daylib.dlq import DeadLetterQueue, queue_for
from daylib.errors import UserError
from daylib.executors.base import Executor
from daylib.late_setup import LateSetup
from daylib.notify import SnsTopic, topic_for
from daylib.outbox import Outbox
from daylib.s3 import S3Objects
from daylib.store.contract import Store
from daylib.store.dynamodb import DynamoStore

if TYPE_CHECKING:  # the monitor (and what it imports) loads only for the commands that run one
    from daylib.intake_events import IntakeQueue
    from daylib.monitor import Monitor

log = logging.getLogger("daylib")


def store_for(settings: Settings, clients: AwsClients, *,
              clock: Callable[[], float] | None = None) -> DynamoStore:
    """The workset table with the configured history and outbox limits."""
    st, n = settings.state, settings.notify
    return DynamoStore(clients.client("dynamodb"), st.table, keep_first=st.history_keep_first,
                       keep_last=st.history_keep_last, stale_seconds=n.stale_seconds,
                       max_pending=n.max_pending, **({"clock": clock} if clock else {}))


def s3_for(clients: AwsClients) -> S3Objects:
    return S3Objects(clients.client("s3"))


def dlq_for(settings: Settings, clients: AwsClients) -> DeadLetterQueue | None:
    """The dead-letter queue if enabled and found."""
    d = settings.dlq
    if not d.enabled:
        return None
    return queue_for(clients.client("sqs"), queue_url=d.queue_url, queue_name=d.queue_name)


def outbox_for(settings: Settings, clients: AwsClients, *,
               topic: SnsTopic | None = None, dlq: DeadLetterQueue | None = None,
               late: LateSetup | None = None) -> Outbox | None:
    """The publisher of this process's events: the SNS topic and the dead-letter queue as
    configured (looked up unless given); None when neither is on or found. A lookup AWS did
    not answer stays in ``late`` (daylib/late_setup.py) and fills the outbox in later."""
    n, d = settings.notify, settings.dlq
    outbox = Outbox(topic=topic, dlq=dlq, stale_seconds=n.stale_seconds,
                    ack_delay_seconds=n.ack_delay_seconds, max_pending=n.max_pending)
    late = late or LateSetup()

    def find_topic() -> None:
        outbox.topic = topic_for(clients.client("sns"), topic_arn=n.topic_arn,
                                 topic_name=n.topic_name)
        if outbox.topic is None:
            log.warning("notifications are off: SNS topic %r not found (run "
                        "`daylily-workset init`, or set notify.enabled: false)", n.topic_name)

    def find_dlq() -> None:
        outbox.dlq = dlq_for(settings, clients)
        if outbox.dlq is None:
            log.warning("dead-lettering is off: queue %r not found (run "
                        "`daylily-workset init`, or set dlq.enabled: false)", d.queue_name)

    if topic is None and n.enabled:
        late.attempt(f"notifications (SNS topic {n.topic_name!r})", find_topic)
    if dlq is None and d.enabled:
        late.attempt(f"dead-lettering (queue {d.queue_name!r})", find_dlq)
    return outbox if outbox.enabled or late.pending else None


def executor_for(settings: Settings) -> Executor:
    """The configured executor (``monitor.executor``: local or slurm)."""
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


def monitor_for(settings: Settings, clients: AwsClients, *, store: Store | None = None,
                s3: S3Objects | None = None, executor: Executor | None = None,
                outbox: Outbox | None = None, intake_queue: IntakeQueue | None = None,
                step_env: dict[str, str] | None = None,
                late: LateSetup | None = None,
                clock: Callable[[], float] | None = None) -> Monitor:
    """A monitor over the configured table, bucket and executor; ``outbox`` publishes its
    events (None: none are recorded). Steps get the clients' endpoint and credentials."""
    from daylib.monitor import Monitor

    return Monitor(settings, store or store_for(settings, clients), s3 or s3_for(clients),
                   executor or executor_for(settings), notifier=outbox,
                   step_env=clients.subprocess_env() if step_env is None else step_env,
                   region=clients.region, intake_queue=intake_queue, late=late,
                   **({"clock": clock} if clock else {}))
