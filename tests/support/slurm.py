"""A throw-away single-node Slurm cluster for tests and benchmarks.

Why: the Slurm backend must be tested against real ``sbatch``/``squeue``/``scontrol``, not
mocks. This module installs Debian's ``slurm-wlm`` and ``munge`` when missing and runs
``munged``, ``slurmctld`` and ``slurmd`` with every state, spool, pid and log path inside one
base directory, so several runs never share state. See /work/shared/TESTBED.md for the facts
the configuration relies on.

CLI (for manual use and benchmarks; daemons keep running after ``up``)::

    python -m tests.support.slurm up DIR      # prints: export SLURM_CONF=DIR/slurm.conf
    python -m tests.support.slurm down DIR
"""

from __future__ import annotations

import argparse
import contextlib
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["SlurmCluster", "slurm_unavailable_reason", "start_slurm", "stop_slurm"]

PARTITION = "debug"
READY_TIMEOUT_S = 60.0
_SBIN_DIRS = ("/usr/sbin", "/sbin", "/usr/local/sbin")
_NEEDED = ("slurmctld", "slurmd", "sbatch", "sinfo", "scontrol", "munged")
_MUNGE_KEY = Path("/etc/munge/munge.key")


@dataclass
class SlurmCluster:
    """A running cluster.

    ``env`` holds only what clients (sbatch, squeue, ...) need on top of the caller's
    environment, i.e. ``SLURM_CONF``; ``client_env()`` merges it into the current one.
    """

    base_dir: Path
    conf: Path
    env: dict[str, str]
    partition: str
    node: str
    cpus: int
    memory_mb: int
    _procs: list[subprocess.Popen[bytes]] = field(default_factory=list, repr=False)

    def client_env(self) -> dict[str, str]:
        """os.environ plus ``env``, read now, so later changes to PATH etc. are honoured."""
        return {**os.environ, **self.env}

    def stop(self) -> None:
        """Cancel leftover jobs, then stop the daemons this cluster started (idempotent)."""
        # Finds our daemons by command line, so it also stops ones whose Popen was lost.
        stop_slurm(self.base_dir)
        for proc in reversed(self._procs):  # slurmd, slurmctld, then munged
            if proc.poll() is None:
                _terminate(proc.pid)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=1)  # reap, so no zombie is left behind
        self._procs.clear()

    def __enter__(self) -> SlurmCluster:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


# --------------------------------------------------------------------------------------------
# Availability and installation
# --------------------------------------------------------------------------------------------


def _which(name: str) -> str | None:
    """Find a binary on PATH or in the sbin directories a non-login PATH may lack."""
    found = shutil.which(name)
    if found:
        return found
    for d in _SBIN_DIRS:
        candidate = Path(d) / name
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    return None


def _binaries_present() -> bool:
    return all(_which(n) for n in _NEEDED)


def slurm_unavailable_reason() -> str | None:
    """Say why Slurm truly cannot run here (so tests can skip), or None if it should work.

    Does not touch the network: an apt-get that fails later is an error, not a skip.
    """
    if not sys.platform.startswith("linux"):
        return f"Slurm needs Linux (this is {sys.platform})"
    if os.geteuid() != 0:
        return "Slurm daemons are run as root here (SlurmUser=root); not running as root"
    if _binaries_present():
        return None
    if _which("apt-get") is None:
        missing = ", ".join(n for n in _NEEDED if not _which(n))
        return f"Slurm/munge not installed ({missing} missing) and apt-get is not available"
    return None


