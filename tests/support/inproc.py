"""The CLI's ``main(argv)`` called in this process, seen as a process would be: same argv,
environment, working directory, stdout, stderr and exit code.

Why: a Python start with boto3 costs about a second; most CLI tests check a command's output
and exit code, not the process. The process contract (entry points, signals, a hang guarded by
a timeout) keeps real subprocess tests. Process-wide state the CLI touches (environment, cwd,
standard streams, root logger, SIGTERM/SIGINT handlers) is swapped in and restored, under one
lock: calls never overlap."""

from __future__ import annotations

import contextlib
import io
import logging
import os
import signal
import subprocess
import threading
import traceback
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

_LOCK = threading.Lock()
_SIGNALS = (signal.SIGTERM, signal.SIGINT)


@contextlib.contextmanager
def _process_state(environ: Mapping[str, str], cwd: Path) -> Iterator[None]:
    saved_env = dict(os.environ)
    saved_cwd = os.getcwd()
    root = logging.getLogger()
    saved_log = (list(root.handlers), root.level)
    saved_signals = {s: signal.getsignal(s) for s in _SIGNALS}
    os.environ.clear()
    os.environ.update(environ)
    os.chdir(cwd)
    try:
        yield
    finally:
        os.chdir(saved_cwd)
        os.environ.clear()
        os.environ.update(saved_env)
        root.handlers[:], level = saved_log
        root.setLevel(level)
        for sig, handler in saved_signals.items():
            signal.signal(sig, handler)


def call_main(args: tuple[str, ...], environ: Mapping[str, str],
              cwd: Path) -> subprocess.CompletedProcess[str]:
    """``daylily-workset ARGS`` run by ``daylib.cli.main``; an escaped exception is a traceback
    on stderr and exit 1, as the interpreter would make it."""
    from daylib import cli

    out, err = io.StringIO(), io.StringIO()
    code: Any
    with _LOCK, _process_state(environ, cwd), contextlib.redirect_stdout(out), \
            contextlib.redirect_stderr(err):
        try:
            code = cli.main(list(args))
        except SystemExit as exc:  # argparse: usage errors, --help, --version
            code = exc.code
        except Exception:
            traceback.print_exc()
            code = 1
    if code is None:
        code = 0
    elif not isinstance(code, int):
        print(code, file=err)
        code = 1
    return subprocess.CompletedProcess(["daylily-workset", *args], code, out.getvalue(),
                                       err.getvalue())
