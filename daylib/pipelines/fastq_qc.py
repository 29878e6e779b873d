"""A small but real FASTQ QC pipeline: per-sample read, base, GC and quality figures.

Usage::

    python -m daylib.pipelines.fastq_qc --samples SAMPLES_TSV --out RESULTS_DIR \\
        [--reference REF] [--pipeline NAME] [-- EXTRA_ARGS...]

It runs on compute nodes, where daylib's AWS dependencies may be missing, so it uses the
standard library only; it streams every file, so memory does not grow with input size.

The sample sheet is a TSV with the header ``sample_id<TAB>r1<TAB>r2``. ``r2`` may be empty
(single-end); a sample may span several rows (lanes), which are summed. Relative paths are
resolved against the sheet's own directory, so a workset folder can be moved as a whole.
Files may be gzip-compressed or plain (detected from the content, not the name).

Figures, chosen so that each one can be recomputed from the raw counts in the output:

* ``reads``: every FASTQ record, R1 and R2 alike; ``read_pairs``: R1/R2 record pairs, or
  null for a single-end sample.
* ``bases``: every sequence character, N included.
* ``gc_percent`` = 100 * gc_bases / bases. N (and other IUPAC codes) are excluded from
  neither count: they stay in the denominator, so GC% is a share of all sequenced bases
  and many no-calls show up as a lower GC%. ``n_bases`` is reported too, so GC% over
  called bases is 100 * gc_bases / (bases - n_bases). Soft-masked g/c count as GC.
* ``mean_quality``: the mean Phred score over all bases, decoded as Phred+33 (Sanger /
  Illumina 1.8+); Phred+64 is not guessed at.

Exit codes follow sysexits.h so the orchestrator can tell bad data from a bad node:
0 success; 2 bad command line; 65 (EX_DATAERR) malformed FASTQ or sample sheet; 66
(EX_NOINPUT) a listed file is missing or unreadable; 73 (EX_CANTCREAT) results cannot be
written; 74 (EX_IOERR) a read failed mid-file. Errors are one line on stderr, with no
traceback.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from itertools import zip_longest
from pathlib import Path
from typing import Any

from daylib.pipelines.fastq_reader import DataError, NoInputError, iter_records

EX_OK = 0
EX_DATAERR = 65
EX_NOINPUT = 66
EX_CANTCREAT = 73
EX_IOERR = 74

PROG = "fastq_qc"
SUMMARY_JSON = "qc_summary.json"
SUMMARY_TSV = "qc_summary.tsv"
TSV_COLUMNS = (
    "sample_id", "layout", "lanes", "reads", "read_pairs", "bases", "gc_bases", "n_bases",
    "gc_percent", "mean_quality", "min_read_length", "max_read_length",
)
DECIMALS = 4
_GC = b"GCgc"


class CantCreateError(Exception):
    """The results directory or files cannot be written: exit 73."""


@dataclass(frozen=True)
class Lane:
    """One sample-sheet row; ``line`` is kept so errors can point at it."""

    r1: Path
    r2: Path | None
    line: int


@dataclass
class SampleStats:
    """Running totals for one sample; only integers, so lane order cannot change results."""

    sample_id: str
    lanes: list[Lane] = field(default_factory=list)
    reads: int = 0
    read_pairs: int = 0
    bases: int = 0
    gc_bases: int = 0
    n_bases: int = 0
    quality_sum: int = 0
    min_len: int | None = None
    max_len: int | None = None

    @property
    def paired(self) -> bool:
        return bool(self.lanes) and self.lanes[0].r2 is not None

    def add_read(self, seq: bytes, qual: bytes) -> None:
        n = len(seq)
        self.reads += 1
        self.bases += n
        self.gc_bases += n - len(seq.translate(None, _GC))
        self.n_bases += seq.count(b"N") + seq.count(b"n")
        self.quality_sum += sum(qual) - 33 * n
        if self.min_len is None or n < self.min_len:
            self.min_len = n
        if self.max_len is None or n > self.max_len:
            self.max_len = n

    def summary(self) -> dict[str, Any]:
        files = [str(p) for lane in self.lanes for p in (lane.r1, lane.r2) if p is not None]
        return {
            "sample_id": self.sample_id,
            "layout": "paired" if self.paired else "single",
            "lanes": len(self.lanes),
            "files": files,
            "reads": self.reads,
            "read_pairs": self.read_pairs if self.paired else None,
            "bases": self.bases,
            "gc_bases": self.gc_bases,
            "n_bases": self.n_bases,
            "gc_percent": _ratio(100 * self.gc_bases, self.bases),
            "mean_quality": _ratio(self.quality_sum, self.bases),
            "min_read_length": self.min_len,
            "max_read_length": self.max_len,
        }


def _ratio(num: int, den: int) -> float | None:
    """None rather than a division error, so an empty (but valid) FASTQ still reports."""
    return round(num / den, DECIMALS) if den else None


# --------------------------------------------------------------------------- sample sheet


def read_sample_sheet(sheet: Path) -> list[SampleStats]:
    """Parse the sheet into samples (in order of first appearance), lanes grouped by sample."""
    try:
        with sheet.open("r", encoding="utf-8", newline="") as fh:
            return _parse_sheet(fh, sheet)
    except UnicodeDecodeError as exc:
        raise DataError(f"{sheet}: sample sheet is not UTF-8 text ({exc.reason})") from None
    except (FileNotFoundError, IsADirectoryError, PermissionError) as exc:
        raise NoInputError(f"{sheet}: cannot read sample sheet: {exc.strerror}") from None


def _parse_sheet(lines: Iterable[str], sheet: Path) -> list[SampleStats]:
    base = sheet.parent
    header: list[str] | None = None
    samples: dict[str, SampleStats] = {}
    seen_files: dict[Path, int] = {}
    for lineno, raw in enumerate(lines, start=1):
        text = raw.rstrip("\r\n")
        if not text.strip() or text.startswith("#"):
            continue
        cells = [c.strip() for c in text.split("\t")]
        if header is None:
            header = cells
            missing = [c for c in ("sample_id", "r1") if c not in header]
            if missing or len(set(header)) != len(header):
                raise DataError(f"{sheet}: line {lineno}: header must be "
                                f"'sample_id<TAB>r1<TAB>r2', got {text!r}")
            continue
        if len(cells) > len(header):
            raise DataError(f"{sheet}: line {lineno}: {len(cells)} columns but the header "
                            f"has {len(header)}")
        row = dict(zip(header, cells + [""] * (len(header) - len(cells)), strict=True))
        sample_id, r1, r2 = row["sample_id"], row["r1"], row.get("r2", "")
        if not sample_id:
            raise DataError(f"{sheet}: line {lineno}: empty sample_id")
        if not r1:
            raise DataError(f"{sheet}: line {lineno}: sample {sample_id!r} has no r1 file")
        lane = Lane(r1=base / r1, r2=(base / r2) if r2 else None, line=lineno)
        for path in (lane.r1, lane.r2):
            if path is None:
                continue
            key = path.resolve()
            if key in seen_files:
                raise DataError(f"{sheet}: line {lineno}: {path} is already listed on line "
                                f"{seen_files[key]}; its reads would be counted twice")
            seen_files[key] = lineno
        stats = samples.setdefault(sample_id, SampleStats(sample_id))
        if stats.lanes and stats.paired != (lane.r2 is not None):
            raise DataError(f"{sheet}: line {lineno}: sample {sample_id!r} mixes paired-end "
                            f"and single-end lanes")
        stats.lanes.append(lane)
    if header is None:
        raise DataError(f"{sheet}: sample sheet is empty (expected header "
                        f"'sample_id<TAB>r1<TAB>r2')")
    if not samples:
        raise DataError(f"{sheet}: sample sheet lists no samples")
    return list(samples.values())


def check_inputs(sheet: Path, samples: Sequence[SampleStats]) -> None:
    """Fail fast, before hours of reading, if any listed file is absent or unreadable."""
    problems: list[str] = []
    for stats in samples:
        for lane in stats.lanes:
            for path in (lane.r1, lane.r2):
                if path is None:
                    continue
                if not path.exists():
                    why = "no such file"
                elif not path.is_file():
                    why = "not a regular file"
                elif not os.access(path, os.R_OK):
                    why = "permission denied"
                else:
                    continue
                problems.append(f"{sheet}: line {lane.line}: input file {path}: {why}")
    if problems:
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        raise NoInputError(problems[0] + more)


# --------------------------------------------------------------------------- reading


def scan_sample(stats: SampleStats) -> None:
    """Add every lane of a sample into its totals, reading R1 and R2 in lockstep."""
    for lane in stats.lanes:
        if lane.r2 is None:
            for seq, qual in iter_records(lane.r1):
                stats.add_read(seq, qual)
            continue
        pairs = 0
        for mate1, mate2 in zip_longest(iter_records(lane.r1), iter_records(lane.r2)):
            if mate1 is None or mate2 is None:
                short, other = (lane.r1, lane.r2) if mate1 is None else (lane.r2, lane.r1)
                raise DataError(f"malformed FASTQ {short}: record {pairs + 1}: missing; the "
                                f"file ends after {pairs} records but its mate {other} has "
                                f"more (paired files must have equal record counts)")
            pairs += 1
            stats.add_read(*mate1)
            stats.add_read(*mate2)
        stats.read_pairs += pairs


# --------------------------------------------------------------------------- output


def generated_at() -> str:
    """ISO-8601 UTC with Z; honours SOURCE_DATE_EPOCH so reruns can be byte-identical."""
    epoch = os.environ.get("SOURCE_DATE_EPOCH", "")
    now = (datetime.fromtimestamp(int(epoch), UTC) if epoch.isdigit()
           else datetime.now(UTC))
    return now.strftime("%Y-%m-%dT%H:%M:%SZ")


def _tsv_cell(value: Any) -> str:
    return "NA" if value is None else str(value)


def _write_atomic(path: Path, text: str) -> None:
    """Write via rename so a reader never sees a half-written summary."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise CantCreateError(f"{path}: cannot write: {exc.strerror or exc}") from None


