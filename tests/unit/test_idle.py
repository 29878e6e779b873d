"""The idle pace: poll while busy, slower while passes find nothing, never past what is due."""

from __future__ import annotations

from daylib.idle import IdlePacer


def test_quiet_passes_slow_down_to_the_cap_and_work_resets() -> None:
    pacer = IdlePacer(2.0, 60.0)
    seen = []
    for _ in range(5):
        pacer.quiet()
        seen.append(pacer.interval)
    assert seen == [8.0, 32.0, 60.0, 60.0, 60.0] and pacer.idle
    pacer.busy()
    assert pacer.interval == 2.0 and not pacer.idle


def test_a_due_retry_comes_before_the_idle_pause() -> None:
    pacer = IdlePacer(2.0, 60.0)
    pacer.quiet()
    pacer.quiet()
    assert pacer.due(1000.0, None) == 1032.0
    assert pacer.due(1000.0, 1004.5) == 1004.5