def _run(
    cmd: Sequence[str],
    *,
    env: Mapping[str, str] | None = None,
    timeout: float = 600.0,
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        list(cmd),
        env=dict(env) if env is not None else None,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def _tail(text: str, lines: int = 30) -> str:
    return "\n".join(text.rstrip().splitlines()[-lines:])


def _file_tail(path: Path, lines: int = 30) -> str:
    try:
        return _tail(path.read_text(errors="replace"), lines) or "(empty)"
    except OSError as exc:
        return f"(cannot read {path}: {exc})"


def ensure_installed() -> None:
    """Install slurm-wlm and munge with apt-get unless already present."""
    if _binaries_present():
        return
    reason = slurm_unavailable_reason()
    if reason:
        raise RuntimeError(reason)
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    install = ["apt-get", "install", "-y", "--no-install-recommends", "slurm-wlm", "munge"]
    res = _run(install, env=env)
    if res.returncode != 0:
        # Package lists are often absent in fresh images; refresh only when needed.
        upd = _run(["apt-get", "update"], env=env)
        if upd.returncode != 0:
            raise RuntimeError(
                "apt-get update failed while installing Slurm:\n" + _tail(upd.stdout + upd.stderr)
            )
        res = _run(install, env=env)
    if res.returncode != 0 or not _binaries_present():
        raise RuntimeError(
            "apt-get install slurm-wlm munge failed:\n" + _tail(res.stdout + res.stderr)
        )


# --------------------------------------------------------------------------------------------
# Process helpers
# --------------------------------------------------------------------------------------------


def _cmdline(pid: int) -> list[str]:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return []
    return [p.decode(errors="replace") for p in raw.split(b"\0") if p]


def _alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    # Field 3 is the state; a zombie has exited already.
    return stat.rsplit(")", 1)[-1].split()[0] != "Z"


def _daemon_pids(base_dir: Path) -> list[int]:
    """PIDs of daemons bound to base_dir, found by their command line (pid files can be stale)."""
    markers = {str(base_dir / "slurm.conf"), str(base_dir / "munge" / "munge.socket.2")}
    names = {"slurmctld", "slurmd", "munged"}
    pids: list[int] = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        args = _cmdline(int(entry.name))
        if not args or Path(args[0]).name not in names:
            continue
        if any(m in a for a in args[1:] for m in markers):
            pids.append(int(entry.name))
    return pids


def _terminate(pid: int, grace_s: float = 5.0) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace_s
    while time.monotonic() < deadline:
        if not _alive(pid):
            return
        time.sleep(0.05)
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)


def _cancel_all_jobs(env: Mapping[str, str]) -> None:
    """Cancel our cluster's jobs so no slurmstepd outlives slurmd (best effort, bounded)."""
    squeue = _which("squeue")
    scancel = _which("scancel")
    if not squeue or not scancel:
        return
    try:
        res = _run([squeue, "-h", "-o", "%i"], env=env, timeout=5)
        if res.returncode != 0 or not res.stdout.strip():
            return
        _run([scancel, "--full", *res.stdout.split()], env=env, timeout=5)
        deadline = time.monotonic() + 8  # KillWait=5 plus slack
        while time.monotonic() < deadline:
            res = _run([squeue, "-h", "-t", "all", "-o", "%T"], env=env, timeout=5)
            active = [s for s in res.stdout.split() if s in {"RUNNING", "COMPLETING", "PENDING"}]
            if res.returncode != 0 or not active:
                return
            time.sleep(0.2)
    except (OSError, subprocess.TimeoutExpired):
        return


def stop_slurm(base_dir: Path) -> list[int]:
    """Stop every slurmctld/slurmd/munged started for base_dir; returns the PIDs signalled."""
    base_dir = Path(base_dir).resolve()
    conf = base_dir / "slurm.conf"
    order = {"slurmd": 0, "slurmctld": 1, "munged": 2}
    named = {pid: Path((_cmdline(pid) or ["?"])[0]).name for pid in _daemon_pids(base_dir)}
    # Ask only a live controller: clients retry an absent one for many seconds.
    if conf.exists() and "slurmctld" in named.values() and "slurmd" in named.values():
        _cancel_all_jobs({**os.environ, "SLURM_CONF": str(conf)})
    pids = sorted(named, key=lambda p: order.get(named[p], 3))
    for pid in pids:
        _terminate(pid)
    return pids


# --------------------------------------------------------------------------------------------
# Configuration
# --------------------------------------------------------------------------------------------


def _short_hostname() -> str:
    res = _run(["hostname", "-s"], timeout=10)
    name = res.stdout.strip() if res.returncode == 0 else ""
    return name or socket.gethostname().split(".")[0]


