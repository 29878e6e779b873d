"""What every command shares: the documented exit codes, the usage error, and the wake
message of the commands that change what monitors may claim."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from daylib.errors import DaylibError

if TYPE_CHECKING:
    from daylib.cli import Context

log = logging.getLogger("daylib")

RET_OK = 0
RET_ERROR = 1
RET_USAGE = 2
RET_CONFIG = 78  # monitor only (sysexits EX_CONFIG): systemd must not restart on it


class UsageError(DaylibError):
    """A combination of arguments argparse cannot express; exit code 2."""


def wake_monitors(ctx: Context, why: str) -> None:
    """A wake message on the intake queue, so the monitor long-polling it acts now rather
    than at its next idle pass (``monitor.idle_max_seconds``). The change is already stored:
    a message that cannot be sent only costs that wait."""
    from daylib.intake_events import intake_queue_for

    try:
        queue = intake_queue_for(ctx.clients.client("sqs"), ctx.settings)
        if queue is not None:
            queue.wake(why)
    except DaylibError as exc:
        log.warning("monitors not woken (%s); they act on it within %.0f s", exc,
                    ctx.settings.monitor.idle_max_seconds)
