"""Failure policy: classify an error, then decide retry (with jittered backoff) or give up.

Pure functions over plain data, so every rule and tie-break is unit-testable.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass, field

RETRYABLE = ("transient", "resource")


@dataclass(frozen=True)
class Failure:
    """What went wrong, in the terms the rules match on."""

    message: str
    step: str | None = None
    exit_code: int | None = None
    signal: int | None = None
    state: str | None = None
    aws_code: str | None = None
    stderr_tail: str = ""
    category: str | None = None


@dataclass(frozen=True)
class Rule:
    name: str
    category: str
    steps: tuple[str, ...] = ()
    exit_codes: tuple[int, ...] = ()
    signals: tuple[int, ...] = ()
    states: tuple[str, ...] = ()
    aws_codes: tuple[str, ...] = ()
    stderr: str | None = None
    _pattern: re.Pattern[str] | None = field(default=None, init=False, compare=False)

    def __post_init__(self) -> None:
        if self.stderr:
            object.__setattr__(self, "_pattern", re.compile(self.stderr, re.IGNORECASE))

    def matches(self, f: Failure) -> bool:
        checks = [
            (self.steps, f.step in self.steps),
            (self.exit_codes, f.exit_code in self.exit_codes),
            (self.signals, f.signal in self.signals),
            (self.states, f.state in self.states),
            (self.aws_codes, f.aws_code in self.aws_codes),
        ]
        if any(wanted and not ok for wanted, ok in checks):
            return False
        if self._pattern is not None:
            return bool(self._pattern.search(f.stderr_tail or f.message))
        return any(wanted for wanted, _ in checks)


DEFAULT_RULES: tuple[Rule, ...] = (
    Rule("throttled", "transient", aws_codes=("ThrottlingException", "Throttling",
                                              "ProvisionedThroughputExceededException",
                                              "RequestLimitExceeded", "SlowDown",
                                              "TooManyRequestsException")),
    Rule("aws-5xx", "transient", aws_codes=("InternalError", "ServiceUnavailable",
                                            "InternalServerError", "500", "502", "503", "504")),
    Rule("connection", "transient", aws_codes=("EndpointConnectionError",
                                               "ConnectionClosedError", "ReadTimeoutError",
                                               "ConnectTimeoutError")),
    Rule("node-fail", "transient", states=("NODE_FAIL", "BOOT_FAIL", "PREEMPTED", "LOST")),
    Rule("out-of-memory", "resource", states=("OUT_OF_MEMORY",)),
    Rule("oom-kill", "resource", exit_codes=(137,), stderr=r"out of memory|oom|killed process"),
    Rule("walltime", "resource", states=("TIMEOUT", "DEADLINE")),
    Rule("disk-full", "resource", stderr=r"no space left on device|disk quota exceeded"),
    Rule("access-denied", "configuration", aws_codes=("AccessDenied", "AccessDeniedException",
                                                      "403", "Forbidden")),
    Rule("unknown-name", "configuration", stderr=r"unknown (reference|pipeline)"),
    Rule("bad-fastq", "data", exit_codes=(65, 66)),
    Rule("missing-input", "data", aws_codes=("NoSuchKey", "404")),
    Rule("cancelled", "permanent", states=("CANCELLED",)),
)
DEFAULT_RULE = Rule("unmatched", "transient")
UNMATCHED_MAX_RETRIES = 1


def classify(f: Failure, rules: tuple[Rule, ...] = DEFAULT_RULES) -> tuple[str, str]:
    """(category, rule name). A category already known (validation) wins over rules; an
    unmatched failure is retried a capped number of times (``UNMATCHED_MAX_RETRIES``)."""
    if f.category:
        return f.category, f"validation:{f.category}"
    for rule in rules:
        if rule.matches(f):
            return rule.category, rule.name
    return DEFAULT_RULE.category, DEFAULT_RULE.name


def retry_budget(category: str, rule: str, max_retries: int) -> int:
    if category not in RETRYABLE:
        return 0
    if rule == DEFAULT_RULE.name:
        return min(max_retries, UNMATCHED_MAX_RETRIES)
    return max_retries


def backoff_seconds(attempt: int, *, base: float, factor: float, cap: float,
                    rng: random.Random | None = None) -> float:
    """Full jitter: uniform in [0, min(cap, base * factor**(attempt-1))]."""
    ceiling = min(cap, base * factor ** max(0, attempt - 1))
    return (rng or random).uniform(0, ceiling)
