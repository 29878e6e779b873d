"""Failure policy: classify an error, then decide retry (with jittered backoff and, for
resource failures, more resources) or give up.

Pure functions over plain data, so every rule and tie-break is unit-testable. The rules are
ordered: those from config (``policy.rules``) first, then ``DEFAULT_RULES``; the first rule
whose every given criterion holds decides the category. A failure no rule matches gets the
documented default (``policy.unmatched_category``, retried at most
``policy.unmatched_max_retries`` times).
"""

from __future__ import annotations

import math
import random
import re
from dataclasses import dataclass, field
from typing import Any

from daylib.config import PolicySettings, RetrySettings, Settings
from daylib.errors import ConfigError

_RETRY = RetrySettings()  # the documented defaults: config.py is where they are defined
_POLICY = PolicySettings()

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
    escalate: tuple[str, ...] = ()
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
    Rule("out-of-memory", "resource", states=("OUT_OF_MEMORY",), escalate=("memory",)),
    Rule("oom-kill", "resource", exit_codes=(137,), stderr=r"out of memory|oom|killed process",
         escalate=("memory",)),
    Rule("walltime", "resource", states=("TIMEOUT", "DEADLINE"), escalate=("walltime",)),
    Rule("disk-full", "resource", stderr=r"no space left on device|disk quota exceeded"),
    Rule("access-denied", "configuration", aws_codes=("AccessDenied", "AccessDeniedException",
                                                      "403", "Forbidden")),
    Rule("unknown-name", "configuration", stderr=r"unknown (reference|pipeline)"),
    Rule("bad-fastq", "data", exit_codes=(65, 66)),
    Rule("missing-input", "data", aws_codes=("NoSuchKey", "404")),
    Rule("cancelled", "permanent", states=("CANCELLED",)),
    # Slurm refuses a request no node or partition can satisfy; the same request cannot
    # succeed later (raise policy caps or fix the workset's resources).
    Rule("unsatisfiable", "configuration",
         stderr=r"memory specification can not be satisfied|requested node configuration "
                r"is not available|requested time limit is invalid"),
)
DEFAULT_RULE = Rule("unmatched", _POLICY.unmatched_category)
UNMATCHED_MAX_RETRIES = _POLICY.unmatched_max_retries

_AWS_CODE = re.compile(r"An error occurred \(([A-Za-z0-9._-]+)\)")
_BOTO_ERRORS = ("EndpointConnectionError", "ConnectionClosedError", "ReadTimeoutError",
                "ConnectTimeoutError")


def aws_code_in(text: str) -> str | None:
    """The AWS error code a step's stderr reports (botocore's wording), if any; the last one
    wins, as the final error is the one that ended the step."""
    codes = _AWS_CODE.findall(text or "")
    if codes:
        return str(codes[-1])
    for name in _BOTO_ERRORS:
        if name in (text or ""):
            return name
    return None


def transient_aws_code(code: str | None) -> bool:
    """An AWS error code the default rules call transient (throttling, 5xx, connection)."""
    return bool(code) and any(code in r.aws_codes for r in DEFAULT_RULES
                              if r.category == "transient")


def classify(f: Failure, rules: tuple[Rule, ...] = DEFAULT_RULES,
             unmatched: Rule = DEFAULT_RULE) -> tuple[str, str]:
    """(category, rule name). A category already known (validation) wins over rules."""
    if f.category:
        return f.category, f"validation:{f.category}"
    for rule in rules:
        if rule.matches(f):
            return rule.category, rule.name
    return unmatched.category, unmatched.name


def retry_budget(category: str, rule: str, max_retries: int,
                 unmatched_max_retries: int = UNMATCHED_MAX_RETRIES) -> int:
    if category not in RETRYABLE:
        return 0
    if rule == DEFAULT_RULE.name:
        return min(max_retries, unmatched_max_retries)
    return max_retries


def backoff_seconds(attempt: int, *, base: float, factor: float, cap: float,
                    rng: random.Random | None = None) -> float:
    """Full jitter: uniform in [0, min(cap, base * factor**(attempt-1))]."""
    return (rng or random).uniform(0, backoff_ceiling(attempt, base=base, factor=factor,
                                                      cap=cap))


def backoff_ceiling(attempt: int, *, base: float, factor: float, cap: float) -> float:
    exponent = max(0, attempt - 1)
    try:
        grown = base * factor ** exponent
    except OverflowError:
        grown = math.inf
    return min(cap, grown)


@dataclass(frozen=True)
class Decision:
    """What to do about one failure, and why (recorded on the workset for ``show``)."""

    category: str
    rule: str
    retry: bool
    retry_number: int  # the retry this decision schedules (1 = first), or retries used
    budget: int
    delay_seconds: float
    resources: dict[str, Any]  # effective resources for the next attempt (may be unchanged)
    escalated: tuple[str, ...]
    explanation: str


