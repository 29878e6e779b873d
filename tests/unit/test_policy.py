"""Failure policy: every default rule, retry budgets, and full-jitter backoff."""

from __future__ import annotations

import random

import pytest

from daylib.policy import (
    DEFAULT_RULE,
    DEFAULT_RULES,
    RETRYABLE,
    UNMATCHED_MAX_RETRIES,
    Failure,
    Rule,
    backoff_seconds,
    classify,
    retry_budget,
)

CATEGORIES = ("transient", "resource", "configuration", "data", "permanent")


# ---------------------------------------------------------------- classify: every default rule

@pytest.mark.parametrize(
    ("failure", "category", "rule"),
    [
        # transient: AWS throttling
        (Failure("rate exceeded", aws_code="ThrottlingException"), "transient", "throttled"),
        (Failure("rate exceeded", aws_code="Throttling"), "transient", "throttled"),
        (Failure("busy", aws_code="ProvisionedThroughputExceededException"), "transient",
         "throttled"),
        (Failure("busy", aws_code="RequestLimitExceeded"), "transient", "throttled"),
        (Failure("s3 busy", aws_code="SlowDown"), "transient", "throttled"),
        (Failure("busy", aws_code="TooManyRequestsException"), "transient", "throttled"),
        # transient: AWS 5xx
        (Failure("oops", aws_code="InternalError"), "transient", "aws-5xx"),
        (Failure("oops", aws_code="ServiceUnavailable"), "transient", "aws-5xx"),
        (Failure("oops", aws_code="InternalServerError"), "transient", "aws-5xx"),
        (Failure("oops", aws_code="500"), "transient", "aws-5xx"),
        (Failure("oops", aws_code="502"), "transient", "aws-5xx"),
        (Failure("oops", aws_code="503"), "transient", "aws-5xx"),
        (Failure("oops", aws_code="504"), "transient", "aws-5xx"),
        # transient: connection problems
        (Failure("no route", aws_code="EndpointConnectionError"), "transient", "connection"),
        (Failure("closed", aws_code="ConnectionClosedError"), "transient", "connection"),
        (Failure("slow", aws_code="ReadTimeoutError"), "transient", "connection"),
        (Failure("slow", aws_code="ConnectTimeoutError"), "transient", "connection"),
        # transient: the node went away
        (Failure("node died", step="run", state="NODE_FAIL"), "transient", "node-fail"),
        (Failure("boot", step="run", state="BOOT_FAIL"), "transient", "node-fail"),
        (Failure("spot", step="run", state="PREEMPTED"), "transient", "node-fail"),
        (Failure("gone", step="run", state="LOST"), "transient", "node-fail"),
        # resource
        (Failure("oom", step="run", state="OUT_OF_MEMORY"), "resource", "out-of-memory"),
        (Failure("killed", step="run", exit_code=137,
                 stderr_tail="[12345.6] Killed process 4242 (bwa) total-vm:1024kB, "
                             "out of memory"),
         "resource", "oom-kill"),
        (Failure("killed", step="run", exit_code=137, stderr_tail="Out of memory: Killed process"),
         "resource", "oom-kill"),
        (Failure("walltime", step="run", state="TIMEOUT"), "resource", "walltime"),
        (Failure("deadline", step="run", state="DEADLINE"), "resource", "walltime"),
        (Failure("write failed", step="stage", exit_code=1,
                 stderr_tail="cp: error writing 'x.fq': No space left on device"),
         "resource", "disk-full"),
        (Failure("OSError: [Errno 28] No space left on device"), "resource", "disk-full"),
        (Failure("write failed", stderr_tail="Disk quota exceeded"), "resource", "disk-full"),
        # configuration
        (Failure("denied", aws_code="AccessDenied"), "configuration", "access-denied"),
        (Failure("denied", aws_code="AccessDeniedException"), "configuration", "access-denied"),
        (Failure("denied", aws_code="403"), "configuration", "access-denied"),
        (Failure("denied", aws_code="Forbidden"), "configuration", "access-denied"),
        (Failure("run failed", step="run", exit_code=2, stderr_tail="unknown reference 'hg99'"),
         "configuration", "unknown-name"),
        (Failure("unknown pipeline 'chipseq'"), "configuration", "unknown-name"),
        # data
        (Failure("bad fastq", step="run", exit_code=65), "data", "bad-fastq"),
        (Failure("no input", step="run", exit_code=66), "data", "bad-fastq"),
        (Failure("missing", aws_code="NoSuchKey"), "data", "missing-input"),
        (Failure("missing", aws_code="404"), "data", "missing-input"),
        # permanent
        (Failure("scancel", step="run", state="CANCELLED"), "permanent", "cancelled"),
    ],
)
def test_default_rules(failure: Failure, category: str, rule: str) -> None:
    assert classify(failure) == (category, rule)


