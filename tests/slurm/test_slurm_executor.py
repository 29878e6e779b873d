"""SlurmExecutor against a real single-node Slurm: outcomes, cancel, adoption, refusals."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest

from daylib.executors.base import StepOutcome, StepRequest
from daylib.executors.slurm import SlurmExecutor, parse_capacity
from daylib.ordering import epoch
from tests.support.slurm import SlurmCluster

pytestmark = pytest.mark.slurm


@pytest.fixture
def executor(slurm_cluster: SlurmCluster) -> SlurmExecutor:
    return SlurmExecutor(partition=slurm_cluster.partition, env=slurm_cluster.env,
                         poll_seconds=0.2, lost_grace_seconds=2.0)


def make_req(workdir: Path, code: str, **kw: object) -> StepRequest:
    """A step running ``python -c code``, with a workset id unique across the session."""
    workset_id = f"t{uuid.uuid4().hex[:10]}"
    return StepRequest(workset_id=workset_id, attempt=1, step="run",
                       argv=[sys.executable, "-c", code], workdir=workdir / workset_id,
                       **kw)  # type: ignore[arg-type]


def run_step(ex: SlurmExecutor, req: StepRequest) -> tuple[str, StepOutcome]:
    ref = ex.find(req) or ex.submit(req)
    return ref, ex.wait(ref, req, threading.Event())


def eventually(check: Callable[[], bool], timeout: float = 30.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.1)
    return check()


def alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[-1].split()[0] != "Z"


def jobs_named(cluster: SlurmCluster, name: str) -> list[str]:
    res = subprocess.run(["squeue", "--noheader", "--states=all", "--name", name,
                          "--format", "%i %T"], env=cluster.client_env(), capture_output=True,
                         text=True, timeout=30, check=True)
    return res.stdout.split("\n")[:-1]


def job_state(cluster: SlurmCluster, job_id: str) -> str:
    res = subprocess.run(["scontrol", "show", "job", "-o", job_id], env=cluster.client_env(),
                         capture_output=True, text=True, timeout=30, check=True)
    return res.stdout.split("JobState=", 1)[1].split()[0]


# Writes the pids of itself and of a grandchild, then sleeps: for cancel/stop tests.
SLEEPER = """
import os, subprocess, sys, time
kid = subprocess.Popen(["sleep", "300"])
open("pids.tmp", "w").write(f"{os.getpid()} {kid.pid}")
os.replace("pids.tmp", "pids")
time.sleep(300)
"""


def started_pids(req: StepRequest) -> list[int]:
    pids = req.workdir / "pids"
    assert eventually(pids.exists), "the job never started"
    return [int(p) for p in pids.read_text().split()]


def test_success_writes_status_and_log(executor: SlurmExecutor, tmp_path: Path) -> None:
    req = make_req(tmp_path, "import sys; print('to stdout'); print('to stderr', file=sys.stderr)")
    ref, out = run_step(executor, req)
    assert ref.isdigit()
    assert (out.state, out.exit_code, out.signal, out.ok) == ("COMPLETED", 0, None, True)
    assert out.job_ref == ref
    status = json.loads(req.status_file.read_text())
    assert status["exit_code"] == 0 and status["signal"] is None
    assert status["job_id"] == ref and status["argv0"] == sys.executable
    log_text = req.log_file.read_text()
    assert "to stdout" in log_text and "to stderr" in log_text


def test_nonzero_exit_is_failed_with_stderr_tail(executor: SlurmExecutor, tmp_path: Path) -> None:
    req = make_req(tmp_path, "import sys; print('x' * 9000); sys.exit('boom: bad input')")
    _, out = run_step(executor, req)
    assert (out.state, out.exit_code, out.signal) == ("FAILED", 1, None)
    assert out.stderr_tail.rstrip().endswith("boom: bad input")
    assert len(out.stderr_tail.encode()) <= 4096

    req3 = make_req(tmp_path, "import sys; sys.exit(3)")
    _, out3 = run_step(executor, req3)
    assert (out3.state, out3.exit_code) == ("FAILED", 3)


def test_log_limits_reach_the_job_and_bound_its_live_log(executor: SlurmExecutor,
                                                          tmp_path: Path) -> None:
    code = "import sys\nfor i in range(20000): print(f'line {i}')\nsys.exit(3)"
    req = make_req(tmp_path, code, log_max_bytes=4096, log_head_bytes=1024)
    _, out = run_step(executor, req)
    assert (out.state, out.exit_code) == ("FAILED", 3)
    log_text = req.log_file.read_text()
    assert len(log_text.encode()) <= 4096 and log_text.startswith("line 0\n")
    assert "bytes of this log omitted after the first 1024 bytes]" in log_text
    assert log_text.endswith("line 19999\n") and out.stderr_tail.endswith("line 19999\n")


def test_killed_by_signal(executor: SlurmExecutor, tmp_path: Path) -> None:
    req = make_req(tmp_path, "import os, signal; os.kill(os.getpid(), signal.SIGKILL)")
    _, out = run_step(executor, req)
    assert (out.state, out.signal, out.exit_code) == ("FAILED", signal.SIGKILL, 137)


def test_unstartable_command_fails_127(executor: SlurmExecutor, tmp_path: Path) -> None:
    req = make_req(tmp_path, "")
    req = StepRequest(req.workset_id, 1, "run", ["/nonexistent/tool", "--x"], req.workdir)
    _, out = run_step(executor, req)
    assert (out.state, out.exit_code) == ("FAILED", 127)
    assert "cannot start '/nonexistent/tool'" in out.stderr_tail


def test_env_and_workdir_reach_the_job(executor: SlurmExecutor, tmp_path: Path) -> None:
    code = "import os; print(repr(os.environ['DAYLIB_T'])); print(os.getcwd())"
    req = make_req(tmp_path, code, env={"DAYLIB_T": "a b,c=d 'q'"})
    _, out = run_step(executor, req)
    assert out.ok
    assert repr("a b,c=d 'q'") in out.stderr_tail
    assert str(req.workdir) in out.stderr_tail


def test_walltime_exceeded_is_timeout(executor: SlurmExecutor, tmp_path: Path) -> None:
    req = make_req(tmp_path, "import time; print('sleeping', flush=True); time.sleep(120); "
                  "print('slept through', flush=True)", walltime_minutes=1)
    _, out = run_step(executor, req)
    assert out.state == "TIMEOUT", out
    assert out.signal == signal.SIGTERM  # the wrapper passed Slurm's SIGTERM on to the step
    assert "DUE TO TIME LIMIT" in out.stderr_tail
    assert "slept through" not in req.log_file.read_text()  # ended by the limit
    status = json.loads(req.status_file.read_text())
    assert epoch(status["ended_at"]) - epoch(status["started_at"]) > 55  # not before it


def test_step_timeout_cancels_and_reports_timeout(slurm_cluster: SlurmCluster,
                                                  executor: SlurmExecutor,
                                                  tmp_path: Path) -> None:
    req = make_req(tmp_path, "import time; time.sleep(120); print('slept through')",
                   timeout_seconds=2.0)
    ref, out = run_step(executor, req)
    assert out.state == "TIMEOUT"
    assert job_state(slurm_cluster, ref) == "CANCELLED"
    assert "slept through" not in req.log_file.read_text()  # the timeout ended it


def test_cancel_running_job_kills_the_step(executor: SlurmExecutor, tmp_path: Path) -> None:
    req = make_req(tmp_path, SLEEPER)
    ref = executor.submit(req)
    pids = started_pids(req)
    assert all(alive(p) for p in pids)
    executor.cancel(ref)
    out = executor.wait(ref, req, threading.Event())
    assert out.state == "CANCELLED"
    assert out.signal == signal.SIGTERM
    assert eventually(lambda: not any(alive(p) for p in pids), timeout=15), "step survived"
    executor.cancel(ref)  # repeating is harmless
    executor.cancel("refused:1")
    assert executor.wait(ref, req, threading.Event()).state == "CANCELLED"


def test_find_adopts_instead_of_resubmitting(slurm_cluster: SlurmCluster,
                                            executor: SlurmExecutor, tmp_path: Path) -> None:
    req = make_req(tmp_path, "import time; time.sleep(2); print('done once')")
    assert executor.find(req) is None
    ref = executor.submit(req)
    restarted = SlurmExecutor(partition=slurm_cluster.partition, env=slurm_cluster.env,
                              poll_seconds=0.2)
    assert restarted.find(req) == ref  # from the record written at submit

    # A crash between sbatch and the record: squeue (name + comment) still finds it.
    restarted.record_file(req).unlink()
    assert restarted.find(req) == ref
    assert restarted.record_file(req).exists()  # and the record is repaired

    out = restarted.wait(restarted.find(req) or restarted.submit(req), req, threading.Event())
    assert out.ok and out.job_ref == ref
    assert restarted.find(req) == ref  # after the end, from the record
    restarted.record_file(req).unlink()
    assert restarted.find(req) == ref  # from the status file's job id
    assert len(jobs_named(slurm_cluster, req.job_key)) == 1
    assert req.log_file.read_text().count("done once") == 1


def test_impossible_resources_are_refused(slurm_cluster: SlurmCluster, executor: SlurmExecutor,
                                          tmp_path: Path) -> None:
    req = make_req(tmp_path, "print('never')", memory_gb=100000)
    ref = executor.submit(req)
    assert ref.startswith("refused:")
    out = executor.wait(ref, req, threading.Event())
    assert (out.state, out.exit_code, out.ok) == ("FAILED", None, False)
    assert "sbatch" in out.stderr_tail and "Memory specification" in out.stderr_tail, out
    # Slurm keeps a FAILED record of the refused submission; it never ran and is not adopted.
    assert [j.split()[1] for j in jobs_named(slurm_cluster, req.job_key)] in ([], ["FAILED"])
    assert executor.find(req) is None


def test_stop_leaves_the_job_running(slurm_cluster: SlurmCluster, executor: SlurmExecutor,
                                     tmp_path: Path) -> None:
    req = make_req(tmp_path, SLEEPER)
    ref = executor.submit(req)
    pids = started_pids(req)
    stop = threading.Event()
    threading.Timer(0.5, stop.set).start()
    out = executor.wait(ref, req, stop)
    assert (out.state, out.job_ref) == ("RUNNING", ref)  # only a stop returns RUNNING
    time.sleep(1)
    assert job_state(slurm_cluster, ref) == "RUNNING"
    assert all(alive(p) for p in pids)

    adopter = SlurmExecutor(env=slurm_cluster.env, poll_seconds=0.2)
    assert adopter.find(req) == ref
    adopter.cancel(ref)
    assert adopter.wait(ref, req, threading.Event()).state == "CANCELLED"


def test_unknown_job_is_lost_unless_its_status_file_says_more(executor: SlurmExecutor,
                                                              tmp_path: Path) -> None:
    req = make_req(tmp_path, "pass")
    req.workdir.mkdir(parents=True)
    started = time.monotonic()
    out = executor.wait("999999", req, threading.Event())
    assert (out.state, out.exit_code) == ("LOST", None)
    assert time.monotonic() - started >= executor.lost_grace_seconds

    # Slurm forgets a finished job after MinJobAge; its status file still tells the outcome.
    req.status_file.write_text(json.dumps({"exit_code": None, "signal": 9}))
    out = executor.wait("999999", req, threading.Event())
    assert (out.state, out.exit_code, out.signal) == ("FAILED", 137, 9)


def test_cluster_capacity(slurm_cluster: SlurmCluster, executor: SlurmExecutor) -> None:
    cap = executor.cluster_capacity()
    part = cap["partitions"][slurm_cluster.partition]  # type: ignore[index]
    assert cap["default_partition"] == slurm_cluster.partition
    assert part["nodes"] == 1
    assert cap["cpus_total"] == part["cpus_total"] == slurm_cluster.cpus
    assert cap["memory_mb_total"] == part["memory_mb_total"] == slurm_cluster.memory_mb
    assert 0 <= part["cpus_free"] <= slurm_cluster.cpus


def test_parse_capacity_counts_shared_nodes_once() -> None:
    text = ("n1|q1*|2/6/0/8|32000|8000|mixed|\n"
            "n1|q2|2/6/0/8|32000|8000|mixed|\n"
            "n2|q2|0/0/8/8|32000|0|drained|\n"
            "n3|q2|0/8/0/8|16000|0|idle~|\n")
    cap = parse_capacity(text)
    assert cap["nodes"] == 3 and cap["default_partition"] == "q1"
    assert (cap["cpus_total"], cap["cpus_free"]) == (24, 14)
    assert (cap["memory_mb_total"], cap["memory_mb_free"]) == (80000, 40000)
    q2 = cap["partitions"]["q2"]  # type: ignore[index]
    assert q2 == {"nodes": 3, "cpus_total": 24, "cpus_free": 14, "memory_mb_total": 80000,
                  "memory_mb_free": 40000}
