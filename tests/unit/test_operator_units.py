"""Pure pieces of the operator's view: bounded logs, live follow, time parsing, paging
tokens, did-you-mean, the actor fallback, and EMF lines from the metrics writer."""

from __future__ import annotations

import getpass
import io
import json
from pathlib import Path
from typing import Any

import pytest

from daylib.cli_habits import actor, did_you_mean
from daylib.errors import UserError
from daylib.executors.jobwrap import BoundedLog
from daylib.listing import decode_token, encode_token, parse_time
from daylib.metrics import SCHEMA, Metrics
from daylib.steplogs import bounded, follow


def test_bounded_keeps_small_logs_whole_and_cuts_the_middle_of_large_ones() -> None:
    small = b"hello\n" * 10
    assert bounded(io.BytesIO(small), len(small), 1024, 256) == small
    big = b"".join(f"line {i}\n".encode() for i in range(10_000))
    out = bounded(io.BytesIO(big), len(big), 4096, 1024)
    assert len(out) <= 4096
    assert out.startswith(b"line 0\nline 1\n") and out.endswith(b"line 9999\n")
    assert b"bytes of this log omitted" in out


def test_follow_yields_appended_text_until_the_step_ends(tmp_path: Path) -> None:
    path = tmp_path / "run.a1.log"
    writes = iter(["one\n", "two\n", "", "three\n"])
    ended = {"now": False}

    def sleep(_: float) -> None:
        chunk = next(writes, None)
        if chunk is None:
            ended["now"] = True
        else:
            with open(path, "a") as fh:
                fh.write(chunk)

    got = "".join(follow(path, lambda: ended["now"], sleep=sleep))
    assert got == "one\ntwo\nthree\n"


def test_parse_time_accepts_iso_and_ages() -> None:
    assert parse_time("2026-01-31") == "2026-01-31T00:00:00.000Z"
    assert parse_time("2026-01-31T12:30Z") == "2026-01-31T12:30:00.000Z"
    assert parse_time("2h", now=7200.0) == "1970-01-01T00:00:00.000Z"
    with pytest.raises(UserError, match="age"):
        parse_time("yesterday")


def test_paging_token_round_trips_and_rejects_garbage() -> None:
    key = "2026-01-31T12:30:00.000Z#ws-1"
    assert decode_token(encode_token(key)) == key
    with pytest.raises(UserError, match="next-token"):
        decode_token("not-a-token")


def test_did_you_mean_suggests_the_closest_choice() -> None:
    msg = "argument command: invalid choice: 'qeueu' (choose from 'queue', 'list', 'show')"
    assert did_you_mean(msg).endswith("did you mean 'queue'?")
    assert did_you_mean("the following arguments are required: id") == \
        "the following arguments are required: id"


class _Sts:
    def get_caller_identity(self) -> dict[str, str]:
        return {"Arn": "arn:aws:iam::123456789012:user/ops"}


def test_actor_is_the_os_user_else_the_caller_identity(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(getpass, "getuser", lambda: "alice")
    assert actor(_Sts) == "user:alice"

    def no_user() -> str:
        raise OSError("no user name")

    monkeypatch.setattr(getpass, "getuser", no_user)
    assert actor(_Sts) == "aws:arn:aws:iam::123456789012:user/ops"

    def broken() -> Any:
        raise RuntimeError("no credentials")

    assert actor(broken) == "user:unknown"


def test_metric_lines_use_only_the_dimension_sets_they_can_fill() -> None:
    lines: list[str] = []
    m = Metrics("NS", "alpha", write=lines.append, clock=lambda: 1.5)
    m.transition("complete", None, workset_id="w1")
    m.transition("complete", "lab-a", workset_id="w1")
    m.failure("data", retry=False, customer=None)
    first, second, third = (json.loads(x) for x in lines)
    assert first["_aws"]["CloudWatchMetrics"][0]["Dimensions"] == [["cluster", "state"]]
    assert second["_aws"]["CloudWatchMetrics"][0]["Dimensions"] == [
        ["cluster", "state"], ["cluster", "customer", "state"]]
    assert first["_aws"]["Timestamp"] == 1500 and first["Transitions"] == 1
    assert third["category"] == "data" and "DeadLetters" in third
    off = Metrics("NS", "alpha", enabled=False, write=lines.append)
    off.emit("ClaimConflicts", 1)
    assert len(lines) == 3
    assert all(isinstance(d.unit, str) and d.dimensions for d in SCHEMA.values())


def _nothing_new(_: float) -> None:
    raise AssertionError("the follower found nothing new where there was")


def _lines(start: int, stop: int) -> bytes:
    return b"".join(b"line %06d\n" % i for i in range(start, stop))


def test_follow_goes_on_where_it_was_when_the_live_log_is_cut(tmp_path: Path) -> None:
    """The wrapper replaces a full live log by head + marker + tail; a follower keeps its
    place in the output: no line twice, none lost that the file still has."""
    path = tmp_path / "run.a1.log"
    log = BoundedLog(path, 4096, 1024)
    reader = follow(path, lambda: False, sleep=_nothing_new)
    log.write(_lines(0, 340))  # 4080 bytes: not cut yet
    seen = next(reader)
    log.write(_lines(340, 380))  # cut, but only lines the follower has read
    seen += next(reader)
    assert seen.encode() == _lines(0, 380)
    log.write(_lines(380, 2000))  # cut well past where the follower is
    seen += next(reader)
    log.close()
    before, marker, after = seen.partition("\n[daylib: ")
    assert before.encode() == _lines(0, 380)
    assert "bytes of this log omitted after the first 1024 bytes]\n" in marker + after
    assert after.endswith("line 001999\n")
    assert (path.read_bytes().split(b"bytes]\n", 1)[1]).decode() in after


def test_bounded_log_stays_under_its_limit(tmp_path: Path) -> None:
    path = tmp_path / "x.log"
    log = BoundedLog(path, 2048, 512)
    for i in range(100):
        log.write(_lines(i * 10, i * 10 + 10))
        assert path.stat().st_size <= 2048
    log.close()
    data = path.read_bytes()
    assert data.startswith(_lines(0, 51)[:512]) and data.endswith(_lines(990, 1000))