def test_every_default_rule_is_covered_and_valid() -> None:
    names = [r.name for r in DEFAULT_RULES]
    assert len(names) == len(set(names))
    assert {r.category for r in DEFAULT_RULES} <= set(CATEGORIES)
    assert set(names) == {"throttled", "aws-5xx", "connection", "node-fail", "out-of-memory",
                          "oom-kill", "walltime", "disk-full", "access-denied", "unknown-name",
                          "bad-fastq", "missing-input", "cancelled"}


def test_exit_137_without_oom_text_is_not_resource() -> None:
    # A SIGKILL that was not the OOM killer (e.g. scancel, an operator) is not "needs memory".
    category, rule = classify(Failure("killed", step="run", exit_code=137,
                                      stderr_tail="Terminated by operator"))
    assert rule != "oom-kill"
    assert category != "resource"


def test_oom_text_without_exit_137_is_not_oom_kill() -> None:
    _category, rule = classify(Failure("failed", step="run", exit_code=1,
                                       stderr_tail="Killed process 1 out of memory"))
    assert rule != "oom-kill"


def test_stderr_match_is_case_insensitive() -> None:
    assert classify(Failure("x", stderr_tail="NO SPACE LEFT ON DEVICE")) == ("resource",
                                                                            "disk-full")


def test_message_is_matched_when_no_stderr() -> None:
    assert classify(Failure("No space left on device", stderr_tail="")) == ("resource",
                                                                           "disk-full")


@pytest.mark.parametrize("category", CATEGORIES)
def test_preset_category_wins(category: str) -> None:
    # A validation result (category already known) beats anything the rules would say.
    f = Failure("throttled while validating", aws_code="ThrottlingException", exit_code=65,
                state="OUT_OF_MEMORY", category=category)
    assert classify(f) == (category, f"validation:{category}")


def test_first_matching_rule_wins() -> None:
    f = Failure("oom and denied", state="OUT_OF_MEMORY", aws_code="AccessDenied")
    assert classify(f) == ("resource", "out-of-memory")


@pytest.mark.parametrize(
    "failure",
    [
        Failure("something odd happened"),
        Failure("segfault", step="run", exit_code=139),
        Failure("weird", aws_code="SomeNewErrorCode"),
        Failure("odd state", state="SPECIAL_EXIT"),
        Failure("exit 1", step="run", exit_code=1, stderr_tail="Traceback: KeyError"),
    ],
)
def test_unmatched_is_default_with_capped_budget(failure: Failure) -> None:
    category, rule = classify(failure)
    assert (category, rule) == (DEFAULT_RULE.category, DEFAULT_RULE.name)
    assert category in RETRYABLE
    assert retry_budget(category, rule, 5) == UNMATCHED_MAX_RETRIES
    assert retry_budget(category, rule, 0) == 0
    assert retry_budget(category, rule, 1) == min(1, UNMATCHED_MAX_RETRIES)


def test_custom_rules() -> None:
    rules = (Rule("mine", "data", steps=("export",), exit_codes=(3,)),)
    assert classify(Failure("x", step="export", exit_code=3), rules) == ("data", "mine")
    # every given criterion must hold
    assert classify(Failure("x", step="run", exit_code=3), rules) == ("transient", "unmatched")


