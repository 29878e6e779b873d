"""Runs steps as Slurm batch jobs (sbatch, scontrol, squeue, scancel, sinfo).

How a step's end is known: each batch job runs ``jobwrap.sh`` (a POSIX sh wrapper, so no
interpreter starts per step), which writes the request's status
file when the command ends. Without Slurm accounting that file is the only durable record
(Slurm forgets a job ``MinJobAge`` seconds after it ends), so it decides the outcome; Slurm's
JobState refines a failure into TIMEOUT, OUT_OF_MEMORY, CANCELLED, NODE_FAIL and the like.

Job references returned by ``submit``/``find``:

* ``"<digits>"`` - a Slurm job id.
* ``"refused:<why>"`` - sbatch refused or failed (``<why>`` is its return code, ``timeout`` or
  ``error``); ``wait`` returns FAILED at once, exit_code None, with sbatch's message (which
  ``submit`` appended to the step's log) as the stderr tail. Nothing runs, so nothing to adopt
  (Slurm does list a refused submission as a FAILED job that never got a node; ``find``
  ignores such records).
* ``"done"`` - only a status file is known (no job id); ``wait`` reads that file.

Adoption: ``submit`` records the job id in ``<workdir>/.<step>.a<attempt>.slurm.json`` right
after sbatch returns. ``find`` returns, in order: that record, the job id in the status file,
or a job in ``squeue`` whose name and comment both equal the request's job key (covers a crash
between sbatch and the record). So a monitor restarted at any instant adopts the job instead
of submitting a second one.
"""

from __future__ import annotations

import json
import logging
import math
import os
import re
import shlex
import subprocess
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from daylib.executors.base import StepOutcome, StepRequest
from daylib.executors.jobwrap import write_json
from daylib.executors.local import TAIL_BYTES, tail

log = logging.getLogger(__name__)

JOBWRAP = Path(__file__).resolve().with_name("jobwrap.sh")
# Slurm states after which the job will not run again (we submit with --no-requeue).
TERMINAL = frozenset({"COMPLETED", "FAILED", "TIMEOUT", "OUT_OF_MEMORY", "CANCELLED",
                      "NODE_FAIL", "BOOT_FAIL", "DEADLINE", "PREEMPTED", "REVOKED"})
# Slurm's word for why a job ended beats the status file's plain "FAILED".
SLURM_VERDICTS = frozenset({"TIMEOUT", "OUT_OF_MEMORY", "CANCELLED", "NODE_FAIL", "BOOT_FAIL",
                            "DEADLINE", "PREEMPTED"})
# Node states whose free CPUs and memory can take a job (suffix flags stripped first).
USABLE_NODE_STATES = frozenset({"idle", "mixed", "mix", "allocated", "alloc", "completing",
                                "comp"})
UNUSABLE_FLAGS = ("drain", "fail", "maint", "down", "reboot", "inval")
CAPACITY_KEYS = ("cpus_total", "cpus_free", "memory_mb_total", "memory_mb_free")
_FIELD = re.compile(r"(?:^|\s)(JobState|ExitCode)=(\S+)")
_GONE = "GONE"
DONE_REF = "done"
REFUSED_PREFIX = "refused:"


class SlurmUnavailableError(RuntimeError):
    """Slurm could not be asked; distinct from "Slurm says no such job"."""


@dataclass(frozen=True)
class JobInfo:
    """Slurm's view of one job; state ``GONE`` means Slurm no longer knows it."""

    state: str
    exit_code: int | None = None
    signal: int | None = None


def _now() -> str:
    return datetime.now(UTC).isoformat()