def _nproc() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def _free_memory_mb() -> int:
    """MemAvailable in MiB: slurmd drains a node whose RealMemory exceeds what it sees."""
    info: dict[str, int] = {}
    for line in Path("/proc/meminfo").read_text().splitlines():
        key, _, rest = line.partition(":")
        parts = rest.split()
        if parts:
            info[key] = int(parts[0])  # kB
    kb = info.get("MemAvailable", info.get("MemFree", 0))
    return kb // 1024


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _write_conf(base_dir: Path, node: str, cpus: int, memory_mb: int, munge_socket: Path) -> Path:
    # Own ports so a stale cluster elsewhere (or a system one) on 6817/6818 cannot interfere.
    ctld_port, slurmd_port = _free_port(), _free_port()
    while slurmd_port == ctld_port:
        slurmd_port = _free_port()
    d = base_dir
    lines = [
        "# Generated by tests/support/slurm.py; see /work/shared/TESTBED.md",
        "ClusterName=daylibtest",
        f"SlurmctldHost={node}(127.0.0.1)",
        f"SlurmctldPort={ctld_port}",
        f"SlurmdPort={slurmd_port}",
        "SlurmUser=root",
        "SlurmdUser=root",
        "AuthType=auth/munge",
        "CredType=cred/munge",
        f"AuthInfo=socket={munge_socket}",
        "MpiDefault=none",
        "ProctrackType=proctrack/linuxproc",
        "TaskPlugin=task/none",
        "JobAcctGatherType=jobacct_gather/none",
        "AccountingStorageType=accounting_storage/none",
        "JobCompType=jobcomp/none",
        "SelectType=select/cons_tres",
        "SelectTypeParameters=CR_Core_Memory",
        "SchedulerType=sched/backfill",
        "SchedulerParameters=batch_sched_delay=0,sched_min_interval=0",
        "DefMemPerCPU=1000",
        "EnforcePartLimits=ALL",
        "ReturnToService=2",
        "KillWait=5",
        "MinJobAge=300",
        "SlurmctldTimeout=30",
        "SlurmdTimeout=30",
        f"StateSaveLocation={d / 'state'}",
        f"SlurmdSpoolDir={d / 'spool'}",
        f"SlurmctldPidFile={d / 'run' / 'slurmctld.pid'}",
        f"SlurmdPidFile={d / 'run' / 'slurmd.pid'}",
        f"SlurmctldLogFile={d / 'log' / 'slurmctld.log'}",
        f"SlurmdLogFile={d / 'log' / 'slurmd.log'}",
        "SlurmctldDebug=info",
        "SlurmdDebug=info",
        f"NodeName={node} NodeAddr=127.0.0.1 CPUs={cpus} RealMemory={memory_mb} State=UNKNOWN",
        f"PartitionName={PARTITION} Nodes=ALL Default=YES MaxTime=INFINITE State=UP",
    ]
    conf = base_dir / "slurm.conf"
    conf.write_text("\n".join(lines) + "\n")
    return conf


# --------------------------------------------------------------------------------------------
# munge
# --------------------------------------------------------------------------------------------


def _munge_user() -> pwd.struct_passwd:
    try:
        return pwd.getpwnam("munge")
    except KeyError as exc:
        raise RuntimeError("user 'munge' does not exist (is the munge package installed?)") from exc


def _ensure_munge_key(user: pwd.struct_passwd) -> None:
    """Create /etc/munge/munge.key if the package did not; munged refuses to start without it."""
    if _MUNGE_KEY.exists():
        return
    _MUNGE_KEY.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    mungekey = _which("mungekey")
    if mungekey:
        res = _run([mungekey, "--create", f"--keyfile={_MUNGE_KEY}"], timeout=30)
        if res.returncode != 0 and not _MUNGE_KEY.exists():
            raise RuntimeError("mungekey --create failed:\n" + _tail(res.stdout + res.stderr))
    if not _MUNGE_KEY.exists():
        fd = os.open(_MUNGE_KEY, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o400)
        with os.fdopen(fd, "wb") as f:
            f.write(os.urandom(1024))
    os.chown(_MUNGE_KEY.parent, user.pw_uid, user.pw_gid)
    os.chown(_MUNGE_KEY, user.pw_uid, user.pw_gid)
    os.chmod(_MUNGE_KEY, 0o400)


def _make_traversable(path: Path) -> None:
    """Add o+x to path's ancestors: the munge user must reach its socket dir (pytest's
    tmp dirs are 0700). Only the search bit is added; nothing becomes listable or writable."""
    for p in [path, *path.parents]:
        try:
            mode = p.stat().st_mode
        except OSError:
            continue
        if not mode & 0o001:
            os.chmod(p, (mode & 0o7777) | 0o001)


