"""The operator's view (issue 13), through the real entry point against a moto server:
EMF metrics and JSON logs from ``monitor``, step logs in S3 and followed live, ``list``
paging and filters, ``show`` durations and ISO times, ``report`` totals, ``queue --watch``
under a pseudo terminal, and the CLI habits (version, did-you-mean, completion, actor)."""

from __future__ import annotations

import json
import os
import pty
import re
import select
import shutil
import subprocess
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from daylib.emulator import MotoServer
from daylib.metrics import SCHEMA
from daylib.store.dynamodb import DynamoStore
from daylib.store.records import utc_iso
from tests.cli.conftest import (
    PAIRED_FASTQS,
    CliEnv,
    EnvFactory,
    _build,
    daylib_yaml,
    paired_sample,
)
from tests.cli.test_cli import _broken_upload, _submit_paired
from tests.conftest import REGION, ROOT, cli_command, client

DOC = ROOT / "docs" / "metrics.md"
ISO = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
CHATTY = "{python} -m tests.support.chatty --out {results_dir}"


def documented() -> dict[str, tuple[str, set[tuple[str, ...]]]]:
    """The metrics table of docs/metrics.md: name -> (unit, dimension sets)."""
    out: dict[str, tuple[str, set[tuple[str, ...]]]] = {}
    for line in DOC.read_text().splitlines():
        m = re.match(r"^\| `(\w+)` \| (\w+) \| ([^|]+) \|", line)
        if not m:
            continue
        sets = {() if s.strip() == "(none)" else tuple(s.strip(" `").split(","))
                for s in m.group(3).split(";")}
        out[m.group(1)] = (m.group(2), sets)
    return out


def json_lines(stderr: str) -> list[dict[str, Any]]:
    """Every stderr line, parsed; fails on a line that is not one JSON object."""
    out = []
    for line in stderr.splitlines():
        doc = json.loads(line)
        assert isinstance(doc, dict), line
        out.append(doc)
    return out


@pytest.fixture(scope="module")
def ran(moto_server: MotoServer, tmp_path_factory: pytest.TempPathFactory
        ) -> Iterator[tuple[CliEnv, str]]:
    """One good workset (customer lab-a) and one broken upload run by ``monitor --once``
    with JSON logs; yields the deployment and the monitor's stderr."""
    tmp = tmp_path_factory.mktemp("operator")
    env = _build(moto_server, tmp / "work")
    env.ok("init")
    _submit_paired(env, tmp, "op-good", customer_id="lab-a")
    _broken_upload(env, "op-bad")
    res = env.ok("monitor", "--once", "--log-format", "json")
    yield env, res.stderr
    shutil.rmtree(tmp, ignore_errors=True)


# ====================================================================== metrics and logs

def test_metrics_doc_matches_the_code() -> None:
    doc = documented()
    assert set(doc) == set(SCHEMA)
    for name, (unit, sets) in doc.items():
        assert SCHEMA[name].unit == unit, name
        assert set(SCHEMA[name].dimensions) == sets, name


def test_emf_lines_parse_against_the_documented_schema(ran: tuple[CliEnv, str]) -> None:
    _, stderr = ran
    doc = documented()
    emf = [d for d in json_lines(stderr) if "_aws" in d]
    assert emf, stderr
    now_ms = time.time() * 1000
    for line in emf:
        block = line["_aws"]
        assert abs(block["Timestamp"] - now_ms) < 600_000
        (directive,) = block["CloudWatchMetrics"]
        assert directive["Namespace"] == "Daylily/Worksets"
        (metric,) = directive["Metrics"]
        name = metric["Name"]
        unit, sets = doc[name]
        assert metric["Unit"] == unit
        assert isinstance(line[name], int | float) and line[name] >= 0
        assert directive["Dimensions"], line
        for dims in directive["Dimensions"]:
            assert tuple(dims) in sets, (name, dims)
            assert all(isinstance(line[d], str) and line[d] for d in dims), line
    by_name: dict[str, list[dict[str, Any]]] = {}
    for line in emf:
        by_name.setdefault(line["_aws"]["CloudWatchMetrics"][0]["Metrics"][0]["Name"],
                           []).append(line)
    states = {(ln["state"], ln.get("workset_id")) for ln in by_name["Transitions"]}
    assert {("locked", "op-good"), ("in_progress", "op-good"), ("complete", "op-good"),
            ("failed", "op-bad")} <= states
    per_customer = [ln for ln in by_name["Transitions"] if ln.get("customer") == "lab-a"]
    assert per_customer and all(["cluster", "customer", "state"] in
                                ln["_aws"]["CloudWatchMetrics"][0]["Dimensions"]
                                for ln in per_customer)
    steps = {(ln["step"], ln["outcome"]) for ln in by_name["StepDuration"]}
    assert steps == {("stage", "COMPLETED"), ("run", "COMPLETED"), ("export", "COMPLETED")}
    assert [ln["category"] for ln in by_name["DeadLetters"]] == ["data"]
    assert by_name["QueueDepth"] and by_name["OldestReadyAge"]
    assert {ln["priority"] for ln in by_name["QueueDepthByPriority"]} == {
        "urgent", "high", "normal", "low"}