@dataclass(frozen=True)
class Policy:
    """The failure policy a deployment configured (``retry`` and ``policy`` sections)."""

    rules: tuple[Rule, ...] = DEFAULT_RULES
    unmatched: Rule = DEFAULT_RULE
    unmatched_max_retries: int = UNMATCHED_MAX_RETRIES
    base_seconds: float = _RETRY.base_seconds
    factor: float = _RETRY.factor
    cap_seconds: float = _RETRY.cap_seconds
    memory_factor: float = _POLICY.memory_factor
    walltime_factor: float = _POLICY.walltime_factor
    base_memory_gb: float = _POLICY.base_memory_gb
    base_walltime_minutes: int = _POLICY.base_walltime_minutes
    max_memory_gb: float | None = _POLICY.max_memory_gb
    max_walltime_minutes: int | None = _POLICY.max_walltime_minutes

    @classmethod
    def from_settings(cls, settings: Settings) -> Policy:
        p, r = settings.policy, settings.retry
        configured = []
        for i, rs in enumerate(p.rules):
            try:
                configured.append(Rule(
                    rs.name, rs.category, steps=tuple(rs.steps), exit_codes=tuple(rs.exit_codes),
                    signals=tuple(rs.signals), states=tuple(rs.states),
                    aws_codes=tuple(rs.aws_codes), stderr=rs.stderr, escalate=tuple(rs.escalate)))
            except re.error as exc:
                raise ConfigError(f"policy.rules.{i} ({rs.name}): stderr is not a valid "
                                  f"regular expression: {exc}") from exc
        return cls(rules=(*configured, *DEFAULT_RULES),
                   unmatched=Rule(DEFAULT_RULE.name, p.unmatched_category),
                   unmatched_max_retries=p.unmatched_max_retries, base_seconds=r.base_seconds,
                   factor=r.factor, cap_seconds=r.cap_seconds, memory_factor=p.memory_factor,
                   walltime_factor=p.walltime_factor, base_memory_gb=p.base_memory_gb,
                   base_walltime_minutes=p.base_walltime_minutes,
                   max_memory_gb=p.max_memory_gb, max_walltime_minutes=p.max_walltime_minutes)

    def classify(self, f: Failure) -> tuple[str, str]:
        return classify(f, self.rules, self.unmatched)

    def rule(self, name: str) -> Rule | None:
        return next((r for r in self.rules if r.name == name), None)

    def escalate(self, resources: dict[str, Any], kinds: tuple[str, ...]) -> dict[str, Any]:
        """One step up for each kind in ``kinds``, capped; returns the new resources."""
        out = dict(resources)
        if "memory" in kinds:
            now = float(out.get("memory_gb") or self.base_memory_gb)
            raised = now * self.memory_factor
            if self.max_memory_gb is not None:
                raised = min(raised, max(now, self.max_memory_gb))
            out["memory_gb"] = round(raised, 3)
        if "walltime" in kinds:
            now_min = int(out.get("walltime_minutes") or self.base_walltime_minutes)
            raised_min = math.ceil(now_min * self.walltime_factor)
            if self.max_walltime_minutes is not None:
                raised_min = min(raised_min, max(now_min, self.max_walltime_minutes))
            out["walltime_minutes"] = raised_min
        return out

    def decide(self, f: Failure, *, retries_used: int, max_retries: int,
               resources: dict[str, Any], rng: random.Random | None = None) -> Decision:
        """Classify ``f`` and decide: retry (when, with what) or give up.

        ``retries_used``: automatic retries already spent from the current budget;
        ``resources``: what the failed attempt ran with (``memory_gb``, ``walltime_minutes``).
        """
        category, rule_name = self.classify(f)
        budget = retry_budget(category, rule_name, max_retries, self.unmatched_max_retries)
        rule = self.rule(rule_name)
        if category == "resource" and rule is not None and rule.escalate:
            kinds = rule.escalate
        else:
            kinds = ()
        if retries_used < budget:
            n = retries_used + 1
            delay = backoff_seconds(n, base=self.base_seconds, factor=self.factor,
                                    cap=self.cap_seconds, rng=rng)
            new = self.escalate(resources, kinds) if kinds else dict(resources)
            raised = tuple(k for k in kinds if _changed(k, resources, new))
            more = "".join(f"; {_describe(k, resources, new)}" for k in kinds)
            capped = [k for k in kinds if k not in raised]
            more += "".join(f"; {k} already at the cap" for k in capped)
            text = (f"{category} (rule {rule_name}): retry {n} of {budget} in {delay:.1f} s"
                    f"{more}")
            return Decision(category, rule_name, True, n, budget, delay, new, raised, text)
        why = ("not retryable" if budget == 0 and category not in RETRYABLE else
               "no retries allowed" if budget == 0 else f"{retries_used} of {budget} retries "
               "used")
        text = f"{category} (rule {rule_name}): {why}; failed"
        return Decision(category, rule_name, False, retries_used, budget, 0.0,
                        dict(resources), (), text)


def _key(kind: str) -> str:
    return "memory_gb" if kind == "memory" else "walltime_minutes"


def _changed(kind: str, old: dict[str, Any], new: dict[str, Any]) -> bool:
    return bool(new.get(_key(kind)) != old.get(_key(kind)))


def _describe(kind: str, old: dict[str, Any], new: dict[str, Any]) -> str:
    key = _key(kind)
    unit = "GB" if kind == "memory" else "min"
    before, after = old.get(key), new.get(key)
    shown = f"{float(before):g}" if before is not None else "default"
    return f"{kind} {shown} -> {float(after or 0):g} {unit}"
