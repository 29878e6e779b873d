"""In-memory dynalite (DynamoDB emulator on Node) for the store tests.

Why: moto serialises requests through the GIL, so a store that is only tested on moto may hide
claim races; dynalite is a second, independent DynamoDB implementation (see
/work/shared/TESTBED.md for what it does not support: transactions, TTL, PITR).

``python -m tests.support.dynalite [CACHE_DIR]`` runs a self-check.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

__all__ = ["Dynalite", "dynalite_unavailable_reason", "start_dynalite"]

DYNALITE_SPEC = "dynalite@4"
_SERVER_JS = Path(__file__).with_name("dynalite_server.js")
START_TIMEOUT_S = 30.0
INSTALL_TIMEOUT_S = 300.0


@dataclass
class Dynalite:
    """A running dynalite; point boto3 at ``endpoint_url`` (any region, dummy credentials)."""

    endpoint_url: str
    port: int
    _proc: subprocess.Popen[bytes] = field(repr=False)
    _stderr: IO[bytes] = field(repr=False)

    @property
    def pid(self) -> int:
        return self._proc.pid

    def stop(self) -> None:
        """Stop the server (idempotent); all tables vanish with it."""
        if self._proc.poll() is None:
            self._proc.terminate()
            try:
                self._proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait(timeout=5)
        for stream in (self._proc.stdin, self._proc.stdout):
            if stream is not None:
                with contextlib.suppress(OSError):
                    stream.close()
        with contextlib.suppress(OSError):
            self._stderr.close()

    def __enter__(self) -> Dynalite:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _tail(text: str, lines: int = 30) -> str:
    return "\n".join(text.rstrip().splitlines()[-lines:])


def dynalite_unavailable_reason() -> str | None:
    """Say why dynalite cannot run here (no node/npm), or None; lets tests skip cleanly."""
    for tool in ("node", "npm"):
        if shutil.which(tool) is None:
            return f"{tool} is not on PATH (dynalite needs Node.js and npm)"
    return None


def _installed_version(prefix: Path) -> str | None:
    try:
        meta = json.loads((prefix / "node_modules" / "dynalite" / "package.json").read_text())
    except (OSError, ValueError):
        return None
    version = meta.get("version")
    return version if isinstance(version, str) else None


def ensure_dynalite(cache_dir: Path) -> Path:
    """Install dynalite@4 under cache_dir/node once; returns its node_modules directory.

    A file lock makes concurrent test workers wait for one install instead of racing npm.
    """
    reason = dynalite_unavailable_reason()
    if reason:
        raise RuntimeError(reason)
    prefix = Path(cache_dir).resolve() / "node"
    prefix.mkdir(parents=True, exist_ok=True)
    with open(prefix / ".install.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        version = _installed_version(prefix)
        if version is None or not version.startswith("4."):
            cmd = [
                "npm",
                "install",
                "--prefix",
                str(prefix),
                "--no-audit",
                "--no-fund",
                "--loglevel=error",
                DYNALITE_SPEC,
            ]
            try:
                res = subprocess.run(
                    cmd, capture_output=True, text=True, timeout=INSTALL_TIMEOUT_S, check=False
                )
            except subprocess.TimeoutExpired as exc:
                out = (exc.stdout or b"") + (exc.stderr or b"")
                text = out.decode(errors="replace") if isinstance(out, bytes) else str(out)
                raise RuntimeError(
                    f"`{' '.join(cmd)}` timed out after {INSTALL_TIMEOUT_S:.0f}s:\n{_tail(text)}"
                ) from exc
            version = _installed_version(prefix)
            if res.returncode != 0 or version is None:
                raise RuntimeError(
                    f"`{' '.join(cmd)}` failed (rc {res.returncode}):\n"
                    + _tail(res.stdout + res.stderr)
                )
    return prefix / "node_modules"


def _read_port(stream: IO[bytes], timeout_s: float) -> str | None:
    """Read the first stdout line without blocking forever on a server that never prints."""
    result: list[bytes] = []
    reader = threading.Thread(target=lambda: result.append(stream.readline()), daemon=True)
    reader.start()
    reader.join(timeout_s)
    return result[0].decode(errors="replace").strip() if result else None


def _wait_accepting(port: int, proc: subprocess.Popen[bytes], timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and proc.poll() is None:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 1):
            return True
        time.sleep(0.05)
    return False


def start_dynalite(cache_dir: Path) -> Dynalite:
    """Install dynalite if needed and start an in-memory server on a free port."""
    node_modules = ensure_dynalite(cache_dir)
    node = shutil.which("node")
    assert node is not None
    env = {**os.environ, "NODE_PATH": str(node_modules)}
    # stderr goes to a file: a pipe nobody reads could fill up and stall the server.
    stderr = tempfile.TemporaryFile(prefix="dynalite-stderr-")  # noqa: SIM115 - owned by Dynalite
    started = time.monotonic()
    proc = subprocess.Popen(
        [node, str(_SERVER_JS)],
        stdin=subprocess.PIPE,  # the server exits when this closes (i.e. when we die)
        stdout=subprocess.PIPE,
        stderr=stderr,
        env=env,
    )

    def fail(what: str) -> RuntimeError:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=5)
        stderr.seek(0)
        text = stderr.read().decode(errors="replace")
        stderr.close()
        return RuntimeError(
            f"dynalite {what} (exit code {proc.returncode}); node stderr:\n"
            f"{_tail(text) or '(empty)'}"
        )

    assert proc.stdout is not None
    line = _read_port(proc.stdout, START_TIMEOUT_S)
    if line is None:
        raise fail(f"did not report its port within {START_TIMEOUT_S:.0f}s")
    if not line.isdigit():
        raise fail(f"exited or printed no port before listening (stdout: {line!r})")
    port = int(line)
    remaining = max(1.0, START_TIMEOUT_S - (time.monotonic() - started))
    if not _wait_accepting(port, proc, remaining):
        raise fail(f"is not accepting connections on port {port}")
    return Dynalite(endpoint_url=f"http://127.0.0.1:{port}", port=port, _proc=proc, _stderr=stderr)


def _self_check(cache_dir: Path) -> None:
    """Create a table, put and get an item: proves install, start-up and the wire protocol."""
    import boto3  # local: only the self-check needs it

    t0 = time.monotonic()
    ensure_dynalite(cache_dir)
    t1 = time.monotonic()
    with start_dynalite(cache_dir) as server:
        t2 = time.monotonic()
        client = boto3.client(
            "dynamodb",
            endpoint_url=server.endpoint_url,
            region_name="us-west-2",
            aws_access_key_id="dummy",
            aws_secret_access_key="dummy",
        )
        client.create_table(
            TableName="selfcheck",
            AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
            KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
            BillingMode="PAY_PER_REQUEST",
        )
        client.get_waiter("table_exists").wait(
            TableName="selfcheck", WaiterConfig={"Delay": 1, "MaxAttempts": 10}
        )
        client.put_item(TableName="selfcheck", Item={"pk": {"S": "a"}, "n": {"N": "1"}})
        got = client.get_item(TableName="selfcheck", Key={"pk": {"S": "a"}}, ConsistentRead=True)
        if got.get("Item") != {"pk": {"S": "a"}, "n": {"N": "1"}}:
            raise RuntimeError(f"unexpected get_item result: {got.get('Item')!r}")
        print(
            f"dynalite OK at {server.endpoint_url} "
            f"(install check {t1 - t0:.2f}s, start {t2 - t1:.2f}s)"
        )


def main(argv: Sequence[str] | None = None) -> int:
    """Self-check entry point; the cache dir defaults to ~/.cache/daylib-tests."""
    args = list(sys.argv[1:] if argv is None else argv)
    cache_dir = Path(args[0]) if args else Path.home() / ".cache" / "daylib-tests"
    try:
        _self_check(cache_dir)
    except RuntimeError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
