"""An HTTP fault proxy in front of the moto server: the monitors talk to it as their AWS
endpoint, and it can refuse connections (endpoint down), or answer a share of each service's
calls with the throttling error that service really returns (DynamoDB and SQS: 400
``ThrottlingException`` JSON; SNS: 400 ``Throttling`` XML; S3: 503 ``SlowDown`` XML).

The service is read from the SigV4 credential scope, so no request body is parsed. Every
response closes its connection, so going down also cuts clients that would otherwise keep a
pooled connection open."""

from __future__ import annotations

import http.client
import json
import random
import re
import threading
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

SCOPE = re.compile(r"Credential=[^/]+/\d+/[^/]+/([^/]+)/aws4_request")
HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "proxy-connection", "upgrade",
              "te", "trailer", "content-length"}


def _service(headers: Any) -> str:
    m = SCOPE.search(headers.get("Authorization", ""))
    return m.group(1) if m else "unknown"


def throttle_response(service: str, json_protocol: bool) -> tuple[int, dict[str, str], bytes]:
    """The error each service sends when it throttles, as botocore's retry logic expects it."""
    if service == "s3":
        return 503, {"Content-Type": "application/xml"}, (
            b"<Error><Code>SlowDown</Code><Message>injected</Message></Error>")
    if json_protocol:
        kind = "ThrottlingException"
        return 400, {"Content-Type": "application/x-amz-json-1.0",
                     "x-amzn-ErrorType": kind}, json.dumps(
            {"__type": f"com.amazonaws.{service}#{kind}", "message": "injected"}).encode()
    return 400, {"Content-Type": "text/xml"}, (
        b"<ErrorResponse><Error><Type>Sender</Type><Code>Throttling</Code>"
        b"<Message>injected</Message></Error></ErrorResponse>")


class _QuietServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client killed mid-request (kill -9 storms) is expected: say nothing."""


class FaultProxy:
    """``share`` maps service -> fraction of its calls throttled (``"*"`` for every service).
    ``down()``/``up()`` close and reopen the listening socket: clients get ECONNREFUSED."""

    def __init__(self, upstream: str, *, seed: int = 9) -> None:
        parts = urlsplit(upstream)
        self.upstream = (parts.hostname or "127.0.0.1", parts.port or 80)
        self.share: dict[str, float] = {}
        self.rng = random.Random(seed)
        self.lock = threading.Lock()
        self.calls: Counter[str] = Counter()
        self.injected: Counter[str] = Counter()
        self.port = 0
        self._server: ThreadingHTTPServer | None = None
        self.up()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def up(self) -> None:
        if self._server is not None:
            return
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *_: Any) -> None:
                """Silent: one line per request would cost more than the request."""

            def _any(self) -> None:
                proxy.handle(self)

            do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _any

        server = _QuietServer(("127.0.0.1", self.port), Handler)
        self.port = server.server_address[1]
        threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05},
                         daemon=True).start()
        self._server = server

    def down(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.shutdown()
            server.server_close()

    def close(self) -> None:
        self.down()

    def _throttled(self, service: str) -> bool:
        share = self.share.get(service, self.share.get("*", 0.0))
        with self.lock:
            self.calls[service] += 1
            hit = share > 0 and self.rng.random() < share
            if hit:
                self.injected[service] += 1
        return hit

    def handle(self, req: BaseHTTPRequestHandler) -> None:
        length = int(req.headers.get("Content-Length") or 0)
        body = req.rfile.read(length) if length else b""
        service = _service(req.headers)
        if self._throttled(service):
            json_protocol = "json" in (req.headers.get("Content-Type") or "")
            status, headers, payload = throttle_response(service, json_protocol)
        else:
            try:
                status, headers, payload = self._forward(req, body)
            except OSError:
                status, headers, payload = 502, {}, b""
        req.send_response(status)
        for key, value in headers.items():
            if key.lower() not in HOP_BY_HOP:
                req.send_header(key, value)
        size = {k.lower(): v for k, v in headers.items()}.get("content-length") \
            if req.command == "HEAD" else None  # a HEAD tells the object's size, sends none
        req.send_header("Content-Length", size or str(len(payload)))
        req.send_header("Connection", "close")
        req.end_headers()
        if req.command != "HEAD":
            req.wfile.write(payload)
        req.close_connection = True

    def _forward(self, req: BaseHTTPRequestHandler,
                 body: bytes) -> tuple[int, dict[str, str], bytes]:
        conn = http.client.HTTPConnection(*self.upstream, timeout=60)
        try:
            headers = {k: v for k, v in req.headers.items() if k.lower() not in HOP_BY_HOP}
            conn.request(req.command, req.path, body=body, headers=headers)
            resp = conn.getresponse()
            return resp.status, dict(resp.getheaders()), resp.read()
        finally:
            conn.close()
