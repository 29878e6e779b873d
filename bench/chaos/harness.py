"""Runs one chaos scenario against real monitor processes and counts what happened from the
steps' own side effects (a line per run step start and end, written by the step itself).

Figures per scenario: completed; lost (ended without completing: failed, cancelled or gone);
duplicate runs (run-step starts beyond the first, per workset); stuck (still active at the end:
the faults are over and nothing progressed, no workset changed state and no step started or
ended, for ``stall_seconds`` (at least 2 leases), or the scenario's settle time ran out; a
workset merely queued behind busy slots on a slow machine is not stuck while others
progress); time to drain; daemon exits
(monitors that exited on their own; the harness restarts them as systemd would); the most
run steps alive at once, sampled every 50 ms from their timestamps, against the cap;
takeovers, and the time from a kill -9 to each takeover of the killed monitor's work (p50 and
max, from the taker's history entry); and the largest workset item seen (bytes of its
JSON) with the transitions made (``history_total``) while SNS was down."""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
for _p in (str(ROOT), str(ROOT / "bench")):
    if _p not in sys.path:
        sys.path.insert(0, _p)

from _common import bench_settings, deploy, register  # noqa: E402

from bench.chaos.proxy import FaultProxy  # noqa: E402
from daylib import states as S  # noqa: E402
from daylib.emulator import start_moto  # noqa: E402
from daylib.errors import AwsError  # noqa: E402
from daylib.notify import ensure_topic  # noqa: E402

STEP = ('echo "start $1 $(date +%s.%N)" >> "$3"; sleep "$2"; '
        'echo "end $1 $(date +%s.%N)" >> "$3"')
SAMPLE_SECONDS = 0.05
# The harness shares the one emulator with the monitors: it looks at the table once a second
# (and measures items every 5 s) so that its own reads do not slow the monitors it measures.
LOOK_SECONDS = 1.0
SIZE_SECONDS = 5.0


@dataclass
class Scenario:
    """``faults``: (seconds after the first run step started, action) with action ``down``,
    ``up`` or a ``{service: share}`` mapping for the proxy (``{}`` ends throttling); the kill
    storm runs from that moment too."""

    name: str
    worksets: int = 40
    monitors: int = 2
    slots: int = 4
    step_seconds: float = 0.5
    lease_seconds: float = 3.0
    heartbeat_seconds: float = 1.0
    kill_every_seconds: float = 0.0
    storm_seconds: float = 0.0  # the kill storm's longest run; it ends sooner with the work
    faults: list[tuple[float, Any]] = field(default_factory=list)
    global_max: int = 0
    skews: list[float] = field(default_factory=list)
    sns_down: bool = False
    settle_seconds: float = 60.0  # the most time after the faults, progress or not
    stall_seconds: float = 120.0  # no progress for this long after the faults: the end


@dataclass
class Figures:
    scenario: str
    worksets: int
    completed: int = 0
    lost: int = 0
    duplicates: int = 0
    stuck: int = 0
    drain_seconds: float | None = None
    daemon_exits: int = 0
    max_concurrent: int = 0
    cap: int = 0
    kills: int = 0
    takeovers: int = 0
    takeover_p50: float | None = None  # seconds from a kill -9 to the takeover
    takeover_max: float | None = None
    max_item_bytes: int = 0
    transitions: int = 0
    cut_seconds: float | None = None  # cut by --max-seconds: ``open`` were still active
    open: int = 0
    injected: dict[str, int] = field(default_factory=dict)

    @property
    def clean(self) -> bool:
        return (self.cut_seconds is None and self.completed == self.worksets
                and not (self.lost or self.duplicates or self.stuck or self.daemon_exits)
                and (not self.cap or self.max_concurrent <= self.cap))

    def line(self) -> str:
        drain = "-" if self.drain_seconds is None else f"{self.drain_seconds:.1f}s"
        cap = f"{self.max_concurrent}/{self.cap or '-'}"
        took = "-" if self.takeover_max is None else \
            f"{self.takeover_p50:.1f}/{self.takeover_max:.1f}s"
        return (f"{self.scenario:<14} completed {self.completed:>4}/{self.worksets:<4} lost "
                f"{self.lost:>3}  dup {self.duplicates:>3}  stuck {self.stuck:>3}  drain "
                f"{drain:>7}  exits {self.daemon_exits:>3}  max/cap {cap:>6}  kills "
                f"{self.kills:>3}  takeovers {self.takeovers:>3} (p50/max {took})  item "
                f"{self.max_item_bytes:>6}B" + (f" after {self.transitions} transitions"
                                                 if self.transitions else "")
                + (f"  CUT at {self.cut_seconds:.0f}s, {self.open} still active"
                   if self.cut_seconds is not None else ""))


