"""Strict loading and Daylily's real forms (issue 10): pure parsing, text in, spec or issues out."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from daylib.config import Settings
from daylib.errors import SpecError
from daylib.spec import parse_workset, sniff_format

WSID = "ws-strict"
DATA = Path(__file__).resolve().parents[1] / "data" / "daylily"
GOOD_TSV = "SAMPLE_ID\tR1_FQ\tR2_FQ\nS1\tsample_data/S1_R1.fastq.gz\tsample_data/S1_R2.fastq.gz\n"
DAYLIB = "reference_genome: hg38\nsamples:\n  - sample_id: S1\n    fastq_r1: a.fq\n"


@pytest.fixture
def settings() -> Settings:
    s = Settings()
    s.storage.allowed_buckets = ["daylily-results"]
    return s


def message(work: str | bytes, settings: Settings, tsv: str | bytes | None = None) -> str:
    with pytest.raises(SpecError) as info:
        parse_workset(WSID, work, settings, tsv)
    return str(info.value)


def y(text: str) -> str:
    return textwrap.dedent(text).lstrip("\n")


# ------------------------------------------------------------ strict YAML

def test_very_long_integer_is_a_data_error_not_a_crash(settings: Settings) -> None:
    text = DAYLIB + "max_retries: " + "9" * 5000 + "\n"
    assert "daylily_work.yaml" in message(text, settings)


@pytest.mark.parametrize("text,key", [
    (DAYLIB + "reference_genome: hg19\n", "reference_genome"),
    ("reference_genome: hg38\nsamples:\n  - sample_id: S1\n    fastq_r1: a.fq\n"
     "    fastq_r1: b.fq\n", "fastq_r1"),
    ("dy-r: produce_snv\ndy-r: produce_sv\n", "dy-r"),
])
def test_duplicate_keys_name_the_key_and_line(settings: Settings, text: str, key: str) -> None:
    msg = message(text, settings, GOOD_TSV if "dy-r" in text else None)
    assert f"duplicate key {key!r}" in msg and "line" in msg


def test_non_utf8_is_refused_but_a_bom_is_fine(settings: Settings) -> None:
    assert "not UTF-8" in message(DAYLIB.encode().replace(b"a.fq", b"\xff.fq"), settings)
    ws = parse_workset(WSID, b"\xef\xbb\xbf" + DAYLIB.encode(), settings)
    assert ws.samples[0].sample_id == "S1"


def test_non_utf8_tsv_is_refused(settings: Settings) -> None:
    assert "not UTF-8" in message("dy-r: x\n", settings, GOOD_TSV.encode() + b"S2\t\xfe.fq\n")


@pytest.mark.parametrize("value", [".inf", "-.inf", ".nan", ".NaN"])
def test_nan_and_inf_are_refused(settings: Settings, value: str) -> None:
    text = DAYLIB.replace("fastq_r1: a.fq", f"fastq_r1: a.fq\n    coverage: {value}")
    assert "not a finite number" in message(text, settings)


def test_tab_in_indentation_says_so(settings: Settings) -> None:
    msg = message("samples:\n\t- sample_id: S1\n", settings)
    assert "line 2 is indented with a tab" in msg


@pytest.mark.parametrize("sid", [".", ".."])
def test_dot_sample_ids_are_refused(settings: Settings, sid: str) -> None:
    assert "not '.' or '..'" in message(DAYLIB.replace("S1", f"'{sid}'"), settings)
    tsv = f"SAMPLE_ID\tR1_FQ\n{sid}\ta.fq\n"
    assert "not '.' or '..'" in message("dy-r: x\n", settings, tsv)


@pytest.mark.parametrize("cell", ["=HYPERLINK(\"x\")", "+cmd", "-2+3", "@SUM(A1)"])
def test_formula_cells_in_unread_columns_are_refused(settings: Settings, cell: str) -> None:
    tsv = f"SAMPLE_ID\tR1_FQ\tNOTE\nS1\ta.fq\t{cell}\n"
    assert "spreadsheet formula" in message("dy-r: x\n", settings, tsv)


def test_numbers_and_shell_free_cells_pass(settings: Settings) -> None:
    tsv = "SAMPLE_ID\tR1_FQ\tSUBSAMPLE_PCT\tN_X\nS1\ta.fq\t-1\t+0.5\n"
    assert parse_workset(WSID, "dy-r: x\n", settings, tsv).samples[0].sample_id == "S1"


def test_shell_operators_in_unread_columns_are_refused(settings: Settings) -> None:
    tsv = "SAMPLE_ID\tR1_FQ\tNOTE\nS1\ta.fq\tx; rm -rf /\n"
    assert "NOTE: contains the shell operator ';'" in message("dy-r: x\n", settings, tsv)


def test_lanes_count_toward_max_samples(settings: Settings) -> None:
    settings.limits.max_samples = 3
    tsv = "SAMPLE_ID\tR1_FQ\n" + "".join(f"S1\tL{i}.fq\n" for i in range(4))
    assert "4 lanes" in message("dy-r: x\n", settings, tsv)


def test_messages_are_bounded(settings: Settings) -> None:
    tsv = "SAMPLE_ID\tR1_FQ\n" + "".join(f"S{i}\ts3://elsewhere/{i}.fq\n" for i in range(1000))
    msg = message("dy-r: x\n", settings, tsv)
    assert len(msg) < 4000 and "more problem(s)" in msg


# ------------------------------------------------------------ Daylily's forms

def test_folded_dy_r_loads(settings: Settings) -> None:
    text = y("""
        dy-r: >
          produce_snv_concordances -p -k -j 2
          --config aligners=['bwa2a'] dedupers=['dppl']
        """)
    ws = parse_workset(WSID, text, settings, GOOD_TSV)
    assert ws.dy_r == ("produce_snv_concordances -p -k -j 2 --config aligners=['bwa2a'] "
                       "dedupers=['dppl']")


@pytest.mark.parametrize("field", ["[produce_snv, -j, 4]", "{args: produce_snv -j 4}",
                                   "{cmd: [produce_snv, -j, 4]}", "{command: produce_snv -j 4}",
                                   "{suffix: '  produce_snv -j 4  '}", "'  produce_snv -j 4 '"])
def test_command_forms_daylily_accepts(settings: Settings, field: str) -> None:
    ws = parse_workset(WSID, f"dy-r: {field}\n", settings, GOOD_TSV)
    assert ws.dy_r == "produce_snv -j 4"


def test_day_clone_with_padding_and_export_aliases(settings: Settings) -> None:
    text = ("day-clone: '  -d ws-strict -u ubuntu  '\ndy-r: x\n"
            "export-uri: s3://daylily-results/out/\n")
    ws = parse_workset(WSID, text, settings, GOOD_TSV)
    assert (ws.day_clone, ws.export_uri) == ("-d ws-strict -u ubuntu", "s3://daylily-results/out/")
    ws = parse_workset(WSID, "dy-r: x\nexport: s3://daylily-results/o2/\n", settings, GOOD_TSV)
    assert ws.export_uri == "s3://daylily-results/o2/"


def test_daylily_keys_make_the_format_even_without_tsv(settings: Settings) -> None:
    assert sniff_format("day-clone: x\ndy-r: y\n", settings, has_tsv=False) == "daylily"
    assert "stage_samples.tsv: is missing" in message("dy-r: y\n", settings)


def test_unknown_daylily_keys_are_warnings(settings: Settings) -> None:
    ws = parse_workset(WSID, "dy-r: x\nfavourite_colour: blue\n", settings, GOOD_TSV)
    assert ws.warnings == ["favourite_colour: unknown key kept as-is (Daylily ignores it)"]


def test_daylily_example_folder_as_shipped(settings: Settings) -> None:
    folder = DATA / "ws-daylily-example"
    ws = parse_workset(WSID, (folder / "daylily_work.yaml").read_bytes(), settings,
                       (folder / "stage_samples.tsv").read_bytes())
    assert ws.format == "daylily" and ws.dy_r and ws.dy_r.startswith("produce_snv_concordances")
    assert [len(s.lanes) for s in ws.samples] == [2, 1]
    assert ws.export_uri.startswith("s3://daylily-results/")
