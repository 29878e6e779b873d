"""An emulated AWS on this machine (moto in server mode), for the demo, tests and benchmarks.

Only the demo and the test/bench harness import this; moto is an optional dependency.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

FAKE_CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                    "AWS_SESSION_TOKEN": "testing"}


def _import_path() -> str:
    root = str(Path(__file__).resolve().parent.parent)
    extra = os.environ.get("PYTHONPATH")
    return f"{root}{os.pathsep}{extra}" if extra else root


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_http(url: str, timeout: float, proc: subprocess.Popen[bytes] | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"moto server exited with code {proc.returncode}")
        try:
            with urllib.request.urlopen(url + "/moto-api/", timeout=1):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"moto server at {url} did not answer within {timeout:.0f} s")


@dataclass
class MotoServer:
    endpoint_url: str
    _stop: Any = field(repr=False, default=None)
    pid: int | None = None  # the server's process (None: a thread of this one)

    def stop(self) -> None:
        if self._stop is not None:
            self._stop()
            self._stop = None

    def reset(self) -> None:
        """Drop every emulated resource (between tests)."""
        req = urllib.request.Request(self.endpoint_url + "/moto-api/reset", method="POST")
        with urllib.request.urlopen(req, timeout=10):
            pass


class _Serialized:
    """WSGI middleware: one request at a time. moto's backends check a condition and then
    apply the update without a lock, so under concurrent requests two conditional writes can
    both succeed (seen: 8 threads x 200 claims gave double claims). DynamoDB guarantees
    single-item atomicity; serialising requests restores it for the emulator."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.lock = threading.Lock()

    def __call__(self, environ: Any, start_response: Any) -> Any:
        # An SQS long poll (the intake queue) must not hold every other request.
        if environ.get("HTTP_X_AMZ_TARGET", "") == "AmazonSQS.ReceiveMessage":
            return list(self.app(environ, start_response))
        with self.lock:
            return list(self.app(environ, start_response))


def _lock_recorder() -> None:
    """moto's request recorder (``MOTO_ENABLE_RECORDING``) appends each request to its file
    in as many writes as the entry needs, unlocked. A request served outside ``_Serialized``'s
    lock (an SQS long poll) could land inside a large entry (an S3 upload) and corrupt both
    lines; one lock around each whole entry keeps the file one JSON document per line."""
    from moto.moto_api._internal.recorder.models import Recorder

    original = Recorder._record_request
    lock = threading.Lock()

    def record(self: Recorder, request: Any, body: bytes | None = None) -> None:
        with lock:
            original(self, request, body)

    Recorder._record_request = record  # type: ignore[method-assign]


def _make_server(host: str, port: int) -> Any:
    from moto.server import (  # type: ignore[attr-defined]
        DomainDispatcherApplication,
        create_backend_app,
    )
    from werkzeug.serving import WSGIRequestHandler, make_server

    class Quiet(WSGIRequestHandler):
        def log_request(self, *args: Any, **kwargs: Any) -> None:
            """One log line per request costs more than the request; say nothing."""

    _lock_recorder()
    app = _Serialized(DomainDispatcherApplication(create_backend_app))
    return make_server(host, port, app, threaded=True, request_handler=Quiet)


def start_moto(*, in_process: bool = True, timeout: float = 30.0) -> MotoServer:
    """Start moto on 127.0.0.1 at a free port. In-process is fastest to start (the demo);
    a subprocess gives the server its own interpreter (tests, benchmarks)."""
    for key, value in FAKE_CREDENTIALS.items():
        os.environ.setdefault(key, value)
    if in_process:
        try:
            server = _make_server("127.0.0.1", 0)
        except ImportError as exc:
            raise RuntimeError("moto is not installed; install daylib[demo]") from exc
        thread = threading.Thread(target=server.serve_forever, name="moto", daemon=True)
        thread.start()
        url = f"http://127.0.0.1:{server.server_port}"
        _wait_http(url, timeout)

        def stop_thread() -> None:
            server.shutdown()
            thread.join(10)

        return MotoServer(url, stop_thread)
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "daylib.emulator", str(port)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        env={**os.environ, **FAKE_CREDENTIALS, "PYTHONPATH": _import_path()},
    )
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_http(url, timeout, proc)
    except RuntimeError:
        proc.kill()
        raise

    def stop() -> None:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()

    return MotoServer(url, stop, proc.pid)


if __name__ == "__main__":
    _make_server("127.0.0.1", int(sys.argv[1])).serve_forever()