def write_results(out: Path, document: dict[str, Any]) -> None:
    """TSV first, JSON last: the JSON's presence means the run finished."""
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise CantCreateError(f"{out}: cannot create results directory: "
                              f"{exc.strerror or exc}") from None
    rows = ["\t".join(TSV_COLUMNS)]
    for sample in document["samples"]:
        rows.append("\t".join(_tsv_cell(sample[c]) for c in TSV_COLUMNS))
    _write_atomic(out / SUMMARY_TSV, "\n".join(rows) + "\n")
    _write_atomic(out / SUMMARY_JSON, json.dumps(document, indent=2) + "\n")


# --------------------------------------------------------------------------- CLI


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m daylib.pipelines.fastq_qc",
        description="Per-sample FASTQ QC (reads, bases, GC%, mean Phred+33 quality). "
                    "Arguments after a bare '--' are recorded verbatim as extra_args.",
        allow_abbrev=False,
    )
    parser.add_argument("--samples", required=True, type=Path, metavar="SAMPLES_TSV",
                        help="TSV with header sample_id, r1, r2 (r2 empty for single-end)")
    parser.add_argument("--out", required=True, type=Path, metavar="RESULTS_DIR",
                        help=f"directory for {SUMMARY_JSON} and {SUMMARY_TSV}")
    parser.add_argument("--reference", default=None, metavar="REF",
                        help="reference genome name, recorded in the summary")
    parser.add_argument("--pipeline", default=None, metavar="NAME",
                        help="pipeline name, recorded in the summary")
    return parser