def _start_munged(munge_dir: Path, log_dir: Path) -> subprocess.Popen[bytes]:
    user = _munge_user()
    _ensure_munge_key(user)
    munge_dir.mkdir(parents=True, exist_ok=True)
    os.chown(munge_dir, user.pw_uid, user.pw_gid)
    os.chmod(munge_dir, 0o755)  # else clients get "Socket is inaccessible"
    _make_traversable(munge_dir)
    sock = munge_dir / "munge.socket.2"
    munged = _which("munged")
    assert munged is not None
    cmd = [
        munged,
        "--foreground",
        "--force",  # tolerate e.g. group-writable ancestors of a scratch dir
        f"--socket={sock}",
        f"--key-file={_MUNGE_KEY}",
        f"--pid-file={munge_dir / 'munged.pid'}",
        f"--log-file={munge_dir / 'munged.log'}",
        f"--seed-file={munge_dir / 'munged.seed'}",
    ]
    out = open(log_dir / "munged.out", "wb")  # noqa: SIM115 - handed to the child
    with out:
        proc = subprocess.Popen(
            cmd,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            user=user.pw_uid,
            group=user.pw_gid,
            extra_groups=[],
            start_new_session=True,
        )
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            break
        if sock.exists():
            return proc
        time.sleep(0.05)
    _terminate(proc.pid, grace_s=1)
    raise RuntimeError(
        f"munged did not create {sock} (exit code {proc.poll()}).\n"
        f"--- {log_dir / 'munged.out'}:\n{_file_tail(log_dir / 'munged.out')}\n"
        f"--- {munge_dir / 'munged.log'}:\n{_file_tail(munge_dir / 'munged.log')}"
    )


# --------------------------------------------------------------------------------------------
# Start-up
# --------------------------------------------------------------------------------------------


