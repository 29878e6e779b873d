"""Workset parsing (both formats) is pure: text + settings in, Workset or SpecError out."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from daylib.config import Settings
from daylib.errors import Issue, SpecError
from daylib.spec import (
    DYR_ALIASES,
    STAGE_FILE,
    Workset,
    detect_format,
    is_valid_id,
    parse_workset,
    peek_priority,
)

REPO = Path(__file__).resolve().parents[2]
WSID = "ws-001"
FOLDER = f"s3://daylily-worksets/worksets/{WSID}/"
SHELL_OPS = (";", "|", "&&", "`", "$(")


@pytest.fixture
def settings() -> Settings:
    return Settings()


def y(text: str) -> str:
    return textwrap.dedent(text).lstrip("\n")


def issues_of(work: str, settings: Settings, stage: str | None = None,
              workset_id: str = WSID) -> list[Issue]:
    with pytest.raises(SpecError) as info:
        parse_workset(workset_id, work, settings, stage)
    assert info.value.issues, "SpecError without issues"
    for issue in info.value.issues:
        assert issue.category in ("data", "configuration"), issue
        assert "Traceback" not in issue.message
    return info.value.issues


def paths(issues: list[Issue]) -> list[str]:
    return [i.path for i in issues]


def issue_at(issues: list[Issue], path: str) -> Issue:
    found = [i for i in issues if i.path == path]
    assert found, f"no issue at {path!r}; got {issues!r}"
    return found[0]


def daylib_doc(r1: str = "sample_data/S1_R1.fastq.gz", extra: str = "") -> str:
    return (f"samples:\n  - sample_id: S1\n    fastq_r1: {r1!s}\n"
            f"reference_genome: hg38\n{extra}")


# ================================================================ daylib format

def test_daylib_happy_path_resolves_keys_and_applies_defaults(settings: Settings) -> None:
    work = y("""
        samples:
          - sample_id: NA12878
            fastq_r1: sample_data/NA12878_R1.fastq.gz
            fastq_r2: s3://daylily-worksets/shared/NA12878_R2.fastq.gz
            coverage: 30
          - sample_id: HG002.v2
            fastq_r1: sample_data/HG002_R1.fastq.gz
        reference_genome: hg38
    """)
    ws = parse_workset(WSID, work, settings)
    assert isinstance(ws, Workset)
    assert ws.workset_id == WSID
    assert ws.format == "daylib"
    assert [s.sample_id for s in ws.samples] == ["NA12878", "HG002.v2"]
    first, second = ws.samples
    assert len(first.lanes) == 1
    assert first.lanes[0].r1 == FOLDER + "sample_data/NA12878_R1.fastq.gz"
    assert first.lanes[0].r2 == "s3://daylily-worksets/shared/NA12878_R2.fastq.gz"
    assert first.coverage == 30
    assert first.paired and not second.paired
    assert second.lanes[0].r2 is None
    assert ws.reference_genome == "hg38"
    assert ws.pipeline == "germline"
    assert ws.priority == "normal"
    assert ws.max_retries == 3
    assert ws.export_uri == FOLDER + "results/"
    assert ws.after == []
    assert ws.warnings == []
    assert ws.fastq_uris() == [
        FOLDER + "sample_data/NA12878_R1.fastq.gz",
        "s3://daylily-worksets/shared/NA12878_R2.fastq.gz",
        FOLDER + "sample_data/HG002_R1.fastq.gz",
    ]
    assert ws.summary()["format"] == "daylib"
    assert ws.summary()["samples"] == 2
    assert ws.summary()["paired"] == 1


def test_daylib_defaults_follow_config() -> None:
    s = Settings.model_validate({"workset": {"default_priority": "low",
                                             "default_max_retries": 7}})
    ws = parse_workset(WSID, daylib_doc(), s)
    assert ws.priority == "low"
    assert ws.max_retries == 7


def test_daylib_all_optional_keys(settings: Settings) -> None:
    work = daylib_doc(extra=y("""
        pipeline: somatic
        priority: urgent
        max_retries: 0
        preferred_cluster: cluster-a
        affinity: soft
        customer_id: lab-a
        after: [ws-000, other_ws]
        export_uri: s3://daylily-worksets/exports/ws-001/
        resources: {vcpus: 8, memory_gb: 32, storage_gb: 100, walltime_minutes: 120}
        estimated_coverage: 30.5
    """))
    ws = parse_workset(WSID, work, settings)
    assert ws.pipeline == "somatic"
    assert ws.priority == "urgent"
    assert ws.max_retries == 0
    assert ws.preferred_cluster == "cluster-a"
    assert ws.affinity == "soft"
    assert ws.customer_id == "lab-a"
    assert ws.after == ["ws-000", "other_ws"]
    assert ws.export_uri == "s3://daylily-worksets/exports/ws-001/"
    assert ws.resources.vcpus == 8
    assert ws.resources.memory_gb == 32
    assert ws.resources.walltime_minutes == 120
    assert ws.estimated_coverage == 30.5


def test_relative_export_uri_resolves_into_folder(settings: Settings) -> None:
    ws = parse_workset(WSID, daylib_doc(extra="export_uri: out/\n"), settings)
    assert ws.export_uri == FOLDER + "out/"


def test_all_problems_reported_at_once_with_key_paths(settings: Settings) -> None:
    work = y("""
        samples:
          - sample_id: S1
            fastq_r1: sample_data/S1_R1.fastq.gz
          - sample_id: S2
            fastq_r2: sample_data/S2_R2.fastq.gz
          - sample_id: S3
            fastq_r1: sample_data/S3_R1.fastq.gz
            fastq_R2: sample_data/S3_R2.fastq.gz
        reference_genome: hg99
        priorty: urgent
        max_retries: 11
    """)
    issues = issues_of(work, settings)
    got = paths(issues)
    assert "samples[1].fastq_r1" in got
    assert "missing" in issue_at(issues, "samples[1].fastq_r1").message
    assert "samples[2].fastq_R2" in got
    assert "unknown key" in issue_at(issues, "samples[2].fastq_R2").message
    assert "priorty" in got
    assert "unknown key" in issue_at(issues, "priorty").message
    assert "max_retries" in got
    ref = issue_at(issues, "reference_genome")
    assert ref.category == "configuration"
    assert "hg99" in ref.message


def test_structural_and_semantic_problems_reported_together(settings: Settings) -> None:
    # A missing key in one sample must not hide a bad bucket or shell operator in another.
    work = y("""
        samples:
          - sample_id: S1
            fastq_r1: s3://someone-elses-bucket/S1_R1.fastq.gz
          - sample_id: S2
          - sample_id: S3
            fastq_r1: "a.fq; rm -rf /"
        reference_genome: hg38
    """)
    got = paths(issues_of(work, settings))
    assert "samples[1].fastq_r1" in got
    assert "samples[0].fastq_r1" in got
    assert "samples[2].fastq_r1" in got


def test_missing_required_keys(settings: Settings) -> None:
    issues = issues_of("samples:\n  - sample_id: S1\n    fastq_r1: a.fq\n", settings)
    assert "missing" in issue_at(issues, "reference_genome").message


def test_empty_samples_list_is_error(settings: Settings) -> None:
    issues = issues_of("samples: []\nreference_genome: hg38\n", settings)
    assert "samples" in paths(issues)


def test_error_message_is_one_line_per_issue(settings: Settings) -> None:
    with pytest.raises(SpecError) as info:
        parse_workset(WSID, daylib_doc(extra="colour: red\n"), settings)
    text = str(info.value)
    assert "colour" in text
    assert "Traceback" not in text


def test_unknown_reference_is_configuration(settings: Settings) -> None:
    work = daylib_doc().replace("hg38", "hg99")
    with pytest.raises(SpecError) as info:
        parse_workset(WSID, work, settings)
    (issue,) = info.value.issues
    assert issue.path == "reference_genome"
    assert issue.category == "configuration"
    assert "hg99" in issue.message
    assert info.value.category == "configuration"


def test_unknown_pipeline_is_configuration(settings: Settings) -> None:
    with pytest.raises(SpecError) as info:
        parse_workset(WSID, daylib_doc(extra="pipeline: chipseq\n"), settings)
    (issue,) = info.value.issues
    assert issue.path == "pipeline"
    assert issue.category == "configuration"
    assert "chipseq" in issue.message
    assert info.value.category == "configuration"


def test_configured_reference_and_pipeline_are_accepted() -> None:
    s = Settings.model_validate({"workset": {"references": ["chm13"],
                                             "pipelines": {"chipseq": "run {samples_tsv}"}}})
    ws = parse_workset(WSID, daylib_doc(extra="pipeline: chipseq\n").replace("hg38", "chm13"), s)
    assert ws.reference_genome == "chm13"
    assert ws.pipeline == "chipseq"


def test_mixed_categories_make_a_data_error(settings: Settings) -> None:
    work = daylib_doc(extra="colour: red\n").replace("hg38", "hg99")
    with pytest.raises(SpecError) as info:
        parse_workset(WSID, work, settings)
    assert info.value.category == "data"


def test_invalid_priority(settings: Settings) -> None:
    issues = issues_of(daylib_doc(extra="priority: asap\n"), settings)
    assert "asap" in issue_at(issues, "priority").message


def test_duplicate_sample_ids(settings: Settings) -> None:
    work = y("""
        samples:
          - sample_id: S1
            fastq_r1: a.fq
          - sample_id: S1
            fastq_r1: b.fq
        reference_genome: hg38
    """)
    issues = issues_of(work, settings)
    issue = issue_at(issues, "samples[1].sample_id")
    assert "duplicate" in issue.message
    assert "S1" in issue.message
    assert "samples[0].sample_id" not in paths(issues)


@pytest.mark.parametrize("sample_id", ["S 1", "S/1", "S1;", "S*", "S1\n", "", "ü"])
def test_bad_sample_id_characters(settings: Settings, sample_id: str) -> None:
    work = f"samples:\n  - sample_id: {sample_id!r}\n    fastq_r1: a.fq\nreference_genome: hg38\n"
    work = work.replace("'S1\\n'", '"S1\\n"')
    issues = issues_of(work, settings)
    assert issue_at(issues, "samples[0].sample_id").category == "data"


@pytest.mark.parametrize("sample_id", ["S1", "NA12878", "HG002.v2", "s_1-a", "1"])
def test_good_sample_ids(settings: Settings, sample_id: str) -> None:
    work = f"samples:\n  - sample_id: '{sample_id}'\n    fastq_r1: a.fq\nreference_genome: hg38\n"
    assert parse_workset(WSID, work, settings).samples[0].sample_id == sample_id


def test_overlong_string_is_rejected(settings: Settings) -> None:
    long_key = "d/" * 1100 + "a.fq"
    issues = issues_of(daylib_doc(r1=long_key), settings)
    assert "2048" in issue_at(issues, "samples[0].fastq_r1").message


def test_overlong_sample_id_is_rejected(settings: Settings) -> None:
    work = f"samples:\n  - sample_id: {'S' * 5000}\n    fastq_r1: a.fq\nreference_genome: hg38\n"
    issue_at(issues_of(work, settings), "samples[0].sample_id")


def test_too_many_samples() -> None:
    s = Settings.model_validate({"limits": {"max_samples": 2}})
    work = "samples:\n" + "".join(f"  - sample_id: S{i}\n    fastq_r1: s{i}.fq\n"
                                  for i in range(3)) + "reference_genome: hg38\n"
    issues = issues_of(work, s)
    assert "samples" in paths(issues)


# ---------------------------------------------------------------- shell operators

@pytest.mark.parametrize("op", SHELL_OPS)
@pytest.mark.parametrize(
    ("key", "make"),
    [
        ("samples[0].fastq_r1", lambda v: daylib_doc(r1=repr(v))),
        ("samples[0].fastq_r2", lambda v: daylib_doc().replace(
            "reference_genome", f"    fastq_r2: {v!r}\nreference_genome", 1)),
        ("customer_id", lambda v: daylib_doc(extra=f"customer_id: {v!r}\n")),
        ("preferred_cluster", lambda v: daylib_doc(extra=f"preferred_cluster: {v!r}\n")),
        ("export_uri", lambda v: daylib_doc(extra=f"export_uri: {v!r}\n")),
    ],
)
def test_shell_operator_in_field_is_data_error(settings: Settings, op: str, key: str,
                                               make: object) -> None:
    value = f"x{op}touch pwned"
    work = make(value)  # type: ignore[operator]
    with pytest.raises(SpecError) as info:
        parse_workset(WSID, work, settings)
    issue = issue_at(info.value.issues, key)
    assert issue.category == "data"
    assert "shell" in issue.message
    assert info.value.category == "data"


# ---------------------------------------------------------------- S3 locations

def test_bucket_not_allowed(settings: Settings) -> None:
    issues = issues_of(daylib_doc(r1="s3://other-bucket/x/S1_R1.fastq.gz"), settings)
    issue = issue_at(issues, "samples[0].fastq_r1")
    assert "other-bucket" in issue.message
    assert issue.category == "data"


def test_bucket_allowed_when_listed() -> None:
    s = Settings.model_validate({"storage": {"allowed_buckets": ["other-bucket"]}})
    ws = parse_workset(WSID, daylib_doc(r1="s3://other-bucket/x/S1_R1.fastq.gz"), s)
    assert ws.samples[0].lanes[0].r1 == "s3://other-bucket/x/S1_R1.fastq.gz"


def test_export_uri_bucket_not_allowed(settings: Settings) -> None:
    issues = issues_of(daylib_doc(extra="export_uri: s3://elsewhere/out/\n"), settings)
    assert "elsewhere" in issue_at(issues, "export_uri").message


def test_workset_bucket_follows_config() -> None:
    s = Settings.model_validate({"storage": {"bucket": "lab-bucket", "prefix": "in/"}})
    ws = parse_workset(WSID, daylib_doc(), s)
    assert ws.samples[0].lanes[0].r1 == f"s3://lab-bucket/in/{WSID}/sample_data/S1_R1.fastq.gz"
    assert ws.export_uri == f"s3://lab-bucket/in/{WSID}/results/"
    issues = issues_of(daylib_doc(r1="s3://daylily-worksets/x.fq"), s)
    issue_at(issues, "samples[0].fastq_r1")


@pytest.mark.parametrize("key", ["../other-ws/S1_R1.fastq.gz", "sample_data/../../x.fq", "..",
                                 "/etc/passwd", "/sample_data/S1_R1.fastq.gz"])
def test_parent_and_absolute_keys_refused(settings: Settings, key: str) -> None:
    issues = issues_of(daylib_doc(r1=repr(key)), settings)
    assert issue_at(issues, "samples[0].fastq_r1").category == "data"


@pytest.mark.parametrize("value", ["https://example.org/a.fq", "file:///tmp/a.fq",
                                   "s3://", "s3://daylily-worksets", "s3://daylily-worksets/",
                                   "''"])
def test_non_s3_or_incomplete_uris_refused(settings: Settings, value: str) -> None:
    issue_at(issues_of(daylib_doc(r1=value), settings), "samples[0].fastq_r1")


# ---------------------------------------------------------------- after / ids

def test_after_self_reference(settings: Settings) -> None:
    issues = issues_of(daylib_doc(extra=f"after: [ws-000, {WSID}]\n"), settings)
    assert "itself" in issue_at(issues, "after[1]").message
    assert "after[0]" not in paths(issues)


@pytest.mark.parametrize("dep", ["ab", "-abc", "a b c", "x" * 65, "ws/001"])
def test_after_invalid_ids(settings: Settings, dep: str) -> None:
    issues = issues_of(daylib_doc(extra=f"after: [{dep!r}]\n"), settings)
    issue_at(issues, "after[0]")


def test_after_non_string_id(settings: Settings) -> None:
    issue_at(issues_of(daylib_doc(extra="after: [123]\n"), settings), "after[0]")


def test_after_must_be_list(settings: Settings) -> None:
    issue_at(issues_of(daylib_doc(extra="after: ws-000\n"), settings), "after")


@pytest.mark.parametrize("good", ["abc", "ws-001", "WS_2024_01", "0ab", "a" * 64, "a-_"])
def test_is_valid_id_accepts(good: str) -> None:
    assert is_valid_id(good)


@pytest.mark.parametrize("bad", ["ab", "a" * 65, "-abc", "_abc", "abc!", "ab c", "",
                                 "a.bc", "abc/def", "abc\n", "ü-abc"])
def test_is_valid_id_rejects(bad: str) -> None:
    assert not is_valid_id(bad)


@pytest.mark.parametrize("bad", ["ab", "-abc", "a" * 65, "abc\n"])
def test_parse_rejects_invalid_workset_id(settings: Settings, bad: str) -> None:
    issues = issues_of(daylib_doc(), settings, workset_id=bad)
    assert paths(issues) == ["workset_id"]


# ---------------------------------------------------------------- YAML limits

def test_oversized_file(settings: Settings) -> None:
    work = daylib_doc() + "# " + "x" * settings.limits.max_yaml_bytes + "\n"
    (issue,) = issues_of(work, settings)
    assert issue.path == "daylily_work.yaml"
    assert str(settings.limits.max_yaml_bytes) in issue.message


def test_billion_laughs_is_refused_before_expansion(settings: Settings) -> None:
    lines = ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    prev = "a"
    for name in "bcdefghi":
        lines.append(f"{name}: &{name} [" + ",".join([f"*{prev}"] * 9) + "]")
        prev = name
    (issue,) = issues_of("\n".join(lines) + "\n", settings)
    assert issue.path == "daylily_work.yaml"
    assert "alias" in issue.message


def test_aliases_within_limit_are_fine(settings: Settings) -> None:
    work = y("""
        samples:
          - sample_id: S1
            fastq_r1: &r1 sample_data/S1_R1.fastq.gz
          - sample_id: S2
            fastq_r1: *r1
        reference_genome: hg38
    """)
    ws = parse_workset(WSID, work, settings)
    assert ws.samples[0].lanes[0].r1 == ws.samples[1].lanes[0].r1


def test_too_deep_nesting(settings: Settings) -> None:
    depth = settings.limits.max_yaml_depth + 1
    work = daylib_doc(extra="resources: " + "[" * depth + "1" + "]" * depth + "\n")
    (issue,) = issues_of(work, settings)
    assert issue.path == "daylily_work.yaml"
    assert "deep" in issue.message


def test_pathologically_deep_nesting_is_refused_quickly() -> None:
    # 60000 levels is a 120 KB file, well under max_yaml_bytes; refusing it must not cost more
    # than a moment (the monitor validates uploads as they arrive). Run in a child process so a
    # slow (quadratic) check fails this test after a bound instead of hanging the suite.
    code = textwrap.dedent("""
        from daylib.config import Settings
        from daylib.errors import SpecError
        from daylib.spec import parse_workset
        text = "a: " + "[" * 60000 + "]" * 60000 + "\\n"
        try:
            parse_workset("ws-001", text, Settings())
        except SpecError as exc:
            print(exc.issues[0].path)
    """)
    try:
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                             timeout=15, cwd=REPO, check=False)
    except subprocess.TimeoutExpired:
        pytest.fail("refusing a deeply nested daylily_work.yaml took longer than 15 s")
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "daylily_work.yaml"


def test_invalid_yaml_names_line(settings: Settings) -> None:
    work = "samples:\n  - sample_id: S1\n    fastq_r1: [unclosed\nreference_genome: hg38\n"
    (issue,) = issues_of(work, settings)
    assert issue.path == "daylily_work.yaml"
    assert "not valid YAML" in issue.message
    assert "line " in issue.message


def test_invalid_yaml_line_number_is_right(settings: Settings) -> None:
    work = "reference_genome: hg38\nsamples:\n  - sample_id: S1\n\tfastq_r1: a.fq\n"
    (issue,) = issues_of(work, settings)
    assert "line 4" in issue.message


@pytest.mark.parametrize("work", ["- a\n- b\n", "just a string\n", "", "42\n", "null\n"])
def test_non_mapping_document(settings: Settings, work: str) -> None:
    (issue,) = issues_of(work, settings)
    assert issue.path == "daylily_work.yaml"
    assert "mapping" in issue.message


def test_python_tags_are_not_executed(settings: Settings) -> None:
    work = daylib_doc(extra="notes: !!python/object/apply:os.system ['true']\n")
    (issue,) = issues_of(work, settings)
    assert issue.path == "daylily_work.yaml"


# ================================================================ Daylily folder format

DY_WORK = y("""
    dy-r: "produce_snv_concordances -p -k -j 2 --config aligners=['bwa2a']"
    workdir_name: hg003-concordance
    budget: daylily-demo
    notes: Two lanes of HG003.
    reference_genome: hg38
