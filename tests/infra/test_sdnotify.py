"""Type=notify: the monitor tells systemd it is ready after its first good pass, and not
before (with no table there is no good pass: no READY, exit 78)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
from pathlib import Path

from tests.cli.conftest import EnvFactory
from tests.conftest import ROOT, cli_command


def _listen(path: Path) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(path))
    sock.settimeout(60)
    return sock


def test_ready_after_first_pass(make_env: EnvFactory, tmp_path: Path) -> None:
    env = make_env()
    path = tmp_path / "notify.sock"
    with _listen(path) as sock:
        proc = subprocess.Popen([*cli_command(), "monitor"], cwd=ROOT,
                                env={**os.environ, "PYTHONPATH": str(ROOT), **env.env,
                                     "NOTIFY_SOCKET": str(path)},
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        try:
            assert sock.recv(256) == b"READY=1"
            # the table already shows this monitor's cluster: the pass really happened
            assert env.json("clusters")["clusters"], "no heartbeat before READY"
        finally:
            proc.send_signal(signal.SIGTERM)
            _, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, err


def test_no_ready_without_a_table(make_env: EnvFactory, tmp_path: Path) -> None:
    env = make_env(init=False)
    path = tmp_path / "notify.sock"
    with _listen(path) as sock:
        res = env.run("monitor", extra_env={"NOTIFY_SOCKET": str(path)}, timeout=60)
        assert res.returncode == 78, res.stderr
        sock.setblocking(False)
        try:
            got = sock.recv(256)
        except BlockingIOError:
            got = b""
        assert got == b""