def test_json_logs_carry_context_and_no_traceback(ran: tuple[CliEnv, str]) -> None:
    _, stderr = ran
    logs = [d for d in json_lines(stderr) if "_aws" not in d]
    assert logs
    assert all({"time", "level", "logger", "message"} <= set(d) for d in logs)
    assert all(ISO.match(d["time"]) for d in logs)
    assert all(d.get("monitor_id") for d in logs)
    bad = [d for d in logs if d.get("workset_id") == "op-bad"]
    assert bad and any(d["level"] == "ERROR" for d in bad), logs
    assert all(d.get("attempt") == 1 and d.get("actor") for d in bad)
    good_steps = {d.get("step") for d in logs if d.get("workset_id") == "op-good"}
    assert {"run", "export"} <= good_steps
    assert "traceback" not in stderr.lower()


def test_log_format_text_by_default_json_under_systemd(ran: tuple[CliEnv, str]) -> None:
    env, _ = ran
    res = env.ok("retry", "op-bad")  # warns: its YAML is still invalid
    assert "still invalid" in res.stderr and not res.stderr.startswith("{"), res.stderr
    env.ok("cancel", "op-bad")
    res = env.run("retry", "op-bad", extra_env={"JOURNAL_STREAM": "8:1234"})
    assert res.returncode == 0, res.stderr
    (line,) = [json.loads(x) for x in res.stderr.splitlines()]
    assert line["level"] == "WARNING" and "still invalid" in line["message"]


# ====================================================================== step logs

def test_logs_are_copied_to_s3_and_read_back(ran: tuple[CliEnv, str]) -> None:
    env, _ = ran
    prefix = env.key("op-good", "logs/")
    assert env.keys(prefix) == [prefix + n for n in
                                ("export.a1.log", "run.a1.log", "stage.a1.log")]
    for step in ("stage", "run", "export"):
        local = env.workdir / "op-good" / f"{step}.a1.log"
        assert env.get_text(prefix + f"{step}.a1.log") == local.read_text()
    staged = env.get_text(prefix + "stage.a1.log")
    assert staged.strip(), "the stage step prints what it copies"
    # read from S3 anywhere: the head node's copy is gone
    shutil.rmtree(env.workdir / "op-good")
    assert env.ok("logs", "op-good", "--step", "stage").stdout == staged
    every = env.ok("logs", "op-good").stdout
    assert every.index("==> stage.a1.log <==") < every.index("==> run.a1.log <==") \
        < every.index("==> export.a1.log <==")
    shown = env.show("op-good")
    assert shown["logs_uri"] == f"s3://{env.bucket}/{prefix}"
    assert shown["logs_uri"] in env.ok("show", "op-good").stdout


def test_logs_of_an_unknown_step_attempt_is_a_one_line_error(ran: tuple[CliEnv, str]) -> None:
    env, _ = ran
    res = env.run("logs", "op-good", "--step", "run", "--attempt", "7")
    assert res.returncode == 1 and len(res.stderr.strip().splitlines()) == 1, res.stderr
    assert "attempt 7" in res.stderr
    assert env.run("logs", "op-good", "--step", "nope").returncode == 2


@pytest.fixture
def chatty_env(make_env: EnvFactory) -> CliEnv:
    pipelines = {"chatty": f"{CHATTY} --lines 40 --every 0.5",
                 "loud": f"{CHATTY} --lines 3000 --every 0"}
    return make_env(DAYLILY_WORKSET__PIPELINES=json.dumps(pipelines),
                    DAYLILY_STEP_LOGS__MAX_BYTES="4096", DAYLILY_STEP_LOGS__HEAD_BYTES="1024")


