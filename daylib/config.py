"""Settings: one pydantic model, loaded from YAML, overridable by DAYLILY_<SECTION>__<KEY>.

The model's defaults are the source of truth; ``config/daylily-workset.yaml`` documents them
(a test keeps the two equal).
"""

from __future__ import annotations

import os
import socket
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, NonNegativeInt, ValidationError

from daylib.errors import ConfigError
from daylib.states import ErrorCategory

ENV_PREFIX = "DAYLILY_"
Priority = Literal["urgent", "high", "normal", "low"]
PRIORITIES: tuple[Priority, ...] = typing.get_args(Priority)
ExecutorName = Literal["local", "slurm"]
EXECUTORS: tuple[ExecutorName, ...] = typing.get_args(ExecutorName)

# Defaults that a store or publisher built without settings (tests, tools) uses too.
HISTORY_KEEP_FIRST = 5
HISTORY_KEEP_LAST = 50
OUTBOX_STALE_SECONDS = 120.0
OUTBOX_ACK_DELAY_SECONDS = 5.0
OUTBOX_MAX_PENDING = 20  # per workset; beyond it the oldest are dropped


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class AwsSettings(_Section):
    region: str | None = None
    profile: str | None = None
    endpoint_url: str | None = None
    max_attempts: int = Field(5, ge=1, le=20)
    connect_timeout_seconds: float = 5.0
    read_timeout_seconds: float = 30.0


class StorageSettings(_Section):
    bucket: str = "daylily-worksets"
    prefix: str = "worksets/"
    allowed_buckets: list[str] = Field(default_factory=list)


class StateSettings(_Section):
    table: str = "daylily-worksets"
    history_keep_first: int = Field(HISTORY_KEEP_FIRST, ge=1)
    history_keep_last: int = Field(HISTORY_KEEP_LAST, ge=1)


class MonitorSettings(_Section):
    monitor_id: str | None = None
    cluster: str | None = None
    executor: ExecutorName = "local"
    max_concurrent: int = Field(4, ge=1)
    poll_seconds: float = Field(2.0, gt=0)
    discovery_seconds: float = Field(10.0, gt=0)
    reap_seconds: float = Field(5.0, gt=0)
    idle_max_seconds: float = Field(60.0, gt=0)
    lease_seconds: float = Field(30.0, gt=0)
    heartbeat_seconds: float = Field(10.0, gt=0)
    promote_after_seconds: float = Field(3600.0, gt=0)
    claim_spread: int = Field(2, ge=1)
    shutdown_grace_seconds: float = Field(60.0, ge=0)
    workdir: str = "/var/tmp/daylib"
    validate_threads: int = Field(16, ge=1)
    step_timeout_seconds: float = Field(86400.0, gt=0)

    mirror_sentinels: bool = True

    def resolved_monitor_id(self) -> str:
        return self.monitor_id or f"{socket.gethostname()}-{os.getpid()}"


class RoutingSettings(_Section):
    region: str | None = None
    availability_zone: str = ""
    cost_per_vcpu_hour: float = Field(0.0, ge=0)
    cluster_heartbeat_seconds: float = Field(10.0, gt=0)
    cluster_stale_seconds: float = Field(30.0, gt=0)
    soft_affinity_wait_seconds: float = Field(600.0, ge=0)
    bucket_regions: dict[str, str] = Field(default_factory=dict)


class SlurmSettings(_Section):
    partition: str | None = None
    account: str | None = None
    poll_seconds: float = Field(2.0, gt=0)
    command_timeout_seconds: float = Field(30.0, gt=0)
    extra_sbatch_args: list[str] = Field(default_factory=list)


class CapSettings(_Section):
    global_max: int = Field(0, ge=0)
    cluster_max: dict[str, NonNegativeInt] = Field(default_factory=dict)
    cluster_default_max: int = Field(0, ge=0)
    customer_max: dict[str, NonNegativeInt] = Field(default_factory=dict)
    customer_default_max: int = Field(0, ge=0)
    stale_holder_seconds: float = Field(120.0, gt=0)

    def limits(self, cluster: str, customer: str | None) -> dict[str, int]:
        """Cap scopes that apply to a workset, with their limits (0 = unlimited, omitted)."""
        out = {"global": self.global_max,
               f"cluster#{cluster}": self.cluster_max.get(cluster, self.cluster_default_max)}
        if customer:
            out[f"customer#{customer}"] = self.customer_max.get(customer,
                                                               self.customer_default_max)
        return {scope: limit for scope, limit in out.items() if limit > 0}