def run(args: argparse.Namespace, extra_args: list[str]) -> dict[str, Any]:
    """Validate everything up front, then stream the files; returns the summary document."""
    samples = read_sample_sheet(args.samples)
    check_inputs(args.samples, samples)
    for stats in samples:
        scan_sample(stats)
    document: dict[str, Any] = {
        "samples": [s.summary() for s in samples],
        "reference": args.reference or None,
        "pipeline": args.pipeline or None,
        "extra_args": extra_args,
        "generated_at": generated_at(),
    }
    write_results(args.out, document)
    return document


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    # Split by hand: argparse would otherwise try to interpret the extra args.
    extra_args: list[str] = []
    if "--" in argv:
        cut = argv.index("--")
        argv, extra_args = argv[:cut], argv[cut + 1:]
    args = build_parser().parse_args(argv)
    try:
        document = run(args, extra_args)
    except DataError as exc:
        return _fail(EX_DATAERR, str(exc))
    except NoInputError as exc:
        return _fail(EX_NOINPUT, str(exc))
    except CantCreateError as exc:
        return _fail(EX_CANTCREAT, str(exc))
    except OSError as exc:  # e.g. EIO mid-read: the node or disk, not the data
        return _fail(EX_IOERR, f"I/O error: {exc}")
    n = len(document["samples"])
    print(f"{PROG}: {n} sample{'s' if n != 1 else ''} -> {args.out / SUMMARY_JSON}",
          file=sys.stderr)
    return EX_OK


def _fail(code: int, message: str) -> int:
    one_line = message.replace("\r", " ").replace("\n", " ")
    print(f"{PROG}: error: {one_line}", file=sys.stderr)
    return code


if __name__ == "__main__":
    sys.exit(main())