def _read_json(path: Path) -> dict[str, object] | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _int_or_none(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


class SlurmExecutor:
    """Submits each step as one batch job running ``jobwrap`` around the step's argv.

    ``env`` is added to the environment of every Slurm command (e.g. ``SLURM_CONF``); the
    job gets that environment plus ``req.env`` through ``--export=ALL``. This package's
    ``jobwrap.sh`` must exist at the same path on the compute nodes.
    """

    name = "slurm"
    records_jobs = True

    def __init__(self, *, partition: str | None = None, account: str | None = None,
                 poll_seconds: float = 1.0, command_timeout_seconds: float = 30.0,
                 env: dict[str, str] | None = None,
                 extra_sbatch_args: list[str] | None = None, lost_grace_seconds: float = 10.0,
                 settle_seconds: float = 30.0) -> None:
        self.partition = partition
        self.account = account
        self.poll_seconds = poll_seconds
        self.command_timeout_seconds = command_timeout_seconds
        self.env = dict(env or {})
        self.extra_sbatch_args = list(extra_sbatch_args or [])
        # How long a job Slurm calls ended may lack its status file (shared-FS latency).
        self.lost_grace_seconds = lost_grace_seconds
        # How long to wait, once the status file exists, for Slurm's final state.
        self.settle_seconds = settle_seconds

    # ----------------------------------------------------------------------------------------
    # Files
    # ----------------------------------------------------------------------------------------

    @staticmethod
    def record_file(req: StepRequest) -> Path:
        return req.workdir / f".{req.step}.a{req.attempt}.slurm.json"

    @staticmethod
    def script_file(req: StepRequest) -> Path:
        return req.workdir / f"{req.step}.a{req.attempt}.sbatch.sh"

    @staticmethod
    def slurm_out_file(req: StepRequest) -> Path:
        return req.workdir / f"{req.step}.a{req.attempt}.slurm.out"

    def _tail(self, req: StepRequest) -> str:
        """The step's log, then what Slurm itself wrote (e.g. "CANCELLED DUE TO TIME LIMIT")."""
        text = tail(req.log_file)
        extra = tail(self.slurm_out_file(req)).strip()
        if extra:
            text = f"{text.rstrip()}\n{extra}\n".lstrip()
        return text[-TAIL_BYTES:]

    # ----------------------------------------------------------------------------------------
    # Commands
    # ----------------------------------------------------------------------------------------

    def _run(self, argv: list[str]) -> subprocess.CompletedProcess[str] | None:
        """Run a Slurm command with a timeout; None if it could not run or timed out."""
        try:
            return subprocess.run(argv, env={**os.environ, **self.env},
                                  stdin=subprocess.DEVNULL, capture_output=True, text=True,
                                  timeout=self.command_timeout_seconds, check=False)
        except subprocess.TimeoutExpired:
            log.warning("%s timed out after %.0f s", argv[0], self.command_timeout_seconds)
        except OSError as exc:
            log.warning("cannot run %s: %s", argv[0], exc)
        return None

    def batch_script(self, req: StepRequest) -> str:
        wrap = ["/bin/bash", str(JOBWRAP), *req.wrapper_args()]
        return (f"#!/bin/sh\n# daylib step {req.job_key}\n"
                f"exec {' '.join(shlex.quote(a) for a in wrap)}\n")

    def sbatch_argv(self, req: StepRequest, script: Path) -> list[str]:
        argv = ["sbatch", "--parsable", "--job-name", req.job_key, "--comment", req.job_key,
                "--chdir", str(req.workdir), "--output", str(self.slurm_out_file(req)),
                "--no-requeue", "--export=ALL"]
        if self.partition:
            argv += ["--partition", self.partition]
        if self.account:
            argv += ["--account", self.account]
        if req.vcpus:
            argv += ["--cpus-per-task", str(req.vcpus)]
        if req.memory_gb:
            argv += ["--mem", f"{math.ceil(req.memory_gb * 1024)}M"]
        if req.walltime_minutes:
            argv += ["--time", str(req.walltime_minutes)]
        return [*argv, *self.extra_sbatch_args, str(script)]

    # ----------------------------------------------------------------------------------------
    # Executor protocol
    # ----------------------------------------------------------------------------------------

    def submit(self, req: StepRequest) -> str:
        """Submit the step; a refused submission returns a ``refused:`` reference instead of
        raising, so the monitor records an ordinary step failure carrying sbatch's message."""
        req.workdir.mkdir(parents=True, exist_ok=True)
        req.status_file.unlink(missing_ok=True)
        self.record_file(req).unlink(missing_ok=True)
        script = self.script_file(req)
        script.write_text(self.batch_script(req), encoding="utf-8")
        env = {**os.environ, **self.env, **req.env}
        try:
            res = subprocess.run(self.sbatch_argv(req, script), env=env,
                                 stdin=subprocess.DEVNULL, capture_output=True, text=True,
                                 timeout=self.command_timeout_seconds, check=False)
        except subprocess.TimeoutExpired:
            return self._after_unclear_submit(
                req, f"sbatch timed out after {self.command_timeout_seconds:.0f} s", "timeout")
        except OSError as exc:
            return self._refused(req, f"cannot run sbatch: {exc}", "error")
        if res.returncode != 0:
            message = (res.stderr or res.stdout).strip() or "(no message)"
            return self._refused(req, f"sbatch refused the job (rc {res.returncode}): {message}",
                                 str(res.returncode))
        job_id = res.stdout.strip().split(";")[0]
        if not job_id.isdigit():
            return self._after_unclear_submit(
                req, f"sbatch printed no job id: {res.stdout.strip()!r}", "error")
        self._record(req, job_id)
        return job_id

    def find(self, req: StepRequest) -> str | None:
        """The job already submitted for this request, else None. Raises
        SlurmUnavailableError when only squeue could tell and it does not answer: saying
        "none" then could start a second job."""
        record = _read_json(self.record_file(req)) or {}
        if record.get("job_key") == req.job_key and str(record.get("job_id")).isdigit():
            return str(record["job_id"])
        status = _read_json(req.status_file)
        if status is not None:
            recorded = str(status.get("job_id") or "")
            return recorded if recorded.isdigit() else DONE_REF
        job_id = self._squeue_lookup(req, attempts=3)
        if job_id is not None:
            self._record(req, job_id)
        return job_id

    def wait(self, job_ref: str, req: StepRequest, stop: threading.Event) -> StepOutcome:
        """Poll until the job ends. ``stop`` returns RUNNING and leaves the job running for
        another monitor to adopt. ``req.timeout_seconds`` (counted from this call, pending
        time included) cancels the job and reports TIMEOUT; walltime is Slurm's business."""
        if job_ref.startswith(REFUSED_PREFIX):
            return StepOutcome("FAILED", None, None, self._tail(req), job_ref)
        job_id = job_ref if job_ref.isdigit() else None
        deadline = time.monotonic() + req.timeout_seconds
        cancelled_at: float | None = None
        settling_since: float | None = None  # status file seen, Slurm not final yet
        ended_since: float | None = None  # Slurm says ended/unknown, no status file yet
        while True:
            info = self._job_info(job_id) if job_id else JobInfo(_GONE)
            status = _read_json(req.status_file)
            now = time.monotonic()
            outcome: StepOutcome | None = None
            if status is not None:
                final = info is not None and info.state in TERMINAL | {_GONE}
                if settling_since is None:
                    settling_since = now
                if final or now - settling_since >= self.settle_seconds or stop.is_set():
                    outcome = self._from_status(status, info if final else None, req, job_ref)
            elif info is None:
                pass  # Slurm did not answer: ask again next poll
            elif info.state in TERMINAL or info.state == _GONE:
                if ended_since is None:
                    ended_since = now
                if now - ended_since >= self.lost_grace_seconds:
                    outcome = self._from_slurm(info, req, job_ref)
            else:
                ended_since = None
            if outcome is None and cancelled_at is not None and (
                    now - cancelled_at >= self.settle_seconds + self.lost_grace_seconds):
                outcome = StepOutcome("TIMEOUT", None, None, self._tail(req), job_ref)
            if outcome is not None:
                if cancelled_at is not None and not outcome.ok:
                    outcome = StepOutcome("TIMEOUT", outcome.exit_code, outcome.signal,
                                          outcome.stderr_tail, job_ref)
                return outcome
            if stop.is_set():
                return StepOutcome("RUNNING", None, None, self._tail(req), job_ref)
            if cancelled_at is None and now >= deadline and job_id:
                log.warning("job %s (%s) exceeded the step timeout of %.0f s; cancelling",
                            job_id, req.job_key, req.timeout_seconds)
                self.cancel(job_id)
                cancelled_at = now
            stop.wait(self.poll_seconds)

    def cancel(self, job_ref: str) -> None:
        """scancel; a job Slurm no longer knows is fine (scancel returns 0 for it)."""
        if not job_ref.isdigit():
            return
        res = self._run(["scancel", job_ref])
        if res is not None and res.returncode != 0:
            log.warning("scancel %s failed (rc %d): %s", job_ref, res.returncode,
                        res.stderr.strip())

    # ----------------------------------------------------------------------------------------
    # Cluster view
    # ----------------------------------------------------------------------------------------

    def cluster_capacity(self) -> dict[str, object]:
        """CPUs and memory per partition and in total, from ``sinfo`` (one row per node and
        partition). Free means schedulable now: idle CPUs and unallocated memory on nodes
        that can take jobs (powered-down cloud nodes count; down/drained ones do not)."""
        res = self._run(["sinfo", "--noheader", "--Node", "--Format",
                         "NodeList:|,Partition:|,CPUsState:|,Memory:|,AllocMem:|,StateLong:|"])
        if res is None or res.returncode != 0:
            why = "no answer" if res is None else res.stderr.strip()
            raise SlurmUnavailableError(f"sinfo failed: {why}")
        return parse_capacity(res.stdout)

    # ----------------------------------------------------------------------------------------
    # Internals
    # ----------------------------------------------------------------------------------------

    def _record(self, req: StepRequest, job_id: str) -> None:
        write_json(self.record_file(req),
                   {"job_id": job_id, "job_key": req.job_key, "recorded_at": _now()})

    def _refused(self, req: StepRequest, message: str, why: str) -> str:
        log.warning("%s: %s", req.job_key, message)
        with open(req.log_file, "a", encoding="utf-8") as fh:
            fh.write(f"daylib: {message}\n")
        return f"{REFUSED_PREFIX}{why}"

    def _after_unclear_submit(self, req: StepRequest, message: str, why: str) -> str:
        """sbatch may have queued the job although it did not say so: look before giving up."""
        try:
            job_id = self._squeue_lookup(req, attempts=1)
        except SlurmUnavailableError:
            job_id = None
        if job_id is not None:
            self._record(req, job_id)
            return job_id
        return self._refused(req, message, why)

    def _squeue_lookup(self, req: StepRequest, attempts: int) -> str | None:
        """Our job for this request in squeue (name and comment both equal the job key); the
        newest unfinished one wins, else the newest. A submission sbatch refused still leaves
        a FAILED record that never had a node (BatchHost n/a): not a job, so skipped. Raises
        if squeue never answers."""
        argv = ["squeue", "--noheader", "--states=all", "--name", req.job_key,
                "--format", "%i|%T|%B|%j|%k"]
        for attempt in range(attempts):
            if attempt:
                time.sleep(self.poll_seconds)
            res = self._run(argv)
            if res is None or res.returncode != 0:
                continue
            mine: list[tuple[bool, int]] = []
            for line in res.stdout.splitlines():
                parts = line.strip().split("|", 3)
                if len(parts) < 4:
                    continue
                job_id, state, host, names = parts
                if not job_id.isdigit() or names != f"{req.job_key}|{req.job_key}":
                    continue
                if state == "FAILED" and host in ("", "n/a"):
                    continue
                mine.append((state not in TERMINAL, int(job_id)))
            return str(max(mine)[1]) if mine else None
        raise SlurmUnavailableError(f"squeue did not answer while looking for {req.job_key}")

    def _job_info(self, job_id: str) -> JobInfo | None:
        """Slurm's view of the job, JobInfo(GONE) if it does not know it, None if no answer."""
        res = self._run(["scontrol", "show", "job", "--oneliner", job_id])
        if res is None:
            return None
        if res.returncode != 0:
            if "invalid job id" in res.stderr.lower():
                return JobInfo(_GONE)
            log.warning("scontrol show job %s failed (rc %d): %s", job_id, res.returncode,
                        res.stderr.strip())
            return None
        fields: dict[str, str] = {}
        for key, value in _FIELD.findall(res.stdout):
            fields.setdefault(key, value)
        state = fields.get("JobState")
        if state is None:
            return None
        code, _, sig = fields.get("ExitCode", "").partition(":")
        return JobInfo(state, int(code) if code.isdigit() else None,
                       int(sig) if sig.isdigit() and int(sig) else None)

    def _from_status(self, status: dict[str, object], info: JobInfo | None, req: StepRequest,
                     job_ref: str) -> StepOutcome:
        """The command's own exit status decides; a failure takes Slurm's word for why. An exit
        code of 0 stays COMPLETED whatever Slurm says: the command finished its work."""
        code, sig = _int_or_none(status.get("exit_code")), _int_or_none(status.get("signal"))
        if code == 0:
            return StepOutcome("COMPLETED", 0, None, self._tail(req), job_ref)
        state = info.state if info is not None and info.state in SLURM_VERDICTS else "FAILED"
        if code is None and sig:
            code = 128 + sig
        return StepOutcome(state, code, sig or None, self._tail(req), job_ref)

    def _from_slurm(self, info: JobInfo, req: StepRequest, job_ref: str) -> StepOutcome:
        """No status file: the wrapper never ran or was killed hard (e.g. SIGKILL after
        KillWait), or the job is unknown to Slurm (LOST)."""
        if info.state == _GONE:
            return StepOutcome("LOST", None, None, self._tail(req), job_ref)
        code = 128 + info.signal if info.signal else info.exit_code
        return StepOutcome(info.state, code, info.signal, self._tail(req), job_ref)


def parse_capacity(text: str) -> dict[str, object]:
    """Turn ``NodeList|Partition|A/I/O/T|Memory|AllocMem|State|`` rows (one per node and
    partition) into per-partition and whole-cluster totals; a node counts once in the latter."""
    partitions: dict[str, dict[str, int]] = {}
    nodes: dict[str, tuple[int, int, int, int]] = {}
    default: str | None = None
    for line in text.splitlines():
        parts = [p.strip() for p in line.split("|")]
        if len(parts) < 6 or not parts[0]:
            continue
        node, partition, cpu_states, memory, alloc_mem, state = parts[:6]
        try:
            _alloc, idle, _other, total = (int(x) for x in cpu_states.split("/"))
            mem_total, mem_alloc = int(memory), int(alloc_mem or 0)
        except ValueError:
            continue
        base, *flags = state.lower().split("+")
        usable = ("*" not in base and base.rstrip("~#!%$@^-") in USABLE_NODE_STATES
                  and not any(f.startswith(UNUSABLE_FLAGS) for f in flags))
        row = (total, idle if usable else 0, mem_total,
               max(0, mem_total - mem_alloc) if usable else 0)
        nodes[node] = row
        name = partition.rstrip("*")
        if partition.endswith("*"):
            default = name
        entry = partitions.setdefault(name, dict.fromkeys(CAPACITY_KEYS, 0) | {"nodes": 0})
        entry["nodes"] += 1
        for key, value in zip(CAPACITY_KEYS, row, strict=True):
            entry[key] += value
    totals = {key: sum(row[i] for row in nodes.values()) for i, key in enumerate(CAPACITY_KEYS)}
    largest = {"max_node_cpus": max((r[0] for r in nodes.values()), default=0),
               "max_node_memory_mb": max((r[2] for r in nodes.values()), default=0)}
    return {"partitions": partitions, "default_partition": default, "nodes": len(nodes),
            **totals, **largest}