class _Monitors:
    """The monitor processes: start, kill -9, restart, and count exits nobody asked for."""

    def __init__(self, base: dict[str, Any], sc: Scenario, logs: Path) -> None:
        self.base, self.sc, self.logs = base, sc, logs
        self.procs: list[subprocess.Popen[bytes] | None] = [None] * sc.monitors
        self.ids = [""] * sc.monitors
        self.started = 0
        self.exits = 0
        self.kills = 0
        self.killed_at: dict[str, float] = {}  # monitor id -> wall time of its kill -9

    def start(self, i: int) -> None:
        spec = json.loads(json.dumps(self.base))
        self.started += 1
        self.ids[i] = f"m{i}.{self.started}"  # a restarted daemon is a new process, a new id
        spec["settings"]["monitor"]["monitor_id"] = self.ids[i]
        skew = self.sc.skews[i] if i < len(self.sc.skews) else 0.0
        log = open(self.logs / f"m{i}.log", "ab")  # noqa: SIM115 - the child keeps it
        self.procs[i] = subprocess.Popen(
            [sys.executable, str(Path(__file__).with_name("monitor_proc.py")),
             "--spec", json.dumps(spec), "--skew", str(skew)],
            stdout=log, stderr=log, stdin=subprocess.DEVNULL)
        log.close()

    def check(self) -> None:
        for i, proc in enumerate(self.procs):
            if proc is not None and proc.poll() is not None:
                self.exits += 1
                self.start(i)

    def kill_one(self, rng: random.Random, owners: set[str]) -> bool:
        """kill -9 a monitor that owns work right now (and start a new one in its place)."""
        busy = [i for i, mid in enumerate(self.ids) if mid in owners]
        if not busy:
            return False
        i = rng.choice(busy)
        proc = self.procs[i]
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.wait()
            self.kills += 1
            self.killed_at[self.ids[i]] = time.time()
        self.start(i)
        return True

    def stop(self) -> None:
        for proc in self.procs:
            if proc is not None and proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in self.procs:
            if proc is None:
                continue
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def _intervals(runs: Path) -> tuple[Counter[str], list[tuple[float, float]]]:
    starts: Counter[str] = Counter()
    open_: dict[str, list[float]] = {}
    spans: list[tuple[float, float]] = []
    lines = runs.read_text().splitlines() if runs.exists() else []
    for line in lines:
        parts = line.split()
        if len(parts) != 3:
            continue
        kind, wid, at = parts[0], parts[1], float(parts[2])
        if kind == "start":
            starts[wid] += 1
            open_.setdefault(wid, []).append(at)
        elif open_.get(wid):
            spans.append((open_[wid].pop(0), at))
    now = time.time()
    spans += [(t, now) for ts in open_.values() for t in ts]
    return starts, spans


def max_concurrent(spans: list[tuple[float, float]]) -> int:
    """Most steps alive at one instant, sampled every 50 ms (as an observer polling would)."""
    if not spans:
        return 0
    t, end, best = min(s for s, _ in spans), max(e for _, e in spans), 0
    while t <= end:
        best = max(best, sum(1 for s, e in spans if s <= t < e))
        t += SAMPLE_SECONDS
    return best


