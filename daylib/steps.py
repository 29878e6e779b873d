"""The commands behind the ``stage`` and ``export`` steps, run by an executor as
``python -m daylib.steps stage|export|chain ...`` (so Slurm can run them on any node).

They reach AWS through the standard variables the executor passes (``AWS_ENDPOINT_URL`` …).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from daylib.aws import AwsClients
from daylib.config import AwsSettings
from daylib.errors import DaylibError
from daylib.s3 import S3Objects, split_uri

EX_DATAERR = 65
EX_NOINPUT = 66
EX_UNAVAILABLE = 69
NAME_MAX = 255  # bytes in one file name on Linux file systems (ext4, xfs, Lustre, NFS)
PART_SUFFIX = ".part"


def _s3() -> S3Objects:
    settings = AwsSettings(endpoint_url=os.environ.get("AWS_ENDPOINT_URL") or None)
    return S3Objects(AwsClients(settings).client("s3"))


def stage(manifest: Path, dest: Path) -> int:
    """Download every lane and write ``samples.tsv`` (sample_id, r1, r2) for the pipeline."""
    samples = json.loads(manifest.read_text())["samples"]
    problem = _unstageable(samples)
    if problem:
        print(f"stage: {problem}", file=sys.stderr)
        return EX_DATAERR
    s3 = _s3()
    rows = ["sample_id\tr1\tr2"]
    for sample in samples:
        sid = sample["sample_id"]
        for n, lane in enumerate(sample["lanes"], start=1):
            local = []
            for uri in (lane["r1"], lane.get("r2")):
                if not uri:
                    local.append("")
                    continue
                target = _under(dest, Path(sid) / _local_name(n, uri))
                if not target.exists():
                    tmp = target.with_suffix(target.suffix + PART_SUFFIX)
                    s3.download(uri, tmp)
                    tmp.replace(target)
                local.append(str(target))
            rows.append(f"{sid}\t{local[0]}\t{local[1]}")
    (dest / "samples.tsv").write_text("\n".join(rows) + "\n")
    print(f"staged {len(samples)} sample(s) into {dest}")
    return 0


def _local_name(n: int, uri: str) -> str:
    return f"L{n}_{Path(split_uri(uri)[1]).name}"


def _unstageable(samples: list[dict[str, Any]]) -> str | None:
    """A lane whose local file name the file system cannot hold: a data error, said once,
    before anything is downloaded (not an OSError that would look transient)."""
    for sample in samples:
        for n, lane in enumerate(sample["lanes"], start=1):
            for uri in (lane["r1"], lane.get("r2")):
                name = _local_name(n, uri) if uri else ""
                if len((name + PART_SUFFIX).encode()) > NAME_MAX:
                    base = Path(split_uri(uri)[1]).name
                    return (f"sample {sample['sample_id']}: file name {base[:40]!r}... is "
                            f"{len(base.encode())} bytes; at most "
                            f"{NAME_MAX - len(PART_SUFFIX) - len(name) + len(base)} fit "
                            "(rename the FASTQ)")
    return None


def _under(root: Path, rel: Path) -> Path:
    """``root / rel``, refused unless it stays inside ``root`` (ids like '..' never escape)."""
    target = (root / rel).resolve()
    if not target.is_relative_to(root.resolve()) or target == root.resolve():
        raise ValueError(f"staged path {rel} would leave {root}")
    return target


def export(src: Path, dest_uri: str) -> int:
    """Upload every result file under ``src`` to ``dest_uri`` (keys relative to ``src``)."""
    files = sorted(p for p in src.rglob("*") if p.is_file())
    if not files:
        print(f"no results in {src}", file=sys.stderr)
        return EX_NOINPUT
    s3 = _s3()
    base = dest_uri.rstrip("/") + "/"
    for path in files:
        s3.upload(path, base + path.relative_to(src).as_posix())
    print(f"exported {len(files)} file(s) to {base}")
    return 0


def chain(commands: list[list[str]]) -> int:
    """Run argv lists in order, stopping at the first failure (Daylily's clone-then-run)."""
    for argv in commands:
        rc = subprocess.call(argv)
        if rc != 0:
            return rc
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m daylib.steps")
    sub = parser.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("stage")
    p.add_argument("--manifest", type=Path, required=True)
    p.add_argument("--dest", type=Path, required=True)
    p = sub.add_parser("export")
    p.add_argument("--src", type=Path, required=True)
    p.add_argument("--dest", required=True)
    p = sub.add_parser("chain")
    p.add_argument("--json", required=True, dest="commands")
    args = parser.parse_args(argv)
    try:
        if args.cmd == "stage":
            return stage(args.manifest, args.dest)
        if args.cmd == "export":
            return export(args.src, args.dest)
        return chain(json.loads(args.commands))
    except DaylibError as exc:
        print(f"{args.cmd}: {exc}", file=sys.stderr)
        code = getattr(exc, "code", "")
        return EX_NOINPUT if code in ("404", "NoSuchKey") else EX_UNAVAILABLE
    except OSError as exc:
        print(f"{args.cmd}: {exc}", file=sys.stderr)
        return EX_UNAVAILABLE
    except ValueError as exc:
        print(f"{args.cmd}: {exc}", file=sys.stderr)
        return EX_DATAERR


if __name__ == "__main__":
    sys.exit(main())
