"""Issue 9 items 9 and 11, end to end through the monitor on moto.

Item 9: the work directory is private (0700, the monitor's user), refused when owned by
someone else or reached through a symlink, and a planted symlink is never written through.
Item 11: what the deployment or the user got wrong while the step is being built ends
``configuration`` or ``data`` with a one-line message, never "internal error"."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
import yaml

from daylib import states as S
from tests.support.deployment import FASTQ, Env

# The env fixture's store is in memory: these tests are about the monitor, not DynamoDB.
pytestmark = pytest.mark.memory_store

NOBODY = 65534


def _failed(env: Env, wid: str, category: str, *words: str) -> None:
    rec = env.store.require(wid)
    assert (rec.state, rec.error_category) == (S.FAILED, category), (rec.state, rec.error)
    error = rec.error or ""
    assert "\n" not in error and "internal error" not in error, error
    for word in words:
        assert word in error, error


def _mode(path: Path) -> int:
    return stat.S_IMODE(os.lstat(path).st_mode)


def test_workdir_is_private_to_the_monitor(env: Env) -> None:
    env.upload("ws-private")
    env.monitor().run(once=True)
    assert env.state("ws-private") == S.COMPLETE
    root = Path(env.settings.monitor.workdir)
    assert _mode(root) == _mode(root / "ws-private") == 0o700
    assert _mode(root / "ws-private" / "manifest.json") == 0o600
    assert all(_mode(p) & 0o077 == 0 for p in (root / "ws-private").rglob("*")), \
        "a step wrote files others can read"


def test_workdir_owned_by_someone_else_is_refused(env: Env) -> None:
    root = Path(env.settings.monitor.workdir)
    root.mkdir(mode=0o755)
    os.chown(root, NOBODY, NOBODY)
    env.upload("ws-foreign")
    env.monitor().run(once=True)
    _failed(env, "ws-foreign", "configuration", str(root), "owned by uid 65534")


def test_planted_symlinks_are_never_followed(env: Env, tmp_path: Path) -> None:
    root = Path(env.settings.monitor.workdir)
    (root / "ws-planted").mkdir(parents=True)
    victim = tmp_path / "victim.txt"
    victim.write_text("precious\n")
    (root / "ws-planted" / "manifest.json").symlink_to(victim)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (root / "ws-linked").symlink_to(elsewhere)
    for wid in ("ws-planted", "ws-linked"):
        env.upload(wid)
    env.monitor().run(once=True)
    assert victim.read_text() == "precious\n"
    assert list(elsewhere.iterdir()) == []
    _failed(env, "ws-planted", "configuration", "manifest.json", "symlink")
    _failed(env, "ws-linked", "configuration", "ws-linked", "symlink")


def test_pipeline_missing_from_this_monitors_config_is_configuration(env: Env) -> None:
    env.upload("ws-nopipe", pipeline="short")
    mon = env.monitor()
    mon.intake.scan()  # registered where the pipeline is known
    del mon.settings.workset.pipelines["short"]
    mon.run(once=True)
    _failed(env, "ws-nopipe", "configuration", "'short' is not configured")


def test_unknown_field_in_day_clone_is_data(env: Env) -> None:
    env.settings.daylily.clone_prefix = "{python} -c pass"
    env.put("ws-clone", "sample_data/S1_R1.fastq", FASTQ)
    env.put("ws-clone", "daylily_work.yaml", yaml.safe_dump(
        {"dy-r": "produce_multiqc -j 1", "day-clone": "-i {workset} -x {unknown}"}))
    env.put("ws-clone", "stage_samples.tsv", "SAMPLE_ID\tR1_FQ\nS1\tsample_data/S1_R1.fastq\n")
    env.put("ws-clone", "daylily.ready", "")
    env.monitor().run(once=True)
    _failed(env, "ws-clone", "data", "day-clone", "{unknown}")


def test_file_name_too_long_to_stage_is_data(env: Env) -> None:
    name = "S" * 292 + ".fastq"
    env.put("ws-longname", f"sample_data/{name}", FASTQ)
    env.put("ws-longname", "daylily_work.yaml", yaml.safe_dump(
        {"samples": [{"sample_id": "S1", "fastq_r1": f"sample_data/{name}"}],
         "reference_genome": "hg38"}))
    env.monitor().run(once=True)
    _failed(env, "ws-longname", "data", "298 bytes")