def run_scenario(sc: Scenario, *, verbose: bool = False, keep: Path | None = None,
                 max_seconds: float | None = None, endpoint_url: str | None = None) -> Figures:
    """``keep``: a folder to copy the monitors' logs and the steps' run log into.
    ``max_seconds``: cut the run there (figures so far; what is active is ``open``, not
    stuck, and the run is not clean). ``endpoint_url``: a running moto server to use instead
    of one of its own (the tests share one across scenarios: each run has its own table and
    bucket, and looks up no queue or topic another scenario made)."""
    server = None
    if endpoint_url is None:
        server = start_moto(in_process=False)
        endpoint_url = server.endpoint_url
    proxy = FaultProxy(endpoint_url)
    fig = Figures(sc.name, sc.worksets, cap=sc.global_max)
    mons: _Monitors | None = None
    try:
        with tempfile.TemporaryDirectory(prefix=f"chaos-{sc.name}-") as tmp:
            work = Path(tmp)
            runs = work / "runs.log"
            s = bench_settings(endpoint_url, str(work / "work"),
                               max_concurrent=sc.slots, poll_seconds=0.2, reap_seconds=1.0,
                               discovery_seconds=3600, lease_seconds=sc.lease_seconds,
                               heartbeat_seconds=sc.heartbeat_seconds,
                               shutdown_grace_seconds=0.0)
            s.workset.pipelines = {"germline": f"sh -c '{STEP}' sh {{workset_id}} "
                                                f"{sc.step_seconds} {runs}"}
            s.caps.global_max = sc.global_max
            s.caps.stale_holder_seconds = max(3 * sc.lease_seconds, 5.0)
            s.retry.base_seconds, s.retry.cap_seconds = 0.5, 2.0
            clients, store, _ = deploy(s)
            topic = ensure_topic(clients.client("sns"), f"chaos-{sc.name}") if sc.sns_down \
                else None
            ids = [f"ws-{i:05d}" for i in range(sc.worksets)]
            for wid in ids:
                register(store, s, wid, pipeline="germline")
            spec_settings = s.model_dump(mode="json")
            spec_settings["aws"]["endpoint_url"] = proxy.url
            if sc.sns_down:
                proxy.share["sns"] = 1.0
            mons = _Monitors({"settings": spec_settings, "topic_arn": topic}, sc, work)
            rng = random.Random(sc.name)
            start = time.monotonic()
            for i in range(sc.monitors):
                mons.start(i)
            faults = sorted(sc.faults, key=lambda f: f[0])
            timed_end = faults[-1][0] if faults else 0.0
            faults_end = max(timed_end, sc.storm_seconds)
            next_kill = sc.kill_every_seconds or None
            deadline = start + faults_end + sc.settle_seconds
            cut_at = start + max_seconds if max_seconds else deadline
            active: set[str] = set(ids)
            seen: dict[str, tuple[str, str | None]] = {}
            last_progress, runs_size, next_size = time.monotonic(), 0, 0.0
            mid_run: float | None = None  # when the first run step started
            while time.monotonic() < min(deadline, cut_at):
                if mid_run is None and runs.exists() and runs.stat().st_size:
                    mid_run = time.monotonic()
                    deadline = mid_run + faults_end + sc.settle_seconds
                # Faults and kills are timed from the first run step: mid-run, however long
                # the monitors take to start on a loaded machine.
                elapsed = time.monotonic() - (start if mid_run is None else mid_run)
                while mid_run is not None and faults and faults[0][0] <= elapsed:
                    _apply(proxy, faults.pop(0)[1])
                mons.check()
                looked = _look(store, sorted(active)[:100]) if active else {}
                if looked is None:  # the emulator itself does not answer: no judging stuck
                    last_progress = time.monotonic()
                recs = looked or {}
                if mid_run is not None and next_kill and next_kill <= elapsed < sc.storm_seconds:
                    owners = {r.owner for r in recs.values() if r.owner}
                    if mons.kill_one(rng, owners):
                        next_kill += sc.kill_every_seconds
                size = runs.stat().st_size if runs.exists() else 0
                if size != runs_size or any(seen.get(w) != (r.state, r.step)
                                            for w, r in recs.items()):
                    last_progress, runs_size = time.monotonic(), size
                sizing = sc.sns_down and time.monotonic() >= next_size
                if sizing:
                    next_size = time.monotonic() + SIZE_SECONDS
                for wid, rec in recs.items():
                    seen[wid] = (rec.state, rec.step)
                    if rec.state in S.TERMINAL:
                        active.discard(wid)
                    if sizing:
                        fig.max_item_bytes = max(fig.max_item_bytes, _item_bytes(store, wid))
                if not active and not faults and elapsed >= timed_end:
                    fig.drain_seconds = time.monotonic() - start
                    break
                if elapsed >= faults_end and time.monotonic() - last_progress > max(
                        sc.stall_seconds, 2 * sc.lease_seconds):
                    break  # nothing moves: what is still active is stuck
                time.sleep(LOOK_SECONDS)
            mons.stop()
            fig.daemon_exits, fig.kills = mons.exits, mons.kills
            _count(fig, store, ids, runs, sc.sns_down, mons.killed_at)
            if fig.drain_seconds is None and time.monotonic() >= cut_at < deadline:
                fig.cut_seconds = time.monotonic() - start
                fig.open, fig.stuck = fig.stuck, 0
            fig.injected = dict(proxy.injected)
            if keep is not None:
                keep.mkdir(parents=True, exist_ok=True)
                for log in [*work.glob("m*.log"), runs]:
                    if log.exists():
                        shutil.copy(log, keep / f"{sc.name}-{log.name}")
            if verbose:
                for log in sorted(work.glob("m*.log")):
                    lines = [x for x in log.read_text().splitlines() if '"_aws"' not in x]
                    sys.stderr.write(f"--- {log.name}\n" + "\n".join(lines[-40:]) + "\n")
    finally:
        if mons is not None:  # the harness failing must not leave monitors behind
            mons.stop()
        proxy.close()
        if server is not None:
            server.stop()
    return fig