class WorksetSettings(_Section):
    references: list[str] = Field(
        default_factory=lambda: ["hg38", "hg19", "grch38", "grch37", "b37"]
    )
    pipelines: dict[str, str] = Field(
        default_factory=lambda: {
            name: "{python} -m daylib.pipelines.fastq_qc --samples {samples_tsv} "
            "--out {results_dir} --reference {reference} --pipeline " + name
            for name in ("germline", "somatic", "rna-seq")
        }
    )
    default_priority: Priority = "normal"
    default_max_retries: int = Field(3, ge=0, le=10)


class DaylilySettings(_Section):
    run_prefix: str = (
        "{python} -m daylib.pipelines.fastq_qc --samples {samples_tsv} --out {results_dir} --"
    )
    clone_prefix: str = ""


class LimitSettings(_Section):
    max_yaml_bytes: int = Field(262144, ge=1024)
    max_tsv_bytes: int = Field(1048576, ge=1024)
    max_samples: int = Field(1000, ge=1)
    max_string_length: int = Field(2048, ge=16)
    max_yaml_depth: int = Field(8, ge=2)
    max_yaml_aliases: int = Field(50, ge=0)
    max_fastq_bytes: int = Field(500 * 1024**3, ge=1)


class RetrySettings(_Section):
    base_seconds: float = Field(30.0, ge=0)
    factor: float = Field(2.0, ge=1)
    cap_seconds: float = Field(3600.0, ge=0)


class RuleSettings(_Section):
    """One classification rule; every criterion given must hold (see daylib/policy.py)."""

    name: str = Field(min_length=1)
    category: ErrorCategory
    steps: list[str] = Field(default_factory=list)
    exit_codes: list[int] = Field(default_factory=list)
    signals: list[int] = Field(default_factory=list)
    states: list[str] = Field(default_factory=list)
    aws_codes: list[str] = Field(default_factory=list)
    stderr: str | None = None
    escalate: list[Literal["memory", "walltime"]] = Field(default_factory=list)


class PolicySettings(_Section):
    rules: list[RuleSettings] = Field(default_factory=list)
    unmatched_category: ErrorCategory = "transient"
    unmatched_max_retries: int = Field(1, ge=0, le=10)
    memory_factor: float = Field(2.0, ge=1)
    walltime_factor: float = Field(2.0, ge=1)
    base_memory_gb: float = Field(4.0, gt=0)
    base_walltime_minutes: int = Field(60, ge=1)
    max_memory_gb: float | None = Field(None, gt=0)
    max_walltime_minutes: int | None = Field(None, ge=1)


class NotifySettings(_Section):
    enabled: bool = True
    topic_arn: str | None = None
    topic_name: str = "daylily-workset-events"
    stale_seconds: float = Field(OUTBOX_STALE_SECONDS, gt=0)
    ack_delay_seconds: float = Field(OUTBOX_ACK_DELAY_SECONDS, ge=0)
    max_pending: int = Field(OUTBOX_MAX_PENDING, ge=1)


class DlqSettings(_Section):
    enabled: bool = True
    queue_url: str | None = None
    queue_name: str = "daylily-workset-dlq"


class IntakeSettings(_Section):
    enabled: bool = True
    queue_url: str | None = None
    queue_name: str = "daylily-workset-intake"
    reconcile_seconds: float = Field(600.0, gt=0)
    wait_seconds: int = Field(20, ge=0, le=20)
    batch_size: int = Field(10, ge=1, le=10)


class MetricsSettings(_Section):
    enabled: bool = True
    namespace: str = "Daylily/Worksets"
    interval_seconds: float = Field(60.0, gt=0)


class StepLogSettings(_Section):
    upload: bool = True
    max_bytes: int = Field(1_048_576, ge=1024)
    head_bytes: int = Field(65_536, ge=0)


class Settings(_Section):
    aws: AwsSettings = Field(default_factory=AwsSettings)
    storage: StorageSettings = Field(default_factory=StorageSettings)
    state: StateSettings = Field(default_factory=StateSettings)
    monitor: MonitorSettings = Field(default_factory=MonitorSettings)
    routing: RoutingSettings = Field(default_factory=RoutingSettings)
    slurm: SlurmSettings = Field(default_factory=SlurmSettings)
    caps: CapSettings = Field(default_factory=CapSettings)
    workset: WorksetSettings = Field(default_factory=WorksetSettings)
    daylily: DaylilySettings = Field(default_factory=DaylilySettings)
    limits: LimitSettings = Field(default_factory=LimitSettings)
    retry: RetrySettings = Field(default_factory=RetrySettings)
    policy: PolicySettings = Field(default_factory=PolicySettings)
    notify: NotifySettings = Field(default_factory=NotifySettings)
    dlq: DlqSettings = Field(default_factory=DlqSettings)
    intake: IntakeSettings = Field(default_factory=IntakeSettings)
    metrics: MetricsSettings = Field(default_factory=MetricsSettings)
    step_logs: StepLogSettings = Field(default_factory=StepLogSettings)

    def allowed_buckets(self) -> set[str]:
        return {self.storage.bucket, *self.storage.allowed_buckets}


