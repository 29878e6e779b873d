"""How a workset's run step becomes argv: templates split first, then filled; Daylily's
day-clone then dy-r chained without a shell."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from daylib.config import Settings
from daylib.spec import parse_workset
from daylib.stepcmd import run_argv


def test_daylib_template_is_split_then_filled(tmp_path: Path) -> None:
    s = Settings()
    s.workset.pipelines = {"germline": "run-it --ref {reference} --in {samples_tsv}"}
    ws = parse_workset("ws-arg", "samples: [{sample_id: S1, fastq_r1: 'a b.fq'}]\n"
                       "reference_genome: hg38\n", s)
    assert run_argv(s, ws, tmp_path) == [
        "run-it", "--ref", "hg38", "--in", str(tmp_path / "inputs/samples.tsv")]


def test_daylily_clone_then_run_chained_without_a_shell(tmp_path: Path) -> None:
    s = Settings()
    s.daylily.clone_prefix = "day-clone --workdir {workdir_name}"
    s.daylily.run_prefix = "dy-r-wrapper --"
    doc = ("dy-r: produce_snv_concordances -p -j 2 --config aligners=['bwa2a']\n"
           "day-clone: -i {workset} -d {workdir_name}\nworkdir_name: hg3\n")
    ws = parse_workset("ws-dyr", doc, s, stage_tsv="SAMPLE_ID\tR1_FQ\nS1\tr1.fq\n")
    argv = run_argv(s, ws, tmp_path)
    assert argv[:5] == [sys.executable, "-m", "daylib.steps", "chain", "--json"]
    clone, run = json.loads(argv[5])
    assert clone == ["day-clone", "--workdir", "hg3", "-i", "ws-dyr", "-d", "hg3"]
    assert run == ["dy-r-wrapper", "--", "produce_snv_concordances", "-p", "-j", "2",
                   "--config", "aligners=[bwa2a]"]


def test_daylily_without_clone_is_prefix_plus_dyr(tmp_path: Path) -> None:
    s = Settings()
    s.daylily.run_prefix = "dy-r"
    ws = parse_workset("ws-dyr2", "dy-r: produce_multiqc -j 4\n", s,
                       stage_tsv="SAMPLE_ID\tR1_FQ\nS1\tr1.fq\n")
    assert run_argv(s, ws, tmp_path) == ["dy-r", "produce_multiqc", "-j", "4"]