def _look(store: Any, ids: list[str]) -> dict[str, Any] | None:
    """The records of ``ids``, or None when the emulator is too busy to answer (the harness
    shares it with the monitors under test and must outlive its stalls too)."""
    try:
        return dict(store.many(ids))
    except AwsError as exc:
        sys.stderr.write(f"harness: no look at the table this time: {str(exc)[:200]}\n")
        time.sleep(LOOK_SECONDS)
        return None


def _apply(proxy: FaultProxy, action: Any) -> None:
    if action == "down":
        proxy.down()
    elif action == "up":
        proxy.up()
    else:
        proxy.share = dict(action)


def _item_bytes(store: Any, wid: str) -> int:
    try:
        item = store.client.get_item(TableName=store.table, Key={"pk": {"S": wid}}).get("Item")
    except AwsError:
        return 0  # too busy to answer: the next look measures it
    return len(json.dumps(item)) if item else 0


def _count(fig: Figures, store: Any, ids: list[str], runs: Path, sizes: bool,
           killed_at: dict[str, float]) -> None:
    recs = _look(store, ids)
    while recs is None:  # the emulator may be too busy to answer for a while
        recs = _look(store, ids)
    waits: list[float] = []
    for wid in ids:
        rec = recs.get(wid)
        if rec is None or rec.state in (S.FAILED, S.CANCELLED):
            fig.lost += 1
        elif rec.state == S.COMPLETE:
            fig.completed += 1
        else:
            fig.stuck += 1
        if rec is not None:
            fig.takeovers += sum(1 for h in rec.history if "taken over" in h.get("reason", ""))
            waits += _takeover_waits(rec.history, killed_at)
        if sizes:
            fig.max_item_bytes = max(fig.max_item_bytes, _item_bytes(store, wid))
            fig.transitions += max(0, rec.history_total - 1) if rec is not None else 0
    if waits:
        fig.takeover_p50, fig.takeover_max = statistics.median(waits), max(waits)
    starts, spans = _intervals(runs)
    fig.duplicates = sum(n - 1 for n in starts.values() if n > 1)
    fig.max_concurrent = max_concurrent(spans)


def _takeover_waits(history: list[dict[str, Any]], killed_at: dict[str, float]) -> list[float]:
    """Seconds from each kill -9 to the takeover of that monitor's work (the taker's clock:
    meaningless in a skewed scenario, which kills nobody)."""
    waits = []
    for h in history:
        reason = str(h.get("reason", ""))
        if not reason.startswith("lease of ") or "taken over" not in reason:
            continue
        killed = killed_at.get(reason.split()[2])
        if killed is not None:
            at = datetime.fromisoformat(str(h["at"]).replace("Z", "+00:00")).timestamp()
            waits.append(at - killed)
    return waits


def as_json(fig: Figures) -> str:
    return json.dumps({**asdict(fig), "clean": fig.clean}, sort_keys=True)


os.environ.setdefault("AWS_DEFAULT_REGION", "us-west-2")