def _env_overrides(environ: Mapping[str, str]) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for name, raw in environ.items():
        if not name.startswith(ENV_PREFIX) or "__" not in name:
            continue
        section, _, key = name[len(ENV_PREFIX) :].partition("__")
        section, key = section.lower(), key.lower()
        if section not in Settings.model_fields:
            raise ConfigError(f"{name}: unknown config section {section!r}")
        out.setdefault(section, {})[key] = _env_value(name, section, key, raw)
    return out


def _env_value(name: str, section: str, key: str, raw: str) -> Any:
    """Scalars stay text (pydantic converts "8", "0.5", "true" by the field's type, and a
    bucket named "2024" stays a string); lists and maps are parsed as YAML/JSON; an empty
    value means None for optional fields."""
    model = Settings.model_fields[section].annotation
    field = getattr(model, "model_fields", {}).get(key)
    if field is None:
        return raw  # unknown key: validation names it
    origin = typing.get_origin(field.annotation)
    if origin in (list, dict) or field.annotation in (list, dict):
        try:
            return yaml.safe_load(raw)
        except yaml.YAMLError as exc:
            raise ConfigError(f"{name}: not valid YAML/JSON ({exc.__class__.__name__})") from exc
    optional = type(None) in typing.get_args(field.annotation)
    return None if raw == "" and optional else raw


def _merge(base: dict[str, Any], extra: dict[str, dict[str, Any]]) -> dict[str, Any]:
    merged = {k: dict(v) if isinstance(v, dict) else v for k, v in base.items()}
    for section, values in extra.items():
        current = merged.get(section)
        if current is None:
            current = {}
        if not isinstance(current, dict):
            raise ConfigError(f"{section}: must be a mapping")
        current.update(values)
        merged[section] = current
    return merged


def _describe(exc: ValidationError, source: str, from_env: Mapping[str, str]) -> str:
    """One line naming each bad key where it came from: the environment variable that set it,
    else the config file."""
    parts = []
    for err in exc.errors():
        path = ".".join(str(p) for p in err["loc"])
        var = from_env.get(".".join(str(p) for p in err["loc"][:2]))
        where = f"environment variable {var}" if var else source
        if err["type"] == "extra_forbidden":
            section = str(err["loc"][0]) if len(err["loc"]) > 1 else ""
            known = _known_keys(section)
            hint = f" (known keys in {section}: {', '.join(known)})" if known and var else ""
            parts.append(f"{where}: unknown config key {path!r}{hint}")
        else:
            parts.append(f"{where}: {path}: {err['msg']}")
    return "; ".join(parts)


def _known_keys(section: str) -> list[str]:
    model = Settings.model_fields[section].annotation if section in Settings.model_fields \
        else None
    return sorted(getattr(model, "model_fields", {}))


def load_settings(
    path: str | Path | None = None, environ: Mapping[str, str] | None = None
) -> Settings:
    """Defaults < YAML file (``--config`` or ``$DAYLILY_CONFIG``) < environment overrides."""
    env = os.environ if environ is None else environ
    source = str(path or env.get("DAYLILY_CONFIG") or "")
    data: dict[str, Any] = {}
    if source:
        try:
            text = Path(source).read_text()
        except OSError as exc:
            raise ConfigError(f"cannot read config {source}: {exc.strerror}") from exc
        try:
            loaded = yaml.safe_load(text) or {}
        except yaml.YAMLError as exc:
            raise ConfigError(f"{source}: not valid YAML: {exc}") from exc
        if not isinstance(loaded, dict):
            raise ConfigError(f"{source}: top level must be a mapping of sections")
        data = loaded
    overrides = _env_overrides(env)
    data = _merge(data, overrides)
    from_env = {f"{section}.{key}": _env_name(env, section, key)
                for section, values in overrides.items() for key in values}
    try:
        return Settings.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(_describe(exc, source or "configuration", from_env)) from exc


def _env_name(environ: Mapping[str, str], section: str, key: str) -> str:
    """The variable, as spelled in the environment, that set ``section.key``."""
    for name in environ:
        head, _, tail = name[len(ENV_PREFIX):].partition("__")
        if name.startswith(ENV_PREFIX) and (head.lower(), tail.lower()) == (section, key):
            return name
    return f"{ENV_PREFIX}{section.upper()}__{key.upper()}"