def _submit(env: CliEnv, tmp: Path, wid: str, **extra: Any) -> None:
    env.upload_sample_data(wid, *PAIRED_FASTQS)
    path = daylib_yaml(tmp / wid / "daylily_work.yaml", [paired_sample()], **extra)
    env.ok("submit", str(path), "--id", wid)


def test_long_log_keeps_head_and_tail(chatty_env: CliEnv, tmp_path: Path) -> None:
    env = chatty_env
    _submit(env, tmp_path, "loud-1", pipeline="loud")
    env.ok("monitor", "--once")
    assert env.show("loud-1")["state"] == "complete"
    local = (env.workdir / "loud-1" / "run.a1.log").read_text()  # the live file, bounded too
    assert len(local.encode()) <= 4096
    assert local.startswith("chatty line 1 of 3000\n")
    assert local.endswith("chatty line 3000 of 3000\n")
    assert re.search(r"\[daylib: \d+ bytes of this log omitted after the first 1024 bytes\]",
                     local)
    copy = env.ok("logs", "loud-1", "--step", "run").stdout
    assert len(copy.encode()) <= 4096
    assert copy.startswith("chatty line 1 of 3000\n")
    assert copy.endswith("chatty line 3000 of 3000\n")
    assert re.search(r"\[daylib: \d+ bytes of this log omitted", copy)


def _step(env: CliEnv, wid: str) -> str | None:
    res = env.run("show", wid, "--json")
    return json.loads(res.stdout)["step"] if res.returncode == 0 else None


