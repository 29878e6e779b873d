"""daylib/late_setup.py: a lookup AWS did not answer is retried until it succeeds; one AWS
answered (missing, access denied) is not."""

from __future__ import annotations

from daylib.errors import AwsAccessDenied, AwsUnavailable
from daylib.late_setup import LateSetup


class _Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_a_lookup_aws_did_not_answer_is_retried_until_it_succeeds() -> None:
    clock, answers, found = _Clock(), [False, False, True], []

    def lookup() -> None:
        if not answers.pop(0):
            raise AwsUnavailable("get_queue_url: could not connect")
        found.append("queue")

    late = LateSetup(every_seconds=10.0, clock=clock)
    assert late.attempt("intake", lookup) is False
    late.retry()  # not yet due
    assert late.pending == ["intake"] and len(answers) == 2
    clock.now = 10.0
    late.retry()
    assert late.pending == ["intake"] and not found
    clock.now = 20.0
    late.retry()
    assert late.pending == [] and found == ["queue"]


def test_a_lookup_aws_answered_is_not_retried() -> None:
    def lookup() -> None:
        raise AwsAccessDenied("sns:ListTopics denied")

    late = LateSetup(clock=_Clock())
    assert late.attempt("notifications", lookup) is True
    assert late.pending == []
