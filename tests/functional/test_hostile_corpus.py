"""The hostile corpus (``tests/data/bad/``) through the live monitor on moto: a poison folder
listed first, every bad case ends ``failed`` with its category and message, good worksets
uploaded beside them complete, and the daemon keeps serving throughout."""

from __future__ import annotations

import contextlib
from pathlib import Path

import pytest
import yaml

from daylib import states as S
from tests.support.deployment import Env

# The env fixture's store is in memory: these tests are about the monitor, not DynamoDB.
pytestmark = pytest.mark.memory_store

CORPUS = Path(__file__).resolve().parents[1] / "data" / "bad"
CASES = sorted(p for p in CORPUS.iterdir() if p.is_dir())
GOOD = ["zzz-good-1", "zzz-good-2", "zzz-good-3"]


def _expect(case: Path) -> dict[str, object]:
    doc = yaml.safe_load((case / "expect.yaml").read_text())
    assert isinstance(doc, dict)
    return doc


def _folder(case: Path) -> str:
    return str(_expect(case).get("folder") or f"bad-{case.name}")


def _upload(env: Env, case: Path) -> None:
    folder = _folder(case)
    for path in sorted(p for p in case.rglob("*") if p.is_file() and p.name != "expect.yaml"):
        data = path.read_bytes()
        with contextlib.suppress(UnicodeDecodeError):
            data = (data.decode("utf-8").replace("{bucket}", env.bucket)
                    .replace("{prefix}", env.prefix).encode())
        env.put(folder, path.relative_to(case).as_posix(), data)


def test_corpus_is_big_enough_and_well_formed() -> None:
    assert len(CASES) >= 40
    for case in CASES:
        exp = _expect(case)
        assert exp.get("registered") is False or (exp["category"] in ("data", "configuration")
                                                  and exp["fragment"]), case.name
    assert min(_folder(c) for c in CASES if _expect(c).get("registered") is not False) == \
        "bad-000-poison-long-integer"


def test_hostile_corpus_through_the_live_monitor(env: Env) -> None:
    for case in CASES:
        _upload(env, case)
    for wid in GOOD:
        env.upload(wid)
    expected = {_folder(c): _expect(c) for c in CASES}
    registered = [w for w, e in expected.items() if e.get("registered") is not False]
    with env.running(max_concurrent=4) as mon:
        env.wait_for(lambda: all(env.state(w) in S.TERMINAL for w in [*registered, *GOOD]),
                     timeout=300)
        assert not mon._stopping.is_set()  # the daemon is still serving
        env.upload("zzz-after")  # and still registers and runs new work
        env.wait_for(lambda: env.at("zzz-after", S.COMPLETE))
    assert [env.state(w) for w in GOOD] == [S.COMPLETE] * len(GOOD)
    wrong = {}
    for wid in registered:
        rec = env.store.require(wid)
        exp = expected[wid]
        if (rec.state, rec.error_category) != (S.FAILED, exp["category"]) or \
                str(exp["fragment"]) not in (rec.error or "") or len(rec.error or "") > 4000:
            wrong[wid] = (rec.state, rec.error_category, (rec.error or "")[:300])
    assert wrong == {}
    for wid, exp in expected.items():
        if exp.get("registered") is False:
            assert env.store.get(wid) is None