def test_logs_follow_a_running_step_live(chatty_env: CliEnv, tmp_path: Path) -> None:
    env = chatty_env
    _submit(env, tmp_path, "live-1", pipeline="chatty")
    full_env = {**os.environ, "PYTHONPATH": str(ROOT), **env.env}
    monitor = subprocess.Popen([*cli_command(), "monitor", "--once"], cwd=ROOT, env=full_env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while _step(env, "live-1") != "run":  # registered by the monitor's discovery
            assert time.monotonic() < deadline
            time.sleep(0.2)
        follow = subprocess.Popen([*cli_command(), "logs", "live-1", "--step", "run",
                                   "--follow"], cwd=ROOT,
                                  env=full_env, stdout=subprocess.PIPE, text=True)
        assert follow.stdout is not None
        first = follow.stdout.readline()
        assert first.startswith("chatty line ")
        # the line arrived while the step was still running: it was followed, not read after
        assert _step(env, "live-1") == "run"
        rest = follow.stdout.read()
        assert follow.wait(timeout=60) == 0
        lines = (first + rest).splitlines()
        assert lines[-1] == "chatty line 40 of 40"
        assert [int(x.split()[2]) for x in lines] == list(range(int(lines[0].split()[2]), 41))
        assert monitor.wait(timeout=60) == 0
    finally:
        monitor.kill()
    assert env.show("live-1")["state"] == "complete"
    assert env.ok("logs", "live-1", "--step", "run").stdout.splitlines()[-1] == \
        "chatty line 40 of 40"


# ====================================================================== list paging

def test_list_pages_through_250_worksets(make_env: EnvFactory, dynalite_url: str) -> None:
    """On dynalite: ``list`` reads only the table, and on moto each index query over these
    250 items took about a second (over a minute for this test on a loaded machine)."""
    env = make_env(init=False, AWS_ENDPOINT_URL=dynalite_url)
    store = DynamoStore(client("dynamodb", dynalite_url), env.table)
    store.create_table()
    base = time.time() - 10_000

    def add(i: int) -> None:
        store.register(f"pg-{i:03d}", actor="test", created=base + i,
                       priority="high" if i % 5 == 0 else "normal",
                       fields={"customer_id": f"lab-{i % 3}"})
        if i % 2 == 0:  # half of them terminal: paging crosses both indexes
            store.transition(store.require(f"pg-{i:03d}"), "cancelled", actor="test",
                             reason="test")

    with ThreadPoolExecutor(8) as pool:  # independent items: the order of writes is moot
        list(pool.map(add, range(250)))
    seen: list[str] = []
    token = None
    pages = 0
    while True:
        args = ["list", "--limit", "100", "--json"] + (["--next-token", token] if token else [])
        res = env.ok(*args)
        rows = json.loads(res.stdout)
        seen.extend(r["workset_id"] for r in rows)
        pages += 1
        m = re.search(r"next_token: (\S+)", res.stderr)
        token = m.group(1) if m else None
        if token is None:
            break
        assert len(rows) == 100
    assert pages == 3
    assert seen == [f"pg-{i:03d}" for i in range(249, -1, -1)]
    text = env.ok("list", "--limit", "10").stdout
    assert "more worksets" in text and "--next-token" in text

    def ids(*args: str) -> list[str]:
        return [r["workset_id"] for r in env.json("list", "--limit", "300", *args)]

    assert ids("--state", "cancelled") == [f"pg-{i:03d}" for i in range(248, -1, -2)]
    assert ids("--priority", "high", "--customer", "lab-0") == [
        f"pg-{i:03d}" for i in range(249, -1, -1) if i % 5 == 0 and i % 3 == 0]
    since, until = utc_iso(base + 199.5), utc_iso(base + 209.5)
    assert ids("--since", since, "--until", until) == [f"pg-{i:03d}" for i in
                                                       range(209, 199, -1)]
    assert ids("--since", "1h") == []
    assert ids("--since", until, "--until", since) == []  # an empty range, not an error
    for bad in (("--limit", "0"), ("--limit", "-3")):
        res = env.run("list", *bad)
        assert res.returncode == 2 and "--limit" in res.stderr
    res = env.run("list", "--next-token", "garbage")
    assert res.returncode == 1 and "next-token" in res.stderr
    for command in (["list", "--limit", "300"], ["report", "--format", "csv"]):
        out, screen = _stderr_on_a_terminal(env, *command)
        assert "reading worksets: 250 read" in screen, command
        assert "reading worksets" not in out and "\x1b[" not in out and "pg-000" in out
        assert "reading worksets" not in env.ok(*command).stderr  # piped: no progress


def _stderr_on_a_terminal(env: CliEnv, *args: str) -> tuple[str, str]:
    """Run the CLI with stderr on a pseudo terminal and stdout on a pipe."""
    master, slave = pty.openpty()
    proc = subprocess.Popen([*cli_command(), *args], cwd=ROOT, stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=slave,
                            env={**os.environ, "PYTHONPATH": str(ROOT), **env.env})
    os.close(slave)
    try:
        assert proc.stdout is not None
        out = proc.stdout.read().decode()
        screen = _read_pty(master, proc, 90).decode()
        assert proc.wait(timeout=30) == 0, screen
    finally:
        os.close(master)
        proc.kill()
    return out, screen


# ====================================================================== show and report

def _lifecycle(store: DynamoStore, clock: list[float], wid: str, customer: str,
               vcpus: int, steps: tuple[float, float, float], cluster: str) -> None:
    """register, claim, then the three step checkpoints ``steps`` seconds apart."""
    clock[0] += 1
    store.register(wid, actor="test", created=clock[0],
                   fields={"customer_id": customer,
                           "spec_json": json.dumps({"resources": {"vcpus": vcpus}})})
    clock[0] += 10
    rec, lease = store.claim(wid, "m1", 3600, fields={"cluster": cluster})
    for (reason, to), seconds in zip((("stage done", "in_progress"), ("run done", "in_progress"),
                                      ("all steps done", "complete")), steps, strict=True):
        clock[0] += seconds
        rec = store.transition(rec, to, actor="m1", reason=reason, lease=lease)


@pytest.fixture
def priced(make_env: EnvFactory) -> CliEnv:
    env = make_env()
    clock = [time.time() - 86_400]
    store = DynamoStore(client("dynamodb", env.url), env.table, clock=lambda: clock[0])
    store.put_cluster({"name": "alpha", "cost_per_vcpu_hour": 0.05, "region": REGION})
    store.put_cluster({"name": "beta", "cost_per_vcpu_hour": 0.10, "region": REGION})
    _lifecycle(store, clock, "rp-a1", "lab-a", 4, (60, 3600, 60), "alpha")
    _lifecycle(store, clock, "rp-a2", "lab-a", 2, (30, 1800, 30), "beta")
    _lifecycle(store, clock, "rp-b1", "lab-b", 8, (10, 7200, 20), "alpha")
    return env


def test_report_totals_on_a_known_set(priced: CliEnv) -> None:
    data = json.loads(priced.ok("report", "--format", "json").stdout)
    rows = {r["workset_id"]: r for r in data["worksets"]}
    assert rows["rp-a1"]["stage_seconds"] == 60 and rows["rp-a1"]["run_seconds"] == 3600
    assert rows["rp-a1"]["export_seconds"] == 60 and rows["rp-a1"]["busy_seconds"] == 3720
    assert rows["rp-a1"]["vcpu_hours"] == pytest.approx(4 * 3720 / 3600, abs=1e-6)
    assert rows["rp-a1"]["cost"] == pytest.approx(4 * 3720 / 3600 * 0.05, abs=1e-6)
    assert rows["rp-a2"]["cost"] == pytest.approx(2 * 1860 / 3600 * 0.10, abs=1e-6)
    assert rows["rp-b1"]["cost"] == pytest.approx(8 * 7230 / 3600 * 0.05, abs=1e-6)
    lab_a = data["customers"]["lab-a"]
    assert lab_a["worksets"] == 2 and lab_a["attempts"] == 2
    assert lab_a["cost"] == pytest.approx(4 * 3720 / 3600 * 0.05 + 2 * 1860 / 3600 * 0.10,
                                          abs=1e-5)
    assert data["customers"]["lab-b"]["vcpu_hours"] == pytest.approx(8 * 7230 / 3600, abs=1e-6)
    assert data["total"]["worksets"] == 3
    csv_lines = priced.ok("report", "--format", "csv").stdout.splitlines()
    assert csv_lines[0].startswith("workset_id,customer_id,cluster") and len(csv_lines) == 4
    table = priced.ok("report").stdout
    assert "lab-a" in table and "0.3100" in table  # 0.2067 + 0.1033, per customer
    assert json.loads(priced.ok("report", "--since", "1h", "--json").stdout)["worksets"] == []


def test_show_durations_attempt_counter_and_iso_times(priced: CliEnv) -> None:
    rec = priced.show("rp-a1")
    assert rec["step_seconds"] == {"stage": 60, "run": 3600, "export": 60}
    assert rec["attempt_of"] == "attempt 1 of 4"
    for key in ("created_at", "updated_at"):
        assert ISO.match(rec[key]), rec[key]
    assert all(ISO.match(h["at"]) for h in rec["history"])
    text = priced.ok("show", "rp-a1").stdout
    assert "attempt 1 of 4" in text
    assert "durations   stage 60.0s, run 3600.0s, export 60.0s" in text
    assert "+3600.0s" in text and "in_progress -> complete" in text


def test_show_json_failed_at_is_iso(ran: tuple[CliEnv, str]) -> None:
    env, _ = ran
    rec = env.show("op-bad")
    assert rec["state"] in ("failed", "ready", "cancelled")
    for key in ("failed_at", "retry_at", "lease_expires"):
        assert rec[key] is None or ISO.match(rec[key]), (key, rec[key])


# ====================================================================== queue --watch

def _read_pty(fd: int, proc: subprocess.Popen[bytes], timeout: float) -> bytes:
    out = b""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], 0.2)
        if ready:
            try:
                chunk = os.read(fd, 65536)
            except OSError:  # the child closed its end
                break
            if not chunk:
                break
            out += chunk
        elif proc.poll() is not None:
            break
    return out