def test_rule_without_criteria_matches_nothing() -> None:
    assert not Rule("empty", "data").matches(Failure("anything", exit_code=1))


# ---------------------------------------------------------------- retry budget

@pytest.mark.parametrize(
    ("category", "rule", "max_retries", "expected"),
    [
        ("transient", "throttled", 3, 3),
        ("transient", "node-fail", 10, 10),
        ("transient", "throttled", 0, 0),
        ("resource", "out-of-memory", 3, 3),
        ("resource", "walltime", 7, 7),
        ("configuration", "access-denied", 3, 0),
        ("data", "bad-fastq", 3, 0),
        ("permanent", "cancelled", 10, 0),
        ("configuration", "validation:configuration", 5, 0),
        ("data", "validation:data", 5, 0),
        ("transient", "validation:transient", 4, 4),
        ("transient", "unmatched", 3, UNMATCHED_MAX_RETRIES),
        ("transient", "unmatched", 0, 0),
    ],
)
def test_retry_budget(category: str, rule: str, max_retries: int, expected: int) -> None:
    assert retry_budget(category, rule, max_retries) == expected


def test_retryable_categories() -> None:
    assert set(RETRYABLE) == {"transient", "resource"}
    assert UNMATCHED_MAX_RETRIES >= 1


# ---------------------------------------------------------------- backoff (full jitter)

BASE, FACTOR, CAP = 30.0, 2.0, 3600.0


@pytest.mark.parametrize("attempt", [1, 2, 3, 5, 8, 10, 30])
def test_backoff_within_full_jitter_bounds(attempt: int) -> None:
    rng = random.Random(1234 + attempt)
    ceiling = min(CAP, BASE * FACTOR ** (attempt - 1))
    draws = [backoff_seconds(attempt, base=BASE, factor=FACTOR, cap=CAP, rng=rng)
             for _ in range(200)]
    assert all(0 <= d <= ceiling for d in draws)
    # full jitter, not "equal jitter" or a fixed delay: the draws cover most of [0, ceiling]
    assert min(draws) < 0.1 * ceiling
    assert max(draws) > 0.9 * ceiling
    assert max(draws) - min(draws) > 0.8 * ceiling
    assert len(set(draws)) > 150


def test_backoff_ceiling_grows_then_caps() -> None:
    maxima = []
    for attempt in range(1, 12):
        rng = random.Random(7)
        draws = [backoff_seconds(attempt, base=BASE, factor=FACTOR, cap=CAP, rng=rng)
                 for _ in range(200)]
        maxima.append(max(draws))
    assert maxima[0] <= 30.0
    assert maxima[1] <= 60.0 and maxima[1] > 30.0
    assert maxima[2] <= 120.0 and maxima[2] > 60.0
    assert all(m <= CAP for m in maxima)
    assert maxima[-1] > 0.9 * CAP


def test_backoff_is_reproducible_with_seeded_rng() -> None:
    a = [backoff_seconds(3, base=BASE, factor=FACTOR, cap=CAP, rng=random.Random(99))
         for _ in range(3)]
    assert a[0] == a[1] == a[2]


def test_backoff_attempt_zero_or_negative_uses_base() -> None:
    rng = random.Random(5)
    for attempt in (0, -3):
        draws = [backoff_seconds(attempt, base=BASE, factor=FACTOR, cap=CAP, rng=rng)
                 for _ in range(100)]
        assert all(0 <= d <= BASE for d in draws)


def test_backoff_zero_base_or_cap_is_zero() -> None:
    assert backoff_seconds(4, base=0.0, factor=FACTOR, cap=CAP, rng=random.Random(1)) == 0.0
    assert backoff_seconds(4, base=BASE, factor=FACTOR, cap=0.0, rng=random.Random(1)) == 0.0


def test_backoff_without_rng_uses_module_random() -> None:
    draws = {backoff_seconds(4, base=BASE, factor=FACTOR, cap=CAP) for _ in range(20)}
    assert all(0 <= d <= 240.0 for d in draws)
    assert len(draws) > 1
