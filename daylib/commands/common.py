"""What every command shares: the documented exit codes and the usage error."""

from __future__ import annotations

from daylib.errors import DaylibError

RET_OK = 0
RET_ERROR = 1
RET_USAGE = 2
RET_CONFIG = 78  # monitor only (sysexits EX_CONFIG): systemd must not restart on it


class UsageError(DaylibError):
    """A combination of arguments argparse cannot express; exit code 2."""