def test_queue_watch_redraws_under_a_pseudo_terminal(make_env: EnvFactory,
                                                     tmp_path: Path) -> None:
    env = make_env()
    env.ok("pause", "--reason", "maintenance window")
    _submit(env, tmp_path, "wq-1")
    env.ok("monitor", "--once")  # paused: registers it, claims nothing
    master, slave = pty.openpty()
    proc = subprocess.Popen([*cli_command(), "queue", "--watch", "--interval", "0.3",
                             "--count", "3"], cwd=ROOT, stdin=slave, stdout=slave,
                            stderr=slave, env={**os.environ, "PYTHONPATH": str(ROOT),
                                               **env.env})
    os.close(slave)
    try:
        screen = _read_pty(master, proc, 90).decode()
        assert proc.wait(timeout=30) == 0
    finally:
        os.close(master)
        proc.kill()
    assert screen.count("\x1b[H\x1b[2J") == 3
    last = screen.rsplit("\x1b[H\x1b[2J", 1)[1]
    assert "ready" in last and "oldest waiting: wq-1 (normal)" in last
    assert "PAUSED" in last and "maintenance window" in last
    piped = env.ok("queue", "--watch", "--interval", "0.1", "--count", "2").stdout
    assert "\x1b[" not in piped and piped.count("(Ctrl-C to stop)") == 2
    data = env.json("queue")
    assert data["paused"] is True and data["pause_reason"] == "maintenance window"
    assert data["oldest_ready"]["workset_id"] == "wq-1"
    assert data["ready_by_priority"]["normal"] == 1
    clusters = env.json("clusters")
    assert clusters["pause_reason"] == "maintenance window"