def _start_daemon(name: str, conf: Path, log_dir: Path) -> subprocess.Popen[bytes]:
    exe = _which(name)
    assert exe is not None
    out = open(log_dir / f"{name}.out", "wb")  # noqa: SIM115 - handed to the child
    with out:
        # -D keeps it in the foreground so we own the PID and see an early exit.
        return subprocess.Popen(
            [exe, "-D", "-f", str(conf)],
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def _diagnostics(base_dir: Path) -> str:
    """Log tails for error messages; the .out capture only matters if the daemon died early."""
    parts = []
    log = base_dir / "log"
    for path, fallback in (
        (log / "slurmctld.log", log / "slurmctld.out"),
        (log / "slurmd.log", log / "slurmd.out"),
        (base_dir / "munge" / "munged.log", log / "munged.out"),
    ):
        for p in (path, fallback):
            if p.exists() and p.stat().st_size:
                parts.append(f"--- {p} (tail):\n{_file_tail(p, 20)}")
                break
    return "\n".join(parts)


def _check_alive(procs: Mapping[str, subprocess.Popen[bytes]], base_dir: Path) -> None:
    for name, proc in procs.items():
        rc = proc.poll()
        if rc is not None:
            raise RuntimeError(f"{name} exited with code {rc}.\n{_diagnostics(base_dir)}")


def _wait_ready(
    env: Mapping[str, str],
    node: str,
    procs: Mapping[str, subprocess.Popen[bytes]],
    base_dir: Path,
    timeout_s: float,
) -> None:
    """Ready means: the node is idle and a trivial batch job runs to COMPLETED."""
    deadline = time.monotonic() + timeout_s
    sinfo, sbatch, scontrol = _which("sinfo"), _which("sbatch"), _which("scontrol")
    assert sinfo and sbatch and scontrol
    last = ""
    while True:
        _check_alive(procs, base_dir)
        res = _run([sinfo, "-h", "-n", node, "-o", "%T|%E"], env=env, timeout=10)
        last = (res.stdout + res.stderr).strip()
        if res.returncode == 0 and last.split("|")[0].rstrip("*~#!%$@^-") == "idle":
            break
        if time.monotonic() > deadline:
            raise RuntimeError(
                f"Slurm node {node} not idle after {timeout_s:.0f}s "
                f"(sinfo state|reason: {last!r}).\n" + _diagnostics(base_dir)
            )
        time.sleep(0.2)

    res = _run(
        [
            sbatch,
            "--parsable",
            "-o",
            "/dev/null",
            "-D",
            str(base_dir),
            "-J",
            "ready-check",
            "--wrap",
            "true",
        ],
        env=env,
        timeout=30,
    )
    if res.returncode != 0:
        raise RuntimeError(
            f"sbatch of the readiness job failed (rc {res.returncode}): "
            f"{(res.stdout + res.stderr).strip()}\n{_diagnostics(base_dir)}"
        )
    job_id = res.stdout.strip().split(";")[0]
    state = ""
    while True:
        _check_alive(procs, base_dir)
        res = _run([scontrol, "show", "job", "-o", job_id], env=env, timeout=10)
        fields = dict(tok.split("=", 1) for tok in res.stdout.split() if "=" in tok)
        state = fields.get("JobState", res.stderr.strip())
        if state == "COMPLETED":
            return
        if state in {"FAILED", "CANCELLED", "NODE_FAIL", "TIMEOUT", "OUT_OF_MEMORY", "BOOT_FAIL"}:
            raise RuntimeError(
                f"readiness job {job_id} ended {state} "
                f"(ExitCode={fields.get('ExitCode')}, Reason={fields.get('Reason')}).\n"
                + _diagnostics(base_dir)
            )
        if time.monotonic() > deadline:
            raise RuntimeError(
                f"readiness job {job_id} not COMPLETED after {timeout_s:.0f}s "
                f"(state {state!r}, Reason={fields.get('Reason')}).\n" + _diagnostics(base_dir)
            )
        time.sleep(0.1)


def start_slurm(base_dir: Path, timeout_s: float = READY_TIMEOUT_S,
                cpus: int | None = None) -> SlurmCluster:
    """Install (if needed) and start munged, slurmctld and slurmd; return once a job has run.

    Any daemons left over from an earlier run in the same base_dir are stopped first and the
    job state is wiped, so job IDs restart at 1. ``cpus`` above the machine's count declares
    a bigger node (``SlurmdParameters=config_overrides``), for benchmarks of many slots.
    """
    base_dir = Path(base_dir).resolve()
    # munged and slurmstepd put Unix sockets here; sun_path holds at most 107 bytes.
    longest = max(len(str(base_dir / "munge" / "munge.socket.2")), len(str(base_dir)) + 40)
    if longest > 107:
        raise RuntimeError(
            f"base_dir {base_dir} is too long for the Unix sockets munged and slurmstepd create "
            "there (limit 107 bytes); use a shorter directory"
        )
    ensure_installed()
    stop_slurm(base_dir)

    base_dir.mkdir(parents=True, exist_ok=True)
    for sub in ("state", "spool", "run"):
        shutil.rmtree(base_dir / sub, ignore_errors=True)
    for sub in ("state", "spool", "run", "log"):
        (base_dir / sub).mkdir(parents=True, exist_ok=True)
    log_dir = base_dir / "log"
    for old in log_dir.iterdir():
        with contextlib.suppress(OSError):
            old.unlink()

    node = _short_hostname()
    cpus = cpus or _nproc()
    free_mb = _free_memory_mb()
    memory_mb = max(free_mb - max(256, free_mb // 10), 1000)
    munge_dir = base_dir / "munge"
    munge_socket = munge_dir / "munge.socket.2"
    conf = _write_conf(base_dir, node, cpus, memory_mb, munge_socket)
    if cpus > _nproc():
        with open(conf, "a") as fh:
            fh.write("SlurmdParameters=config_overrides\n")
    env = {"SLURM_CONF": str(conf)}

    procs: dict[str, subprocess.Popen[bytes]] = {}
    cluster = SlurmCluster(
        base_dir=base_dir,
        conf=conf,
        env=env,
        partition=PARTITION,
        node=node,
        cpus=cpus,
        memory_mb=memory_mb,
    )
    try:
        procs["munged"] = _start_munged(munge_dir, log_dir)
        cluster._procs.append(procs["munged"])
        procs["slurmctld"] = _start_daemon("slurmctld", conf, log_dir)
        cluster._procs.append(procs["slurmctld"])
        procs["slurmd"] = _start_daemon("slurmd", conf, log_dir)
        cluster._procs.append(procs["slurmd"])
        _wait_ready(cluster.client_env(), node, procs, base_dir, timeout_s)
    except BaseException:
        cluster.stop()
        raise
    return cluster


# --------------------------------------------------------------------------------------------
# CLI
# --------------------------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    """``up DIR`` starts a cluster and leaves it running; ``down DIR`` stops it."""
    parser = argparse.ArgumentParser(
        prog="python -m tests.support.slurm",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("action", choices=["up", "down"])
    parser.add_argument("dir", type=Path)
    args = parser.parse_args(argv)
    if args.action == "down":
        pids = stop_slurm(args.dir)
        print(f"stopped {len(pids)} daemon(s)", file=sys.stderr)
        return 0
    reason = slurm_unavailable_reason()
    if reason:
        print(f"Slurm unavailable: {reason}", file=sys.stderr)
        return 2
    started = time.monotonic()
    try:
        cluster = start_slurm(args.dir)
    except RuntimeError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(
        f"# Slurm up in {time.monotonic() - started:.1f}s: node {cluster.node}, "
        f"{cluster.cpus} CPUs, {cluster.memory_mb} MB, partition {cluster.partition}",
        file=sys.stderr,
    )
    print(f"export SLURM_CONF={cluster.conf}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
