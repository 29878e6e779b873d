"""The head node's cluster name: ParallelCluster's files, else the instance tag (IMDSv2),
served here by a small IMDS on loopback."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from daylib.clusters import local_cluster_name

TOKEN = "tok-123"


class _Imds(BaseHTTPRequestHandler):
    tags: dict[str, str] = {}
    seen: list[str] = []

    def do_PUT(self) -> None:
        ok = self.path == "/latest/api/token" and \
            self.headers.get("X-aws-ec2-metadata-token-ttl-seconds")
        self._answer(200 if ok else 400, TOKEN if ok else "")

    def do_GET(self) -> None:
        self.seen.append(self.path)
        if self.headers.get("X-aws-ec2-metadata-token") != TOKEN:
            self._answer(401, "")  # IMDSv2 only: no token, no answer
            return
        prefix = "/latest/meta-data/tags/instance/"
        key = self.path[len(prefix):].replace("%3A", ":") if self.path.startswith(prefix) \
            else ""
        value = self.tags.get(key)
        self._answer(200 if value else 404, value or "")

    def _answer(self, code: int, body: str) -> None:
        self.send_response(code)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body.encode())

    def log_message(self, *_: object) -> None:
        pass


@pytest.fixture
def imds() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Imds)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    _Imds.tags = {"parallelcluster:cluster-name": "tagged-cluster"}
    _Imds.seen = []
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def _none(tmp_path: Path) -> dict[str, Path]:
    return {"cfnconfig": tmp_path / "absent-cfnconfig",
            "cluster_config": tmp_path / "absent-cluster-config.yaml"}


def test_instance_tag_when_no_parallelcluster_files(imds: str, tmp_path: Path) -> None:
    """Seen: on a head node the name came from ParallelCluster's files only."""
    env = {"AWS_EC2_METADATA_SERVICE_ENDPOINT": imds}
    assert local_cluster_name(None, environ=env, **_none(tmp_path)) == "tagged-cluster"
    assert _Imds.seen == ["/latest/meta-data/tags/instance/parallelcluster%3Acluster-name"]


def test_files_win_over_the_tag(imds: str, tmp_path: Path) -> None:
    cfn = tmp_path / "cfnconfig"
    cfn.write_text("cfn_region=us-east-1\nstack_name=from-files\n")
    env = {"AWS_EC2_METADATA_SERVICE_ENDPOINT": imds}
    assert local_cluster_name(None, cfnconfig=cfn, cluster_config=tmp_path / "x",
                              environ=env) == "from-files"
    assert local_cluster_name("configured", environ=env, **_none(tmp_path)) == "configured"
    assert _Imds.seen == []


def test_no_tag_no_imds_or_disabled(imds: str, tmp_path: Path) -> None:
    _Imds.tags = {}
    env = {"AWS_EC2_METADATA_SERVICE_ENDPOINT": imds}
    assert local_cluster_name(None, environ=env, **_none(tmp_path)) is None
    disabled = {**env, "AWS_EC2_METADATA_DISABLED": "true"}
    assert local_cluster_name(None, environ=disabled, **_none(tmp_path)) is None
    dead = {"AWS_EC2_METADATA_SERVICE_ENDPOINT": "http://127.0.0.1:9"}
    assert local_cluster_name(None, environ=dead, **_none(tmp_path)) is None
