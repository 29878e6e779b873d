"""Settings: the documented YAML equals the model, and the file/env layering is strict."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from daylib.config import Settings, load_settings
from daylib.errors import ConfigError

REPO = Path(__file__).resolve().parents[2]
CONFIG = REPO / "config" / "daylily-workset.yaml"


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "daylily-workset.yaml"
    path.write_text(text)
    return path


def _annotation_fields(annotation: type) -> list[tuple[str, str]]:
    """(section, key) of every setting whose annotation is exactly ``annotation``."""
    out = []
    for section, field in Settings.model_fields.items():
        model: Any = field.annotation
        for key, sub in model.model_fields.items():
            if sub.annotation is annotation:
                out.append((section, key))
    return out


# ---------------------------------------------------------------- the documented file

def test_documented_file_equals_model_defaults() -> None:
    loaded = load_settings(CONFIG, environ={})
    assert loaded.model_dump() == Settings().model_dump()


def test_documented_file_values_have_the_model_types() -> None:
    # 5 and 5.0 compare equal; the file should still show floats as floats, lists as lists.
    raw = yaml.safe_load(CONFIG.read_text())
    defaults = Settings().model_dump()
    for section, values in defaults.items():
        for key, value in values.items():
            assert type(raw[section][key]) is type(value), f"{section}.{key}"


def test_documented_file_lists_every_section_and_key() -> None:
    raw = yaml.safe_load(CONFIG.read_text())
    assert isinstance(raw, dict)
    assert set(raw) == set(Settings.model_fields)
    for section, field in Settings.model_fields.items():
        model: Any = field.annotation
        assert isinstance(raw[section], dict), section
        assert set(raw[section]) == set(model.model_fields), section


def test_documented_file_comments_every_key() -> None:
    lines = CONFIG.read_text().splitlines()
    key_line = re.compile(r"^  ([a-z_]+):")
    keys = 0
    for i, line in enumerate(lines):
        match = key_line.match(line)
        if not match:
            continue
        keys += 1
        above = lines[i - 1].strip()
        assert above.startswith("#") and len(above) > 2, f"no comment above {match.group(1)}"
    assert keys == sum(len(f.annotation.model_fields) for f in Settings.model_fields.values())


def test_documented_file_explains_overrides() -> None:
    head = CONFIG.read_text().split("\naws:", 1)[0]
    for needle in ("DAYLILY_<SECTION>__<KEY>", "DAYLILY_MONITOR__MAX_CONCURRENT=8",
                   "AWS_PROFILE", "AWS_REGION", "AWS_ENDPOINT_URL"):
        assert needle in head


# ---------------------------------------------------------------- defaults and file

def test_no_file_no_env_gives_defaults() -> None:
    assert load_settings(None, environ={}).model_dump() == Settings().model_dump()


def test_file_values_are_applied(tmp_path: Path) -> None:
    path = _write(tmp_path, "monitor:\n  max_concurrent: 12\nstorage:\n  bucket: my-bucket\n")
    s = load_settings(path, environ={})
    assert s.monitor.max_concurrent == 12
    assert s.storage.bucket == "my-bucket"
    assert s.monitor.poll_seconds == Settings().monitor.poll_seconds


def test_empty_file_gives_defaults(tmp_path: Path) -> None:
    path = _write(tmp_path, "# nothing set\n")
    assert load_settings(path, environ={}).model_dump() == Settings().model_dump()


def test_config_path_from_daylily_config_env(tmp_path: Path) -> None:
    path = _write(tmp_path, "monitor:\n  cluster: c7\n")
    s = load_settings(None, environ={"DAYLILY_CONFIG": str(path)})
    assert s.monitor.cluster == "c7"


def test_unknown_key_in_file_names_key_path(tmp_path: Path) -> None:
    path = _write(tmp_path, "monitor:\n  max_concurent: 8\n")
    with pytest.raises(ConfigError) as info:
        load_settings(path, environ={})
    assert "monitor.max_concurent" in str(info.value)


def test_unknown_section_in_file_is_error(tmp_path: Path) -> None:
    path = _write(tmp_path, "monitr:\n  max_concurrent: 8\n")
    with pytest.raises(ConfigError) as info:
        load_settings(path, environ={})
    assert "monitr" in str(info.value)


def test_top_level_not_mapping_is_error(tmp_path: Path) -> None:
    path = _write(tmp_path, "- monitor\n- storage\n")
    with pytest.raises(ConfigError):
        load_settings(path, environ={})


def test_invalid_yaml_file_is_error(tmp_path: Path) -> None:
    path = _write(tmp_path, "monitor:\n  max_concurrent: [1,\n")
    with pytest.raises(ConfigError):
        load_settings(path, environ={})


def test_missing_config_file_is_error(tmp_path: Path) -> None:
    missing = tmp_path / "nope.yaml"
    with pytest.raises(ConfigError) as info:
        load_settings(missing, environ={})
    assert str(missing) in str(info.value)


def test_missing_config_file_from_env_is_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError):
        load_settings(None, environ={"DAYLILY_CONFIG": str(tmp_path / "nope.yaml")})


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ("monitor:\n  max_concurrent: 0\n", "monitor.max_concurrent"),
        ("monitor:\n  max_concurrent: lots\n", "monitor.max_concurrent"),
        ("monitor:\n  executor: kubernetes\n", "monitor.executor"),
        ("aws:\n  max_attempts: 50\n", "aws.max_attempts"),
        ("retry:\n  factor: 0.5\n", "retry.factor"),
        ("workset:\n  default_priority: asap\n", "workset.default_priority"),
    ],
)
def test_invalid_value_in_file_names_key(tmp_path: Path, text: str, key: str) -> None:
    path = _write(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        load_settings(path, environ={})
    assert key in str(info.value)


# ---------------------------------------------------------------- environment overrides

def test_env_int_override() -> None:
    s = load_settings(None, environ={"DAYLILY_MONITOR__MAX_CONCURRENT": "8"})
    assert s.monitor.max_concurrent == 8
    assert isinstance(s.monitor.max_concurrent, int)


def test_env_float_override() -> None:
    s = load_settings(None, environ={"DAYLILY_MONITOR__POLL_SECONDS": "0.25"})
    assert s.monitor.poll_seconds == 0.25


def test_env_list_override() -> None:
    s = load_settings(None, environ={"DAYLILY_STORAGE__ALLOWED_BUCKETS": "[a-bucket, b-bucket]"})
    assert s.storage.allowed_buckets == ["a-bucket", "b-bucket"]
    assert s.allowed_buckets() == {"daylily-worksets", "a-bucket", "b-bucket"}


def test_env_dict_override() -> None:
    s = load_settings(None, environ={"DAYLILY_WORKSET__PIPELINES": "{germline: run-it}"})
    assert s.workset.pipelines == {"germline": "run-it"}


def test_env_bool_override() -> None:
    fields = _annotation_fields(bool)
    if not fields:
        pytest.skip("Settings has no bool setting to override")
    for raw, expected in (("true", True), ("false", False), ("True", True), ("0", False)):
        for section, key in fields:
            name = f"DAYLILY_{section.upper()}__{key.upper()}"
            s = load_settings(None, environ={name: raw})
            assert getattr(getattr(s, section), key) is expected, (name, raw)


def test_env_null_override_for_optional() -> None:
    s = load_settings(None, environ={"DAYLILY_AWS__REGION": "eu-west-1"})
    assert s.aws.region == "eu-west-1"
    s = load_settings(None, environ={"DAYLILY_NOTIFY__TOPIC_ARN": ""})
    assert s.notify.topic_arn is None


@pytest.mark.parametrize(
    ("name", "raw", "attr"),
    [
        # String settings keep the text as given even when it looks like YAML of another type:
        # S3 bucket names may be all digits, clusters and profiles may be called "on" or "no".
        ("DAYLILY_STORAGE__BUCKET", "2024", ("storage", "bucket")),
        ("DAYLILY_MONITOR__CLUSTER", "on", ("monitor", "cluster")),
        ("DAYLILY_MONITOR__MONITOR_ID", "007", ("monitor", "monitor_id")),
        ("DAYLILY_AWS__PROFILE", "no", ("aws", "profile")),
        # An empty workset prefix (folders at the bucket root) is a valid value, not "unset".
        ("DAYLILY_STORAGE__PREFIX", "", ("storage", "prefix")),
    ],
)
def test_env_string_setting_keeps_text(name: str, raw: str, attr: tuple[str, str]) -> None:
    s = load_settings(None, environ={name: raw})
    assert getattr(getattr(s, attr[0]), attr[1]) == raw


def test_env_beats_file(tmp_path: Path) -> None:
    path = _write(tmp_path, "monitor:\n  max_concurrent: 12\n  cluster: from-file\n")
    s = load_settings(path, environ={"DAYLILY_MONITOR__MAX_CONCURRENT": "3"})
    assert s.monitor.max_concurrent == 3
    assert s.monitor.cluster == "from-file"


def test_env_overrides_documented_file() -> None:
    s = load_settings(CONFIG, environ={"DAYLILY_MONITOR__MAX_CONCURRENT": "8"})
    assert s.monitor.max_concurrent == 8


def test_env_unknown_section_is_error() -> None:
    with pytest.raises(ConfigError) as info:
        load_settings(None, environ={"DAYLILY_MONITR__MAX_CONCURRENT": "8"})
    assert "DAYLILY_MONITR__MAX_CONCURRENT" in str(info.value)


def test_env_unknown_key_is_error() -> None:
    with pytest.raises(ConfigError) as info:
        load_settings(None, environ={"DAYLILY_MONITOR__MAX_CONCURENT": "8"})
    assert "monitor.max_concurent" in str(info.value)


@pytest.mark.parametrize(
    ("name", "raw", "key"),
    [
        ("DAYLILY_MONITOR__MAX_CONCURRENT", "eight", "monitor.max_concurrent"),
        ("DAYLILY_MONITOR__MAX_CONCURRENT", "0", "monitor.max_concurrent"),
        ("DAYLILY_MONITOR__POLL_SECONDS", "-1", "monitor.poll_seconds"),
        ("DAYLILY_STORAGE__ALLOWED_BUCKETS", "{a: 1}", "storage.allowed_buckets"),
    ],
)
def test_env_invalid_value_names_key(name: str, raw: str, key: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_settings(None, environ={name: raw})
    assert key in str(info.value)


def test_unrelated_env_is_ignored() -> None:
    env = {"DAYLILY_CONFIG_DIR": "x", "PATH": "/bin", "AWS_REGION": "eu-west-1",
           "DAYLILYX__Y": "1"}
    assert load_settings(None, environ=env).model_dump() == Settings().model_dump()


def test_settings_allowed_buckets_default_is_workset_bucket_only() -> None:
    assert Settings().allowed_buckets() == {"daylily-worksets"}
