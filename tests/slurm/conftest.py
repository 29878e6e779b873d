"""One real single-node Slurm per test session (see tests/support/slurm.py)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.slurm import SlurmCluster, slurm_unavailable_reason, start_slurm


@pytest.fixture(scope="session")
def slurm_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SlurmCluster]:
    """Skips only when Slurm truly cannot run here; a failed start is an error, not a skip."""
    reason = slurm_unavailable_reason()
    if reason:
        pytest.skip(reason)
    cluster = start_slurm(tmp_path_factory.mktemp("slurm"))
    try:
        yield cluster
    finally:
        cluster.stop()
