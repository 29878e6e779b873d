"""check_inputs at claim time: one HEAD per FASTQ, on the runner's own thread when there is
only one (a pool's thread would only delay that HEAD on the workset's path)."""

from __future__ import annotations

import threading
from typing import Any, cast

import pytest

from daylib.config import Settings
from daylib.errors import SpecError
from daylib.s3 import Head, S3Objects
from daylib.spec import parse_workset
from daylib.validate import check_inputs


class HeadOnly:
    """The one S3 call check_inputs makes for present inputs, recording who made it."""

    def __init__(self, sizes: dict[str, int]) -> None:
        self.sizes = sizes
        self.threads: list[str] = []

    def head(self, uri: str) -> Head:
        self.threads.append(threading.current_thread().name)
        size = self.sizes.get(uri)
        return Head(uri, size is not None, size or 0)

    def bucket_missing(self, bucket: str, key: str) -> bool:
        return False


def _workset(*fastqs: str) -> Any:
    samples = ", ".join(f"{{sample_id: S{n}, fastq_r1: '{uri}'}}"
                        for n, uri in enumerate(fastqs, start=1))
    return parse_workset("ws-1", f"samples: [{samples}]\nreference_genome: hg38\n", Settings())


def test_a_single_input_is_headed_on_the_callers_thread() -> None:
    s3 = HeadOnly({"s3://daylily-worksets/a.fq": 10})
    check_inputs(_workset("s3://daylily-worksets/a.fq"), cast(S3Objects, s3), Settings())
    assert s3.threads == [threading.current_thread().name]


def test_several_inputs_are_all_headed_and_every_problem_reported() -> None:
    s3 = HeadOnly({"s3://daylily-worksets/a.fq": 10, "s3://daylily-worksets/c.fq": 0})
    with pytest.raises(SpecError) as exc:
        check_inputs(_workset("s3://daylily-worksets/a.fq", "s3://daylily-worksets/c.fq"),
                     cast(S3Objects, s3), Settings())
    assert len(s3.threads) == 2
    assert "s3://daylily-worksets/c.fq is empty" in str(exc.value)


def test_a_single_missing_input_is_reported() -> None:
    s3 = HeadOnly({})
    with pytest.raises(SpecError, match="does not exist"):
        check_inputs(_workset("s3://daylily-worksets/a.fq"), cast(S3Objects, s3), Settings())
