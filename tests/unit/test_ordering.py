"""Claim order: priority levels, oldest first, ageing promotes starved worksets, id breaks ties."""

from __future__ import annotations

import random

import pytest

from daylib.ordering import claim_order, effective_rank, epoch, share_of, spread
from daylib.store.records import WorksetRecord, utc_iso

NOW = 1_750_000_000.0  # a fixed "now"; every created_at is relative to it
PROMOTE = 3600.0


def rec(workset_id: str, priority: str = "normal", age: float = 0.0) -> WorksetRecord:
    """A ready workset created ``age`` seconds before NOW."""
    return WorksetRecord(workset_id=workset_id, state="ready", version=1, priority=priority,
                         created_at=utc_iso(NOW - age))


def order(*records: WorksetRecord, promote: float = PROMOTE) -> list[str]:
    return [r.workset_id for r in claim_order(records, NOW, promote)]


def test_priority_levels() -> None:
    records = [rec("ws-low", "low", 10), rec("ws-normal", "normal", 20),
               rec("ws-urgent", "urgent", 5), rec("ws-high", "high", 30)]
    assert order(*records) == ["ws-urgent", "ws-high", "ws-normal", "ws-low"]


def test_priority_beats_age_below_promotion() -> None:
    # Older by almost one interval, but not promoted yet: priority decides.
    assert order(rec("ws-old-low", "low", PROMOTE - 1), rec("ws-new-normal", "normal", 0)) == [
        "ws-new-normal", "ws-old-low"]


def test_order_is_independent_of_input_order() -> None:
    records = [rec(f"ws-{i:03d}", p, age) for i, (p, age) in enumerate(
        [("low", 5), ("urgent", 1), ("normal", 50), ("high", 2), ("normal", 40), ("low", 90)])]
    expected = order(*records)
    rng = random.Random(11)
    for _ in range(20):
        shuffled = records[:]
        rng.shuffle(shuffled)
        assert order(*shuffled) == expected


def test_oldest_first_within_level() -> None:
    records = [rec("ws-b", "normal", 60), rec("ws-a", "normal", 10), rec("ws-c", "normal", 600)]
    assert order(*records) == ["ws-c", "ws-b", "ws-a"]


def test_oldest_first_with_millisecond_resolution() -> None:
    assert order(rec("ws-b", "high", 0.001), rec("ws-a", "high", 0.002)) == ["ws-a", "ws-b"]


def test_ties_broken_by_id() -> None:
    records = [rec("ws-c", "normal", 30), rec("ws-a", "normal", 30), rec("ws-b", "normal", 30)]
    assert order(*records) == ["ws-a", "ws-b", "ws-c"]


@pytest.mark.parametrize(
    ("intervals", "expected_rank"),
    [(0, 3), (0.5, 3), (0.999, 3), (1, 2), (1.5, 2), (2, 1), (2.9, 1), (3, 0), (10, 0)],
)
def test_low_is_promoted_one_level_per_interval(intervals: float, expected_rank: int) -> None:
    r = rec("ws-low", "low", intervals * PROMOTE)
    assert effective_rank(r, NOW, PROMOTE) == expected_rank


@pytest.mark.parametrize(("priority", "rank"), [("urgent", 0), ("high", 1), ("normal", 2),
                                                ("low", 3)])
def test_rank_without_waiting(priority: str, rank: int) -> None:
    assert effective_rank(rec("ws-x", priority, 0), NOW, PROMOTE) == rank


def test_urgent_never_goes_below_zero() -> None:
    assert effective_rank(rec("ws-u", "urgent", 50 * PROMOTE), NOW, PROMOTE) == 0


def test_created_in_the_future_is_not_demoted() -> None:
    # clock skew between monitors: a record "from the future" keeps its own level
    assert effective_rank(rec("ws-f", "high", -5 * PROMOTE), NOW, PROMOTE) == 1


def test_low_waited_three_intervals_goes_ahead_of_newer_normal_and_high() -> None:
    records = [rec("ws-high", "high", 60), rec("ws-normal", "normal", 120),
               rec("ws-starved", "low", 3 * PROMOTE + 1)]
    assert order(*records) == ["ws-starved", "ws-high", "ws-normal"]


def test_promoted_low_still_behind_fresh_urgent_only_if_younger() -> None:
    # Promoted to urgent level after 3 intervals: among urgent-level worksets, oldest first.
    records = [rec("ws-urgent", "urgent", 10), rec("ws-starved", "low", 3 * PROMOTE + 1)]
    assert order(*records) == ["ws-starved", "ws-urgent"]


def test_low_waited_one_interval_joins_normal_level() -> None:
    records = [rec("ws-high", "high", 0), rec("ws-normal-new", "normal", 10),
               rec("ws-low-old", "low", PROMOTE + 10), rec("ws-low-new", "low", 5)]
    assert order(*records) == ["ws-high", "ws-low-old", "ws-normal-new", "ws-low-new"]


