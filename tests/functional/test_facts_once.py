"""Facts defined once stay one: what a store or publisher built without settings uses, what
a refused write says on every backend, where step logs and status files lie, and how a
queue is found by name (issue 8: "each fact defined once")."""

from __future__ import annotations

from pathlib import Path

import pytest

from daylib import spec, steplogs
from daylib.aws import find_queue
from daylib.config import Settings
from daylib.emulator import MotoServer
from daylib.errors import ConflictError
from daylib.executors.base import StepRequest
from daylib.outbox import Outbox
from daylib.store.contract import Store
from daylib.store.dynamodb import DynamoStore
from daylib.store.memory import MemoryStore
from tests.conftest import client


def test_stores_and_outbox_without_settings_use_the_settings_defaults() -> None:
    st = Settings()
    want = (st.state.history_keep_first, st.state.history_keep_last,
            st.notify.stale_seconds, st.notify.max_pending)
    for store in (MemoryStore(), DynamoStore(object(), "t")):
        assert (store.keep_first, store.keep_last, store.stale_seconds,
                store.max_pending) == want
    box = Outbox(topic=None, dlq=None)
    assert (box.stale_seconds, box.ack_delay_seconds, box.max_pending) == (
        st.notify.stale_seconds, st.notify.ack_delay_seconds, st.notify.max_pending)


def test_a_lost_claim_says_the_same_on_every_backend(store: Store) -> None:
    store.register("ws-lost", actor="t")
    store.claim("ws-lost", "m1", 30)
    with pytest.raises(ConflictError) as lost:
        store.claim("ws-lost", "m2", 30)
    assert str(lost.value) == "workset ws-lost changed concurrently (now locked)"
    assert lost.value.owner == "m1"  # who won: the claimer shares contended work with it


def test_step_logs_lie_in_the_workset_folder(tmp_path: Path) -> None:
    st = Settings()
    st.storage.bucket, st.storage.prefix = "b", "runs/x/"
    uri = steplogs.folder_uri(st, "ws-1")
    assert uri == spec.folder_uri(st, "ws-1") + "logs/" == "s3://b/runs/x/ws-1/logs/"
    assert steplogs.folder_key(st, "ws-1") == "runs/x/ws-1/logs/"


def test_the_monitor_reads_the_files_the_executor_is_told_to_write(tmp_path: Path) -> None:
    st = Settings()
    st.monitor.workdir = str(tmp_path)
    log = steplogs.ref("run", 3)
    req = StepRequest("ws-1", 3, "run", ["true"], tmp_path / "ws-1")
    assert steplogs.status_path(st, "ws-1", log) == req.status_file
    assert steplogs.local_path(st, "ws-1", log) == req.log_file


def test_a_queue_is_found_by_name_or_is_none(moto_server: MotoServer) -> None:
    sqs = client("sqs", moto_server.endpoint_url)
    url = sqs.create_queue(QueueName="facts-once-q")["QueueUrl"]
    assert find_queue(sqs, "facts-once-q") == url
    assert find_queue(sqs, "facts-once-missing") is None
