"""Trailing work (a step's log copy, a sentinel): in order, off the run's path, waited for at
the run's end, on one thread per workset (a thread started per copy ran ahead of the run's
next step or write at each step's end)."""

from __future__ import annotations

import contextvars
import logging
import threading

import pytest

from daylib.trailing import Trailing

FIELD: contextvars.ContextVar[str] = contextvars.ContextVar("field", default="")


def test_work_runs_in_order_on_one_thread_of_its_own_and_wait_waits_for_all() -> None:
    gate = threading.Event()
    done: list[tuple[int, int]] = []
    trail = Trailing("ws-order")
    trail.add(gate.wait)
    for n in range(3):
        trail.add(lambda n=n: done.append((n, threading.get_ident())))
    assert done == []  # the first is still running: the rest wait their turn
    gate.set()
    trail.wait()
    assert [n for n, _ in done] == [0, 1, 2]
    assert len({ident for _, ident in done} - {threading.get_ident()}) == 1


def test_wait_with_nothing_added_returns() -> None:
    Trailing("ws-none").wait()


def test_a_failure_is_logged_and_later_work_still_runs(caplog: pytest.LogCaptureFixture
                                                       ) -> None:
    done: list[str] = []

    def fails() -> None:
        raise RuntimeError("S3 said no")

    trail = Trailing("ws-fail")
    with caplog.at_level(logging.ERROR, logger="daylib.trailing"):
        trail.add(fails)
        trail.add(lambda: done.append("after"))
        trail.wait()
    assert done == ["after"]
    assert "ws-fail: trailing work failed" in caplog.text


def test_work_keeps_the_context_it_was_added_in() -> None:
    seen: list[str] = []
    trail = Trailing("ws-context")
    for step in ("stage", "run"):
        FIELD.set(step)
        trail.add(lambda: seen.append(FIELD.get()))
    trail.wait()
    assert seen == ["stage", "run"]
