"""The local executor's promises (issue 9 items 5 and 10): a step the monitor lost to a
takeover keeps running and keeps its status file for the new owner, and every step process
it started is reaped (no ``<defunct>`` entries at any time, counted over 50 worksets)."""

from __future__ import annotations

import os
import sys
import threading
import time
from pathlib import Path

import pytest

from daylib import states as S
from daylib.executors.base import StepRequest
from daylib.executors.local import LocalExecutor
from tests.support.deployment import Env
from tests.support.executors import NoOpStaging


def _zombie_children() -> set[int]:
    """Pids of this process's children that have exited and not been reaped."""
    me = os.getpid()
    found = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if fields[0] == "Z" and int(fields[1]) == me:
            found.add(int(entry.name))
    return found


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def test_step_lost_to_a_takeover_keeps_running_and_keeps_its_status(tmp_path: Path) -> None:
    req = StepRequest(workset_id="ws-lost", attempt=1, step="run",
                      argv=[sys.executable, "-c", "import time; time.sleep(1.5)"],
                      workdir=tmp_path / "ws-lost")
    ex = LocalExecutor()
    ref = ex.submit(req)
    stop = threading.Event()
    stop.set()  # the heartbeat found the lease taken over
    out = ex.wait(ref, req, stop)
    assert out.state == "RUNNING"
    assert _alive(int(ref)), "the step was killed although its new owner adopts it"
    # the new owner (another executor, as after a restart) adopts it and reads its outcome
    other = LocalExecutor()
    assert other.find(req) == ref
    done = other.wait(ref, req, threading.Event())
    assert (done.state, done.exit_code) == ("COMPLETED", 0)
    assert req.status_file.exists()


def test_a_step_ending_is_seen_when_its_wrapper_exits_not_a_poll_later(tmp_path: Path) -> None:
    """Slot refill: ``wait`` returns as the wrapper exits, however long the poll interval
    (which remains for steps adopted from another run of the monitor)."""
    poll_seconds = 60.0
    req = StepRequest(workset_id="ws-quick", attempt=1, step="run",
                      argv=["sleep", "0.3"], workdir=tmp_path / "ws-quick")
    ex = LocalExecutor(poll_seconds=poll_seconds)
    started = time.monotonic()
    out = ex.wait(ex.submit(req), req, threading.Event())
    assert (out.state, out.exit_code) == ("COMPLETED", 0)
    assert time.monotonic() - started < poll_seconds / 2


def test_monitor_that_lost_its_lease_leaves_the_step_to_the_new_owner(env: Env,
                                                                      tmp_path: Path) -> None:
    env.upload("ws-stolen", pipeline="counted")
    started = Path(env.settings.monitor.workdir) / "ws-stolen" / ".run.a1.status.json.pid"
    with env.running(lease_seconds=1.0, heartbeat_seconds=3.0) as mon:
        env.wait_for(started.exists)  # the run step runs (the item learns it with a write)
        env.wait_for(lambda: time.time() > (env.store.require("ws-stolen").lease_expires or 0))
        env.store.claim("ws-stolen", "thief", 60.0, expired=env.store.require("ws-stolen"))
        env.wait_for(lambda: not mon._snapshot())
    status = Path(env.settings.monitor.workdir) / "ws-stolen" / ".run.a1.status.json"
    env.wait_for(status.exists)
    assert '"exit_code": 0' in status.read_text()
    assert len((tmp_path / "runs.txt").read_text().splitlines()) == 1


@pytest.mark.memory_store  # about reaping step processes, not DynamoDB
def test_no_defunct_children_at_any_time_over_50_worksets(env: Env) -> None:
    ids = [f"ws-z{i:02d}" for i in range(50)]
    for wid in ids:
        env.upload(wid)
    seen: dict[int, float] = {}
    lingering: set[int] = set()
    done = threading.Event()

    def sample() -> None:
        while not done.is_set():
            now = time.monotonic()
            current = _zombie_children()
            for pid in current:
                if now - seen.setdefault(pid, now) > 0.5:
                    lingering.add(pid)
            for pid in set(seen) - current:
                seen.pop(pid)
            time.sleep(0.05)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        env.monitor(executor=NoOpStaging(), max_concurrent=4, poll_seconds=0.2).run(once=True)
    finally:
        time.sleep(1.0)
        done.set()
        sampler.join(5)
    assert [env.state(w) for w in ids] == [S.COMPLETE] * 50
    assert not lingering, f"{len(lingering)} step processes stayed <defunct> over 0.5 s"
    assert _zombie_children() == set()