# ====================================================================== CLI habits

def test_version_did_you_mean_and_completion(cli_env: CliEnv) -> None:
    from daylib import __version__

    assert cli_env.ok("--version").stdout.strip() == f"daylily-workset {__version__}"
    res = cli_env.run("qeueu")
    assert res.returncode == 2 and "did you mean 'queue'?" in res.stderr
    script = cli_env.ok("completion").stdout
    probe = (f"{script}\nCOMP_WORDS=(daylily-workset qu); COMP_CWORD=1; "
             "_daylily_workset; echo \"${COMPREPLY[*]}\"\n"
             "COMP_WORDS=(daylily-workset list --ne); COMP_CWORD=2; "
             "_daylily_workset; echo \"${COMPREPLY[*]}\"\n")
    out = subprocess.run(["bash", "-c", probe], capture_output=True, text=True, check=True)
    assert out.stdout.splitlines() == ["queue", "--next-token"]


def test_actor_falls_back_to_the_os_user(cli_env: CliEnv, tmp_path: Path) -> None:
    import pwd

    cli_env.ok("pause")
    _submit(cli_env, tmp_path, "act-1")
    cli_env.ok("monitor", "--once")
    env = {k: "" for k in ("USER", "LOGNAME", "LNAME", "USERNAME")}
    res = subprocess.run([*cli_command(), "cancel", "act-1"], capture_output=True, text=True,
                         cwd=ROOT, env={**{k: v for k, v in os.environ.items()
                                           if k not in env}, "PYTHONPATH": str(ROOT),
                                        **cli_env.env})
    assert res.returncode == 0, res.stderr
    actor = cli_env.show("act-1")["history"][-1]["actor"]
    assert actor == f"user:{pwd.getpwuid(os.getuid()).pw_name}" != "user:unknown"


def test_retry_keeps_operator_overrides_unless_reset(cli_env: CliEnv, tmp_path: Path) -> None:
    env = cli_env
    env.ok("pause")
    _submit(env, tmp_path, "rk-1")
    env.ok("monitor", "--once")
    env.ok("priority", "rk-1", "urgent")
    env.ok("affinity", "rk-1", "c7")
    env.ok("cancel", "rk-1")
    env.ok("retry", "rk-1")
    rec = env.show("rk-1")
    assert (rec["state"], rec["priority"], rec["preferred_cluster"]) == ("ready", "urgent", "c7")
    env.ok("cancel", "rk-1")
    env.ok("retry", "rk-1", "--reset-overrides")
    rec = env.show("rk-1")
    assert (rec["priority"], rec["preferred_cluster"]) == ("normal", None)


def test_submit_shows_upload_progress_on_a_terminal_only(cli_env: CliEnv,
                                                         tmp_path: Path) -> None:
    from tests.cli.conftest import FASTQ_DIR, WORKSETS_DIR

    def folder(name: str) -> Path:
        path = tmp_path / name
        shutil.copytree(WORKSETS_DIR / "demo-hg003-daylily", path)
        (path / "sample_data").mkdir()
        for fq in sorted(FASTQ_DIR.glob("HG003_*.fastq.gz")):
            shutil.copy(fq, path / "sample_data" / fq.name)
        return path

    master, slave = pty.openpty()
    proc = subprocess.Popen([*cli_command(), "submit", str(folder("prog-tty"))], cwd=ROOT,
                            stdin=slave, stdout=slave, stderr=slave,
                            env={**os.environ, "PYTHONPATH": str(ROOT), **cli_env.env})
    os.close(slave)
    try:
        screen = _read_pty(master, proc, 90).decode()
        assert proc.wait(timeout=30) == 0
    finally:
        os.close(master)
        proc.kill()
    assert "[0/6] uploading daylily_info.yaml" in screen
    assert "[6/6] uploaded stage_samples.tsv" in screen
    assert "uploading sample_data/HG003_L1_R1.fastq.gz (" in screen
    piped = cli_env.ok("submit", str(folder("prog-pipe")))
    assert piped.stdout == "prog-pipe\n" and "uploading" not in piped.stderr
