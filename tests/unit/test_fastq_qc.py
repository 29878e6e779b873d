"""fastq_qc runs as a subprocess here, exactly as an executor runs it, so exit codes and
stderr are tested as the orchestrator sees them."""

from __future__ import annotations

import gzip
import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = REPO / "daylib" / "data" / "examples" / "fastq"

Record = tuple[str, str, str]  # (name, sequence, quality)

# Hand-checked single-end file. Phred+33: 'I'=40, '5'=20, '#'=2, '@'=31, '+'=10.
# Quality lines starting with '@' and '+' check that parsing is positional.
THREE_READS: list[Record] = [
    ("r1", "ACGTACGTAA", "IIIIIIIIII"),  # 10 bases, G+C=4, N=0, qsum 400
    ("r2", "GGCCN", "5555#"),  # 5 bases, G+C=4, N=1, qsum 4*20+2 = 82
    ("r3", "TTAT", "@@++"),  # 4 bases, G+C=0, N=0, qsum 31+31+10+10 = 82
]


def write_fastq(path: Path, records: list[Record], *, gz: bool = False) -> Path:
    text = "".join(f"@{n}\n{s}\n+\n{q}\n" for n, s, q in records).encode()
    path.write_bytes(gzip.compress(text, mtime=0) if gz else text)
    return path


def write_sheet(path: Path, rows: list[tuple[str, str, str]]) -> Path:
    lines = ["sample_id\tr1\tr2", *("\t".join(row) for row in rows)]
    path.write_text("\n".join(lines) + "\n")
    return path


def run_qc(sheet: Path, out: Path, *args: str, cwd: Path | None = None,
           ) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run(
        [sys.executable, "-m", "daylib.pipelines.fastq_qc", "--samples", str(sheet),
         "--out", str(out), *args],
        capture_output=True, text=True, env=env, cwd=cwd or sheet.parent, timeout=120,
        check=False,
    )


def summary(out: Path) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads((out / "qc_summary.json").read_text())
    return doc


