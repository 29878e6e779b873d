"""Failure policy: every default rule, retry budgets, and full-jitter backoff."""

from __future__ import annotations

import random

import pytest

from daylib.config import Settings, load_settings
from daylib.errors import ConfigError
from daylib.policy import (
    DEFAULT_RULE,
    DEFAULT_RULES,
    RETRYABLE,
    UNMATCHED_MAX_RETRIES,
    Failure,
    Policy,
    Rule,
    aws_code_in,
    backoff_ceiling,
    backoff_seconds,
    classify,
    retry_budget,
    transient_aws_code,
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
        # configuration: Slurm refuses what no node offers
        (Failure("refused", step="run", state="FAILED",
                 stderr_tail="sbatch: error: Memory specification can not be satisfied"),
         "configuration", "unsatisfiable"),
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
                          "bad-fastq", "missing-input", "cancelled", "unsatisfiable"}


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


# ---------------------------------------------------------------- AWS codes in step output

@pytest.mark.parametrize(
    ("text", "code"),
    [
        ("botocore.exceptions.ClientError: An error occurred (SlowDown) when calling the "
         "GetObject operation (reached max retries: 4): Please reduce your request rate.",
         "SlowDown"),
        ("stage: GetObject: An error occurred (AccessDenied) when calling ...", "AccessDenied"),
        ("first An error occurred (Throttling) then An error occurred (NoSuchKey)", "NoSuchKey"),
        ("botocore.exceptions.EndpointConnectionError: Could not connect to the endpoint URL",
         "EndpointConnectionError"),
        ("Traceback: KeyError: 'x'", None),
        ("", None),
    ],
)
def test_aws_code_in_step_output(text: str, code: str | None) -> None:
    assert aws_code_in(text) == code


def test_aws_code_from_stderr_classifies_a_step() -> None:
    tail = "An error occurred (ThrottlingException) when calling the PutObject operation"
    f = Failure("export failed", step="export", exit_code=69, aws_code=aws_code_in(tail),
                stderr_tail=tail)
    assert classify(f) == ("transient", "throttled")


@pytest.mark.parametrize(("code", "transient"), [
    ("SlowDown", True), ("503", True), ("ThrottlingException", True),
    ("EndpointConnectionError", True), ("AccessDenied", False), ("404", False), ("", False),
    (None, False)])
def test_transient_aws_code(code: str | None, transient: bool) -> None:
    assert transient_aws_code(code) is transient


# ---------------------------------------------------------------- policy from config

def _settings(**policy: object) -> Settings:
    s = Settings()
    for key, value in policy.items():
        setattr(s.policy, key, value)
    return s


def test_config_rules_come_first_and_keep_their_order() -> None:
    s = load_settings(None, environ={"DAYLILY_POLICY__RULES": (
        "[{name: ref-index, category: configuration, stderr: 'fai index not found'},"
        " {name: flaky-node, category: transient, exit_codes: [137]},"
        " {name: big-job, category: resource, steps: [run], exit_codes: [42],"
        "  escalate: [memory, walltime]}]")})
    policy = Policy.from_settings(s)
    assert [r.name for r in policy.rules[:3]] == ["ref-index", "flaky-node", "big-job"]
    assert policy.rules[3:] == DEFAULT_RULES
    # a config rule beats the built-in oom-kill for the same evidence
    oom = Failure("killed", step="run", exit_code=137, stderr_tail="Killed process 1 (oom)")
    assert policy.classify(oom) == ("transient", "flaky-node")
    assert policy.classify(Failure("x", stderr_tail="FAI INDEX NOT FOUND")) == (
        "configuration", "ref-index")
    big = policy.decide(Failure("x", step="run", exit_code=42), retries_used=0, max_retries=3,
                        resources={"memory_gb": 8, "walltime_minutes": 30},
                        rng=random.Random(1))
    assert big.resources == {"memory_gb": 16.0, "walltime_minutes": 60}
    assert big.escalated == ("memory", "walltime")


def test_config_rule_with_bad_regex_names_the_rule() -> None:
    s = load_settings(None, environ={"DAYLILY_POLICY__RULES":
                                     "[{name: broken, category: data, stderr: '(unclosed'}]"})
    with pytest.raises(ConfigError) as info:
        Policy.from_settings(s)
    assert "policy.rules.0 (broken)" in str(info.value)


def test_config_rule_with_unknown_category_or_key_is_refused() -> None:
    with pytest.raises(ConfigError) as info:
        load_settings(None, environ={"DAYLILY_POLICY__RULES": "[{name: x, category: fatal}]"})
    assert "policy.rules.0.category" in str(info.value)
    with pytest.raises(ConfigError) as info:
        load_settings(None, environ={"DAYLILY_POLICY__RULES":
                                     "[{name: x, category: data, exit_code: [1]}]"})
    assert "policy.rules.0.exit_code" in str(info.value)


def test_unmatched_default_is_configurable() -> None:
    policy = Policy.from_settings(_settings(unmatched_category="permanent",
                                            unmatched_max_retries=0))
    d = policy.decide(Failure("odd", step="run", exit_code=3), retries_used=0, max_retries=3,
                      resources={})
    assert (d.category, d.rule, d.retry) == ("permanent", "unmatched", False)
    policy = Policy.from_settings(_settings(unmatched_max_retries=2))
    f = Failure("odd", step="run", exit_code=3)
    assert [policy.decide(f, retries_used=n, max_retries=5, resources={}).retry
            for n in range(4)] == [True, True, False, False]
    assert policy.decide(f, retries_used=0, max_retries=1, resources={}).budget == 1


