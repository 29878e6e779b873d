"""``daylily-workset demo``: the whole product on this machine, no AWS account needed.

Starts moto (in-process, 127.0.0.1), creates the table and bucket, uploads the example
worksets (both formats, plus one broken upload), runs the monitor with the local executor on
the FASTQ QC pipeline, shows progress, and ends with the queue and where each result is.
"""

from __future__ import annotations

import json
import shutil
import sys
import tempfile
import threading
import time
from importlib import resources
from pathlib import Path
from typing import Any

from daylib import spec as sp
from daylib import states as S
from daylib import wiring
from daylib.aws import AwsClients
from daylib.config import Settings
from daylib.emulator import start_moto
from daylib.executors.local import LocalExecutor
from daylib.formatters import format_list, format_queue
from daylib.pipelines.fastq_qc import SUMMARY_JSON
from daylib.s3 import S3Objects
from daylib.s3uri import split_uri
from daylib.store.dynamodb import DynamoStore

EXPECTED = {"demo-na12878-wgs": S.COMPLETE, "demo-hg002-panel": S.COMPLETE,
            "demo-hg003-daylily": S.COMPLETE, "demo-broken-upload": S.FAILED}
TIMEOUT_SECONDS = 120.0


def examples_dir() -> Path:
    return Path(str(resources.files("daylib") / "data" / "examples"))


def upload_examples(s3: S3Objects, settings: Settings) -> list[str]:
    """Upload every example workset folder, FASTQs into each folder's ``sample_data/``."""
    root = examples_dir()
    bucket, prefix = settings.storage.bucket, settings.storage.prefix
    fastqs = {p.name: p for p in (root / "fastq").glob("*.fastq.gz")}
    s3.upload(fastqs["HG002_R1.fastq.gz"], f"s3://{bucket}/shared-fastq/HG002_R1.fastq.gz")
    uploaded = []
    for folder in sorted((root / "worksets").iterdir()):
        wid = folder.name
        for name, path in fastqs.items():
            if name.split("_")[0] in wid.upper().replace("-", "_"):
                s3.upload(path, f"s3://{bucket}/{prefix}{wid}/sample_data/{name}")
        for item in sorted(folder.iterdir()):
            s3.upload(item, f"s3://{bucket}/{prefix}{wid}/{item.name}")
        if (folder / sp.STAGE_FILE).exists():
            s3.put_text(bucket, f"{prefix}{wid}/{sp.READY_FILE}", "")
        uploaded.append(wid)
    return uploaded


def demo_settings(endpoint_url: str, workdir: Path) -> Settings:
    settings = Settings()
    settings.aws.endpoint_url = endpoint_url
    settings.aws.region = "us-west-2"
    settings.monitor.workdir = str(workdir)
    settings.monitor.max_concurrent = 3
    settings.monitor.poll_seconds = 0.2
    settings.monitor.monitor_id = "demo-monitor"
    settings.monitor.cluster = "demo-local"
    return settings


def _say(as_json: bool, text: str) -> None:
    if not as_json:
        print(text, flush=True)


def run_demo(*, as_json: bool = False, keep_workdir: bool = False) -> int:
    started = time.monotonic()
    workdir = Path(tempfile.mkdtemp(prefix="daylib-demo-"))
    server = start_moto(in_process=True)
    try:
        settings = demo_settings(server.endpoint_url, workdir)
        clients = AwsClients(settings.aws)
        store = wiring.store_for(settings, clients)
        s3 = wiring.s3_for(clients)
        store.create_table()
        s3.ensure_bucket(settings.storage.bucket, clients.region)
        _say(as_json, f"emulated AWS (moto) at {server.endpoint_url}; table "
                      f"{settings.state.table}, bucket s3://{settings.storage.bucket}")
        ids = upload_examples(s3, settings)
        _say(as_json, f"uploaded {len(ids)} worksets: {', '.join(ids)}")
        monitor = wiring.monitor_for(settings, clients, store=store, s3=s3,
                                     executor=LocalExecutor())
        thread = threading.Thread(target=monitor.run, kwargs={"once": False}, daemon=True)
        thread.start()
        records = _watch(store, ids, as_json)
        monitor.request_stop()
        thread.join(timeout=30)
        depth = store.queue_depth()
        results = {r.workset_id: _results(s3, r.results_uri) for r in records.values()
                   if r.state == S.COMPLETE and r.results_uri}
        ok = all(records[w].state == want for w, want in EXPECTED.items() if w in records)
        summary: dict[str, Any] = {
            "ok": ok, "elapsed_seconds": round(time.monotonic() - started, 2),
            "queue": depth.public(),
            "worksets": {w: {"state": r.state, "error": r.error, "error_category":
                             r.error_category, "results_uri": r.results_uri,
                             "results": results.get(w, [])} for w, r in records.items()},
        }
        if as_json:
            print(json.dumps(summary, indent=2))
        else:
            print("\n" + format_queue(depth) + "\n")
            print(format_list(sorted(records.values(), key=lambda r: r.workset_id)) + "\n")
            for wid, rec in sorted(records.items()):
                if rec.state == S.COMPLETE:
                    print(f"{wid}: results at {rec.results_uri}")
                    for key in results.get(wid, []):
                        print(f"    {key}")
                else:
                    print(f"{wid}: {rec.state} [{rec.error_category}] {rec.error}")
            qc = _qc_figures(s3, records)
            if qc:
                print(f"\nQC summary (from the exported {SUMMARY_JSON} files):")
                print(qc)
            print(f"\ndemo {'finished' if ok else 'FAILED'} in "
                  f"{summary['elapsed_seconds']:.1f} s")
        return 0 if ok else 1
    finally:
        server.stop()
        if keep_workdir:
            print(f"work directory kept at {workdir}", file=sys.stderr)
        else:
            shutil.rmtree(workdir, ignore_errors=True)


def _watch(store: DynamoStore, ids: list[str], as_json: bool) -> dict[str, Any]:
    seen: dict[str, tuple[str, str | None]] = {}
    deadline = time.monotonic() + TIMEOUT_SECONDS
    t0 = time.monotonic()
    records: dict[str, Any] = {}
    while time.monotonic() < deadline:
        records = {w: r for w in ids if (r := store.get(w)) is not None}
        for wid, rec in sorted(records.items()):
            now = (rec.state, rec.step)
            if seen.get(wid) != now:
                seen[wid] = now
                step = f" ({rec.step})" if rec.step and rec.state in S.OWNED else ""
                _say(as_json, f"[{time.monotonic() - t0:5.1f}s] {wid:22} {rec.state}{step}")
        if len(records) == len(ids) and all(r.state in S.TERMINAL for r in records.values()):
            break
        time.sleep(0.1)
    return records


def _results(s3: S3Objects, uri: str) -> list[str]:
    bucket, key = split_uri(uri)
    return [f"s3://{bucket}/{k}" for k, _ in s3.keys(bucket, key)]


def _qc_figures(s3: S3Objects, records: dict[str, Any]) -> str:
    rows = []
    for wid, rec in sorted(records.items()):
        if rec.state != S.COMPLETE or not rec.results_uri:
            continue
        bucket, key = split_uri(rec.results_uri)
        text = s3.read_text(bucket, key + SUMMARY_JSON, 1 << 20)
        if not text:
            continue
        for sample in json.loads(text).get("samples", []):
            rows.append(f"  {wid:22} {sample.get('sample_id', '?'):8} reads "
                        f"{sample.get('reads')!s:>5}  bases {sample.get('bases')!s:>6}  "
                        f"GC {sample.get('gc_percent')}%  meanQ {sample.get('mean_quality')}")
    return "\n".join(rows)