def by_sample(doc: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {s["sample_id"]: s for s in doc["samples"]}


def test_exact_figures_single_end(tmp_path: Path) -> None:
    write_fastq(tmp_path / "s1.fastq", THREE_READS)
    sheet = write_sheet(tmp_path / "samples.tsv", [("S1", "s1.fastq", "")])
    proc = run_qc(sheet, tmp_path / "out")
    assert proc.returncode == 0, proc.stderr
    s = by_sample(summary(tmp_path / "out"))["S1"]
    assert s["layout"] == "single"
    assert s["lanes"] == 1
    assert s["reads"] == 3
    assert s["read_pairs"] is None
    assert s["bases"] == 19
    assert s["gc_bases"] == 8
    assert s["n_bases"] == 1
    assert s["gc_percent"] == 42.1053  # 100 * 8 / 19, N kept in the denominator
    assert s["mean_quality"] == 29.6842  # (400 + 82 + 82) / 19 = 564 / 19
    assert (s["min_read_length"], s["max_read_length"]) == (4, 10)


def test_paired_end_counts_pairs_and_both_mates(tmp_path: Path) -> None:
    write_fastq(tmp_path / "p_R1.fq", [("a/1", "GGGG", "IIII"), ("b/1", "AAAA", "IIII")])
    write_fastq(tmp_path / "p_R2.fq", [("a/2", "CCAA", "!!!!"), ("b/2", "TTTT", "!!!!")])
    sheet = write_sheet(tmp_path / "samples.tsv", [("P", "p_R1.fq", "p_R2.fq")])
    proc = run_qc(sheet, tmp_path / "out")
    assert proc.returncode == 0, proc.stderr
    s = by_sample(summary(tmp_path / "out"))["P"]
    assert s["layout"] == "paired"
    assert s["reads"] == 4
    assert s["read_pairs"] == 2
    assert s["bases"] == 16
    assert s["gc_percent"] == 37.5  # (4 + 2) / 16
    assert s["mean_quality"] == 20.0  # (8 * 40 + 8 * 0) / 16
    assert s["files"] == [str(tmp_path / "p_R1.fq"), str(tmp_path / "p_R2.fq")]


def test_lanes_of_a_sample_are_merged(tmp_path: Path) -> None:
    write_fastq(tmp_path / "L1_R1.fq", [("x", "GC", "II")])
    write_fastq(tmp_path / "L1_R2.fq", [("x", "GC", "II")])
    write_fastq(tmp_path / "L2_R1.fq", [("y", "AT", "!!"), ("z", "ATAT", "!!!!")])
    write_fastq(tmp_path / "L2_R2.fq", [("y", "AT", "!!"), ("z", "ATAT", "!!!!")])
    write_fastq(tmp_path / "other.fq", [("o", "ACGT", "IIII")])
    sheet = write_sheet(tmp_path / "samples.tsv", [
        ("B", "L1_R1.fq", "L1_R2.fq"),
        ("A", "other.fq", ""),  # rows of one sample need not be adjacent
        ("B", "L2_R1.fq", "L2_R2.fq"),
    ])
    proc = run_qc(sheet, tmp_path / "out")
    assert proc.returncode == 0, proc.stderr
    doc = summary(tmp_path / "out")
    assert [s["sample_id"] for s in doc["samples"]] == ["B", "A"]  # first-appearance order
    b = by_sample(doc)["B"]
    assert b["lanes"] == 2
    assert b["reads"] == 6
    assert b["read_pairs"] == 3
    assert b["bases"] == 16  # 2*2 + 2*(2+4)
    assert b["gc_bases"] == 4
    assert b["gc_percent"] == 25.0
    assert b["mean_quality"] == 10.0  # 4 bases at Q40 of 16
    assert by_sample(doc)["A"]["reads"] == 1


def test_gzip_input_matches_plain_and_is_sniffed_not_named(tmp_path: Path) -> None:
    write_fastq(tmp_path / "plain.fastq", THREE_READS)
    write_fastq(tmp_path / "comp.fastq.gz", THREE_READS, gz=True)
    write_fastq(tmp_path / "misnamed.fastq", THREE_READS, gz=True)
    sheet = write_sheet(tmp_path / "samples.tsv", [
        ("plain", "plain.fastq", ""), ("gz", "comp.fastq.gz", ""), ("odd", "misnamed.fastq", ""),
    ])
    proc = run_qc(sheet, tmp_path / "out")
    assert proc.returncode == 0, proc.stderr
    samples = by_sample(summary(tmp_path / "out"))
    figures = ("reads", "bases", "gc_bases", "n_bases", "gc_percent", "mean_quality")
    expected = {k: samples["plain"][k] for k in figures}
    assert expected["reads"] == 3
    for name in ("gz", "odd"):
        assert {k: samples[name][k] for k in figures} == expected


def test_metadata_extra_args_and_tsv(tmp_path: Path) -> None:
    write_fastq(tmp_path / "s1.fastq", THREE_READS)
    sheet = write_sheet(tmp_path / "samples.tsv", [("S1", "s1.fastq", "")])
    out = tmp_path / "deep" / "results"
    proc = run_qc(sheet, out, "--reference", "hg38", "--pipeline", "germline",
                  "--", "-j", "8", "--config", "x=1", "--")
    assert proc.returncode == 0, proc.stderr
    doc = summary(out)
    assert doc["reference"] == "hg38"
    assert doc["pipeline"] == "germline"
    assert doc["extra_args"] == ["-j", "8", "--config", "x=1", "--"]
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", doc["generated_at"])
    rows = [line.split("\t") for line in (out / "qc_summary.tsv").read_text().splitlines()]
    assert rows[0][:6] == ["sample_id", "layout", "lanes", "reads", "read_pairs", "bases"]
    row = dict(zip(rows[0], rows[1], strict=True))
    assert len(rows) == 2
    assert row["sample_id"] == "S1"
    assert row["reads"] == "3"
    assert row["read_pairs"] == "NA"
    assert row["gc_percent"] == "42.1053"
    assert row["mean_quality"] == "29.6842"


def test_defaults_without_reference_or_extra_args(tmp_path: Path) -> None:
    write_fastq(tmp_path / "s1.fastq", THREE_READS)
    sheet = write_sheet(tmp_path / "samples.tsv", [("S1", "s1.fastq", "")])
    proc = run_qc(sheet, tmp_path / "out")
    assert proc.returncode == 0, proc.stderr
    doc = summary(tmp_path / "out")
    assert (doc["reference"], doc["pipeline"], doc["extra_args"]) == (None, None, [])


def test_relative_paths_resolve_against_the_sheet(tmp_path: Path) -> None:
    ws = tmp_path / "workset"
    ws.mkdir()
    write_fastq(ws / "s1.fastq", THREE_READS)
    sheet = write_sheet(ws / "samples.tsv", [("S1", "s1.fastq", "")])
    proc = run_qc(sheet, tmp_path / "out", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert by_sample(summary(tmp_path / "out"))["S1"]["reads"] == 3


def test_empty_fastq_reports_zero_reads(tmp_path: Path) -> None:
    (tmp_path / "empty.fastq").write_bytes(b"")
    sheet = write_sheet(tmp_path / "samples.tsv", [("E", "empty.fastq", "")])
    proc = run_qc(sheet, tmp_path / "out")
    assert proc.returncode == 0, proc.stderr
    s = by_sample(summary(tmp_path / "out"))["E"]
    assert (s["reads"], s["bases"], s["gc_percent"], s["mean_quality"]) == (0, 0, None, None)


GOOD = "@ok\nACGT\n+\nIIII\n"


@pytest.mark.parametrize(
    ("body", "record", "why"),
    [
        (GOOD + "@r2\nACGT\n+\n", 2, "truncated"),
        (GOOD + "@r2\nACGT\n", 2, "truncated"),
        (GOOD + "r2\nACGT\n+\nIIII\n", 2, "missing '@' header"),
        (GOOD + "@r2\nACGT\nIIII\n@r3\nACGT\n+\nIIII\n", 2, "'+' separator line missing"),
        (GOOD + "@r2\nACGT\n+\nIII\n", 2, "length"),
        (GOOD + "@r2\nACGT\n+\nIIIII\n", 2, "length"),
        (GOOD + "\n@r2\nACGT\n+\nIIII\n", 2, "missing '@' header"),
        (GOOD + "@r2\nAC T\n+\nIIII\n", 2, "invalid sequence character"),
    ],
    ids=["no-quality", "no-plus", "no-at", "plus-missing", "qual-short", "qual-long",
         "blank-line", "bad-base"],
)
def test_malformed_fastq_exits_65_naming_file_and_record(
    tmp_path: Path, body: str, record: int, why: str,
) -> None:
    (tmp_path / "bad.fastq").write_text(body)
    sheet = write_sheet(tmp_path / "samples.tsv", [("S1", "bad.fastq", "")])
    proc = run_qc(sheet, tmp_path / "out")
    assert proc.returncode == 65
    assert proc.stderr.count("\n") == 1, proc.stderr  # exactly one line
    assert "Traceback" not in proc.stderr
    assert str(tmp_path / "bad.fastq") in proc.stderr
    assert f"record {record}" in proc.stderr
    assert why in proc.stderr
    assert not (tmp_path / "out" / "qc_summary.json").exists()


def test_trailing_blank_lines_are_tolerated(tmp_path: Path) -> None:
    (tmp_path / "s.fastq").write_text(GOOD + "\n\n")
    sheet = write_sheet(tmp_path / "samples.tsv", [("S1", "s.fastq", "")])
    proc = run_qc(sheet, tmp_path / "out")
    assert proc.returncode == 0, proc.stderr
    assert by_sample(summary(tmp_path / "out"))["S1"]["reads"] == 1


def test_malformed_gzip_member_exits_65(tmp_path: Path) -> None:
    data = gzip.compress((GOOD * 2000).encode(), mtime=0)
    (tmp_path / "cut.fastq.gz").write_bytes(data[: len(data) // 2])
    sheet = write_sheet(tmp_path / "samples.tsv", [("S1", "cut.fastq.gz", "")])
    proc = run_qc(sheet, tmp_path / "out")
    assert proc.returncode == 65
    assert "cut.fastq.gz" in proc.stderr
    assert proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr


def test_mates_with_different_record_counts_exit_65(tmp_path: Path) -> None:
    write_fastq(tmp_path / "R1.fq", [("a", "ACGT", "IIII"), ("b", "ACGT", "IIII")])
    write_fastq(tmp_path / "R2.fq", [("a", "ACGT", "IIII")])
    sheet = write_sheet(tmp_path / "samples.tsv", [("P", "R1.fq", "R2.fq")])
    proc = run_qc(sheet, tmp_path / "out")
    assert proc.returncode == 65
    assert str(tmp_path / "R2.fq") in proc.stderr
    assert "record 2" in proc.stderr


def test_missing_fastq_exits_66(tmp_path: Path) -> None:
    write_fastq(tmp_path / "here.fq", THREE_READS)
    sheet = write_sheet(tmp_path / "samples.tsv", [("S1", "here.fq", "gone_R2.fq")])
    proc = run_qc(sheet, tmp_path / "out")
    assert proc.returncode == 66
    assert "gone_R2.fq" in proc.stderr
    assert proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr
    assert not (tmp_path / "out").exists()


def test_missing_sample_sheet_exits_66(tmp_path: Path) -> None:
    proc = run_qc(tmp_path / "nope.tsv", tmp_path / "out")
    assert proc.returncode == 66
    assert "nope.tsv" in proc.stderr


@pytest.mark.parametrize(
    "text",
    ["", "sample\tfastq\nS1\ta.fq\n", "sample_id\tr1\tr2\n", "sample_id\tr1\tr2\nS1\t\t\n",
     "sample_id\tr1\tr2\nS1\ta.fq\tb.fq\textra\n"],
    ids=["empty", "bad-header", "no-rows", "no-r1", "too-many-columns"],
)
def test_bad_sample_sheet_exits_65(tmp_path: Path, text: str) -> None:
    (tmp_path / "samples.tsv").write_text(text)
    proc = run_qc(tmp_path / "samples.tsv", tmp_path / "out")
    assert proc.returncode == 65
    assert "samples.tsv" in proc.stderr
    assert proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr


def test_example_fastqs(tmp_path: Path) -> None:
    sheet = write_sheet(tmp_path / "samples.tsv", [
        ("NA12878", f"{EXAMPLES}/NA12878_R1.fastq.gz", f"{EXAMPLES}/NA12878_R2.fastq.gz"),
        ("HG002", f"{EXAMPLES}/HG002_R1.fastq.gz", ""),
        ("HG003", f"{EXAMPLES}/HG003_L1_R1.fastq.gz", f"{EXAMPLES}/HG003_L1_R2.fastq.gz"),
        ("HG003", f"{EXAMPLES}/HG003_L2_R1.fastq.gz", f"{EXAMPLES}/HG003_L2_R2.fastq.gz"),
    ])
    proc = run_qc(sheet, tmp_path / "out")
    assert proc.returncode == 0, proc.stderr
    samples = by_sample(summary(tmp_path / "out"))
    got = {k: (v["layout"], v["lanes"], v["reads"], v["read_pairs"], v["bases"])
           for k, v in samples.items()}
    assert got == {
        "NA12878": ("paired", 1, 800, 400, 80_000),
        "HG002": ("single", 1, 300, None, 30_000),
        "HG003": ("paired", 2, 800, 400, 80_000),
    }
    for s in samples.values():
        assert 35 < s["gc_percent"] < 47
        assert 30 < s["mean_quality"] < 37