def test_low_waited_two_intervals_joins_high_level() -> None:
    records = [rec("ws-high", "high", 60), rec("ws-normal", "normal", 2 * PROMOTE + 100),
               rec("ws-low", "low", 2 * PROMOTE + 50), rec("ws-urgent", "urgent", 0)]
    # normal waited 2 intervals -> urgent level; low waited 2 intervals -> high level (older
    # than the real high one, so ahead of it).
    assert order(*records) == ["ws-normal", "ws-urgent", "ws-low", "ws-high"]


def test_promotion_follows_promote_after_seconds() -> None:
    records = [rec("ws-low", "low", 100), rec("ws-normal", "normal", 10)]
    assert order(*records, promote=3600) == ["ws-normal", "ws-low"]
    assert order(*records, promote=50) == ["ws-low", "ws-normal"]


def test_empty_candidates() -> None:
    assert claim_order([], NOW, PROMOTE) == []


def test_claim_order_accepts_any_iterable() -> None:
    gen = (rec(f"ws-{i}", "normal", i) for i in range(3))
    assert [r.workset_id for r in claim_order(gen, NOW, PROMOTE)] == ["ws-2", "ws-1", "ws-0"]


def test_epoch_round_trips_utc_iso() -> None:
    assert epoch(utc_iso(NOW)) == pytest.approx(NOW, abs=0.001)
    assert epoch(utc_iso(NOW + 0.25)) == pytest.approx(NOW + 0.25, abs=0.001)


def test_utc_iso_sorts_in_time_order() -> None:
    stamps = [utc_iso(NOW + d) for d in (-86400 * 400, -1, -0.001, 0, 0.001, 59, 86400)]
    assert stamps == sorted(stamps)


def test_customers_take_turns_within_a_level() -> None:
    base = 1_000_000.0
    recs = [WorksetRecord(workset_id=f"{c}{i}", state="ready", version=1, priority="normal",
                          customer_id=c, created_at=utc_iso(base + t))
            for t, (c, i) in enumerate([("a", 1), ("a", 2), ("a", 3), ("b", 1), ("c", 1),
                                        ("b", 2)])]
    urgent = WorksetRecord(workset_id="z1", state="ready", version=1, priority="urgent",
                           customer_id="a", created_at=utc_iso(base + 99))
    got = [r.workset_id for r in claim_order([*recs, urgent], base + 100, 3600.0)]
    assert got == ["z1", "a1", "b1", "c1", "a2", "b2", "a3"]


def test_colliding_monitors_take_only_their_own_disjoint_shares_oldest_first() -> None:
    """Monitors that know of each other try only their own share of a contended window, in
    queue order; the shares are disjoint and together cover the window, so none of them
    races another for the same item."""
    window = [rec(f"ws-{i:02d}", age=100 - i) for i in range(16)]
    ids = [r.workset_id for r in window]
    picks = []
    for index in range(4):
        got = [r.workset_id for r in spread(window, len(window), NOW, PROMOTE,
                                            random.Random(index), (index, 4))]
        assert got == [w for w in ids if share_of(w, 4) == index]
        picks.append(got)
    assert sorted(w for got in picks for w in got) == ids


def test_a_higher_level_comes_before_the_own_share_of_a_lower_one() -> None:
    """Priority before sharing: the others' urgent worksets are tried (shuffled) before this
    monitor's own share of the normal level; nothing below that share is tried."""
    normal = [rec(f"ws-{i:02d}", age=100 - i) for i in range(12)]
    index = share_of(normal[0].workset_id, 2)
    urgent = [rec(f"ws-u{i}", "urgent", 1) for i in range(20)
              if share_of(f"ws-u{i}", 2) != index][:3]
    low = [rec("ws-low", "low", 500)]
    got = [r.workset_id for r in spread([*urgent, *normal, *low], 16, NOW, PROMOTE,
                                        random.Random(1), (index, 2))]
    assert sorted(got[:3]) == sorted(r.workset_id for r in urgent)
    assert got[3:] == [r.workset_id for r in normal if share_of(r.workset_id, 2) == index]


def test_with_no_share_of_its_own_a_monitor_takes_the_others_shuffled() -> None:
    """A busy or gone peer's share is not left waiting: when the window holds nothing of
    this monitor's share, the others' are tried, shuffled, then the rest in order."""
    window = [rec(f"ws-{i:02d}", age=100 - i) for i in range(40)]
    theirs = [r for r in window if share_of(r.workset_id, 2) == 1][:8]
    got = [r.workset_id for r in spread(theirs, 6, NOW, PROMOTE, random.Random(5), (0, 2))]
    assert sorted(got[:6]) == [r.workset_id for r in theirs[:6]]
    assert got[6:] == [r.workset_id for r in theirs[6:]]


def test_a_monitor_knowing_of_no_other_shuffles_the_whole_window() -> None:
    window = [rec(f"ws-{i:02d}", age=100 - i) for i in range(12)]
    got = [r.workset_id for r in spread(window, 8, NOW, PROMOTE, random.Random(3))]
    assert sorted(got[:8]) == [f"ws-{i:02d}" for i in range(8)] != got[:8]
    assert got[8:] == [f"ws-{i:02d}" for i in range(8, 12)]