# ---------------------------------------------------------------- decide

POLICY = Policy(base_seconds=30.0, factor=2.0, cap_seconds=3600.0, memory_factor=2.0,
                walltime_factor=1.5, base_memory_gb=4.0, base_walltime_minutes=60,
                max_memory_gb=24.0, max_walltime_minutes=120)


@pytest.mark.parametrize("used", [0, 1, 2])
def test_decide_retries_within_budget_with_full_jitter_bounds(used: int) -> None:
    f = Failure("node died", step="run", state="NODE_FAIL")
    for seed in range(50):
        d = POLICY.decide(f, retries_used=used, max_retries=3, resources={},
                          rng=random.Random(seed))
        assert d.retry and d.retry_number == used + 1 and d.budget == 3
        assert 0 <= d.delay_seconds <= min(3600.0, 30.0 * 2.0 ** used)
        assert d.resources == {} and d.escalated == ()
        assert d.explanation.startswith(f"transient (rule node-fail): retry {used + 1} of 3 in")


def test_decide_gives_up_when_budget_is_spent() -> None:
    d = POLICY.decide(Failure("node died", state="NODE_FAIL"), retries_used=3, max_retries=3,
                      resources={"memory_gb": 8})
    assert (d.retry, d.category, d.rule) == (False, "transient", "node-fail")
    assert d.explanation == "transient (rule node-fail): 3 of 3 retries used; failed"


@pytest.mark.parametrize(("failure", "category", "rule"), [
    (Failure("denied", aws_code="AccessDenied"), "configuration", "access-denied"),
    (Failure("bad", step="run", exit_code=65), "data", "bad-fastq"),
    (Failure("scancel", state="CANCELLED"), "permanent", "cancelled"),
    (Failure("spec", category="data"), "data", "validation:data"),
])
def test_decide_never_retries_the_non_retryable(failure: Failure, category: str,
                                                rule: str) -> None:
    d = POLICY.decide(failure, retries_used=0, max_retries=10, resources={})
    assert (d.retry, d.category, d.rule, d.budget) == (False, category, rule, 0)
    assert d.explanation == f"{category} (rule {rule}): not retryable; failed"


def test_zero_max_retries_fails_a_transient_error_at_once() -> None:
    d = POLICY.decide(Failure("x", aws_code="SlowDown"), retries_used=0, max_retries=0,
                      resources={})
    assert not d.retry and "no retries allowed" in d.explanation


def test_out_of_memory_doubles_memory_per_retry_up_to_the_cap() -> None:
    f = Failure("oom", step="run", state="OUT_OF_MEMORY")
    seen = []
    resources: dict[str, object] = {"memory_gb": 6.0, "walltime_minutes": 30}
    for used in range(4):
        d = POLICY.decide(f, retries_used=used, max_retries=4, resources=resources)
        assert d.retry and d.category == "resource"
        seen.append(d.resources["memory_gb"])
        assert d.resources["walltime_minutes"] == 30  # memory failures raise memory only
        resources = d.resources
    assert seen == [12.0, 24.0, 24.0, 24.0]  # capped by max_memory_gb
    capped = POLICY.decide(f, retries_used=0, max_retries=4, resources={"memory_gb": 24.0})
    assert capped.escalated == () and "memory already at the cap" in capped.explanation


def test_memory_escalation_without_a_request_starts_from_the_base() -> None:
    d = POLICY.decide(Failure("killed", step="run", exit_code=137,
                              stderr_tail="Out of memory: Killed process 7"),
                      retries_used=0, max_retries=2, resources={})
    assert d.resources == {"memory_gb": 8.0} and d.escalated == ("memory",)
    assert "memory default -> 8 GB" in d.explanation


def test_timeout_raises_walltime_only() -> None:
    d = POLICY.decide(Failure("t", step="run", state="TIMEOUT"), retries_used=0,
                      max_retries=2, resources={"memory_gb": 8.0, "walltime_minutes": 50})
    assert d.resources == {"memory_gb": 8.0, "walltime_minutes": 75}
    d = POLICY.decide(Failure("t", step="run", state="TIMEOUT"), retries_used=1,
                      max_retries=2, resources=d.resources)
    assert d.resources["walltime_minutes"] == 113
    d = POLICY.decide(Failure("t", step="run", state="TIMEOUT"), retries_used=0,
                      max_retries=2, resources={"walltime_minutes": 100})
    assert d.resources["walltime_minutes"] == 120  # max_walltime_minutes


def test_disk_full_is_retried_without_escalation() -> None:
    d = POLICY.decide(Failure("x", stderr_tail="No space left on device"), retries_used=0,
                      max_retries=2, resources={"memory_gb": 8.0})
    assert d.retry and d.category == "resource" and d.resources == {"memory_gb": 8.0}


def test_backoff_ceiling_never_overflows() -> None:
    assert backoff_ceiling(5000, base=30.0, factor=2.0, cap=3600.0) == 3600.0