""")
DY_TSV = (
    "SAMPLE_ID\tRUN_ID\tLANE\tR1_FQ\tR2_FQ\n"
    "HG003\tRUN1\t1\tsample_data/HG003_L1_R1.fastq.gz\tsample_data/HG003_L1_R2.fastq.gz\n"
    "HG003\tRUN1\t2\tsample_data/HG003_L2_R1.fastq.gz\tsample_data/HG003_L2_R2.fastq.gz\n"
)


def test_daylily_happy_path_with_lanes(settings: Settings) -> None:
    ws = parse_workset(WSID, DY_WORK, settings, DY_TSV)
    assert ws.format == "daylily"
    assert ws.dy_r == "produce_snv_concordances -p -k -j 2 --config aligners=['bwa2a']"
    assert ws.workdir_name == "hg003-concordance"
    assert ws.budget == "daylily-demo"
    assert ws.reference_genome == "hg38"
    assert ws.export_uri == FOLDER + "results/"
    assert ws.priority == "normal"
    assert ws.max_retries == 3
    assert ws.warnings == []
    (sample,) = ws.samples
    assert sample.sample_id == "HG003"
    assert [lane.r1 for lane in sample.lanes] == [
        FOLDER + "sample_data/HG003_L1_R1.fastq.gz", FOLDER + "sample_data/HG003_L2_R1.fastq.gz"]
    assert [lane.r2 for lane in sample.lanes] == [
        FOLDER + "sample_data/HG003_L1_R2.fastq.gz", FOLDER + "sample_data/HG003_L2_R2.fastq.gz"]
    assert sample.paired
    assert ws.summary()["format"] == "daylily"


def test_daylily_several_samples_single_end(settings: Settings) -> None:
    tsv = "SAMPLE_ID\tR1_FQ\nA1\ta1.fq\nB2\ts3://daylily-worksets/shared/b2.fq\n\n"
    ws = parse_workset(WSID, "dy-r: help\n", settings, tsv)
    assert [s.sample_id for s in ws.samples] == ["A1", "B2"]
    assert ws.samples[1].lanes[0].r1 == "s3://daylily-worksets/shared/b2.fq"
    assert not ws.samples[0].paired


@pytest.mark.parametrize("alias", DYR_ALIASES)
def test_each_dy_r_alias_accepted(settings: Settings, alias: str) -> None:
    ws = parse_workset(WSID, f"{alias}: '-p help'\n", settings, DY_TSV)
    assert ws.format == "daylily"
    assert ws.dy_r == "-p help"


def test_all_documented_aliases_are_known() -> None:
    assert set(DYR_ALIASES) == {"dy-r", "dy_r", "dy", "run", "run_suffix", "run-suffix",
                                "run_cmd", "run-command"}


def test_two_aliases_at_once_is_error(settings: Settings) -> None:
    issues = issues_of("dy-r: help\nrun: help\n", settings, DY_TSV)
    issue = issue_at(issues, "run")
    assert "dy-r" in issue.message


def test_missing_dy_r_lists_aliases(settings: Settings) -> None:
    issues = issues_of("workdir_name: x1\n", settings, DY_TSV)
    issue = issue_at(issues, "dy-r")
    for alias in DYR_ALIASES[1:]:
        assert alias in issue.message


def test_missing_stage_tsv(settings: Settings) -> None:
    issues = issues_of("dy-r: help\n", settings, None)
    assert "missing" in issue_at(issues, STAGE_FILE).message


@pytest.mark.parametrize("column", ["SAMPLE_ID", "R1_FQ"])
def test_stage_tsv_missing_column(settings: Settings, column: str) -> None:
    header = [c for c in ("SAMPLE_ID", "R1_FQ", "R2_FQ") if c != column]
    tsv = "\t".join(header) + "\n" + "\t".join("x1" for _ in header) + "\n"
    issues = issues_of("dy-r: help\n", settings, tsv)
    assert column in issue_at(issues, STAGE_FILE).message


def test_stage_tsv_without_rows(settings: Settings) -> None:
    issue_at(issues_of("dy-r: help\n", settings, "SAMPLE_ID\tR1_FQ\n"), STAGE_FILE)


def test_stage_tsv_bad_rows_name_line_and_column(settings: Settings) -> None:
    tsv = "SAMPLE_ID\tR1_FQ\nok1\ta.fq\nbad id\tb.fq\nok2\t\nok3\ts3://other/c.fq\n"
    got = paths(issues_of("dy-r: help\n", settings, tsv))
    assert f"{STAGE_FILE} line 3 SAMPLE_ID" in got
    assert f"{STAGE_FILE} line 4 R1_FQ" in got
    assert f"{STAGE_FILE} line 5 R1_FQ" in got


def test_stage_tsv_shell_operator_and_parent_key(settings: Settings) -> None:
    tsv = "SAMPLE_ID\tR1_FQ\tR2_FQ\nA1\ta.fq;rm\t../b.fq\n"
    got = paths(issues_of("dy-r: help\n", settings, tsv))
    assert f"{STAGE_FILE} line 2 R1_FQ" in got
    assert f"{STAGE_FILE} line 2 R2_FQ" in got


def test_oversized_stage_tsv(settings: Settings) -> None:
    tsv = "SAMPLE_ID\tR1_FQ\n" + "A1\ta.fq\n" * (settings.limits.max_tsv_bytes // 7 + 1)
    assert "larger" in issue_at(issues_of("dy-r: help\n", settings, tsv), STAGE_FILE).message


def test_unknown_daylily_keys_are_warnings(settings: Settings) -> None:
    work = DY_WORK + "site_label: building-7\nfrobnicate: 1\n"
    ws = parse_workset(WSID, work, settings, DY_TSV)
    assert len(ws.warnings) == 2
    assert any("site_label" in w for w in ws.warnings)
    assert any("frobnicate" in w for w in ws.warnings)


def test_daylily_optional_keys(settings: Settings) -> None:
    work = y("""
        dy-r: help
        day-clone: "-d mydir"
        export_uri: s3://daylily-worksets/exports/x/
        cluster_name: cluster-b
        priority: high
        max_retries: 5
        customer_id: lab-c
        pipeline: germline
    """)
    ws = parse_workset(WSID, work, settings, DY_TSV)
    assert ws.day_clone == "-d mydir"
    assert ws.export_uri == "s3://daylily-worksets/exports/x/"
    assert ws.preferred_cluster == "cluster-b"
    assert ws.priority == "high"
    assert ws.max_retries == 5
    assert ws.customer_id == "lab-c"
    assert ws.pipeline == "germline"


@pytest.mark.parametrize("op", SHELL_OPS)
@pytest.mark.parametrize("alias", ["dy-r", "run"])
def test_shell_operator_in_dy_r_is_data_error(settings: Settings, op: str, alias: str) -> None:
    with pytest.raises(SpecError) as info:
        parse_workset(WSID, f"{alias}: {'-p help' + op + 'id'!r}\n", settings, DY_TSV)
    issue = issue_at(info.value.issues, alias)
    assert issue.category == "data"
    assert "shell" in issue.message
    assert info.value.category == "data"


@pytest.mark.parametrize("key", ["day-clone", "workdir_name", "cluster_name", "customer_id"])
def test_shell_operator_in_other_daylily_fields(settings: Settings, key: str) -> None:
    work = f"dy-r: help\n{key}: 'x; id'\n"
    assert issue_at(issues_of(work, settings, DY_TSV), key).category == "data"


def test_unbalanced_quotes_in_dy_r(settings: Settings) -> None:
    issue_at(issues_of("dy-r: \"-p 'help\"\n", settings, DY_TSV), "dy-r")


def test_daylily_bad_values(settings: Settings) -> None:
    work = "dy-r: help\npriority: asap\nmax_retries: 99\nreference_genome: hg99\n"
    issues = issues_of(work, settings, DY_TSV)
    got = paths(issues)
    assert {"priority", "max_retries", "reference_genome"} <= set(got)
    assert issue_at(issues, "reference_genome").category == "configuration"


@pytest.mark.parametrize("key", ["budget", "notes", "workdir_name", "dy-r"])
def test_daylily_non_string_values_are_errors(settings: Settings, key: str) -> None:
    work = ("" if key == "dy-r" else "dy-r: help\n") + f"{key}: {{a: 1}}\n"
    issue_at(issues_of(work, settings, DY_TSV), key)


# ---------------------------------------------------------------- detect_format

@pytest.mark.parametrize(
    ("doc", "files", "expected"),
    [
        ({"samples": [], "reference_genome": "hg38"}, [], "daylib"),
        ({"samples": []}, [STAGE_FILE], "daylib"),
        ({"dy-r": "help"}, [], "daylily"),
        ({"run_cmd": "help"}, [], "daylily"),
        ({"workdir_name": "x"}, [STAGE_FILE], "daylily"),
        ({}, [STAGE_FILE, "daylily_info.yaml"], "daylily"),
        ({}, [], "daylib"),
        (None, [STAGE_FILE], "daylily"),
        (["a"], [], "daylib"),
    ],
)
def test_detect_format(doc: object, files: list[str], expected: str) -> None:
    assert detect_format(doc, files) == expected


# ---------------------------------------------------------------- peek_priority

@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("priority: urgent\n", "urgent"),
        ("priority: low\nsamples: []\n", "low"),
        ("dy-r: help\npriority: high\n", "high"),
        ("samples: []\n", "normal"),
        ("priority: asap\n", "normal"),
        ("priority: [high]\n", "normal"),
        ("priority: {a: 1}\n", "normal"),
        ("- priority: high\n", "normal"),
        ("", "normal"),
        ("priority: [unclosed\n", "normal"),
        ("\t: : :\n", "normal"),
        ("!!python/object/apply:os.system ['true']\n", "normal"),
        ("priority: urgent\n" + "x: " + "y" * 70000 + "\n", "urgent"),
    ],
    ids=lambda v: v[:24] if isinstance(v, str) else None,
)
def test_peek_priority(text: str, expected: str) -> None:
    assert peek_priority(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "[" * 70000,
        "a: " + "[" * 5000 + "]" * 5000 + "\n",
        "{" * 3000 + "}" * 3000,
        "\x00\x01\x02",
        "priority: &a high\nx: *b\n",
    ],
    ids=["deep-unclosed-list", "deep-list", "deep-flow-mapping", "control-chars",
         "undefined-alias"],
)
def test_peek_priority_never_raises(text: str) -> None:
    assert peek_priority(text) in ("urgent", "high", "normal", "low")
